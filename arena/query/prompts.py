"""Reading prompts: the benchmarks, categories and items the store holds."""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import select
from sqlalchemy.orm import Session

from arena.store import Prompt


def benchmark_names(session: Session) -> list[str]:
    """Every benchmark with a prompt in the store, sorted."""
    return sorted(session.scalars(select(Prompt.benchmark).distinct()))


def category_names(session: Session) -> list[str]:
    """Every prompt category in the store, sorted (prompts without one left out)."""
    return sorted(c for c in session.scalars(select(Prompt.category).distinct()) if c)


def has_prompts(session: Session, benchmark: str) -> bool:
    """Whether the store holds any prompt of `benchmark`."""
    stmt = select(Prompt.id).where(Prompt.benchmark == benchmark).limit(1)
    return session.scalars(stmt).first() is not None


def benchmark_prompts(session: Session, benchmark: str, limit: int | None = None) -> list[Prompt]:
    """The prompts of `benchmark` in a stable order (the first `limit`)."""
    stmt = select(Prompt).where(Prompt.benchmark == benchmark).order_by(Prompt.id)
    return list(session.scalars(stmt.limit(limit) if limit else stmt))


def prompt_ids(session: Session, benchmark: str) -> dict[str, int]:
    """Prompt ids of `benchmark` by key."""
    return dict(session.execute(select(Prompt.key, Prompt.id).where(Prompt.benchmark == benchmark)).all())


def prompts_by_id(session: Session, prompt_ids: Iterable[int]) -> dict[int, Prompt]:
    """The prompts with these ids, as records."""
    return {p.id: p for p in session.scalars(select(Prompt).where(Prompt.id.in_(list(prompt_ids))))}


def prompt_record(session: Session, prompt_id: int) -> Prompt:
    """One prompt record by id (which must exist)."""
    return session.get_one(Prompt, prompt_id)
