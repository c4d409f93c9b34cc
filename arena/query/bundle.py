"""What a release bundle reads: every record of a table as plain rows, kept to one benchmark."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Row, select
from sqlalchemy.orm import Session

from arena.store import Base, Prompt


def table_rows(session: Session, model: type[Base], benchmark: str | None = None) -> list[Row[Any]]:
    """Every row of `model`'s table as plain rows (not ORM objects: several times faster for tens
    of thousands of judgments); with `benchmark`, only prompts of that benchmark and the records
    that point at one (generations, judgments). Other tables are never cut by benchmark."""
    stmt = select(model.__table__)
    if benchmark is not None and model is Prompt:
        stmt = stmt.where(Prompt.benchmark == benchmark)
    elif benchmark is not None and "prompt_id" in model.__table__.columns:
        stmt = stmt.where(
            model.__table__.c.prompt_id.in_(select(Prompt.id).where(Prompt.benchmark == benchmark))
        )
    return list(session.execute(stmt))
