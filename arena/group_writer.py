"""Writes from an event loop to the store in one thread, committing together whatever queued up
since the previous commit (group commit), at most one commit per `MIN_INTERVAL_S`.

A judge run receives replies faster than a store commits them one transaction each (a SQLite
commit is an fsync, whose cost a transaction of many rows shares), and every reply must be stored
before anything could lose it. So an idle
writer commits a reply at once, and under load one transaction carries every reply that arrived
in the last `MIN_INTERVAL_S`: a process killed outright (SIGKILL, power loss) loses at most the
replies of that interval plus the commit under way, which a rerun asks again. The thread keeps the
commit's wait off the event loop, which would otherwise stall every call in flight.

Leaving the `with` block, normally or by an exception or a cancellation (SIGINT and SIGTERM end a
judge run that way), writes everything queued before it returns: a reply that reached
:meth:`GroupWriter.put` is stored unless the process is killed outright.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from typing import Generic, TypeVar

log = logging.getLogger(__name__)

Item = TypeVar("Item")

MAX_BATCH = 500
"""Items per transaction at most (one multi-row statement's worth)."""
MIN_INTERVAL_S = 0.1
"""Seconds between the starts of two commits at least: what a kill can lose, and what keeps the
commits' fixed cost per second bounded however fast replies arrive."""

_CLOSE = object()


class GroupWriter(Generic[Item]):
    """`write(items)` (one transaction; returns how many rows it stored) run in a thread of its own
    on batches of what :meth:`put` queued. Use as a context manager inside the event loop."""

    def __init__(self, write: Callable[[Sequence[Item]], int]) -> None:
        self._write = write
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="group-writer", daemon=True)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._pending = 0
        self._idle: asyncio.Future[None] | None = None
        self.stored = 0
        """Rows stored so far (as `write` counted them). Counted by the writer thread as each
        commit returns, so it is exact once the `with` block is left, however it was left."""
        self.error: BaseException | None = None
        """The first write that failed for good; :meth:`put` and :meth:`drain` raise it."""

    def __enter__(self) -> GroupWriter[Item]:
        self._loop = asyncio.get_running_loop()
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        """Write everything queued, then end the thread (blocking: the event loop has nothing
        else to do once the run is over)."""
        self._queue.put(_CLOSE)
        self._thread.join()

    def put(self, item: Item) -> None:
        """Queue `item` for the next transaction; never waits. Then raises the error of a write
        that failed before (the item is still written)."""
        self._pending += 1
        self._queue.put(item)
        if self.error is not None:
            raise self.error

    async def drain(self) -> None:
        """Wait until everything queued so far is written; raises a failed write's error."""
        while self._pending and self.error is None:
            self._idle = asyncio.get_running_loop().create_future()
            await self._idle
        if self.error is not None:
            raise self.error

    def _run(self) -> None:
        closing = False
        next_commit = 0.0
        while not closing:
            batch = [self._queue.get()]
            time.sleep(max(0.0, next_commit - time.monotonic()))  # what arrives meanwhile joins in
            next_commit = time.monotonic() + MIN_INTERVAL_S
            while len(batch) < MAX_BATCH:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            closing = _CLOSE in batch
            items = [item for item in batch if item is not _CLOSE]
            if items:
                stored, error = self._commit(items)
                self.stored += stored  # only this thread writes these two
                self.error = self.error or error
                self._report(len(items))

    def _commit(self, items: list[Item]) -> tuple[int, BaseException | None]:
        """One transaction for the batch; if it fails, one per item, so a single bad row cannot
        cost the others their place in the store."""
        try:
            return self._write(items), None
        except Exception as error:  # noqa: BLE001 - retried item by item below
            if len(items) == 1:
                return 0, error
            log.warning("writing %d rows together failed (%s); writing them one by one", len(items), error)
        stored, first = 0, None
        for item in items:
            try:
                stored += self._write([item])
            except Exception as error:  # noqa: BLE001 - the first is reported, the rest still written
                first = first or error
        return stored, first

    def _report(self, written: int) -> None:
        with contextlib.suppress(RuntimeError):  # the loop is closed: nobody is waiting any more
            self._loop.call_soon_threadsafe(self._settle, written)

    def _settle(self, written: int) -> None:
        self._pending -= written
        if self._idle is not None and not self._idle.done() and (self._pending == 0 or self.error):
            self._idle.set_result(None)
