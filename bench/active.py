"""Active scheduling, measured: how many judgments does `--pairs active` need to reach the ranking
that all 4,480 released GPT-4 verdicts give, against judging in random order?

The QLoRA release's Vicuna pairwise verdicts (8 models, every pair in both orders, 80 prompts)
are replayed as an oracle: a scheduler picks a match, the oracle reveals the released verdict.
Rankings are Bradley-Terry point estimates (arena.ratings.fit_bradley_terry). Writes a table and a
PNG into docs/bench/judge.md's "Active scheduling" section.

    .venv/bin/python bench/active.py [--active-seeds 5] [--random-seeds 20]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from arena.import_qlora import contestant_name  # noqa: E402
from arena.tournament import ActiveScheduler, Match, ranking, slot1_score  # noqa: E402
from bench.judge_doc import write_section  # noqa: E402
from judges.judge import Case  # noqa: E402
from judges.templates import mirror_root  # noqa: E402

PAIRWISE = "qlora-eval/ratings-gpt4/vicuna/pairwise"
VERDICT = {1: "1", 2: "2", 3: "tie"}
BATCH = 32
NO_CASE = Case("", "", "")


def oracle(root: Path) -> tuple[list[str], list[Match], dict[Match, float | None]]:
    """Every released verdict as a match (ids by position) and its slot-1 score (None: unparsed)."""
    matches, scores = [], {}
    for path in sorted((root / PAIRWISE).glob("*-vs-*-gpt-4-reviewer-threeclass.jsonl")):
        first, second = path.name.removesuffix("-gpt-4-reviewer-threeclass.jsonl").split("-vs-")
        m1, m2 = contestant_name(first), contestant_name(second)
        for line in path.read_text(encoding="utf-8").splitlines():
            record = json.loads(line)
            match = Match(record["question_id"], len(matches), -len(matches) - 1, m1, m2, NO_CASE)
            matches.append(match)
            verdict = VERDICT.get(record["score"])
            scores[match] = slot1_score("ok" if verdict else "unparsed", verdict)
    models = sorted({m.model_1 for m in matches} | {m.model_2 for m in matches})
    return models, matches, scores


def arrays(models: list[str], judged: list[Match], scores: dict[Match, float | None]):
    index = {m: i for i, m in enumerate(models)}
    rated = [m for m in judged if scores[m] is not None]
    a = np.array([index[m.model_1] for m in rated], dtype=np.int64)
    b = np.array([index[m.model_2] for m in rated], dtype=np.int64)
    return a, b, np.array([scores[m] for m in rated])


def discordant(order: list[str], truth: list[str]) -> int:
    """Pairs of models the two rankings order differently (Kendall distance)."""
    pos = {m: i for i, m in enumerate(order)}
    return sum(pos[truth[i]] > pos[truth[j]] for i in range(len(truth)) for j in range(i + 1, len(truth)))


def curve(models, order_of_play, scores, truth) -> list[tuple[int, int]]:
    """(judgments so far, discordant pairs vs the full ranking) after every BATCH judgments."""
    points = []
    for n in range(BATCH, len(order_of_play) + BATCH, BATCH):
        judged = order_of_play[:n]
        points.append((len(judged), discordant(ranking(models, *arrays(models, judged, scores)), truth)))
        if n >= len(order_of_play):
            break
    return points


def reached(points: list[tuple[int, int]]) -> int | None:
    """Judgments after which the ranking equals the full one and stays equal."""
    for i, (n, _d) in enumerate(points):
        if all(d == 0 for _n, d in points[i:]):
            return n
    return None


def active_play(models, matches, scores, seed: int) -> tuple[list[Match], bool]:
    """The order in which the active scheduler asks for matches, and whether it stopped because
    adjacent ranks separated (rather than running out of matches)."""
    scheduler = ActiveScheduler(models, matches, batch=BATCH, seed=seed)
    played: list[Match] = []
    while batch := scheduler.next_batch():
        for match in batch:
            played.append(match)
            scheduler.record(match.model_1, match.model_2, scores[match])
    return played, scheduler.separated


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mirror", type=Path, default=None, help="folder laid out like ../shared/data")
    parser.add_argument("--active-seeds", type=int, default=5)
    parser.add_argument("--random-seeds", type=int, default=20)
    args = parser.parse_args()
    models, matches, scores = oracle(args.mirror or mirror_root())
    truth = ranking(models, *arrays(models, matches, scores))
    print(f"{len(matches)} released verdicts, {len(models)} models; full ranking: {', '.join(truth)}")

    random_curves = []
    for seed in range(args.random_seeds):
        order = list(matches)
        np.random.default_rng(seed).shuffle(order)
        random_curves.append(curve(models, order, scores, truth))
    active_curves, stops = [], []
    for seed in range(args.active_seeds):
        played, separated = active_play(models, matches, scores, seed)
        points = curve(models, played, scores, truth)
        active_curves.append(points)
        stops.append((len(played), separated, points[-1][1]))
        print(f"active seed {seed}: stopped after {len(played)} ({'separated' if separated else 'exhausted'}), "
              f"discordant pairs then {points[-1][1]}, same ranking from {reached(points)}")  # fmt: skip
    everything = ActiveScheduler(models, [])
    for match in matches:
        everything.record(match.model_1, match.model_2, scores[match])
    swaps = {p: q for p, q in everything.swap_probabilities().items() if q >= everything.alpha}
    unsettled = ", ".join(f"{a} vs {b} ({q:.2f})" for (a, b), q in swaps.items()) or "none"
    write_report(models, truth, random_curves, active_curves, stops, len(matches), unsettled)


def write_report(models, truth, random_curves, active_curves, stops, total, unsettled) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    def summary(curves):
        needed = [reached(c) for c in curves]
        return needed, float(np.median([n if n is not None else total for n in needed]))

    r_needed, r_median = summary(random_curves)
    a_needed, a_median = summary(active_curves)
    checkpoints = [128, 256, 512, 1024, 1536, 2048, 3072, total]

    def mean_at(curves, n):
        values = [next((d for k, d in c if k >= n), c[-1][1]) for c in curves]
        return float(np.mean(values))

    png = ROOT / "docs" / "bench" / "judge_active.png"
    fig, ax = plt.subplots(figsize=(7, 4))
    for curves, label in ((random_curves, "random order"), (active_curves, "active (--pairs active)")):
        grid = np.arange(BATCH, total + 1, BATCH)
        ax.plot(grid, [mean_at(curves, n) for n in grid], label=label)
    ax.set_xlabel("judgments")
    ax.set_ylabel("discordant model pairs vs full ranking (mean)")
    ax.set_title("QLoRA Vicuna GPT-4 verdicts replayed as an oracle")
    ax.legend()
    fig.tight_layout()
    fig.savefig(png, dpi=110)
    rows = [
        "| judgments | random order: discordant pairs (mean) | active: discordant pairs (mean) |",
        "|---:|---:|---:|",
        *(
            f"| {n} | {mean_at(random_curves, n):.2f} | {mean_at(active_curves, n):.2f} |"
            for n in checkpoints
        ),
    ]
    stop_text = ", ".join(f"{n} ({'separated' if s else 'no match left'})" for n, s, _d in stops)
    body = f"""`bench/active.py` replays the {total} released GPT-4 verdicts of the QLoRA Vicuna benchmark
({len(models)} models, every pair in both orders on 80 prompts) as an oracle. Full ranking (Bradley-Terry
on all {total}): {", ".join(truth)}.

Judgments needed until the ranking equals the full one and stays equal (median over seeds):
**active {a_median:.0f}** ({len(active_curves)} seeds: {a_needed}) vs **random order {r_median:.0f}**
({len(random_curves)} seeds), a ratio of {a_median / r_median:.2f}.
Where the active scheduler stopped by its own rule (every adjacent pair's probability of being in
the wrong order, from a Laplace approximation of the Bradley-Terry fit, below 0.01; or no match left
that bears on an uncertain pair), by seed: {stop_text}. Even all {total} verdicts leave adjacent pairs with
a swap probability of 0.01 or more: {unsettled}; so on this benchmark the run ends at the budget
(`--budget-usd`, `--max-judgments`), not by separation, and the table shows what each budget buys.

{chr(10).join(rows)}

![discordant pairs vs judgments](judge_active.png)
"""
    write_section(ROOT / "docs" / "bench" / "judge.md", "Active scheduling", body)


if __name__ == "__main__":
    main()
