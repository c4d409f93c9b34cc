"""The idempotent bulk insert every write of the store goes through, and the id lookup by unique
key that follows a bulk insert."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from arena.store import UNIQUE_KEYS, Base

CHUNK_ROWS = 500
"""Rows sent in one INSERT statement."""


def insert_ignore(
    session: Session, model: type[Base], rows: Sequence[dict[str, Any]], any_key: bool = False
) -> int:
    """Insert rows, skipping any whose unique key already exists; returns how many were new.

    Uses the database's own ON CONFLICT DO NOTHING, so concurrent writers (two annotators, two
    judge processes) cannot store the same record twice. `any_key` skips a row that collides on
    any unique key of the table (a vote's unordered pair too), not only the natural one."""
    if not rows:
        return 0
    dialect = session.bind.dialect.name
    if dialect == "sqlite":
        from sqlalchemy.dialects.sqlite import insert
    elif dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:  # pragma: no cover - other databases are not supported
        raise ValueError(f"unsupported database {dialect!r}: use SQLite or PostgreSQL")
    table = model.__table__
    defaults = {c.name: c.default.arg for c in table.columns if c.default is not None and not c.primary_key}
    new = 0
    for start in range(0, len(rows), CHUNK_ROWS):
        chunk = [_with_defaults(row, defaults) for row in rows[start : start + CHUNK_ROWS]]
        target = None if any_key else list(UNIQUE_KEYS[model])
        stmt = insert(table).on_conflict_do_nothing(index_elements=target)
        new += len(session.execute(stmt.returning(table.c.id), chunk).all())
    return new


def _with_defaults(row: dict[str, Any], defaults: dict[str, Any]) -> dict[str, Any]:
    full = dict(row)
    for name, default in defaults.items():
        if name not in full:
            full[name] = default(None) if callable(default) else default
    return full


def ids_by_key(session: Session, model: type[Base], keys: Iterable[tuple[Any, ...]] | None = None) -> dict:
    """Map each row's unique key (a tuple, or the bare value for one-column keys) to its id."""
    cols = [getattr(model, name) for name in UNIQUE_KEYS[model]]
    wanted = None if keys is None else set(keys)
    out = {}
    for row in session.execute(select(model.id, *cols)):
        key = tuple(row[1:]) if len(cols) > 1 else row[1]
        if wanted is None or key in wanted:
            out[key] = row[0]
    return out
