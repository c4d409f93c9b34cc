"""Which matches a run sends, batch after batch: all the missing ones at once, or the active
scheduler's next batch, fed by every result (and by the judgments stored before, when resuming)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from arena.query.judgments import read_judgments
from arena.query.vocabulary import SLOT1_SCORE
from arena.store import Store
from arena.tournament.plan import Match
from arena.tournament.runner import once
from judges.judge import JudgeConfig, Outcome


def slot1_score(status: str, verdict: str | None) -> float | None:
    """Slot 1's score of a judgment (1 win, 0 loss, 0.5 tie or both bad); None if not rated."""
    return SLOT1_SCORE.get(verdict) if status == "ok" else None


def judged_scores(
    store: Store, judge: str, template_hash: str, models: Sequence[str]
) -> list[tuple[str, str, float]]:
    """(model 1, model 2, slot-1 score) of every rated judgment already stored for this judge."""
    frame = read_judgments(store, judge_names=[judge], models=models)
    frame = frame[frame.template_hash == template_hash]
    rows = zip(frame.model_1, frame.model_2, frame.status, frame.verdict, strict=True)
    return [(m1, m2, s) for m1, m2, st, v in rows if (s := slot1_score(st, v)) is not None]


def batches(
    store: Store, cfg: JudgeConfig, models: list[str], todo: list[Match], pairs: str, seed: int
) -> tuple[Callable[[], list[Match]], Callable[[Match, Outcome], None] | None]:
    """The batch source for the runner and what to tell it of each result: `--pairs active` asks
    the active scheduler, any other selection sends every missing match at once."""
    from arena.tournament.active import ActiveScheduler

    if pairs != "active":
        return once(todo), None
    scheduler = ActiveScheduler(models, todo, batch=max(cfg.client.concurrency, 8), seed=seed)
    for model_1, model_2, score in judged_scores(store, cfg.name, cfg.template.hash, models):
        scheduler.record(model_1, model_2, score)

    def record(match: Match, outcome: Outcome) -> None:
        scheduler.record(match.model_1, match.model_2, slot1_score(outcome.status, outcome.verdict))

    return scheduler.next_batch, record
