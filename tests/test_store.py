"""The store on SQLite and PostgreSQL (every test here runs on both: see BOTH_DATABASES in conftest.py)."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
from sqlalchemy import create_engine, func, inspect, select

from arena.query.contestants import upsert_contestant
from arena.query.judgments import JUDGMENT_COLUMNS, judgments_frame, read_judgments
from arena.query.writes import insert_ignore
from arena.store import Base, Generation, Judgment, Prompt, Store, sqlite_file
from foundations.errors import StoreNotFound
from tests.conftest import POSTGRES_URL
from tests.databases import postgres_schema


def seed_pair(store: Store) -> tuple[int, int, int]:
    """One prompt answered by two contestants; returns (prompt id, generation a, generation b)."""
    with store.session() as s:
        insert_ignore(
            s, Prompt, [{"benchmark": "vicuna", "key": "1", "turns": ["Hi?"], "category": "generic"}]
        )
        prompt_id = s.scalar(select(Prompt.id))
        gens = []
        for name in ("a", "b"):
            contestant = upsert_contestant(s, name, kind="local")
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


def test_insert_ignore_is_idempotent(store: Store) -> None:
    prompt_id, g1, g2 = seed_pair(store)
    rows = [judgment(prompt_id, g1, g2), judgment(prompt_id, g2, g1, verdict="2")]
    with store.session() as s:
        assert insert_ignore(s, Judgment, rows + rows) == 2
    with store.session() as s:
        assert insert_ignore(s, Judgment, rows) == 0
    seed_pair(store)
    assert count(store, Judgment) == 2
    assert count(store, Generation) == 2


def test_failed_transaction_leaves_store_unchanged(store: Store) -> None:
    prompt_id, g1, g2 = seed_pair(store)
    with pytest.raises(RuntimeError), store.session() as s:
        insert_ignore(s, Judgment, [judgment(prompt_id, g1, g2)])
        raise RuntimeError("import failed half-way")
    assert count(store, Judgment) == 0


def test_judgments_frame_names_models_by_slot_and_filters_judges(store: Store) -> None:
    prompt_id, g1, g2 = seed_pair(store)
    rows = [judgment(prompt_id, g1, g2), judgment(prompt_id, g2, g1, judge="human:ann", verdict="tie"),
            judgment(prompt_id, g1, g2, judge="human:bob", verdict="2")]  # fmt: skip
    with store.session() as s:
        insert_ignore(s, Judgment, rows)
        frame = judgments_frame(s, benchmark="vicuna")
        humans = judgments_frame(s, judge="human")
        gpt4 = judgments_frame(s, judge="gpt-4")
    assert list(frame.model_1) == ["a", "b", "a"]
    assert list(frame.model_2) == ["b", "a", "b"]
    assert sorted(humans.judge) == ["human:ann", "human:bob"]
    assert list(gpt4.verdict) == ["1"]


def test_judgments_frame_names_prompts_and_models_of_every_row(store: Store) -> None:
    """The frame names prompts and models from their own tables (no join per judgment): each row
    gets its own prompt's benchmark, key and category (none for a prompt without one), and a
    benchmark filter leaves the other benchmark's judgments out."""
    with store.session() as s:
        insert_ignore(s, Prompt, [{"benchmark": "vicuna", "key": "1", "turns": ["Hi?"], "category": "generic"},
                                  {"benchmark": "oa", "key": "7", "turns": ["Yo?"], "category": None}])  # fmt: skip
        prompts = {p.benchmark: p.id for p in s.scalars(select(Prompt))}
        names = {n: upsert_contestant(s, n, kind="local").id for n in ("a", "b", "c")}
        insert_ignore(s, Generation, [{"prompt_id": p, "contestant_id": c, "text": "x"}
                                      for p in prompts.values() for c in names.values()])  # fmt: skip
        gen = {(g.prompt_id, g.contestant_id): g.id for g in s.scalars(select(Generation))}
        v, o = prompts["vicuna"], prompts["oa"]
        insert_ignore(s, Judgment, [judgment(o, gen[o, names["c"]], gen[o, names["a"]], verdict="tie"),
                                    judgment(v, gen[v, names["b"]], gen[v, names["c"]]),
                                    judgment(o, gen[o, names["a"]], gen[o, names["b"]], verdict="2")])  # fmt: skip
        every = judgments_frame(s)
        vicuna = judgments_frame(s, benchmark="vicuna")
        no_a = judgments_frame(s, models=["b", "c"])
    assert list(every.columns) == JUDGMENT_COLUMNS
    assert every[["benchmark", "prompt_key", "model_1", "model_2", "verdict"]].values.tolist() == [
        ["oa", "7", "c", "a", "tie"], ["vicuna", "1", "b", "c", "1"], ["oa", "7", "a", "b", "2"]]  # fmt: skip
    assert every["category"].isna().tolist() == [True, False, True]
    assert every["judgment_id"].is_monotonic_increasing
    assert vicuna[["prompt_key", "model_1", "category"]].values.tolist() == [["1", "b", "generic"]]
    assert no_a[["model_1", "model_2"]].values.tolist() == [["b", "c"]]


def test_opening_to_read_never_creates_a_store(db_url: str) -> None:
    """`create=False` (the read-only commands): a missing SQLite file stays missing, an empty
    database stays empty; a store that exists opens."""
    with pytest.raises(StoreNotFound, match="no guanaco store"):
        Store(db_url, create=False)
    if db_url.startswith("sqlite"):
        assert not sqlite_file(db_url).exists()
    else:
        engine = create_engine(db_url)
        assert inspect(engine).get_table_names() == []
        engine.dispose()
    Store(db_url).engine.dispose()
    Store(db_url, create=False).engine.dispose()


def test_concurrent_writers_store_each_record_once(store: Store) -> None:
    prompt_id, g1, g2 = seed_pair(store)
    rows = [judgment(prompt_id, g1, g2, judge=f"human:{i % 5}") for i in range(20)]

    def write() -> None:
        with Store(store.url).session() as s:
            insert_ignore(s, Judgment, rows)

    threads = [threading.Thread(target=write) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert count(store, Judgment) == 5


# ---------------------------------------------------------------- schema migrations


@pytest.fixture
def empty_postgres() -> Iterator[str]:
    """A fresh, empty PostgreSQL schema (no migration history either)."""
    if not POSTGRES_URL:
        pytest.skip("PostgreSQL not available: set GUANACO_TEST_POSTGRES_URL (make test does)")
    with postgres_schema(POSTGRES_URL) as url:
        yield url


@pytest.fixture(params=["sqlite", "postgresql"])
def previous_store(request: pytest.FixtureRequest, tmp_path) -> str:
    """A store with data in the schema of the last release: on SQLite from that release's own
    DDL; on PostgreSQL from the baseline migration (which the SQLite test checks is that schema)."""
    if request.param == "sqlite":
        from tests.legacy_schema import make_legacy_sqlite

        make_legacy_sqlite(tmp_path / "old.db")
        return f"sqlite:///{tmp_path / 'old.db'}"
    url = request.getfixturevalue("empty_postgres")
    from alembic import command
    from sqlalchemy import create_engine, text

    from arena.migrations import BASELINE, config

    engine = create_engine(url)
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
    return url


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
    frame = read_judgments(store)
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


def test_migrations_build_exactly_the_models_schema(db_url: str) -> None:
    """Upgrading an empty database through every revision gives what `create_all` gives: a model
    change without its migration fails here."""
    from alembic import command
    from sqlalchemy import create_engine

    from arena.migrations import config

    engine = create_engine(db_url)
    with engine.begin() as connection:
        command.upgrade(config(connection), "head")
    engine.dispose()
    assert _schema_differences(db_url) == []


def test_vote_pair_key_is_backfilled_on_the_earliest_vote_of_each_pair(db_url: str) -> None:
    """Stores from before one-vote-per-pair may hold both orders of a pair from one annotator: the
    upgrade keys the earliest and leaves the other as it was; new votes on that pair are refused."""
    from alembic import command
    from sqlalchemy import create_engine, text

    from arena.migrations import config
    from arena.votes import HUMAN_TEMPLATE_HASH, pair_key

    engine = create_engine(db_url)
    with engine.begin() as connection:
        command.upgrade(config(connection), "0003")
    engine.dispose()
    engine = create_engine(db_url)
    with engine.begin() as connection:  # the 0003 tables, written as the old app would have
        connection.execute(
            text(
                "INSERT INTO prompts (id, benchmark, key, turns, context, meta) VALUES (1, 'v', '1', '[]', '[]', '{}');"
            )
        )
        connection.execute(
            text(
                "INSERT INTO contestants (id, name, kind, meta, created_at) VALUES "
                "(1, 'a', 'local', '{}', CURRENT_TIMESTAMP), (2, 'b', 'local', '{}', CURRENT_TIMESTAMP)"
            )
        )
        connection.execute(
            text(
                "INSERT INTO generations (id, prompt_id, contestant_id, text, params, meta, created_at) VALUES "
                "(1, 1, 1, 'x', '{}', '{}', CURRENT_TIMESTAMP), (2, 1, 2, 'y', '{}', '{}', CURRENT_TIMESTAMP)"
            )
        )
        for jid, judge, first, second in (
            (1, "human:ann", 2, 1),
            (2, "human:ann", 1, 2),
            (3, "human:bob", 1, 2),
        ):
            connection.execute(
                text(
                    "INSERT INTO judgments (id, judge, template_id, template_hash, turn, prompt_id, "
                    "generation1_id, generation2_id, verdict, status, cost_usd, meta, created_at) VALUES "
                    "(:id, :judge, 'human', :h, 1, 1, :g1, :g2, '1', 'ok', 0, '{}', CURRENT_TIMESTAMP)"
                ),
                {"id": jid, "judge": judge, "h": HUMAN_TEMPLATE_HASH, "g1": first, "g2": second},
            )
    engine.dispose()
    store = Store(db_url)
    with store.session() as s:
        keys = dict(s.execute(select(Judgment.id, Judgment.pair_key)).all())
    assert keys == {1: "1-2", 2: None, 3: "1-2"}
    vote = {"judge": "human:bob", "template_id": "human", "template_hash": HUMAN_TEMPLATE_HASH, "prompt_id": 1,
            "generation1_id": 2, "generation2_id": 1, "pair_key": pair_key(1, 2), "verdict": "2", "status": "ok"}  # fmt: skip
    with store.session() as s:
        assert insert_ignore(s, Judgment, [vote], any_key=True) == 0  # bob's other order of 1-2
    store.engine.dispose()


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
