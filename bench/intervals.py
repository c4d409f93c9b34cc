"""What the rating intervals say on the QLoRA paper's own data, and what they cost.

Imports the release into a temporary SQLite store and rates the 4,480 GPT-4 Vicuna verdicts:

- Bradley-Terry interval half-widths when the bootstrap redraws battles against prompts (each prompt
  yields every pair in both orders, so battles are not independent);
- the paper's Elo (K = 32, 10,000 orderings): ranks on the spread of single orderings (the old rule)
  against ranks on the prompt-bootstrap interval (the default now);
- Elo at K = 4 and K = 32 against the paper's Table 1;
- style control: the length and markdown coefficients, and ranks with and without control;
- the longer answer's raw win rate against the length effect with the models held fixed;
- CPU seconds of each (repeats, median and range; the machine was shared, read the ratios).

Writes docs/bench/intervals.md.

    OPENBLAS_NUM_THREADS=1 .venv/bin/python bench/intervals.py [--release ../shared/data/qlora-eval] [--repeats 3]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import math
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from arena import style
from arena.analysis import bias
from arena.battles import RESAMPLE_UNITS, battles
from arena.bradley_terry import bradley_terry
from arena.bt_fit import ELO_SCALE
from arena.elo import elo_ratings
from arena.import_qlora import import_qlora_release
from arena.query.generations import generations_frame
from arena.query.judgments import read_judgments
from arena.rating_table import interval_ranks
from arena.store import Store

PROJECT = Path(__file__).resolve().parents[1]
COMMAND = (
    "OPENBLAS_NUM_THREADS=1 python bench/intervals.py --release ../shared/data/qlora-eval --repeats {repeats}"
)
"""One BLAS thread: on a busy 2-core machine threaded BLAS made each style-control fit several times slower."""
TABLE1 = {"gpt-4": 1348, "guanaco-65b": 1022, "guanaco-33b": 992, "vicuna-13b": 974, "gpt-3.5-turbo": 966,
          "guanaco-13b": 916, "bard": 902, "guanaco-7b": 879}  # fmt: skip
"""The QLoRA paper's Table 1 (Elo, GPT-4 judge, Vicuna benchmark)."""


def vicuna(release: Path) -> tuple[pd.DataFrame, pd.Series]:
    """The release's three-class GPT-4 Vicuna verdicts and every Vicuna answer's text."""
    with tempfile.TemporaryDirectory() as tmp:
        store = Store(f"sqlite:///{tmp}/bench.db")
        with contextlib.redirect_stdout(io.StringIO()):
            import_qlora_release(store, release, progress=False)
        frame = read_judgments(
            store, benchmark="vicuna", judge="gpt-4", template_id="qlora-vicuna-threeclass"
        )
        with store.session() as session:
            texts = generations_frame(session, "vicuna").set_index("generation_id")["text"]
        store.engine.dispose()
    return frame, texts


def peer_check(frame: pd.DataFrame, texts: pd.Series) -> str:
    """How far this project's style-controlled fit is from FastChat's `fit_contextual_bt` given the same
    matches and features (both nearly unpenalised), or why it was not compared."""
    folder = (
        Path(os.environ.get("GUANACO_SHARED_DATA", PROJECT.parent / "shared" / "data")).parent
        / "peers"
        / "fastchat"
    )
    if not (folder / "rating_systems.py").is_file():
        return f"not compared: FastChat's rating_systems.py is not in {folder}"
    sys.path.insert(0, str(folder))
    import rating_systems  # noqa: PLC0415 - the peer's own module, only where it is present

    bt = battles(frame)
    x, _, _ = style.style_differences(bt, style.answer_style(texts), style.FEATURES)
    ours = style.fit_contextual_bt(style.design_matrix(bt, x), bt.score, l2=1e-9)
    theirs = rating_systems.fit_contextual_bt(np.stack([bt.a, bt.b], axis=1), x, bt.score, bt.models, reg=1e-9,
                                              tol=1e-10)  # fmt: skip
    m = len(bt.models)
    mine, peer = (
        ours[:m] - ours[:m].mean(),
        theirs[:m] * math.log(10.0) - (theirs[:m] * math.log(10.0)).mean(),
    )
    return (f"agrees with FastChat's `fit_contextual_bt` on the same matches and features (both nearly "
            f"unpenalised) to {np.abs(mine - peer).max() * ELO_SCALE:.3f} Elo points in the ratings and "
            f"{np.abs(ours[m:] - theirs[m:]).max():.1e} in the coefficients")  # fmt: skip


def timed(work: Callable[[], pd.DataFrame], repeats: int) -> tuple[pd.DataFrame, list[float]]:
    """The result of `work` and its CPU seconds over `repeats` runs."""
    seconds = []
    for _ in range(repeats):
        start = time.process_time()
        result = work()
        seconds.append(time.process_time() - start)
    return result, seconds


def spread(seconds: list[float]) -> str:
    return f"{statistics.median(seconds):.1f} s ({min(seconds):.1f}-{max(seconds):.1f})"


def markdown(table: pd.DataFrame) -> str:
    lines = ["| " + " | ".join(map(str, table.columns)) + " |", "|" + "---|" * len(table.columns)]
    lines += ["| " + " | ".join(str(v) for v in row) + " |" for row in table.itertuples(index=False)]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--release", type=Path, default=PROJECT.parent / "shared" / "data" / "qlora-eval")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=PROJECT / "docs" / "bench" / "intervals.md")
    args = parser.parse_args()
    frame, texts = vicuna(args.release)

    bt = {unit: bradley_terry(frame, bootstrap=1000, resample=unit).set_index("model")
          for unit in RESAMPLE_UNITS}  # fmt: skip
    bt_time = timed(lambda: bradley_terry(frame, bootstrap=1000), args.repeats)[1]
    widths = pd.DataFrame({
        "model": bt["prompt"].index,
        "rating": bt["prompt"].rating.round(1),
        "± battles": ((bt["battle"].upper - bt["battle"].lower) / 2).round(1).to_numpy(),
        "± prompts": ((bt["prompt"].upper - bt["prompt"].lower) / 2).round(1).to_numpy(),
        "rank (battles)": bt["battle"].loc[bt["prompt"].index, "rank"].to_numpy(),
        "rank (prompts)": bt["prompt"]["rank"].to_numpy(),
    })  # fmt: skip

    elo32, elo_time = timed(lambda: elo_ratings(frame, k=32, bootstrap=100), args.repeats)
    plain_time = timed(lambda: elo_ratings(frame, k=32, bootstrap=0), args.repeats)[1]
    elo4 = elo_ratings(frame, k=4, bootstrap=0).set_index("model")
    elo = pd.DataFrame({
        "model": elo32.model, "Elo (K=32)": elo32.rating.round(1),
        "prompt interval": [f"[{lo:.0f}, {hi:.0f}]" for lo, hi in zip(elo32.lower, elo32.upper, strict=True)],
        "rank (prompt interval)": elo32["rank"],
        "single-ordering spread": [f"[{lo:.0f}, {hi:.0f}]"
                                   for lo, hi in zip(elo32.spread_lower, elo32.spread_upper, strict=True)],
        "rank (spread, old rule)": interval_ranks(elo32, "spread_lower", "spread_upper"),
        "paper's ± (mean_error)": elo32.mean_error.round(1),
        "Elo (K=4)": elo4.loc[elo32.model, "rating"].round(1).to_numpy(),
        "Table 1": [TABLE1.get(m, "-") for m in elo32.model],
    })  # fmt: skip

    styled, style_time = timed(
        lambda: style.style_controlled_bt(frame, texts, "length,markdown", bootstrap=1000), args.repeats
    )
    ranks = styled[
        ["model", "rating", "lower", "upper", "rank", "rating_uncontrolled", "rank_uncontrolled"]
    ].round(1)
    coefficients = styled.attrs["coefficients"].round(3)

    lengths = bias.with_lengths(frame[frame.status.eq("ok")].assign(group="gpt-4"), texts)
    raw = bias.length_fit(lengths).iloc[0]
    effect = bias.length_effect(lengths, texts, bootstrap=1000).iloc[0]
    pairs = bias.length_within_pairs(lengths)
    pair_rates = pairs.longer_wins_rate.describe()

    cpu = f"{os.cpu_count()} CPU cores, {platform.machine()}, Python {platform.python_version()}"
    page = f"""# What the rating intervals say on the QLoRA release

Written by `bench/intervals.py` (`{COMMAND.format(repeats=args.repeats)}`) on {cpu}; the machine was shared with other work, so CPU
seconds are indicative only. Data: the QLoRA paper's {len(frame):,} GPT-4 three-class verdicts on the
80 Vicuna prompts ({int(frame.status.ne("ok").sum())} unparsed, left out), imported with `guanaco import
qlora-release`. Every prompt yields all 28 pairs of the 8 models in both orders.

## Bradley-Terry: battles against prompts as the bootstrap unit (1,000 replicates each)

{markdown(widths)}

Redrawing battles treats the 56 verdicts of one prompt as independent; redrawing prompts does not.
The prompt intervals are the honest ones and the default (`--resample prompt`). CPU per fit with
1,000 prompt replicates: {spread(bt_time)}.

## The paper's Elo (K = 32, 10,000 orderings), with a prompt bootstrap

{markdown(elo)}

The old rule ranked on the spread of single orderings, which is match-order noise that does not
shrink with more data: every model but GPT-4 shared rank 2. The prompt bootstrap (100 replicates,
each the mean of 100 orderings) separates Guanaco 65B from Guanaco 7B. The paper's "± 1" is the
error of the mean over orderings. The paper's text says K = 32; its Table 1 comes out at K = 4.
CPU: {spread(elo_time)} with the bootstrap against {spread(plain_time)} for the 10,000 orderings alone.

## Style control (contextual Bradley-Terry, length and markdown, 1,000 prompt replicates)

{markdown(ranks)}

Coefficients (log-odds per standard deviation of the normalised difference; Elo points per sd):

{markdown(coefficients)}

{styled.attrs["header"]["style_control"]}. CPU: {spread(style_time)}. The fit {peer_check(frame, texts)}.

## Length: raw, within model pairs, and with the models held fixed

- The longer answer wins {raw.longer_wins_rate:.1%} of decisive verdicts where lengths differ
  ({int(raw.decisive):,} decisive verdicts): this mixes length with which model wrote the answer.
- Within each of the {len(pairs)} model pairs, the longer answer's win rate ranges from
  {pair_rates["min"]:.1%} to {pair_rates["max"]:.1%} (median {pair_rates["50%"]:.1%}).
- With model strengths in the fit (style-controlled Bradley-Terry, length only), one standard
  deviation of the normalised length difference is worth {effect.coefficient:.3f} log-odds
  [{effect.lower:.3f}, {effect.upper:.3f}], {effect.elo_points_per_sd:.0f} Elo points.
"""
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(page, encoding="utf-8")
    print(page)


if __name__ == "__main__":
    main()
