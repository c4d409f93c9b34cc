"""The group-commit writer: batches what queued during a commit, loses nothing queued, and one bad
row cannot take the rest of its batch down with it."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence

import pytest

from arena import group_writer
from arena.group_writer import GroupWriter


class Table:
    """Rows by key, written in transactions (a batch is all or nothing); a key in `bad` fails."""

    def __init__(self, bad: set[int] = frozenset(), hold: threading.Event | None = None) -> None:
        self.rows: list[int] = []
        self.batches: list[list[int]] = []
        self.bad = bad
        self.hold = hold

    def write(self, items: Sequence[int]) -> int:
        if self.hold is not None:
            self.hold.wait(5)
        if self.bad & set(items):
            raise ValueError(f"bad row in {list(items)}")
        self.batches.append(list(items))
        self.rows.extend(items)
        return len(items)


def test_what_queues_during_a_commit_goes_in_the_next_one(monkeypatch) -> None:
    monkeypatch.setattr(group_writer, "MIN_INTERVAL_S", 0.0)
    hold = threading.Event()
    table = Table(hold=hold)

    async def run() -> int:
        with GroupWriter(table.write) as writer:
            writer.put(0)  # the writer takes it and is held inside its commit
            await asyncio.sleep(0.05)
            for item in range(1, 40):
                writer.put(item)
            hold.set()
            await writer.drain()
            return writer.stored

    assert asyncio.run(run()) == 40
    assert table.batches == [[0], list(range(1, 40))]


def test_one_bad_row_does_not_cost_the_others_and_its_error_is_raised() -> None:
    table = Table(bad={3})

    async def run() -> None:
        with GroupWriter(table.write) as writer:
            for item in range(6):
                writer.put(item)
            with pytest.raises(ValueError, match="bad row in \\[3\\]"):
                await writer.drain()
            with pytest.raises(ValueError):
                writer.put(7)  # queued all the same (a reply is never dropped), then the error raised

    asyncio.run(run())
    assert sorted(table.rows) == [0, 1, 2, 4, 5, 7]


def test_a_cancelled_run_still_writes_everything_queued() -> None:
    hold = threading.Event()
    table = Table(hold=hold)

    counted: list[int] = []

    async def run() -> None:
        writer: GroupWriter[int] = GroupWriter(table.write)
        try:
            with writer:
                for item in range(25):
                    writer.put(item)
                threading.Timer(0.2, hold.set).start()
                raise asyncio.CancelledError  # as a second Ctrl-C ends a judge run
        finally:
            counted.append(writer.stored)  # before the event loop runs anything again

    with pytest.raises(asyncio.CancelledError):
        asyncio.run(run())
    assert sorted(table.rows) == list(range(25))
    assert counted == [25]
