"""Shared fixtures. Benchmark material comes from ../shared/data, never copied into the project."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# Tests keep their own cache (the converted SmolLM2 lives there between runs), never the user's.
os.environ.setdefault("GUANACO_CACHE", str(Path.home() / ".cache" / "guanaco-arena-tests"))

PROJECT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("GUANACO_SHARED_DATA", PROJECT.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The local mirror of the public benchmark releases (../shared/data)."""
    if not (SHARED_DATA / "qlora-eval").is_dir():
        pytest.fail(f"benchmark mirror not found at {SHARED_DATA}: set GUANACO_SHARED_DATA")
    return SHARED_DATA


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'arena.db'}"


@pytest.fixture
def store(db_url: str):
    from arena.store import Store

    return Store(db_url)
