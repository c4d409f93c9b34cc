"""Reading and writing judgments: the tidy judgments table every rating and analysis starts from,
the details an export or a reviewer needs, and the keys a tournament resumes from."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pandas as pd
from sqlalchemy import select
from sqlalchemy.orm import Session, aliased

from arena.query.judges import judge_clause
from arena.query.vocabulary import HUMAN_PREFIX
from arena.store import Contestant, Generation, Judgment, Prompt, Store

JUDGMENT_COLUMNS = [
    "judgment_id", "benchmark", "prompt_key", "category", "model_1", "model_2", "generation_1",
    "generation_2", "judge", "template_id", "template_hash", "verdict", "score_1", "score_2",
    "status", "run_id", "created_at", "turn",
]  # fmt: skip

FRAME_CHUNK_ROWS = 100_000
"""Rows turned into a DataFrame at a time when a frame is loaded."""

ID_CHUNK = 1000
"""Ids bound into one IN (...) list."""


def judgments_frame(
    session: Session,
    benchmark: str | None = None,
    judge: str | Sequence[str] | None = None,
    models: Sequence[str] | None = None,
    template_id: str | None = None,
    status: str | None = None,
    turn: int | None = None,
    judge_names: Sequence[str] | None = None,
) -> pd.DataFrame:
    """All judgments as a tidy table, one row per judgment, models named by slot.

    `judge` is a judge selector, or several (any of them): see :mod:`arena.query.judges`.
    `judge_names` keeps judges stored under exactly these names (a run reading its own
    judgments). Unparsed and errored judgments are included: callers count them and decide, so
    that nothing is silently dropped.

    Built for millions of judgments: the query reads the judgments' own columns only, and prompts
    and models are named afterwards from the small prompts and generations tables (a join per
    judgment costs SQLite five index lookups and the driver five strings per row). Rows are
    streamed in chunks (a server-side cursor on PostgreSQL) and handed to pandas column by column."""
    prompts = select(Prompt.id, Prompt.benchmark, Prompt.key, Prompt.category)
    answers = select(Generation.id, Contestant.name).join(
        Contestant, Contestant.id == Generation.contestant_id
    )
    scope = select(Judgment.id)
    if benchmark:
        in_benchmark = select(Prompt.id).where(Prompt.benchmark == benchmark)
        prompts = prompts.where(Prompt.benchmark == benchmark)
        # a judgment's two answers are to its own prompt: the benchmark's answers name them all
        answers = answers.where(Generation.prompt_id.in_(in_benchmark))
        scope = scope.where(Judgment.prompt_id.in_(in_benchmark))
    if template_id:
        scope = scope.where(Judgment.template_id == template_id)
    if status:
        scope = scope.where(Judgment.status == status)
    if turn is not None:
        scope = scope.where(Judgment.turn == turn)
    if judge_names is not None:
        scope = scope.where(Judgment.judge.in_(list(judge_names)))
    if judge:
        scope = scope.where(judge_clause(session, judge, scope))
    own = (Judgment.id, Judgment.prompt_id, Judgment.generation1_id, Judgment.generation2_id, Judgment.judge,
           Judgment.template_id, Judgment.template_hash, Judgment.verdict, Judgment.score1, Judgment.score2,
           Judgment.status, Judgment.run_id, Judgment.created_at, Judgment.turn)  # fmt: skip
    stmt = scope.with_only_columns(*own).order_by(Judgment.id)
    names = ["judgment_id", "prompt_id", "generation_1", "generation_2", *JUDGMENT_COLUMNS[8:]]
    result = session.connection().execution_options(yield_per=FRAME_CHUNK_ROWS).execute(stmt)
    chunks = [_columns_frame(rows, names) for rows in result.partitions()]
    if not chunks:
        return pd.DataFrame(columns=JUDGMENT_COLUMNS)
    frame = pd.concat(chunks, ignore_index=True).infer_objects()
    prompt = _columns_frame(session.execute(prompts).all(), ["id", "benchmark", "prompt_key", "category"])
    at = pd.Index(prompt.pop("id")).get_indexer(frame.pop("prompt_id"))
    answer = _columns_frame(session.execute(answers).all(), ["id", "model"])
    model = answer["model"].array
    slots = pd.Index(answer["id"])
    frame.insert(1, "model_1", model.take(slots.get_indexer(frame["generation_1"]), allow_fill=True))
    frame.insert(2, "model_2", model.take(slots.get_indexer(frame["generation_2"]), allow_fill=True))
    for i, column in enumerate(["benchmark", "prompt_key", "category"], start=1):
        frame.insert(i, column, prompt[column].array.take(at, allow_fill=True))
    if models:
        keep = set(models)
        frame = frame[frame.model_1.isin(keep) & frame.model_2.isin(keep)].reset_index(drop=True)
    return frame


def _columns_frame(rows: Sequence[Any], names: list[str]) -> pd.DataFrame:
    """A frame of result rows, handed to pandas as columns: pandas probes every row object it is
    given as a list of rows, which took most of the load time at millions of judgments."""
    if not rows:
        return pd.DataFrame(columns=names)
    return pd.DataFrame(dict(zip(names, zip(*rows, strict=True), strict=True)))


def read_judgments(store: Store, **filters: Any) -> pd.DataFrame:
    """:func:`judgments_frame` in a transaction of its own."""
    with store.session() as session:
        return judgments_frame(session, **filters)


def judgment_details(store: Store, **filters: Any) -> pd.DataFrame:
    """:func:`judgments_frame` plus each judgment's raw output and meta, for exports that carry them."""
    with store.session() as session:
        frame = judgments_frame(session, **filters)
        ids = [int(i) for i in frame.judgment_id]
        texts = dict.fromkeys(ids, (None, {}))
        for start in range(0, len(ids), ID_CHUNK):
            chunk = ids[start : start + ID_CHUNK]
            stmt = select(Judgment.id, Judgment.raw, Judgment.meta).where(Judgment.id.in_(chunk))
            texts.update({i: (raw, meta) for i, raw, meta in session.execute(stmt)})
    return frame.assign(raw=[texts[i][0] for i in ids], meta=[texts[i][1] for i in ids])


def raw_outputs(session: Session, judgment_ids: Sequence[int]) -> dict[int, str | None]:
    """Each judgment's raw judge output (its reasons), by id."""
    ids = [int(i) for i in judgment_ids]
    out: dict[int, str | None] = {}
    for start in range(0, len(ids), ID_CHUNK):
        stmt = select(Judgment.id, Judgment.raw).where(Judgment.id.in_(ids[start : start + ID_CHUNK]))
        out.update(dict(session.execute(stmt).all()))
    return out


def judgments_by_id(session: Session, judgment_ids: Sequence[int]) -> dict[int, Judgment]:
    """The judgments with these ids (those that exist), as records."""
    return {j.id: j for j in session.scalars(select(Judgment).where(Judgment.id.in_(list(judgment_ids))))}


def judgment_exists(session: Session, judgment_id: int) -> bool:
    return session.get(Judgment, int(judgment_id)) is not None


def judge_names(session: Session) -> list[str]:
    """Every judge that has a judgment in the store, sorted."""
    return sorted(session.scalars(select(Judgment.judge).distinct()))


def judged_keys(session: Session, judge: str, template_hash: str) -> set[tuple[int, int]]:
    """(generation 1, generation 2) that `judge` has judged with this template, in that order;
    `error` ones are not done (a rerun asks again)."""
    rows = session.execute(
        select(Judgment.generation1_id, Judgment.generation2_id).where(
            Judgment.judge == judge, Judgment.template_hash == template_hash, Judgment.status != "error"
        )
    )
    return {(g1, g2) for g1, g2 in rows}


def judged_pairs(session: Session, judge: str, template_hash: str) -> set[frozenset[int]]:
    """The unordered pairs of generations `judge` has judged with this template, in either order."""
    stmt = select(Judgment.generation1_id, Judgment.generation2_id).where(
        Judgment.judge == judge, Judgment.template_hash == template_hash
    )
    return {frozenset(row) for row in session.execute(stmt)}


def judgment_by_key(
    session: Session, judge: str, template_hash: str, generation1_id: int, generation2_id: int
) -> Judgment:
    """The judgment stored under a unique key (which must exist)."""
    return session.scalars(
        select(Judgment).where(
            Judgment.judge == judge,
            Judgment.template_hash == template_hash,
            Judgment.generation1_id == generation1_id,
            Judgment.generation2_id == generation2_id,
        )
    ).one()


def human_verdicts(session: Session, benchmark: str | None = None) -> list[tuple[str, str, str | None]]:
    """(model in slot 1, model in slot 2, verdict) of every parsed human vote (of `benchmark`)."""
    g1, g2 = aliased(Generation), aliased(Generation)
    c1, c2 = aliased(Contestant), aliased(Contestant)
    stmt = (
        select(c1.name, c2.name, Judgment.verdict)
        .join(g1, g1.id == Judgment.generation1_id)
        .join(g2, g2.id == Judgment.generation2_id)
        .join(c1, c1.id == g1.contestant_id)
        .join(c2, c2.id == g2.contestant_id)
        .where(Judgment.judge.startswith(HUMAN_PREFIX), Judgment.status == "ok")
    )
    if benchmark:
        stmt = stmt.join(Prompt, Prompt.id == Judgment.prompt_id).where(Prompt.benchmark == benchmark)
    return [tuple(row) for row in session.execute(stmt)]
