"""Active scheduling against uniform random sampling, judged by simulation against a known truth.

Two oracles, neither ever exhausted (every judgment asked for is a fresh draw):

- known truth: Bradley-Terry strengths, a slot-1 advantage and a tie rate fitted to all 4,480
  released GPT-4 verdicts of the QLoRA Vicuna benchmark (8 models); a judgment of (slot 1, slot 2)
  is a tie with the released tie rate, else slot 1 wins with the probability that makes its
  expected score the fitted one. The truth is the order of the fitted strengths.
- held-out prompts: per seed the 80 prompts are split in half at random; the truth is the
  Bradley-Terry ranking of the released verdicts on one half, and a judgment asked for is the
  released verdict, for that pair in that slot order, on a random prompt of the other half.

Both methods judge a random slot order; the ranking after each budget is the plain Bradley-Terry
fit (arena.bt_fit.fit_bradley_terry) of what was judged. Uniform random draws each judgment's pair
uniformly; active is arena.tournament.active.ActiveScheduler (its warm-up, design and batches of 32) over an
endless pool, with its stopping rule off (alpha=None) so both spend the same budget; the rule is
checked separately (how often it fired by 3,000 judgments, and whether any certified order was
wrong). Writes docs/bench/active.md.

    .venv/bin/python bench/active.py [--seeds 100]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.optimize import minimize
from scipy.special import expit

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from arena.bt_fit import fit_bradley_terry  # noqa: E402
from arena.qlora_release import contestant_name  # noqa: E402
from arena.tournament.active import ActiveScheduler, Design, win_matrix  # noqa: E402
from foundations.sources import find_mirror  # noqa: E402

PAIRWISE = "qlora-eval/ratings-gpt4/vicuna/pairwise"
SCORE = {1: 1.0, 2: 0.0, 3: 0.5}
BUDGETS = (500, 1000, 2000, 3000)
BATCH = 32
Z = 1.959963984540054


@dataclass
class Verdicts:
    """The released verdicts: models, and per verdict prompt, slot-1 model, slot-2 model, score."""

    models: list[str]
    prompt: np.ndarray
    a: np.ndarray
    b: np.ndarray
    score: np.ndarray


def released(root: Path) -> Verdicts:
    rows = []
    for path in sorted((root / PAIRWISE).glob("*-vs-*-gpt-4-reviewer-threeclass.jsonl")):
        first, second = path.name.removesuffix("-gpt-4-reviewer-threeclass.jsonl").split("-vs-")
        for line in path.read_text(encoding="utf-8").splitlines():
            record = json.loads(line)
            if record["score"] in SCORE:  # 13 unparsed verdicts are left out
                rows.append((record["question_id"], contestant_name(first), contestant_name(second),
                             SCORE[record["score"]]))  # fmt: skip
    models = sorted({r[1] for r in rows} | {r[2] for r in rows})
    index = {m: i for i, m in enumerate(models)}
    prompts = sorted({r[0] for r in rows})
    pindex = {p: i for i, p in enumerate(prompts)}
    return Verdicts(
        models,
        np.array([pindex[r[0]] for r in rows]),
        np.array([index[r[1]] for r in rows]),
        np.array([index[r[2]] for r in rows]),
        np.array([r[3] for r in rows]),
    )


def bt_order(wins: np.ndarray) -> np.ndarray:
    return np.argsort(-fit_bradley_terry(wins), kind="stable")


def kendall(order: np.ndarray, truth: np.ndarray) -> int:
    """Pairs of models the two rankings order differently."""
    pos = np.empty_like(order)
    pos[order] = np.arange(len(order))
    t = pos[truth]
    return int(sum((t[i] > t[i + 1 :]).sum() for i in range(len(t))))


# ---------------------------------------------------------------- oracles


class ParametricOracle:
    """Known truth: strengths, slot-1 advantage and tie rate fitted to all verdicts."""

    def __init__(self, v: Verdicts) -> None:
        k = len(v.models)

        def loss(x: np.ndarray) -> float:  # ties as half a win each, as the ratings do
            p = expit(x[v.a] - x[v.b] + x[k])
            return -float(np.sum(v.score * np.log(p) + (1 - v.score) * np.log(1 - p))) + 1e-3 * x[:k] @ x[:k]

        x = minimize(loss, np.zeros(k + 1), method="L-BFGS-B").x
        self.theta, self.advantage = x[:k] - x[:k].mean(), float(x[k])
        self.tie = float(np.mean(v.score == 0.5))
        self.truth = np.argsort(-self.theta, kind="stable")

    def judge(self, a: np.ndarray, b: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        expected = expit(self.theta[a] - self.theta[b] + self.advantage)
        tie = np.minimum(self.tie, 2 * np.minimum(expected, 1 - expected))  # keeps P(win) in [0, 1]
        win = expected - tie / 2
        u = rng.random(len(a))
        return np.where(u < win, 1.0, np.where(u < win + tie, 0.5, 0.0))


class HeldOutOracle:
    """Held-out prompts: truth from one half of the prompts, verdicts drawn from the other half."""

    def __init__(self, v: Verdicts, rng: np.random.Generator) -> None:
        k = len(v.models)
        n_prompts = int(v.prompt.max()) + 1
        truth_half = rng.permutation(n_prompts)[: n_prompts // 2]
        held = np.isin(v.prompt, truth_half)
        self.truth = bt_order(win_matrix(v.a[held], v.b[held], v.score[held], k))
        self.k = k
        self.scores: dict[int, np.ndarray] = {}
        draw = ~held
        for code in np.unique(v.a[draw] * k + v.b[draw]):
            self.scores[int(code)] = v.score[draw & (v.a * k + v.b == code)]

    def judge(self, a: np.ndarray, b: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        out = np.empty(len(a))
        for n, code in enumerate(a * self.k + b):
            pool = self.scores[int(code)]
            out[n] = pool[rng.integers(len(pool))]
        return out


# ---------------------------------------------------------------- methods


def uniform_random(oracle, k: int, rng: np.random.Generator) -> dict[int, np.ndarray]:
    """Rankings at each budget when every judgment's pair is drawn uniformly, slot order at random."""
    pairs = Design(k).pairs
    picks = pairs[rng.integers(len(pairs), size=BUDGETS[-1])]
    flip = rng.random(BUDGETS[-1]) < 0.5
    a, b = np.where(flip, picks[:, 1], picks[:, 0]), np.where(flip, picks[:, 0], picks[:, 1])
    score = oracle.judge(a, b, rng)
    return {n: bt_order(win_matrix(a[:n], b[:n], score[:n], k)) for n in BUDGETS}


class EndlessPool:
    """Every pair always has another match: a random slot order, outcome drawn when judged."""

    def __init__(self, models: list[str], rng: np.random.Generator) -> None:
        self.models, self.rng = models, rng

    def left(self, _pair: tuple[int, int]) -> int:
        return 1

    def take(self, pair: tuple[int, int]) -> tuple[int, int]:
        return pair if self.rng.random() < 0.5 else (pair[1], pair[0])


def active(oracle, models: list[str], rng: np.random.Generator, alpha: float | None = None):
    """Rankings at each budget under ActiveScheduler, and when (if ever) its stopping rule fired
    with the order it certified."""
    k = len(models)
    scheduler = ActiveScheduler(models, [], pool=EndlessPool(models, rng), batch=BATCH, alpha=alpha,
                                seed=int(rng.integers(2**31)))  # fmt: skip
    a, b, score, out = [], [], [], {}
    while len(a) < BUDGETS[-1]:
        batch = scheduler.next_batch()[: BUDGETS[-1] - len(a)]
        if not batch:
            return out, (len(a), np.array([scheduler.index[m] for m in scheduler.order()]))
        ba, bb = np.array([m[0] for m in batch]), np.array([m[1] for m in batch])
        scores = oracle.judge(ba, bb, rng)
        for i, j, s in zip(ba, bb, scores, strict=True):
            budget = next((n for n in BUDGETS if len(a) == n), None)
            if budget is not None and budget not in out:
                out[budget] = bt_order(win_matrix(np.array(a), np.array(b), np.array(score), k))
            a.append(int(i))
            b.append(int(j))
            score.append(float(s))
            scheduler.record(models[i], models[j], float(s))
    out[BUDGETS[-1]] = bt_order(win_matrix(np.array(a), np.array(b), np.array(score), k))
    return out, None


# ---------------------------------------------------------------- statistics


def wilson(hits: int, n: int) -> tuple[float, float]:
    p = hits / n
    centre = (p + Z * Z / (2 * n)) / (1 + Z * Z / n)
    half = Z * np.sqrt(p * (1 - p) / n + Z * Z / (4 * n * n)) / (1 + Z * Z / n)
    return centre - half, centre + half


def newcombe(h1: int, n1: int, h2: int, n2: int) -> tuple[float, float, float]:
    """Difference of two proportions (1 minus 2) with Newcombe's hybrid score 95% interval."""
    p1, p2 = h1 / n1, h2 / n2
    (l1, u1), (l2, u2) = wilson(h1, n1), wilson(h2, n2)
    d = p1 - p2
    return d, d - np.sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2), d + np.sqrt((u1 - p1) ** 2 + (p2 - l2) ** 2)


def mean_interval(x: np.ndarray) -> tuple[float, float, float]:
    half = Z * x.std(ddof=1) / np.sqrt(len(x))
    return float(x.mean()), float(x.mean() - half), float(x.mean() + half)


def difference_interval(x: np.ndarray, y: np.ndarray) -> tuple[float, float, float]:
    d = x.mean() - y.mean()
    half = Z * np.sqrt(x.var(ddof=1) / len(x) + y.var(ddof=1) / len(y))
    return float(d), float(d - half), float(d + half)


# ---------------------------------------------------------------- run and report


def run_scenario(name: str, make_oracle, models: list[str], seeds: int) -> dict:
    exact = {m: {n: [] for n in BUDGETS} for m in ("random", "active")}
    distance = {m: {n: [] for n in BUDGETS} for m in ("random", "active")}
    started = time.perf_counter()
    for seed in range(seeds):
        for method in ("random", "active"):
            rng = np.random.default_rng([seed, 0 if method == "random" else 1])
            oracle = make_oracle(np.random.default_rng([seed, 7]))  # same truth for both methods
            orders = (
                uniform_random(oracle, len(models), rng)
                if method == "random"
                else active(oracle, models, rng)[0]
            )
            for n, order in orders.items():
                exact[method][n].append(bool(np.array_equal(order, oracle.truth)))
                distance[method][n].append(kendall(order, oracle.truth))
    seconds = time.perf_counter() - started
    print(f"{name}: {seeds} seeds per method in {seconds:.0f} s")
    return {"exact": exact, "distance": distance, "seconds": seconds}


def stopping_check(oracle, models: list[str], seeds: int, alpha: float) -> tuple[int, int]:
    """(runs whose rule fired within the largest budget, fired runs whose certified order was wrong)."""
    fired = wrong = 0
    for seed in range(seeds):
        stop = active(oracle, models, np.random.default_rng([seed, 11]), alpha=alpha)[1]
        if stop is not None:
            fired += 1
            wrong += not np.array_equal(stop[1], oracle.truth)
    return fired, wrong


def table(result: dict, seeds: int) -> list[str]:
    rows = [
        "| judgments | P(exact ranking): random | active | active - random (95% CI) "
        "| Kendall distance: random | active | active - random (95% CI) |",
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for n in BUDGETS:
        hits = {m: int(np.sum(result["exact"][m][n])) for m in ("random", "active")}
        ci = {m: wilson(hits[m], seeds) for m in hits}
        d, lo, hi = newcombe(hits["active"], seeds, hits["random"], seeds)
        dist = {m: np.array(result["distance"][m][n], dtype=float) for m in ("random", "active")}
        km = {m: mean_interval(dist[m]) for m in dist}
        kd = difference_interval(dist["active"], dist["random"])
        rows.append(
            f"| {n} | {hits['random'] / seeds:.2f} [{ci['random'][0]:.2f}, {ci['random'][1]:.2f}] "
            f"| {hits['active'] / seeds:.2f} [{ci['active'][0]:.2f}, {ci['active'][1]:.2f}] "
            f"| {d:+.2f} [{lo:+.2f}, {hi:+.2f}] "
            f"| {km['random'][0]:.2f} [{km['random'][1]:.2f}, {km['random'][2]:.2f}] "
            f"| {km['active'][0]:.2f} [{km['active'][1]:.2f}, {km['active'][2]:.2f}] "
            f"| {kd[0]:+.2f} [{kd[1]:+.2f}, {kd[2]:+.2f}] |"
        )
    return rows


def verdict(result: dict, seeds: int) -> str:
    """Where the intervals show active ahead, behind, or cannot tell, per budget and metric."""
    words = []
    for n in BUDGETS:
        hits = {m: int(np.sum(result["exact"][m][n])) for m in ("random", "active")}
        _d, lo, hi = newcombe(hits["active"], seeds, hits["random"], seeds)
        dist = {m: np.array(result["distance"][m][n], dtype=float) for m in ("random", "active")}
        _k, klo, khi = difference_interval(dist["active"], dist["random"])
        exact = "ahead" if lo > 0 else "behind" if hi < 0 else "not separable"
        kend = "ahead" if khi < 0 else "behind" if klo > 0 else "not separable"
        words.append(f"{n}: exact ranking {exact}, Kendall distance {kend}")
    return "; ".join(words)


def ahead_at(result: dict, seeds: int) -> tuple[list[int], list[int]]:
    """Budgets where the intervals put active ahead: (exact ranking more often, fewer discordant pairs)."""
    exact, kend = [], []
    for n in BUDGETS:
        hits = {m: int(np.sum(result["exact"][m][n])) for m in ("random", "active")}
        if newcombe(hits["active"], seeds, hits["random"], seeds)[1] > 0:
            exact.append(n)
        dist = {m: np.array(result["distance"][m][n], dtype=float) for m in ("random", "active")}
        if difference_interval(dist["active"], dist["random"])[2] < 0:
            kend.append(n)
    return exact, kend


def conclusion(parametric: dict, held_out: dict, seeds: int) -> str:
    """Plainly: does active beat uniform random at every budget, and where is it ahead?"""
    parts, everywhere = [], True
    for name, result in (("against the known truth", parametric), ("on held-out prompts", held_out)):
        exact, kend = ahead_at(result, seeds)
        everywhere &= len(exact) == len(kend) == len(BUDGETS)

        def listed(budgets: list[int]) -> str:
            return ", ".join(map(str, budgets)) if budgets else "no budget"

        parts.append(f"{name} it gets the exact ranking more often at {listed(exact)} and has fewer "
                     f"discordant pairs at {listed(kend)}")  # fmt: skip
    head = "active beats" if everywhere else "active does **not** beat"
    return (
        f"{head} uniform random at every budget by a margin the intervals support: " + "; ".join(parts) + "."
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mirror", type=Path, default=None, help="folder laid out like ../shared/data")
    parser.add_argument("--seeds", type=int, default=100, help="runs per method and scenario (>= 50)")
    parser.add_argument("--alpha", type=float, default=0.05, help="stopping rule's error level, checked")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "bench" / "active.md")
    args = parser.parse_args()
    v = released(find_mirror(args.mirror))
    known = ParametricOracle(v)
    print(f"{len(v.score)} released verdicts, {len(v.models)} models; slot-1 advantage {known.advantage:.2f}, "
          f"tie rate {known.tie:.2f}")  # fmt: skip
    parametric = run_scenario("known truth", lambda _rng: known, v.models, args.seeds)
    held_out = run_scenario("held-out prompts", lambda rng: HeldOutOracle(v, rng), v.models, args.seeds)
    fired, wrong = stopping_check(known, v.models, args.seeds, args.alpha)
    write_report(args, v, known, parametric, held_out, fired, wrong)


def write_report(args, v: Verdicts, known, parametric: dict, held_out: dict, fired: int, wrong: int) -> None:
    seeds = args.seeds
    truth = ", ".join(f"{v.models[i]} ({known.theta[i]:+.2f})" for i in known.truth)
    gaps = np.diff(known.theta[known.truth])
    body = f"""# Active scheduling against uniform random sampling

Written by `bench/active.py --seeds {seeds}` (a shared 2-core machine; only counts are reported, no
times matter here). {seeds} seeds per method and scenario; 95% intervals: Wilson for each
probability, Newcombe's hybrid score interval for their difference, normal intervals for mean
Kendall distances (discordant model pairs out of {len(v.models) * (len(v.models) - 1) // 2}) and their difference.

**In short**, {conclusion(parametric, held_out, seeds)}

**Methods.** *Uniform random*: every judgment's pair drawn uniformly from the 28, slot order at
random. *Active*: `guanaco judge --pairs active` (`arena.tournament.active.ActiveScheduler`: 2 warm-up
judgments per pair, then batches of {BATCH} pairs drawn in proportion to how much one judgment shrinks
the standard errors of the current ranking's adjacent comparisons, weighted by their odds of being
the wrong way round; 10% uniform), its stopping rule off so that both spend the whole budget. Both
rank by the plain Bradley-Terry fit of what they judged. Other weightings tried while developing
(every pair's swap probability instead of the adjacent ones' odds, absolute instead of relative
shrinkage, sharper weights, batches of 8) came out within these intervals of this one.

**Known truth.** Strengths fitted to all {len(v.score)} parsed released GPT-4 verdicts (QLoRA Vicuna,
ties half a win), with a slot-1 advantage of {known.advantage:.2f} (log-odds) and the released tie rate
{known.tie:.2f}; each judgment asked for is a fresh draw from that model, so no pool runs out. True
order (log-strength): {truth}. Adjacent gaps: {", ".join(f"{g:.2f}" for g in -gaps)}.

{chr(10).join(table(parametric, seeds))}

Where the intervals put active: {verdict(parametric, seeds)}.

**Held-out prompts.** Per seed, the truth is the Bradley-Terry ranking of the released verdicts on a
random half of the 80 prompts; each judgment asked for is the released verdict, for the pair and
slot order asked, on a random prompt of the other half (drawn with replacement). The truth here is
itself noisy (40 prompts), so exact agreement is rarer for both methods.

{chr(10).join(table(held_out, seeds))}

Where the intervals put active: {verdict(held_out, seeds)}.

**Stopping rule.** With `alpha` {args.alpha}, a run stops once every adjacent pair of its current ranking
is certified by anytime-valid tests on direct comparisons (`arena.tournament.active.PairEvidence`; at most
alpha chance of ever certifying a wrong order, however often it is looked at;
`tests/test_active.py` checks that error rate by simulation, and that a fixed-level test looked
at as often exceeds it). Against the known truth it fired in {fired} of {seeds} runs within
{BUDGETS[-1]} judgments{f", and {wrong} of those certified a wrong order" if fired else ""}: the closest
models here are too close for a guaranteed answer at these budgets, so runs end at
`--max-judgments` / `--budget-usd`.
"""
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(body, encoding="utf-8")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
