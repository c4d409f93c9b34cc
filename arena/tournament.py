"""Tournaments: which matches to judge, and judging them concurrently, resumably, within budget.

A match is two generations of the same prompt in a fixed order (slot 1 shown first). Pair
selection is `all` (every pair of contestants), `baseline:NAME` (everyone against NAME) or
`active` (the next matches where they most reduce rank uncertainty, see :mod:`arena.active`).
Every judgment is written in its own short transaction as soon as it completes, keyed by (judge,
template hash, generation 1, generation 2), so a run killed at any moment and started again sends
only what is missing and stores nothing twice. A reply in hand is always written, even when the run
is cancelled right after it arrived. What each call cost is added to its run's spend in the same
transaction, so a tournament's budget holds across reruns (:func:`tournament_spend`).
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import random
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, select, update

from arena.battles import SCORE_BY_VERDICT
from arena.store import (
    Contestant,
    Generation,
    Judgment,
    Prompt,
    Run,
    Store,
    answerable_generations,
    insert_ignore,
)
from judges.judge import Case, Judge, Outcome
from judges.templates import Template, Turn


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


def question_text(prompt: Prompt, turn: int = 1, form: str = "bare") -> str:
    """The user turn `turn` as the judge sees it. Earlier conversation turns (OA's context) always
    come in the QLoRA `### Human:` form; `form="qlora"` (the QLoRA OA release's) uses it even for a
    single-turn prompt. Turn 2 of MT-bench is shown bare: its template lays out the conversation."""
    question = prompt.turns[turn - 1]
    if form not in ("bare", "qlora"):
        raise ValueError(f"unknown question form {form!r}: use bare or qlora")
    context = "".join(
        f"### {'Human' if t.get('role') == 'user' else 'Assistant'}: {t.get('content', '')} "
        for t in prompt.context or []
    )
    if turn == 1 and (context or form == "qlora"):
        return f"{context}### Human: {question} ### Assistant:"
    return question


def load_entries(
    store: Store, benchmark: str, models: Sequence[str], template: Template | None = None
) -> dict[int, dict[str, Any]]:
    """By prompt id: the questions, category, references and each named model's generation with
    its answer to every turn up to the template's (a generation without that turn is left out)."""
    turn = template.turn if template else 1
    form = template.settings.question_form if template else "bare"
    with store.session() as session:
        known = set(session.scalars(select(Contestant.name).where(Contestant.name.in_(models))))
        unknown = [m for m in models if m not in known]
        if unknown:
            raise ValueError(f"unknown contestant(s): {', '.join(unknown)}; see `guanaco models list`")
        rows = session.execute(
            select(Prompt, Generation.id, Generation.text, Generation.turn_texts, Contestant.name)
            .join(Generation, Generation.prompt_id == Prompt.id)
            .join(Contestant, Contestant.id == Generation.contestant_id)
            .where(Prompt.benchmark == benchmark, Contestant.name.in_(models), answerable_generations())
            .order_by(Prompt.id)
        ).all()
    entries: dict[int, dict[str, Any]] = {}
    for prompt, gen_id, text, turn_texts, model in rows:
        texts = turn_texts or [text]
        if len(prompt.turns) < turn or len(texts) < turn:
            continue
        references = list(prompt.reference or [])
        entry = entries.setdefault(
            prompt.id,
            {
                "questions": [question_text(prompt, t, form) for t in range(1, turn + 1)],
                "category": prompt.category,
                "references": [references[t] if t < len(references) else None for t in range(turn)],
                "generations": {},
            },
        )
        entry["generations"][model] = (gen_id, [text, *texts[1:turn]])
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
    """The match of `first` (slot 1) and `second` on the entry's last turn, earlier turns as context."""
    (g1, texts1), (g2, texts2) = entry["generations"][first], entry["generations"][second]
    questions, references = entry["questions"], entry["references"]
    turns = zip(questions, texts1, texts2, references, strict=True)
    earlier = tuple(Turn(q, a1, a2, r) for q, a1, a2, r in turns)[:-1]
    case = Case(questions[-1], texts1[-1], texts2[-1], category=entry["category"], reference=references[-1],
                earlier=earlier)  # fmt: skip
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


def tournament_key(benchmark: str, judge: str, template_hash: str, models: Sequence[str]) -> str:
    """What the runs of one tournament share: the same judge and template on the same benchmark and
    contestants (pair selection, orders and limits may change from one rerun to the next)."""
    return hashlib.sha256(repr((benchmark, judge, template_hash, sorted(models))).encode()).hexdigest()[:32]


def tournament_spend(store: Store, tournament: str) -> float:
    """What every run of the tournament has spent so far, in USD."""
    with store.session() as session:
        spent = session.scalar(select(func.sum(Run.spent_usd)).where(Run.tournament == tournament))
    return float(spent or 0.0)


def save(
    store: Store, judge: Judge, match: Match, outcome: Outcome, run_id: int | None, charge: float = 0.0
) -> bool:
    """Write one judgment in its own transaction, and add `charge` to its run's spend; replaces an
    earlier `error` row for the same key. Returns whether a row was written."""
    t = judge.cfg.template
    row = {
        "judge": judge.cfg.name,
        "template_id": t.id,
        "template_hash": t.hash,
        "turn": t.turn,
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
        if run_id is not None and charge:
            session.execute(update(Run).where(Run.id == run_id).values(spent_usd=Run.spent_usd + charge))
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
    """Stop before the tournament's spend (`spent_before` by earlier runs, plus this run's) exceeds
    `budget_usd`, or after sending `max_judgments`."""

    budget_usd: float | None = None
    max_judgments: int | None = None
    spent_before: float = 0.0


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
        if self.exceeds(limits, estimate_usd):
            spent = limits.spent_before + self.spent_usd
            return f"--budget-usd {limits.budget_usd:g} reached (the tournament has spent ${spent:.4f})"
        return None

    def exceeds(self, limits: Limits, more_usd: float = 0.0) -> bool:
        """Whether spent (earlier runs and this one) plus reserved plus `more_usd` passes the budget."""
        spent = limits.spent_before + self.spent_usd + self.reserved_usd + more_usd
        return limits.budget_usd is not None and spent > limits.budget_usd + 1e-9  # $0.15 is $0.15


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
    interrupt: asyncio.Event | None = None,
) -> Tally:
    """Judge the matches `batches()` returns, batch after batch, until it returns none or a limit
    stops the run; `concurrency` calls in flight; each result stored as it arrives.

    When `interrupt` is set, no new call is sent and the calls in flight finish and are stored; a
    cancellation abandons the calls in flight, but still stores every reply already received (the
    writer is shut down only after its last queued write)."""
    tally = Tally()
    settled = asyncio.Condition()
    stop = interrupt or asyncio.Event()
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="judgment-writer") as writer:  # one writer
        while not tally.stopped:
            batch = batches()
            if not batch:
                break
            queue = iter(batch)
            args = (store, judge, limits, run_id, progress, on_result, tally, settled, writer, stop)
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
    stop: asyncio.Event,
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
        if stop.is_set():
            reason = "interrupted"
        if reason or tally.stopped:
            tally.stopped = tally.stopped or reason
            return
        tally.sent += 1
        tally.in_flight += 1
        tally.reserved_usd += estimate

        def failed_attempt(cost: float) -> bool:
            """Charged as it happens; a retry is made only while the call's reservation still fits."""
            tally.spent_usd += cost
            return not tally.exceeds(limits)

        try:
            outcome = await judge.judge(match.case, failed_attempt)
            unknown_cost = outcome.cost_usd is None and judge.cfg.price is not None
            charge = estimate + outcome.failed_usd if unknown_cost else outcome.cost_usd or 0.0
            tally.spent_usd += charge - outcome.failed_usd  # failed attempts were added as they failed
            # queued before any other await, so a cancellation from here on cannot lose the reply;
            # off the event loop: the commit's fsync would otherwise stall every call in flight
            written = writer.submit(save, store, judge, match, outcome, run_id, charge)
        finally:
            tally.in_flight -= 1
            tally.reserved_usd -= estimate
        async with settled:
            settled.notify_all()
        _count(tally, outcome)
        stored = await asyncio.shield(asyncio.wrap_future(written))
        tally.stored += stored  # not `+= await`: that would read the count before the wait
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


# ---------------------------------------------------------------- active scheduling (see arena.active)


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
