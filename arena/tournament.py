"""Tournaments: which matches to judge, and judging them concurrently, resumably, within budget.

A match is two generations of the same prompt in a fixed order (slot 1 shown first). Pair
selection is `all` (every pair of contestants), `baseline:NAME` (everyone against NAME) or
`active` (the next matches where they most reduce rank uncertainty, see :class:`ActiveScheduler`).
Every judgment is written in its own short transaction as soon as it completes, keyed by (judge,
template hash, generation 1, generation 2), so a run killed at any moment and started again sends
only what is missing and stores nothing twice.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import math
import random
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sqlalchemy import select

from arena.ratings import SCORE_BY_VERDICT, fit_bradley_terry
from arena.store import Contestant, Generation, Judgment, Prompt, Store, insert_ignore
from judges.judge import Case, Judge, Outcome


@dataclass(frozen=True)
class Match:
    prompt_id: int
    generation1_id: int
    generation2_id: int
    model_1: str
    model_2: str
    case: Case = field(compare=False, repr=False)

    @property
    def pair(self) -> tuple[str, str]:
        return tuple(sorted((self.model_1, self.model_2)))


# ---------------------------------------------------------------- planning


def question_text(prompt: Prompt) -> str:
    """The first user turn, after earlier conversation turns (OA) in the QLoRA `### Human:` form."""
    context = "".join(
        f"### {'Human' if turn.get('role') == 'user' else 'Assistant'}: {turn.get('content', '')} "
        for turn in prompt.context or []
    )
    return f"{context}### Human: {prompt.turns[0]} ### Assistant:" if context else prompt.turns[0]


def load_entries(store: Store, benchmark: str, models: Sequence[str]) -> dict[int, dict[str, Any]]:
    """By prompt id: the question, category, reference and each named model's generation."""
    with store.session() as session:
        known = set(session.scalars(select(Contestant.name).where(Contestant.name.in_(models))))
        unknown = [m for m in models if m not in known]
        if unknown:
            raise ValueError(f"unknown contestant(s): {', '.join(unknown)}; see `guanaco models list`")
        rows = session.execute(
            select(Prompt, Generation.id, Generation.text, Contestant.name)
            .join(Generation, Generation.prompt_id == Prompt.id)
            .join(Contestant, Contestant.id == Generation.contestant_id)
            .where(Prompt.benchmark == benchmark, Contestant.name.in_(models))
            .order_by(Prompt.id)
        ).all()
    entries: dict[int, dict[str, Any]] = {}
    for prompt, gen_id, text, model in rows:
        entry = entries.setdefault(
            prompt.id,
            {
                "question": question_text(prompt),
                "category": prompt.category,
                "reference": (prompt.reference or [None])[0],
                "generations": {},
            },
        )
        entry["generations"][model] = (gen_id, text)
    return entries


def select_pairs(models: Sequence[str], pairs: str) -> list[tuple[str, str]]:
    """`all` or `active`: every pair; `baseline:NAME`: NAME against each other model."""
    if pairs in ("all", "active"):
        return list(itertools.combinations(models, 2))
    if pairs.startswith("baseline:"):
        base = pairs.split(":", 1)[1]
        if base not in models:
            raise ValueError(f"--pairs {pairs}: {base!r} is not among --models ({', '.join(models)})")
        return [(base, m) for m in models if m != base]
    raise ValueError(f"--pairs {pairs!r}: use all, baseline:NAME or active")


def _rng(seed: int, *parts: object) -> random.Random:
    """A generator seeded by `seed` and names, stable across runs and Python versions."""
    digest = hashlib.sha256(repr((seed, *parts)).encode()).digest()
    return random.Random(int.from_bytes(digest[:8], "big"))


def plan_matches(
    entries: dict[int, dict[str, Any]],
    pairs: Sequence[tuple[str, str]],
    *,
    prompts_per_pair: int | None = None,
    orders: str = "both",
    seed: int = 0,
) -> list[Match]:
    """Every match to judge, in a seeded random order (so a budget cut samples all pairs evenly).

    `orders="both"` judges each pair of answers twice, once in each slot order; `"one"` once, in
    a seeded random order."""
    if orders not in ("both", "one"):
        raise ValueError(f"--orders {orders!r}: use both or one")
    matches = []
    for a, b in pairs:
        shared = [pid for pid, e in entries.items() if a in e["generations"] and b in e["generations"]]
        rng = _rng(seed, a, b)
        if prompts_per_pair is not None and prompts_per_pair < len(shared):
            shared = sorted(rng.sample(shared, prompts_per_pair))
        for pid in shared:
            both = [(a, b), (b, a)]
            for first, second in both if orders == "both" else [rng.choice(both)]:
                matches.append(_match(entries[pid], pid, first, second))
    _rng(seed, "order").shuffle(matches)
    return matches


def _match(entry: dict[str, Any], prompt_id: int, first: str, second: str) -> Match:
    (g1, t1), (g2, t2) = entry["generations"][first], entry["generations"][second]
    case = Case(entry["question"], t1, t2, category=entry["category"], reference=entry["reference"])
    return Match(prompt_id, g1, g2, first, second, case)


def done_keys(store: Store, judge: str, template_hash: str) -> set[tuple[int, int]]:
    """(generation 1, generation 2) already judged; `error` ones are not done and are asked again."""
    with store.session() as session:
        rows = session.execute(
            select(Judgment.generation1_id, Judgment.generation2_id).where(
                Judgment.judge == judge, Judgment.template_hash == template_hash, Judgment.status != "error"
            )
        )
        return {(g1, g2) for g1, g2 in rows}


def missing(matches: Iterable[Match], done: set[tuple[int, int]]) -> list[Match]:
    return [m for m in matches if (m.generation1_id, m.generation2_id) not in done]


# ---------------------------------------------------------------- storing


def save(store: Store, judge: Judge, match: Match, outcome: Outcome, run_id: int | None) -> bool:
    """Write one judgment in its own transaction; replaces an earlier `error` row for the same key.
    Returns whether a row was written."""
    t = judge.cfg.template
    row = {
        "judge": judge.cfg.name,
        "template_id": t.id,
        "template_hash": t.hash,
        "prompt_id": match.prompt_id,
        "generation1_id": match.generation1_id,
        "generation2_id": match.generation2_id,
        "verdict": outcome.verdict,
        "score1": outcome.score1,
        "score2": outcome.score2,
        "status": outcome.status,
        "raw": outcome.raw,
        "prompt_tokens": outcome.prompt_tokens,
        "completion_tokens": outcome.completion_tokens,
        "cost_usd": outcome.cost_usd,
        "run_id": run_id,
        "meta": {"seconds": round(outcome.seconds, 3), "model": judge.cfg.client.model, **outcome.meta},
    }
    with store.session() as session:
        if insert_ignore(session, Judgment, [row]):
            return True
        old = session.scalars(
            select(Judgment).where(
                Judgment.judge == row["judge"],
                Judgment.template_hash == row["template_hash"],
                Judgment.generation1_id == row["generation1_id"],
                Judgment.generation2_id == row["generation2_id"],
            )
        ).one()
        if old.status != "error" or outcome.status == "error":
            return False
        for name, value in row.items():
            setattr(old, name, value)
        return True


# ---------------------------------------------------------------- running


@dataclass
class Limits:
    """Stop before spending more than `budget_usd` or sending more than `max_judgments`."""

    budget_usd: float | None = None
    max_judgments: int | None = None


@dataclass
class Tally:
    """What a run did, for the progress bar and the final report."""

    sent: int = 0
    stored: int = 0
    ok: int = 0
    unparsed: int = 0
    errors: int = 0
    spent_usd: float = 0.0
    in_flight: int = 0
    reserved_usd: float = 0.0
    stopped: str | None = None

    def allows(self, limits: Limits, estimate_usd: float) -> str | None:
        """Why the next call must not be sent, or None: spent plus reserved plus this call's
        upper-bound estimate must stay within the budget."""
        if limits.max_judgments is not None and self.sent >= limits.max_judgments:
            return f"--max-judgments {limits.max_judgments} reached"
        if (
            limits.budget_usd is not None
            and self.spent_usd + self.reserved_usd + estimate_usd
            > limits.budget_usd + 1e-9  # float sums: $0.15 is $0.15
        ):
            return f"--budget-usd {limits.budget_usd:g} reached (spent ${self.spent_usd:.4f})"
        return None


def once(matches: list[Match]) -> Callable[[], list[Match]]:
    """Batches for :func:`judge_matches`: all `matches` at once, then none."""
    pending = [matches]
    return lambda: pending.pop() if pending else []


async def judge_matches(
    store: Store,
    judge: Judge,
    batches: Callable[[], list[Match]],
    *,
    limits: Limits,
    concurrency: int,
    run_id: int | None = None,
    progress: Any = None,
    on_result: Callable[[Match, Outcome], None] | None = None,
) -> Tally:
    """Judge the matches `batches()` returns, batch after batch, until it returns none or a limit
    stops the run; `concurrency` calls in flight; each result stored as it arrives."""
    tally = Tally()
    settled = asyncio.Condition()
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="judgment-writer") as writer:  # one writer
        while not tally.stopped:
            batch = batches()
            if not batch:
                break
            queue = iter(batch)
            args = (store, judge, limits, run_id, progress, on_result, tally, settled, writer)
            tasks = [asyncio.create_task(_worker(queue, *args)) for _ in range(min(concurrency, len(batch)))]
            try:
                await asyncio.gather(*tasks)
            except BaseException:  # a fatal judge error or an interrupt: let the others finish writing
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
                raise
    return tally


async def _worker(
    queue: Iterator[Match],
    store: Store,
    judge: Judge,
    limits: Limits,
    run_id: int | None,
    progress: Any,
    on_result: Callable[[Match, Outcome], None] | None,
    tally: Tally,
    settled: asyncio.Condition,
    writer: ThreadPoolExecutor,
) -> None:
    """Take matches from the shared queue; reserve each one's cost bound before sending it, and
    when it does not fit, wait for the calls in flight to settle before deciding to stop."""
    for match in queue:
        estimate = judge.estimate(match.case)[2]
        reason = tally.allows(limits, estimate)
        while reason and tally.in_flight and not tally.stopped:
            async with settled:
                await settled.wait()
            reason = tally.allows(limits, estimate)
        if reason or tally.stopped:
            tally.stopped = tally.stopped or reason
            return
        tally.sent += 1
        tally.in_flight += 1
        tally.reserved_usd += estimate
        try:
            outcome = await judge.judge(match.case)
            unknown_cost = outcome.cost_usd is None and judge.cfg.price is not None
            tally.spent_usd += estimate if unknown_cost else outcome.cost_usd or 0.0
        finally:
            tally.in_flight -= 1
            tally.reserved_usd -= estimate
            async with settled:
                settled.notify_all()
        _count(tally, outcome)
        # off the event loop: the commit's fsync would otherwise stall every call in flight
        written = await asyncio.get_running_loop().run_in_executor(
            writer, save, store, judge, match, outcome, run_id
        )
        tally.stored += written  # not `+= await`: that would read the count before the wait
        if on_result:
            on_result(match, outcome)
        if progress is not None:
            progress.update(1)
            progress.set_postfix(
                spent=f"${tally.spent_usd:.2f}", unparsed=tally.unparsed, errors=tally.errors
            )


def _count(tally: Tally, outcome: Outcome) -> None:
    if outcome.status == "ok":
        tally.ok += 1
    elif outcome.status == "unparsed":
        tally.unparsed += 1
    else:
        tally.errors += 1


# ---------------------------------------------------------------- active scheduling


def win_matrix(
    a: np.ndarray, b: np.ndarray, score: np.ndarray, k: int, weights: np.ndarray | None = None
) -> np.ndarray:
    """wins[i, j]: how much i scored against j over all matches (in either slot), `weights` times."""
    weights = np.ones(len(a)) if weights is None else weights
    wins = np.bincount(a * k + b, weights=score * weights, minlength=k * k)
    wins += np.bincount(b * k + a, weights=(1 - score) * weights, minlength=k * k)
    return wins.reshape(k, k)


def ranking(models: Sequence[str], a: np.ndarray, b: np.ndarray, score: np.ndarray) -> list[str]:
    """Models best first by Bradley-Terry strength."""
    strength = fit_bradley_terry(win_matrix(a, b, score, len(models)))
    return [models[i] for i in np.argsort(-strength, kind="stable")]


def slot1_score(status: str, verdict: str | None) -> float | None:
    """Slot 1's score of a judgment (1 win, 0 loss, 0.5 tie or both bad); None if not rated."""
    return SCORE_BY_VERDICT.get(verdict) if status == "ok" else None


def judged_scores(
    store: Store, judge: str, template_hash: str, models: Sequence[str]
) -> list[tuple[str, str, float]]:
    """(model 1, model 2, slot-1 score) of every rated judgment already stored for this judge."""
    frame = store.judgments(judge=judge, models=models)
    frame = frame[frame.template_hash == template_hash]
    rows = zip(frame.model_1, frame.model_2, frame.status, frame.verdict, strict=True)
    return [(m1, m2, s) for m1, m2, st, v in rows if (s := slot1_score(st, v)) is not None]


class ActiveScheduler:
    """Picks the next matches where they most reduce rank uncertainty.

    After a warm-up round (`warmup` matches per pair), each batch goes to adjacent-rank pairs in
    proportion to the probability that they are in the wrong order (:meth:`swap_probabilities`).
    It stops when every adjacent pair is separated (swap probability below `alpha`; strict, as it
    is looked at after every batch) or no candidate match is left for the uncertain pairs."""

    def __init__(
        self,
        models: Sequence[str],
        candidates: Sequence[Match],
        *,
        batch: int = 32,
        warmup: int = 2,
        prior: float = 2.0,
        alpha: float = 0.01,
        seed: int = 0,
    ) -> None:
        self.models = list(models)
        self.index = {m: i for i, m in enumerate(self.models)}
        self.batch, self.warmup, self.prior, self.alpha = batch, warmup, prior, alpha
        self.rng = np.random.default_rng(seed)
        self.pool: dict[tuple[str, str], list[Match]] = {}
        for match in candidates:
            self.pool.setdefault(match.pair, []).append(match)
        for matches in self.pool.values():
            self.rng.shuffle(matches)
        self.a: list[int] = []
        self.b: list[int] = []
        self.score: list[float] = []
        self.separated = False
        self.order = list(self.models)

    def record(self, model_1: str, model_2: str, score: float | None) -> None:
        """A judged match: slot 1's score (1 win, 0 loss, 0.5 tie); None for unreadable ones."""
        if score is not None:
            self.a.append(self.index[model_1])
            self.b.append(self.index[model_2])
            self.score.append(score)

    def swap_probabilities(self) -> dict[tuple[str, str], float]:
        """For each adjacent pair in the current ranking, the probability that their true order is
        the other one: a normal (Laplace) approximation of the Bradley-Terry fit, with `prior`
        virtual ties per pair so that a 3-0 start is not mistaken for certainty."""
        a, b, s = np.array(self.a), np.array(self.b), np.array(self.score)
        k = len(self.models)
        wins = win_matrix(a, b, s, k) + self.prior / 2 * (1 - np.eye(k))
        theta = fit_bradley_terry(wins)
        p = 1 / (1 + np.exp(theta[None, :] - theta[:, None]))
        info = (wins + wins.T) * p * (1 - p)
        covariance = np.linalg.pinv(np.diag(info.sum(1)) - info)  # the null space is a common shift
        order = np.argsort(-theta, kind="stable")
        self.order = [self.models[i] for i in order]
        out = {}
        for hi, lo in itertools.pairwise(order):
            sd = np.sqrt(max(covariance[hi, hi] + covariance[lo, lo] - 2 * covariance[hi, lo], 1e-12))
            pair = tuple(sorted((self.models[hi], self.models[lo])))
            out[pair] = float(0.5 * math.erfc((theta[hi] - theta[lo]) / sd / math.sqrt(2)))
        return out

    def next_batch(self) -> list[Match]:
        if self.separated:
            return []
        warm = [p for p, ms in self.pool.items() if ms and self._judged(p) < self.warmup]
        if warm:
            return [self.pool[p].pop() for p in warm for _ in range(min(len(self.pool[p]), self.warmup))]
        if not self.a:
            return []
        uncertain = {p: w for p, w in self.swap_probabilities().items() if w >= self.alpha}
        if not uncertain:
            self.separated = True
            return []
        targets: dict[tuple[str, str], float] = {}
        for pair, weight in uncertain.items():
            options = [pair] if self.pool.get(pair) else self._nearest_open(pair)
            for option in options:
                targets[option] = targets.get(option, 0.0) + weight / len(options)
        if not targets:
            return []
        pairs = list(targets)
        weights = np.array([targets[p] for p in pairs])
        batch = []
        for i in self.rng.choice(len(pairs), size=self.batch, p=weights / weights.sum()):
            if self.pool[pairs[i]]:
                batch.append(self.pool[pairs[i]].pop())
        return batch

    def _nearest_open(self, pair: tuple[str, str]) -> list[tuple[str, str]]:
        """When a close pair has no match left, compare each of the two with its nearest-ranked
        other models instead: indirect evidence through a common opponent."""
        rank = {m: i for i, m in enumerate(self.order)}
        options = [
            (abs(rank[other] - rank[m]), tuple(sorted((m, other))))
            for m in pair
            for other in self.models
            if other not in pair and self.pool.get(tuple(sorted((m, other))))
        ]
        if not options:
            return []
        nearest = min(distance for distance, _ in options)
        return sorted({p for distance, p in options if distance == nearest})

    def _judged(self, pair: tuple[str, str]) -> int:
        i, j = self.index[pair[0]], self.index[pair[1]]
        return sum(1 for x, y in zip(self.a, self.b, strict=True) if {x, y} == {i, j})
