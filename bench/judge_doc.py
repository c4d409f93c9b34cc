"""docs/bench/judge.md is written section by section (`## ` headings), so a section can be rerun
alone; active scheduling has its own page, docs/bench/active.md, written by bench/active.py."""

from __future__ import annotations

import re
from pathlib import Path

HEADER = (
    "# Judges: throughput\n\nWritten by `bench/judge.py`. Active scheduling: [active.md](active.md), "
    "by `bench/active.py`.\n"
)


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
