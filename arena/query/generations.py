"""Reading generations, and the one rule that keeps placeholders out: only
:func:`answerable_generations` are shown to a voter, sent to a judge or measured."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import pandas as pd
from sqlalchemy import false, func, or_, select
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from arena.store import Contestant, Generation, Prompt

GENERATION_COLUMNS = ["generation_id", "benchmark", "prompt_key", "category", "model", "text", "backend",
                      "completion_tokens", "created_at"]  # fmt: skip


def answerable_generations() -> ColumnElement[bool]:
    """The condition a generation meets when it holds an answer: not a placeholder that an import
    made only so judgments could link to it (`meta.text_missing`, its text empty). Every query
    that shows answers to voters, sends them to a judge or measures them filters on it."""
    missing = Generation.meta["text_missing"].as_boolean()
    return or_(missing.is_(None), missing.is_(false()))


def generations_frame(
    session: Session, benchmark: str | None = None, answerable: bool = False
) -> pd.DataFrame:
    """All generations with their prompt and contestant names, one row each (only those that hold
    an answer if `answerable`: see :func:`answerable_generations`)."""
    stmt = (
        select(
            Generation.id,
            Prompt.benchmark,
            Prompt.key,
            Prompt.category,
            Contestant.name,
            Generation.text,
            Generation.backend,
            Generation.completion_tokens,
            Generation.created_at,
        )  # fmt: skip
        .join(Prompt, Prompt.id == Generation.prompt_id)
        .join(Contestant, Contestant.id == Generation.contestant_id)
        .order_by(Generation.id)
    )
    if benchmark:
        stmt = stmt.where(Prompt.benchmark == benchmark)
    if answerable:
        stmt = stmt.where(answerable_generations())
    return pd.DataFrame(session.execute(stmt).all(), columns=GENERATION_COLUMNS)


def answer_texts(session: Session, benchmark: str | None = None) -> pd.Series:
    """The text of every answerable generation (of `benchmark`), by generation id: what a length
    or style measure may read (a placeholder has no length, not length 0)."""
    return generations_frame(session, benchmark, answerable=True).set_index("generation_id")["text"]


def judgeable_answers(
    session: Session, benchmark: str, models: Sequence[str]
) -> list[tuple[Prompt, int, str, list[Any] | None, str]]:
    """(prompt, generation id, text, turn texts, model) of every answerable generation of
    `models` on `benchmark`, by prompt: what a tournament may send to a judge."""
    stmt = (
        select(Prompt, Generation.id, Generation.text, Generation.turn_texts, Contestant.name)
        .join(Generation, Generation.prompt_id == Prompt.id)
        .join(Contestant, Contestant.id == Generation.contestant_id)
        .where(Prompt.benchmark == benchmark, Contestant.name.in_(list(models)), answerable_generations())
        .order_by(Prompt.id)
    )
    return [tuple(row) for row in session.execute(stmt).all()]


def votable_answers(session: Session, benchmark: str | None = None) -> list[tuple[int, str, int]]:
    """(prompt id, model, generation id) of every answerable generation (of `benchmark`): what a
    voter may be shown."""
    stmt = (
        select(Generation.prompt_id, Contestant.name, Generation.id)
        .join(Contestant, Contestant.id == Generation.contestant_id)
        .where(answerable_generations())
    )
    if benchmark:
        stmt = stmt.join(Prompt, Prompt.id == Generation.prompt_id).where(Prompt.benchmark == benchmark)
    return [tuple(row) for row in session.execute(stmt)]


def answered_prompt_ids(session: Session, contestant_id: int) -> set[int]:
    """The prompts a contestant has a generation for (a placeholder included: a file supplies it)."""
    return set(session.scalars(select(Generation.prompt_id).where(Generation.contestant_id == contestant_id)))


def count_generations(session: Session, benchmark: str, models: Sequence[str]) -> int:
    """How many generations `models` have on `benchmark`."""
    stmt = (
        select(func.count(Generation.id))
        .join(Contestant, Contestant.id == Generation.contestant_id)
        .join(Prompt, Prompt.id == Generation.prompt_id)
        .where(Contestant.name.in_(list(models)), Prompt.benchmark == benchmark)
    )
    return int(session.scalar(stmt) or 0)


def generation_keys(
    session: Session, contestant_ids: Iterable[int]
) -> dict[tuple[int, int], tuple[int, str | None, dict]]:
    """(generation id, external id, meta) by (prompt id, contestant id) for these contestants."""
    stmt = select(Generation.prompt_id, Generation.contestant_id, Generation.id, Generation.external_id,
                  Generation.meta).where(Generation.contestant_id.in_(list(contestant_ids)))  # fmt: skip
    return {(p, c): (g, e, m) for p, c, g, e, m in session.execute(stmt)}


def generations_by_id(session: Session, generation_ids: Iterable[int]) -> dict[int, Generation]:
    """The generations with these ids, as records."""
    stmt = select(Generation).where(Generation.id.in_(list(generation_ids)))
    return {g.id: g for g in session.scalars(stmt)}


def generation_record(session: Session, generation_id: int) -> Generation:
    """One generation record by id (which must exist)."""
    return session.get_one(Generation, generation_id)
