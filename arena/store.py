"""The one store every part of guanaco-arena reads and writes: its schema and how it is opened.

SQLAlchemy 2 over a SQLite file by default, or PostgreSQL when many annotators or machines share
the arena. The queries live in :mod:`arena.query`, one module per record. Every write goes through
:func:`arena.query.writes.insert_ignore` on a natural unique key (:data:`UNIQUE_KEYS`), so
re-running an import, a generation or a tournament never stores anything twice, and every batch of
writes runs in one transaction (:meth:`Store.session`), so a failure leaves the store as it was.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

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
)
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError, OperationalError
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, sessionmaker

from arena.redact import safe_url
from foundations.errors import StoreNotFound, UserError
from foundations.paths import default_url

log = logging.getLogger(__name__)


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
