"""The sweep's held-out prompts: the first records of the data's held-out split, as a benchmark."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from arena.query.prompts import prompt_ids
from arena.store import Store
from arena.sweep.config import Point, SweepConfig
from foundations.errors import UserError


def data_label(source: str) -> str:
    """The data as provenance may show it: a file's name (never a machine path) or a hub id."""
    from trainer.data import is_hub_id

    return source if is_hub_id(source) else Path(source).name


def held_out_prompts(cfg: SweepConfig, point: Point) -> list[dict[str, Any]]:
    """The first `cfg.prompts` held-out conversations as benchmark rows: the last user turn is the
    prompt, earlier turns are context, the held-out answer is the reference."""
    from trainer.data import load_splits
    from trainer.formats import DataError

    t = point.train
    try:
        _, held, _, report = load_splits(t.data, t.format, t.eval_data, t.eval_fraction)
    except DataError as err:
        raise UserError(str(err)) from err
    if not held:
        raise UserError(
            f"{cfg.data}: no held-out records ({report.summary()}); raise eval_fraction or pass eval_data"
        )
    digest = hashlib.sha256(Path(t.data).read_bytes()).hexdigest() if Path(t.data).is_file() else None
    rows = []
    for conv in held[: cfg.prompts]:
        *before, question, answer = conv
        context = [{"role": turn.role, "content": turn.text} for turn in before]
        key = hashlib.sha256(json.dumps([context, question.text]).encode()).hexdigest()[:16]
        rows.append({"benchmark": cfg.name, "key": key, "category": None, "turns": [question.text],
                     "context": context, "reference": [answer.text], "source": data_label(cfg.data),
                     "source_sha256": digest, "meta": {"split": "held-out"}})  # fmt: skip
    return rows


def store_prompts(store: Store, rows: list[dict[str, Any]], benchmark: str) -> None:
    """Insert the held-out prompts; a benchmark of this name holding other prompts is refused."""
    from arena.benchmarks import insert_prompts

    with store.session() as session:
        present = set(prompt_ids(session, benchmark))
        other = present - {r["key"] for r in rows}
        if other:
            raise UserError(
                f"benchmark {benchmark!r} already holds {len(other)} other prompt(s) (different data or "
                "eval_fraction): give the sweep another name"
            )
        insert_prompts(session, rows)
