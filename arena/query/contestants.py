"""Reading and writing contestants, the models entered in the arena."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from arena.query.writes import insert_ignore
from arena.store import Contestant


def upsert_contestant(session: Session, name: str, **fields: Any) -> Contestant:
    """Contestant `name`, created with `fields` if new; an existing one gets `fields` set
    (re-adding a model corrects a mistake)."""
    insert_ignore(session, Contestant, [{"name": name, **fields}])
    contestant = session.scalars(select(Contestant).where(Contestant.name == name)).one()
    for key, value in fields.items():
        setattr(contestant, key, value)
    return contestant


def contestants_named(session: Session, names: Sequence[str]) -> dict[str, Contestant]:
    """The contestants among `names` that exist, by name."""
    return {c.name: c for c in session.scalars(select(Contestant).where(Contestant.name.in_(list(names))))}


def contestant_kinds(session: Session, names: Sequence[str]) -> list[tuple[str, int, str]]:
    """(name, id, kind) of the contestants among `names` that exist."""
    stmt = select(Contestant.name, Contestant.id, Contestant.kind).where(Contestant.name.in_(list(names)))
    return [tuple(row) for row in session.execute(stmt).all()]


def contestant_names(session: Session) -> list[str]:
    """Every contestant's name, sorted."""
    return list(session.scalars(select(Contestant.name).order_by(Contestant.name)))


def all_contestants(session: Session) -> list[Contestant]:
    """Every contestant, by name."""
    return list(session.scalars(select(Contestant).order_by(Contestant.name)))
