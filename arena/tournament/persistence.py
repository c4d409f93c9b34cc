"""Storing a tournament's judgments: idempotent, many per transaction, charged to their run.

Every judgment is committed by the writer's next transaction once it completes (several together
when they arrive while a commit runs, see :mod:`arena.group_writer`), keyed by (judge, template
hash, generation 1, generation 2), so a run killed at any moment and started again stores nothing twice. What each
call cost is added to its run's spend in the same transaction, so a tournament's budget holds
across reruns (:func:`tournament_spend`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

from sqlalchemy.orm import Session

from arena.query.judgments import judgment_by_key
from arena.query.runs import charge_run, tournament_spent
from arena.query.writes import insert_ignore
from arena.store import Judgment, Store
from arena.tournament.plan import Match
from judges.judge import Judge, Outcome


def tournament_key(benchmark: str, judge: str, template_hash: str, models: Sequence[str]) -> str:
    """What the runs of one tournament share: the same judge and template on the same benchmark and
    contestants (pair selection, orders and limits may change from one rerun to the next)."""
    return hashlib.sha256(repr((benchmark, judge, template_hash, sorted(models))).encode()).hexdigest()[:32]


def tournament_spend(store: Store, tournament: str) -> float:
    """What every run of the tournament has spent so far, in USD."""
    with store.session() as session:
        return tournament_spent(session, tournament)


def save(
    store: Store, judge: Judge, run_id: int | None, results: Sequence[tuple[Match, Outcome, float]]
) -> int:
    """Write judgments (match, outcome, charge) in one transaction and add their charges to the
    run's spend in the same one; each replaces an earlier `error` row for its key. Returns how many
    rows were written."""
    charge = sum(c for _match, _outcome, c in results)
    rows = [judgment_row(judge, m, o, run_id) for m, o, _c in results]
    with store.session() as session:
        if run_id is not None and charge:
            charge_run(session, run_id, charge)
        new = insert_ignore(session, Judgment, rows)
        if new == len(rows):
            return new
        return new + sum(_replace_error(session, row) for row in rows if row["status"] != "error")


def judgment_row(judge: Judge, match: Match, outcome: Outcome, run_id: int | None) -> dict[str, Any]:
    t = judge.cfg.template
    return {
        "judge": judge.cfg.name,
        "template_id": t.id,
        "template_hash": t.hash,
        "turn": t.turn,
        "prompt_id": match.prompt_id,
        "generation1_id": match.generation1_id,
        "generation2_id": match.generation2_id,
        "verdict": outcome.verdict,
        "score1": outcome.score1,
        "score2": outcome.score2,
        "status": outcome.status,
        "raw": outcome.raw,
        "prompt_tokens": outcome.prompt_tokens,
        "completion_tokens": outcome.completion_tokens,
        "cost_usd": outcome.cost_usd,
        "run_id": run_id,
        "meta": {"seconds": round(outcome.seconds, 3), "model": judge.cfg.client.model, **outcome.meta},
    }


def _replace_error(session: Session, row: dict[str, Any]) -> bool:
    """Put `row` in place of a stored `error` judgment with its key (a row stored just now, or any
    other outcome, stays)."""
    old = judgment_by_key(
        session, row["judge"], row["template_hash"], row["generation1_id"], row["generation2_id"]
    )
    if old.status != "error":
        return False
    for name, value in row.items():
        setattr(old, name, value)
    return True
