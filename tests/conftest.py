"""Shared fixtures. Benchmark material comes from ../shared/data, never copied into the project.

The store runs on SQLite and PostgreSQL: the tests named in :data:`BOTH_DATABASES` (the store,
import, judging, vote and release tests that matter) run once per database, each PostgreSQL run
in a fresh schema of the database `GUANACO_TEST_POSTGRES_URL` names (`make test` starts one; the
PostgreSQL runs are skipped, and say so, when it is not set). Every other test uses SQLite.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.databases import postgres_schema

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# Tests keep their own cache (the converted SmolLM2 lives there between runs), never the user's.
os.environ.setdefault("GUANACO_CACHE", str(Path.home() / ".cache" / "guanaco-arena-tests"))

PROJECT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("GUANACO_SHARED_DATA", PROJECT.parent / "shared" / "data"))
POSTGRES_URL = os.environ.get("GUANACO_TEST_POSTGRES_URL")
DATABASES = ("sqlite", "postgresql")

ALL = "*"
BOTH_DATABASES: dict[str, str | set[str]] = {
    "test_store.py": ALL,
    "test_votes.py": ALL,
    "test_query.py": ALL,
    "test_app_concurrency.py": {"test_concurrent_voters_lose_nothing_and_count_nothing_twice"},
    "test_import_qlora.py": {
        "test_strict_import_refuses_and_stores_nothing",
        "test_mini_release_follows_ids_and_skips_an_unknown_answer",
        "test_truncated_judgment_file_is_refused_and_nothing_stored",
        "test_cli_import_end_to_end",
    },
    "test_import_fastchat.py": {
        "test_answers_and_pairwise_judgments",
        "test_reimport_adds_nothing",
        "test_missing_field_and_unknown_question_leave_store_untouched",
    },
    "test_tournament.py": {"test_plan_orders_prompts_per_pair_and_seed"},
    "test_active.py": {"test_active_run_through_the_command"},
    "test_judges_run.py": ALL,
    "test_release.py": {
        "test_export_is_byte_identical_and_round_trips",
        "test_bad_bundle_names_file_line_and_field_and_stores_nothing",
        "test_no_secret_ever_appears",
    },
}
"""Test file -> the tests in it that run on both databases (all of them: ``*``). A name listed here
that the file does not define fails the run, so a renamed test never drops to SQLite quietly."""
_parametrized: dict[str, set[str]] = {}


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    wanted = BOTH_DATABASES.get(metafunc.definition.path.name)
    if not wanted or "db_url" not in metafunc.fixturenames:
        return
    name = metafunc.definition.originalname
    if wanted == ALL or name in wanted:
        metafunc.parametrize("database", DATABASES, indirect=True)
        _parametrized.setdefault(metafunc.definition.path.name, set()).add(name)


def pytest_collection_finish(session: pytest.Session) -> None:
    files = {item.path.name for item in session.items}
    for file, wanted in BOTH_DATABASES.items():
        if file in files and wanted != ALL and (missing := wanted - _parametrized.get(file, set())):
            raise pytest.UsageError(
                f"tests/conftest.py BOTH_DATABASES: {file} has no store test {sorted(missing)}"
            )


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The local mirror of the public benchmark releases (../shared/data)."""
    if not (SHARED_DATA / "qlora-eval").is_dir():
        pytest.fail(f"benchmark mirror not found at {SHARED_DATA}: set GUANACO_SHARED_DATA")
    return SHARED_DATA


@pytest.fixture
def database(request: pytest.FixtureRequest) -> str:
    """ "sqlite", or "postgresql" for the tests of :data:`BOTH_DATABASES` on their second run."""
    return getattr(request, "param", "sqlite")


@pytest.fixture
def db_url(database: str, tmp_path: Path) -> Iterator[str]:
    if database == "sqlite":
        yield f"sqlite:///{tmp_path / 'arena.db'}"
        return
    if not POSTGRES_URL:
        pytest.skip("PostgreSQL not available: set GUANACO_TEST_POSTGRES_URL (make test does)")
    with postgres_schema(POSTGRES_URL) as url:
        yield url


@pytest.fixture
def store(db_url: str):
    from arena.store import Store

    store = Store(db_url)
    yield store
    store.engine.dispose()
