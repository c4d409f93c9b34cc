"""The one store every part of guanaco-arena reads and writes.

SQLAlchemy 2 over a SQLite file by default, or PostgreSQL when many annotators or machines share
the arena. Every write goes through :func:`insert_ignore` on a natural unique key, so re-running an
import, a generation or a tournament never stores anything twice, and every batch of writes runs in
one transaction (:meth:`Store.session`), so a failure leaves the store as it was.
"""

from __future__ import annotations

import datetime as dt
import logging
import secrets
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pandas as pd
from sqlalchemy import (
    JSON,
    DateTime,
    Float,
    ForeignKey,
    Integer,
    String,
    Text,
    UniqueConstraint,
    create_engine,
    event,
    false,
    or_,
    select,
)
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError, OperationalError
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, sessionmaker
from sqlalchemy.sql.elements import ColumnElement

from arena.redact import safe_url
from foundations.errors import StoreNotFound, UserError
from foundations.paths import default_url

log = logging.getLogger(__name__)

VERDICTS = ("1", "2", "tie", "both_bad")
"""Pairwise verdicts, by slot: the answer shown first won, the second won, a tie, both bad."""

STATUSES = ("ok", "unparsed", "error")
"""A judgment is `ok` when its verdict was read; `unparsed` and `error` keep the raw output."""


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)


class Base(DeclarativeBase):
    type_annotation_map = {dict[str, Any]: JSON, list[Any]: JSON}


class Run(Base):
    """A tournament, generation, import or training run: how a result was made."""

    __tablename__ = "runs"
    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(32))
    name: Mapped[str] = mapped_column(String(200))
    config: Mapped[dict[str, Any]] = mapped_column(default=dict)
    status: Mapped[str] = mapped_column(String(16), default="running")
    started_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    finished_at: Mapped[dt.datetime | None] = mapped_column(DateTime, nullable=True)
    tournament: Mapped[str | None] = mapped_column(String(64), nullable=True, index=True)
    """Runs that continue one another (reruns of one judging command) share this key."""
    spent_usd: Mapped[float] = mapped_column(Float, default=0.0, server_default="0")
    """What the run's paid calls cost, failed attempts at their estimate."""


class Prompt(Base):
    """One benchmark item. `turns` are the user turns to answer in order (MT-bench has two);
    `context` holds earlier conversation turns given as-is (OA keeps them), as role/content dicts."""

    __tablename__ = "prompts"
    __table_args__ = (UniqueConstraint("benchmark", "key", name="uq_prompt"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    benchmark: Mapped[str] = mapped_column(String(64), index=True)
    key: Mapped[str] = mapped_column(String(128))
    category: Mapped[str | None] = mapped_column(String(64), nullable=True)
    turns: Mapped[list[Any]] = mapped_column(default=list)
    context: Mapped[list[Any]] = mapped_column(default=list)
    reference: Mapped[list[Any] | None] = mapped_column(JSON, nullable=True)
    source: Mapped[str | None] = mapped_column(String(500), nullable=True)
    source_sha256: Mapped[str | None] = mapped_column(String(64), nullable=True)
    meta: Mapped[dict[str, Any]] = mapped_column(default=dict)


class Contestant(Base):
    """A model as entered in the arena: a name plus what produced its answers."""

    __tablename__ = "contestants"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    kind: Mapped[str] = mapped_column(String(32), default="release")  # local | api | release | human
    base_model: Mapped[str | None] = mapped_column(String(500), nullable=True)
    adapter: Mapped[str | None] = mapped_column(String(500), nullable=True)
    quantization: Mapped[str | None] = mapped_column(String(32), nullable=True)
    api_model: Mapped[str | None] = mapped_column(String(200), nullable=True)
    meta: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)


class Generation(Base):
    """A contestant's answer to a prompt, with everything needed to reproduce it.

    `text` is the answer (for several turns, the first turn's); `turn_texts` all turns' answers;
    `raw_text` what the model emitted before it was cut at the end of the assistant's turn."""

    __tablename__ = "generations"
    __table_args__ = (UniqueConstraint("prompt_id", "contestant_id", name="uq_generation"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    prompt_id: Mapped[int] = mapped_column(ForeignKey("prompts.id"), index=True)
    contestant_id: Mapped[int] = mapped_column(ForeignKey("contestants.id"), index=True)
    text: Mapped[str] = mapped_column(Text)
    turn_texts: Mapped[list[Any] | None] = mapped_column(JSON, nullable=True)
    raw_text: Mapped[str | None] = mapped_column(Text, nullable=True)
    prompt_sent: Mapped[str | None] = mapped_column(Text, nullable=True)
    params: Mapped[dict[str, Any]] = mapped_column(default=dict)
    seed: Mapped[int | None] = mapped_column(Integer, nullable=True)
    backend: Mapped[str | None] = mapped_column(String(32), nullable=True)
    prompt_tokens: Mapped[int | None] = mapped_column(Integer, nullable=True)
    completion_tokens: Mapped[int | None] = mapped_column(Integer, nullable=True)
    seconds: Mapped[float | None] = mapped_column(Float, nullable=True)
    external_id: Mapped[str | None] = mapped_column(String(200), nullable=True, index=True)
    run_id: Mapped[int | None] = mapped_column(ForeignKey("runs.id"), nullable=True)
    meta: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)


class Judgment(Base):
    """One comparison of two generations in a fixed order (slot 1 shown first).

    The two orders of a pair are two judgments. The unique key (judge, template hash, generation 1,
    generation 2) makes every write idempotent and every run resumable. `turn` is the conversation
    turn judged (MT-bench's second turn is judged with its own multi-turn template, so the template
    hash already keeps the two turns' judgments apart in that key). A person's vote also sets
    `pair_key` (the two generation ids, low first), so the second unique key holds each annotator to
    one vote per unordered pair of answers, whatever order the two were shown in; it is null for
    model judges and imported votes (nulls never collide)."""

    __tablename__ = "judgments"
    __table_args__ = (
        UniqueConstraint("judge", "template_hash", "generation1_id", "generation2_id", name="uq_judgment"),
        UniqueConstraint("judge", "template_hash", "pair_key", name="uq_judgment_pair"),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    judge: Mapped[str] = mapped_column(String(200), index=True)
    template_id: Mapped[str] = mapped_column(String(200))
    template_hash: Mapped[str] = mapped_column(String(64))
    turn: Mapped[int] = mapped_column(Integer, default=1, server_default="1")
    prompt_id: Mapped[int] = mapped_column(ForeignKey("prompts.id"), index=True)
    generation1_id: Mapped[int] = mapped_column(ForeignKey("generations.id"), index=True)
    generation2_id: Mapped[int] = mapped_column(ForeignKey("generations.id"), index=True)
    verdict: Mapped[str | None] = mapped_column(String(16), nullable=True)
    score1: Mapped[float | None] = mapped_column(Float, nullable=True)
    score2: Mapped[float | None] = mapped_column(Float, nullable=True)
    status: Mapped[str] = mapped_column(String(16), default="ok")
    raw: Mapped[str | None] = mapped_column(Text, nullable=True)
    prompt_tokens: Mapped[int | None] = mapped_column(Integer, nullable=True)
    completion_tokens: Mapped[int | None] = mapped_column(Integer, nullable=True)
    cost_usd: Mapped[float | None] = mapped_column(Float, nullable=True)
    external_id: Mapped[str | None] = mapped_column(String(200), nullable=True)
    run_id: Mapped[int | None] = mapped_column(ForeignKey("runs.id"), nullable=True)
    pair_key: Mapped[str | None] = mapped_column(String(41), nullable=True)
    meta: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)


class Tag(Base):
    """A person's mark on a judgment while lemon-picking: `lemon` or `cherry`, with a note."""

    __tablename__ = "tags"
    __table_args__ = (UniqueConstraint("judgment_id", "annotator", "tag", name="uq_tag"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    judgment_id: Mapped[int] = mapped_column(ForeignKey("judgments.id"), index=True)
    annotator: Mapped[str] = mapped_column(String(200))
    tag: Mapped[str] = mapped_column(String(32))
    note: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)


class Secret(Base):
    """A secret of this store that never leaves it (the key of annotator pseudonyms)."""

    __tablename__ = "secrets"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    value: Mapped[str] = mapped_column(String(256))


UNIQUE_KEYS: dict[type[Base], tuple[str, ...]] = {
    Prompt: ("benchmark", "key"),
    Contestant: ("name",),
    Generation: ("prompt_id", "contestant_id"),
    Judgment: ("judge", "template_hash", "generation1_id", "generation2_id"),
    Tag: ("judgment_id", "annotator", "tag"),
    Secret: ("name",),
}


class Store:
    """An engine plus transactional sessions. `Store()` opens the default SQLite file.

    Opening creates the schema in a new database and upgrades an older store's schema in place
    (:func:`arena.migrations.prepare`), logging a warning when it does. Commands that only read
    open with `create=False`: a store that is not there is an error, never a new empty file."""

    def __init__(self, url: str | None = None, create: bool = True) -> None:
        from arena.migrations import prepare

        self.url = url or default_url()
        try:
            if not create:
                refuse_missing_file(self.url)
            self.engine: Engine = create_engine(self.url, future=True)
        except (ArgumentError, NoSuchModuleError, ModuleNotFoundError) as err:
            raise UserError(
                f"--db cannot be opened ({err}): use sqlite:///FILE or "
                "postgresql+psycopg://USER:PASSWORD@HOST/DATABASE"
            ) from err
        if self.engine.dialect.name == "sqlite":
            event.listen(self.engine, "connect", _sqlite_pragmas)
        try:
            prepare(self.engine, Base.metadata, log.warning, create=create)
        except OperationalError as err:  # no server there, a refused login, a folder that does not exist
            self.engine.dispose()
            raise UserError(unreachable_store_message(self.url, err)) from err
        except UserError:
            self.engine.dispose()
            raise
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    @contextmanager
    def session(self) -> Iterator[Session]:
        """One transaction: committed when the block ends, rolled back if it raises."""
        with self._sessions() as session, session.begin():
            yield session

    def judgments(self, **filters: Any) -> pd.DataFrame:
        with self.session() as session:
            return judgments_frame(session, **filters)


def sqlite_file(url: str) -> Path | None:
    """The file a SQLite URL names; None for other databases and in-memory SQLite."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    return Path(parsed.database)


def refuse_missing_file(url: str) -> None:
    """Raise :class:`StoreNotFound` when `url` is a SQLite file that does not exist (connecting
    would create it)."""
    path = sqlite_file(url)
    if path is not None and not path.exists():
        raise StoreNotFound(str(path))


def unreachable_store_message(url: str, err: OperationalError) -> str:
    """One line saying which store could not be opened and why (a PostgreSQL URL without its
    credentials), and what to check."""
    reason = str(err.orig).strip().splitlines()[0] if err.orig else type(err).__name__
    path = sqlite_file(url)
    if path is not None:
        return f"cannot open the store {path} ({reason}): check that its folder exists and can be written"
    return (
        f"cannot open the store at {safe_url(url)} ({reason}): check --db (or $GUANACO_DB) and that the "
        "database server is running"
    )


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


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
    for start in range(0, len(rows), 500):
        chunk = [_with_defaults(row, defaults) for row in rows[start : start + 500]]
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


def get_or_create_contestant(session: Session, name: str, **fields: Any) -> Contestant:
    """The contestant called `name`, created with `fields` if new (existing ones are not changed)."""
    insert_ignore(session, Contestant, [{"name": name, **fields}])
    return session.scalars(select(Contestant).where(Contestant.name == name)).one()


def start_run(
    session: Session, kind: str, name: str, config: dict[str, Any], tournament: str | None = None
) -> Run:
    run = Run(kind=kind, name=name, config=config, tournament=tournament)
    session.add(run)
    session.flush()
    return run


def store_secret(session: Session, name: str) -> str:
    """The store's secret called `name`: 256 random bits, made on first use and kept in the store
    (never exported), so every process and machine sharing the store derives the same values."""
    insert_ignore(session, Secret, [{"name": name, "value": secrets.token_hex(32)}])
    return session.scalars(select(Secret.value).where(Secret.name == name)).one()


def finish_run(session: Session, run_id: int, status: str = "done") -> None:
    run = session.get(Run, run_id)
    run.status = status
    run.finished_at = utcnow()


JUDGMENT_COLUMNS = [
    "judgment_id", "benchmark", "prompt_key", "category", "model_1", "model_2", "generation_1",
    "generation_2", "judge", "template_id", "template_hash", "verdict", "score_1", "score_2",
    "status", "run_id", "created_at", "turn",
]  # fmt: skip


FRAME_CHUNK_ROWS = 100_000
"""Rows turned into a DataFrame at a time when a frame is loaded."""


def judgments_frame(
    session: Session,
    benchmark: str | None = None,
    judge: str | Sequence[str] | None = None,
    models: Sequence[str] | None = None,
    template_id: str | None = None,
    status: str | None = None,
    turn: int | None = None,
) -> pd.DataFrame:
    """All judgments as a tidy table, one row per judgment, models named by slot.

    `judge` matches exactly, or by prefix when it ends in ':' (``human:`` = every annotator); the
    bare word ``human`` means the same. Unparsed and errored judgments are included: callers count
    them and decide, so that nothing is silently dropped.

    Built for millions of judgments: the query reads the judgments' own columns only, and prompts and
    models are named afterwards from the small prompts and generations tables (a join per judgment
    costs SQLite five index lookups and the driver five strings per row). Rows are streamed in chunks
    (a server-side cursor on PostgreSQL) and handed to pandas column by column: pandas probes every
    row object it is given as a list of rows, which took most of the time."""
    prompts = select(Prompt.id, Prompt.benchmark, Prompt.key, Prompt.category)
    answers = select(Generation.id, Contestant.name).join(
        Contestant, Contestant.id == Generation.contestant_id
    )
    own = (Judgment.id, Judgment.prompt_id, Judgment.generation1_id, Judgment.generation2_id, Judgment.judge,
           Judgment.template_id, Judgment.template_hash, Judgment.verdict, Judgment.score1, Judgment.score2,
           Judgment.status, Judgment.run_id, Judgment.created_at, Judgment.turn)  # fmt: skip
    stmt = select(*own).order_by(Judgment.id)
    if benchmark:
        prompts = prompts.where(Prompt.benchmark == benchmark)
        stmt = stmt.where(Judgment.prompt_id.in_(select(Prompt.id).where(Prompt.benchmark == benchmark)))
    if template_id:
        stmt = stmt.where(Judgment.template_id == template_id)
    if status:
        stmt = stmt.where(Judgment.status == status)
    if turn is not None:
        stmt = stmt.where(Judgment.turn == turn)
    if judge:
        stmt = stmt.where(_judge_filter(judge))
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
    """A frame of result rows, handed to pandas as columns (see :func:`judgments_frame`)."""
    if not rows:
        return pd.DataFrame(columns=names)
    return pd.DataFrame(dict(zip(names, zip(*rows, strict=True), strict=True)))


def judgment_details(store: Store, **filters: Any) -> pd.DataFrame:
    """:func:`judgments_frame` plus each judgment's raw output and meta, for exports that carry them."""
    with store.session() as session:
        frame = judgments_frame(session, **filters)
        ids = [int(i) for i in frame.judgment_id]
        texts = dict.fromkeys(ids, (None, {}))
        for start in range(0, len(ids), 1000):
            chunk = ids[start : start + 1000]
            stmt = select(Judgment.id, Judgment.raw, Judgment.meta).where(Judgment.id.in_(chunk))
            texts.update({i: (raw, meta) for i, raw, meta in session.execute(stmt)})
    return frame.assign(raw=[texts[i][0] for i in ids], meta=[texts[i][1] for i in ids])


def _judge_filter(judge: str | Sequence[str]) -> Any:

    names = [judge] if isinstance(judge, str) else list(judge)
    clauses = []
    for name in names:
        if name == "human":
            name = "human:"
        clauses.append(Judgment.judge.startswith(name) if name.endswith(":") else Judgment.judge == name)
    return or_(*clauses)


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
    columns = ["generation_id", "benchmark", "prompt_key", "category", "model", "text", "backend",
               "completion_tokens", "created_at"]  # fmt: skip
    return pd.DataFrame(session.execute(stmt).all(), columns=columns)
