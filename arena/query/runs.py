"""Run records: how a result was made, and what a tournament's paid calls have cost."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from arena.store import Run, utcnow


def start_run(
    session: Session, kind: str, name: str, config: dict[str, Any], tournament: str | None = None
) -> Run:
    run = Run(kind=kind, name=name, config=config, tournament=tournament)
    session.add(run)
    session.flush()
    return run


def finish_run(session: Session, run_id: int, status: str = "done") -> None:
    run = session.get(Run, run_id)
    run.status = status
    run.finished_at = utcnow()


def all_runs(session: Session) -> list[Run]:
    return list(session.scalars(select(Run)))


def tournament_spent(session: Session, tournament: str) -> float:
    """What every run of one tournament (a judging command and its reruns) has spent, in USD."""
    return float(session.scalar(select(func.sum(Run.spent_usd)).where(Run.tournament == tournament)) or 0.0)


def charge_run(session: Session, run_id: int, usd: float) -> None:
    """Add a paid call's cost to its run, in the database (concurrent writers add up)."""
    session.execute(update(Run).where(Run.id == run_id).values(spent_usd=Run.spent_usd + usd))
