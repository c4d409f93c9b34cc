"""Storing a tournament's judgments: one short transaction each, idempotent, charged to its run.

Every judgment is written as soon as it completes, keyed by (judge, template hash, generation 1,
generation 2), so a run killed at any moment and started again stores nothing twice. What each
call cost is added to its run's spend in the same transaction, so a tournament's budget holds
across reruns (:func:`tournament_spend`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

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
    store: Store, judge: Judge, match: Match, outcome: Outcome, run_id: int | None, charge: float = 0.0
) -> bool:
    """Write one judgment in its own transaction, and add `charge` to its run's spend; replaces an
    earlier `error` row for the same key. Returns whether a row was written."""
    t = judge.cfg.template
    row = {
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
    with store.session() as session:
        if run_id is not None and charge:
            charge_run(session, run_id, charge)
        if insert_ignore(session, Judgment, [row]):
            return True
        old = judgment_by_key(
            session, row["judge"], row["template_hash"], match.generation1_id, match.generation2_id
        )
        if old.status != "error" or outcome.status == "error":
            return False
        for name, value in row.items():
            setattr(old, name, value)
        return True
