"""Bradley-Terry on the whole OA release against Chatbot Arena's own code (FastChat), in one run.

Imports the release's OA GPT-4 judgments into a temporary SQLite store, then compares
`arena.bradley_terry.bradley_terry` with FastChat's `compute_bt` (point ratings, both centred on their
mean) and times the project's bootstrap (redrawing battles, and redrawing prompts with all their
matches) against FastChat's `compute_bootstrap_bt` for the same number of rounds (FastChat fits
its rounds in a process pool over every core; the project fits them together in one process).
FastChat is imported from the peer copy, unchanged. Writes docs/bench/bt.md.

    PYTHONPATH=. python bench/bt.py [--rounds 100] [--repeats 3]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import statistics
import sys
from pathlib import Path

import numpy as np
import pandas as pd
from common import machine_note, oa_release_frame, spread, timed, write_page

from arena import leaderboard
from arena.battles import Battles, battles
from arena.bradley_terry import bradley_terry
from arena.bt_fit import BT_L2

PROJECT = Path(__file__).resolve().parents[1]
FASTCHAT = PROJECT.parent / "shared" / "peers" / "fastchat"
COMMAND = "PYTHONPATH=. python bench/bt.py --rounds 100 --repeats 3"


def fastchat_battles(bt: Battles) -> pd.DataFrame:
    """The same matches in FastChat's battles layout (model_a, model_b, winner)."""
    names = np.array(bt.models)
    winner = np.select([bt.score == 1.0, bt.score == 0.0], ["model_a", "model_b"], "tie")
    return pd.DataFrame({"model_a": names[bt.a], "model_b": names[bt.b], "winner": winner})


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--release", type=Path, default=PROJECT.parent / "shared" / "data" / "qlora-eval")
    parser.add_argument("--rounds", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=PROJECT / "docs" / "bench" / "bt.md")
    args = parser.parse_args()
    sys.path.insert(0, str(FASTCHAT))
    import rating_systems  # FastChat's fastchat/serve/monitor/rating_systems.py, unchanged

    load_start = os.getloadavg()[0]
    frame = oa_release_frame(args.release)
    bt = battles(frame)
    peer_battles = fastchat_battles(bt)

    ours = bradley_terry(frame, bootstrap=0).set_index("model")["rating"]
    theirs = rating_systems.compute_bt(peer_battles)
    gap = (ours - ours.mean()) - (theirs - theirs.mean()).reindex(ours.index)
    same_order = list(ours.sort_values(ascending=False).index) == list(theirs.index)

    def fastchat_bootstrap() -> pd.DataFrame:
        with contextlib.redirect_stderr(io.StringIO()):  # its tqdm bar
            return rating_systems.compute_bootstrap_bt(peer_battles, args.rounds)

    sides = {
        "FastChat `compute_bootstrap_bt` (battles redrawn, L-BFGS per round, process pool)": fastchat_bootstrap,
        "project, battles redrawn (`--resample battle`)": lambda: bradley_terry(
            frame, bootstrap=args.rounds, resample="battle"),
        "project, prompts redrawn (`--resample prompt`)": lambda: bradley_terry(
            frame, bootstrap=args.rounds, resample="prompt"),
    }  # fmt: skip
    for call in sides.values():  # warm-up: imports, the process pool's first start
        call()
    walls: dict[str, list[float]] = {name: [] for name in sides}
    results = {}
    for _ in range(args.repeats):  # interleaved, so that load on the machine hits every side alike
        for name, call in sides.items():
            results[name], took = timed(call)
            walls[name].append(took.wall)
    base = statistics.median(walls[next(iter(sides))])
    fc_boot = results[next(iter(sides))]
    fc_low, fc_high = fc_boot.quantile(0.025), fc_boot.quantile(0.975)
    battle_table = results["project, battles redrawn (`--resample battle`)"].set_index("model")
    width_gap = (battle_table["upper"] - battle_table["lower"]) - (fc_high - fc_low).reindex(
        battle_table.index
    )

    lines = [
        "## Bradley-Terry against Chatbot Arena's code (`bench/bt.py`)",
        "",
        f"The whole OA release: {len(bt):,} GPT-4 judgments rated among {len(bt.models)} models. FastChat's "
        "`compute_bt` and `compute_bootstrap_bt` (`fastchat/serve/monitor/rating_systems.py`, imported unchanged) "
        "against `arena.bradley_terry.bradley_terry` on the same matches, ties counted as half a win by both.",
        "",
        f"Same numbers: centred on their means, the project's ratings differ from FastChat's by at most "
        f"**{gap.abs().max():.4f} Elo points** (the project adds a weak prior, l2={BT_L2:g} on natural-log "
        f"strengths, that keeps unbeaten models finite); same order: {'yes' if same_order else 'no'}. The widths "
        f"of the 95% battle-bootstrap intervals differ from FastChat's by at most {width_gap.abs().max():.1f} points "
        "(different random draws).",
        "",
        f"Bootstrap, {args.rounds} rounds, {args.repeats} runs each, interleaved after a warm-up "
        "(median and range of wall seconds):",
        "",
        "| bootstrap | wall seconds | speed against FastChat |",
        "|---|---|---|",
        *[f"| {name} | {spread(w)} | {base / statistics.median(w):.1f}x |" for name, w in walls.items()],
        "",
        "Why it is fast: a bootstrap round only changes how often each kind of match (slot-1 model, slot-2 "
        "model, result) is played, so rounds are weightings of a few hundred kinds, not copies of the matches; "
        "all rounds' Newton steps run together as one batched solve (`arena/bt_fit.py`) on one BLAS thread. "
        "FastChat also works on kinds but runs L-BFGS per round in a process pool.",
        "",
        machine_note(load_start),
        "",
        "The project's leaderboard (battle bootstrap):",
        "",
        leaderboard.render(results["project, battles redrawn (`--resample battle`)"], "md"),
        f"Reproduce: `{COMMAND}`",
        "",
    ]
    write_page(args.out, lines)


if __name__ == "__main__":
    main()
