"""docs/bench/judge.md is written by two scripts (bench/judge.py, bench/active.py): each replaces
only its own `## ` section, so either can be rerun alone."""

from __future__ import annotations

import re
from pathlib import Path

HEADER = "# Judges: throughput and active scheduling\n\nWritten by `bench/judge.py` and `bench/active.py`.\n"


def write_section(path: Path, title: str, body: str) -> None:
    """Put `## title` + body into the file, replacing that section if present."""
    text = path.read_text(encoding="utf-8") if path.is_file() else HEADER
    section = f"## {title}\n\n{body.strip()}\n"
    pattern = re.compile(rf"^## {re.escape(title)}\n.*?(?=^## |\Z)", re.DOTALL | re.MULTILINE)
    text = (
        pattern.sub(lambda _m: section + "\n", text)
        if pattern.search(text)
        else text.rstrip() + "\n\n" + section
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text.rstrip() + "\n", encoding="utf-8")
    print(f"wrote section {title!r} of {path}")
