"""The store's schema history, as Alembic migrations (one revision per file in `versions/`).

:func:`prepare` runs whenever a :class:`arena.store.Store` opens: a new database gets today's
schema and is stamped with the newest revision; a store written by an earlier version (including
one made before migrations existed, which is the baseline revision) is upgraded in place, with a
message; a store written by a newer guanaco is refused rather than misread.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import MetaData, inspect, text
from sqlalchemy.engine import Connection, Engine

from arena.redact import safe_url
from foundations.errors import StoreNotFound, UserError

SCRIPTS = Path(__file__).resolve().parent
BASELINE = "0001"
"""The schema of every store written before migrations existed (guanaco-arena 0.1)."""
PG_LOCK = 0x6775616E  # "guan": one process at a time creates or upgrades a PostgreSQL store


class SchemaError(UserError):
    """The store's schema cannot be used by this version of guanaco."""


def config(connection: Connection | None = None) -> Config:
    """An Alembic config for the project's migrations that runs on `connection`."""
    cfg = Config()
    cfg.set_main_option("script_location", str(SCRIPTS))
    cfg.attributes["connection"] = connection
    return cfg


@lru_cache(maxsize=1)
def _scripts() -> ScriptDirectory:
    return ScriptDirectory.from_config(config())


def head() -> str:
    """The newest revision: the schema this code writes."""
    return _scripts().get_current_head()


def current(connection: Connection) -> str | None:
    """The store's revision: None for an empty database, BASELINE for one made before migrations."""
    revision = MigrationContext.configure(connection).get_current_revision()
    if revision is None and inspect(connection).has_table("runs"):
        return BASELINE
    return revision


def prepare(engine: Engine, metadata: MetaData, announce: Callable[[str], None], create: bool = True) -> None:
    """Create a new store at the newest revision (unless not `create`: then an empty database is
    :class:`StoreNotFound`), or upgrade an older one (saying so)."""
    with engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": PG_LOCK})
        revision = current(connection)
        if revision is None and not create:
            raise StoreNotFound(safe_url(engine.url.render_as_string(hide_password=False)))
        if revision is None:
            metadata.create_all(connection)
            MigrationContext.configure(connection).stamp(_scripts(), "head")
            return
        if revision == head():
            return
        known = {script.revision for script in _scripts().walk_revisions()}
        if revision not in known:
            raise SchemaError(
                f"the store is at schema revision {revision}, which this guanaco does not know: it was "
                "written by a newer version; upgrade guanaco-arena to open it"
            )
        announce(
            f"upgrading the store's schema from revision {revision} to {head()} "
            "(`guanaco db upgrade` does the same; back up the database first if in doubt)"
        )
        if MigrationContext.configure(connection).get_current_revision() is None:
            MigrationContext.configure(connection).stamp(_scripts(), BASELINE)
        command.upgrade(config(connection), "head")
