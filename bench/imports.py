"""Time the QLoRA release import (bulk `insert_ignore`) against the same import writing one row
per statement, in the same run, on fresh SQLite files; writes docs/bench/imports.md.

    .venv/bin/python bench/imports.py [--mirror ../shared/data]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import platform
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

import arena.imports
from arena.import_qlora import import_qlora_release
from arena.store import Store

PROJECT = Path(__file__).resolve().parents[1]


def timed_import(mirror: Path, db: Path) -> tuple[float, int]:
    store = Store(f"sqlite:///{db}")
    with contextlib.redirect_stdout(io.StringIO()):
        started = time.perf_counter()
        report = import_qlora_release(store, mirror, progress=False)
        seconds = time.perf_counter() - started
    return seconds, report.new_rows["judgments"]


ORIGINAL = arena.imports.insert_ignore


def row_by_row(session: Session, model: type, rows: Sequence[dict[str, Any]]) -> int:
    """The baseline: `insert_ignore` with one row per statement."""
    return sum(ORIGINAL(session, model, [row]) for row in rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--mirror", type=Path, default=PROJECT.parent / "shared" / "data")
    parser.add_argument("--out", type=Path, default=PROJECT / "docs" / "bench" / "imports.md")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        bulk, judgments = timed_import(args.mirror, Path(tmp) / "bulk.db")
        arena.imports.insert_ignore = row_by_row
        try:
            baseline, _ = timed_import(args.mirror, Path(tmp) / "rows.db")
        finally:
            arena.imports.insert_ignore = ORIGINAL
        reimport, _ = timed_import(args.mirror, Path(tmp) / "bulk.db")
    section = f"""## Import of the QLoRA evaluation release (`bench/imports.py`)

Whole release ({judgments:,} judgments, 9,711 generations, 1,033 prompts) into a fresh SQLite file,
on {platform.processor() or platform.machine()} ({platform.python_version()}), same run:

| method | seconds | ratio |
|---|---:|---:|
| one statement per row (baseline) | {baseline:.1f} | 1.0 |
| bulk `insert_ignore`, 500 rows a statement | {bulk:.1f} | {baseline / bulk:.1f}x faster |
| re-import into the filled store (adds nothing) | {reimport:.1f} | {baseline / reimport:.1f}x faster |

Every row includes reading and checking every file (about 54 MB of JSONL) and deriving the answer ids.
"""
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(section)
    print(section)


if __name__ == "__main__":
    main()
