"""The store on SQLite and, when `GUANACO_TEST_POSTGRES_URL` is set (make test sets it), PostgreSQL."""

from __future__ import annotations

import os
import threading

import pytest
from sqlalchemy import func, select

from arena.store import (
    Base,
    Generation,
    Judgment,
    Prompt,
    Store,
    get_or_create_contestant,
    insert_ignore,
    judgments_frame,
)

POSTGRES_URL = os.environ.get("GUANACO_TEST_POSTGRES_URL")


@pytest.fixture(params=["sqlite", "postgresql"])
def any_store(request: pytest.FixtureRequest, db_url: str) -> Store:
    if request.param == "sqlite":
        return Store(db_url)
    if not POSTGRES_URL:
        pytest.skip("PostgreSQL not available: set GUANACO_TEST_POSTGRES_URL (make test does)")
    store = Store(POSTGRES_URL)
    Base.metadata.drop_all(store.engine)
    Base.metadata.create_all(store.engine)
    return store


def seed_pair(store: Store) -> tuple[int, int, int]:
    """One prompt answered by two contestants; returns (prompt id, generation a, generation b)."""
    with store.session() as s:
        insert_ignore(
            s, Prompt, [{"benchmark": "vicuna", "key": "1", "turns": ["Hi?"], "category": "generic"}]
        )
        prompt_id = s.scalar(select(Prompt.id))
        gens = []
        for name in ("a", "b"):
            contestant = get_or_create_contestant(s, name, kind="local")
            insert_ignore(
                s, Generation, [{"prompt_id": prompt_id, "contestant_id": contestant.id, "text": name}]
            )
            gens.append(s.scalar(select(Generation.id).where(Generation.contestant_id == contestant.id)))
    return prompt_id, gens[0], gens[1]


def judgment(prompt_id: int, g1: int, g2: int, judge: str = "gpt-4", verdict: str = "1") -> dict:
    return {"judge": judge, "template_id": "t", "template_hash": "h", "prompt_id": prompt_id,
            "generation1_id": g1, "generation2_id": g2, "verdict": verdict, "status": "ok"}  # fmt: skip


def count(store: Store, model: type) -> int:
    with store.session() as s:
        return s.scalar(select(func.count()).select_from(model))


def test_insert_ignore_is_idempotent(any_store: Store) -> None:
    prompt_id, g1, g2 = seed_pair(any_store)
    rows = [judgment(prompt_id, g1, g2), judgment(prompt_id, g2, g1, verdict="2")]
    with any_store.session() as s:
        assert insert_ignore(s, Judgment, rows + rows) == 2
    with any_store.session() as s:
        assert insert_ignore(s, Judgment, rows) == 0
    seed_pair(any_store)
    assert count(any_store, Judgment) == 2
    assert count(any_store, Generation) == 2


def test_failed_transaction_leaves_store_unchanged(any_store: Store) -> None:
    prompt_id, g1, g2 = seed_pair(any_store)
    with pytest.raises(RuntimeError), any_store.session() as s:
        insert_ignore(s, Judgment, [judgment(prompt_id, g1, g2)])
        raise RuntimeError("import failed half-way")
    assert count(any_store, Judgment) == 0


def test_judgments_frame_names_models_by_slot_and_filters_judges(any_store: Store) -> None:
    prompt_id, g1, g2 = seed_pair(any_store)
    rows = [judgment(prompt_id, g1, g2), judgment(prompt_id, g2, g1, judge="human:ann", verdict="tie"),
            judgment(prompt_id, g1, g2, judge="human:bob", verdict="2")]  # fmt: skip
    with any_store.session() as s:
        insert_ignore(s, Judgment, rows)
        frame = judgments_frame(s, benchmark="vicuna")
        humans = judgments_frame(s, judge="human")
        gpt4 = judgments_frame(s, judge="gpt-4")
    assert list(frame.model_1) == ["a", "b", "a"]
    assert list(frame.model_2) == ["b", "a", "b"]
    assert sorted(humans.judge) == ["human:ann", "human:bob"]
    assert list(gpt4.verdict) == ["1"]


def test_concurrent_writers_store_each_record_once(any_store: Store) -> None:
    prompt_id, g1, g2 = seed_pair(any_store)
    rows = [judgment(prompt_id, g1, g2, judge=f"human:{i % 5}") for i in range(20)]

    def write() -> None:
        with Store(any_store.url).session() as s:
            insert_ignore(s, Judgment, rows)

    threads = [threading.Thread(target=write) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert count(any_store, Judgment) == 5


# ---------------------------------------------------------------- schema migrations


def _fresh_postgres() -> str:
    """The PostgreSQL test database emptied, migration history included."""
    from sqlalchemy import create_engine, text

    engine = create_engine(POSTGRES_URL)
    with engine.begin() as connection:
        Base.metadata.drop_all(connection)
        connection.execute(text("DROP TABLE IF EXISTS alembic_version"))
    engine.dispose()
    return POSTGRES_URL


@pytest.fixture(params=["sqlite", "postgresql"])
def previous_store(request: pytest.FixtureRequest, tmp_path) -> str:
    """A store with data in the schema of the last release: on SQLite from that release's own
    DDL; on PostgreSQL from the baseline migration (which the SQLite test checks is that schema)."""
    if request.param == "sqlite":
        from tests.legacy_schema import make_legacy_sqlite

        make_legacy_sqlite(tmp_path / "old.db")
        return f"sqlite:///{tmp_path / 'old.db'}"
    if not POSTGRES_URL:
        pytest.skip("PostgreSQL not available: set GUANACO_TEST_POSTGRES_URL (make test does)")
    from alembic import command
    from sqlalchemy import create_engine, text

    from arena.migrations import BASELINE, config

    engine = create_engine(_fresh_postgres())
    with engine.begin() as connection:
        command.upgrade(config(connection), BASELINE)
        connection.execute(text("DROP TABLE alembic_version"))  # as the last release left it
        connection.execute(text(
            "INSERT INTO runs (id, kind, name, config, status, started_at) "
            "VALUES (1, 'judge', 'old', '{}', 'done', now());"
            "INSERT INTO prompts (id, benchmark, key, turns, context, meta) "
            "VALUES (1, 'vicuna', '1', '[\"Hi?\"]', '[]', '{}');"
            "INSERT INTO contestants (id, name, kind, meta, created_at) "
            "VALUES (1, 'a', 'local', '{}', now()), (2, 'b', 'local', '{}', now());"
            "INSERT INTO generations (id, prompt_id, contestant_id, text, params, meta, created_at) "
            "VALUES (1, 1, 1, 'answer a', '{}', '{}', now()), (2, 1, 2, 'answer b', '{}', '{}', now());"
            "INSERT INTO judgments (id, judge, template_id, template_hash, prompt_id, generation1_id, "
            "generation2_id, verdict, status, cost_usd, run_id, meta, created_at) "
            "VALUES (1, 'gpt-4', 't', 'h', 1, 1, 2, '1', 'ok', 0.02, 1, '{}', now())"
        ))  # fmt: skip
    engine.dispose()
    return POSTGRES_URL


def _schema_differences(url: str) -> list:
    """What Alembic's autogenerate sees between the database and today's models (none = equal)."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext
    from sqlalchemy import create_engine

    engine = create_engine(url)
    with engine.connect() as connection:
        differences = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    engine.dispose()
    return differences


def test_store_of_the_previous_schema_is_upgraded_on_open(previous_store: str, caplog, capsys) -> None:
    from arena.cli import main
    from arena.migrations import head
    from arena.store import Run

    assert main(["db", "current", "--db", previous_store]) == 0
    assert capsys.readouterr().out.startswith("0001 ")
    with caplog.at_level("WARNING", logger="arena.store"):
        store = Store(previous_store)
    assert f"upgrading the store's schema from revision 0001 to {head()}" in caplog.text
    assert _schema_differences(previous_store) == []  # the upgraded store is today's schema
    frame = store.judgments()
    assert list(zip(frame.model_1, frame.model_2, frame.verdict, strict=True)) == [("a", "b", "1")]
    with store.session() as s:
        run = s.get(Run, 1)
        assert (run.name, run.spent_usd, run.tournament) == ("old", 0.0, None)
    store.engine.dispose()
    caplog.clear()
    Store(previous_store).engine.dispose()  # a second open finds nothing to do
    assert "upgrading" not in caplog.text
    assert main(["db", "upgrade", "--db", previous_store]) == 0
    assert f"already at schema revision {head()}" in capsys.readouterr().out


@pytest.mark.parametrize("dialect", ["sqlite", "postgresql"])
def test_migrations_build_exactly_the_models_schema(dialect: str, tmp_path) -> None:
    """Upgrading an empty database through every revision gives what `create_all` gives: a model
    change without its migration fails here."""
    from alembic import command
    from sqlalchemy import create_engine

    from arena.migrations import config

    if dialect == "postgresql" and not POSTGRES_URL:
        pytest.skip("PostgreSQL not available: set GUANACO_TEST_POSTGRES_URL (make test does)")
    url = _fresh_postgres() if dialect == "postgresql" else f"sqlite:///{tmp_path / 'migrated.db'}"
    engine = create_engine(url)
    with engine.begin() as connection:
        command.upgrade(config(connection), "head")
    engine.dispose()
    assert _schema_differences(url) == []


def test_db_upgrade_command_and_a_newer_store_is_refused(db_url: str, capsys) -> None:
    from sqlalchemy import text

    from arena.cli import main
    from arena.migrations import SchemaError, head

    assert main(["db", "upgrade", "--db", db_url]) == 0
    assert f"now at revision {head()} (was empty)" in capsys.readouterr().out
    store = Store(db_url)
    with store.engine.begin() as connection:
        connection.execute(text("UPDATE alembic_version SET version_num = '9999'"))
    store.engine.dispose()
    with pytest.raises(SchemaError, match="revision 9999.*written by a newer version"):
        Store(db_url)
