"""Running a tournament: judging matches concurrently, within limits, each result stored as it arrives.

A reply in hand is always written, even when the run is cancelled right after it arrived. The
first Ctrl-C or SIGTERM stops sending and lets the calls in flight finish and be stored (they are
paid for); a second one abandons them, still storing every reply already received.
"""

from __future__ import annotations

import asyncio
import functools
import signal
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from arena.group_writer import GroupWriter
from arena.store import Store
from arena.tournament.persistence import save
from arena.tournament.plan import Match
from judges.judge import Judge, JudgeConfig, Outcome

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


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
    stops the run; `concurrency` calls in flight; each result queued for the store as it arrives
    and committed by the next transaction of the writer (:mod:`arena.group_writer`).

    When `interrupt` is set, no new call is sent and the calls in flight finish and are stored; a
    cancellation abandons the calls in flight, but still stores every reply already received (the
    writer ends only after its last queued write)."""
    tally = Tally()
    settled = asyncio.Condition()
    stop = interrupt or asyncio.Event()
    with GroupWriter(functools.partial(save, store, judge, run_id)) as writer:
        while not tally.stopped:
            batch = batches()
            if not batch:
                break
            queue = iter(batch)
            args = (judge, limits, progress, on_result, tally, settled, writer, stop)
            tasks = [asyncio.create_task(_worker(queue, *args)) for _ in range(min(concurrency, len(batch)))]
            try:
                await asyncio.gather(*tasks)
            except BaseException:  # a fatal judge error or an interrupt: let the others finish writing
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
                raise
        await writer.drain()
    tally.stored = writer.stored
    return tally


async def _worker(
    queue: Iterator[Match],
    judge: Judge,
    limits: Limits,
    progress: Any,
    on_result: Callable[[Match, Outcome], None] | None,
    tally: Tally,
    settled: asyncio.Condition,
    writer: GroupWriter[tuple[Match, Outcome, float]],
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
            # queued before any other await, so a cancellation from here on cannot lose the reply
            writer.put((match, outcome, charge))
        finally:
            tally.in_flight -= 1
            tally.reserved_usd -= estimate
        async with settled:
            settled.notify_all()
        _count(tally, outcome)
        if on_result:
            on_result(match, outcome)
        if progress is not None:
            progress.update(1)  # redrawn at tqdm's own interval, the postfix with it
            progress.set_postfix(
                spent=f"${tally.spent_usd:.2f}", unparsed=tally.unparsed, errors=tally.errors, refresh=False
            )


def _count(tally: Tally, outcome: Outcome) -> None:
    if outcome.status == "ok":
        tally.ok += 1
    elif outcome.status == "unparsed":
        tally.unparsed += 1
    else:
        tally.errors += 1


async def judge_with_client(
    store: Store,
    cfg: JudgeConfig,
    batches: Callable[[], list[Match]],
    *,
    limits: Limits,
    run_id: int | None,
    progress: Any = None,
    on_result: Callable[[Match, Outcome], None] | None = None,
) -> Tally:
    """:func:`judge_matches` with a client of `cfg`'s endpoint, stopped by the first SIGINT/SIGTERM
    (see :func:`stop_signals`)."""
    from judges.client import ChatClient

    interrupt = asyncio.Event()
    with stop_signals(interrupt, progress):
        async with ChatClient(cfg.client) as client:
            return await judge_matches(store, Judge(cfg, client), batches, limits=limits,
                                       concurrency=cfg.client.concurrency, run_id=run_id, progress=progress,
                                       on_result=on_result, interrupt=interrupt)  # fmt: skip


@contextmanager
def stop_signals(interrupt: asyncio.Event, progress: Any = None) -> Iterator[None]:
    """While judging: the first SIGINT/SIGTERM sets `interrupt` (no new calls; those in flight are
    paid for, so they finish and are stored), the next cancels the run."""
    loop = asyncio.get_running_loop()
    task = asyncio.current_task()

    def on_signal() -> None:
        if interrupt.is_set():
            task.cancel()
            return
        interrupt.set()
        if progress is not None:
            progress.write("stopping: finishing the calls in flight and storing them (again to abandon them)")

    previous = {}
    for sig in STOP_SIGNALS:
        handler = signal.getsignal(sig)
        try:
            loop.add_signal_handler(sig, on_signal)
            previous[sig] = handler
        except (NotImplementedError, RuntimeError, ValueError):  # not the main thread, or Windows
            pass
    try:
        yield
    finally:
        for sig, handler in previous.items():
            loop.remove_signal_handler(sig)
            if handler is not None:  # the handler before ours (the demo's stops its judge server)
                signal.signal(sig, handler)
