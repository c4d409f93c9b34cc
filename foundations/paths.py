"""Where downloaded benchmark files and converted models live: a cache, never the project tree."""

from __future__ import annotations

import os
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[1]
DATA_DIR = PROJECT_ROOT / "data"


def cache_dir() -> Path:
    """`GUANACO_CACHE`, else `$XDG_CACHE_HOME/guanaco-arena`, else `~/.cache/guanaco-arena`."""
    if os.environ.get("GUANACO_CACHE"):
        root = Path(os.environ["GUANACO_CACHE"])
    else:
        root = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "guanaco-arena"
    root.mkdir(parents=True, exist_ok=True)
    return root


def benchmarks_dir() -> Path:
    return cache_dir() / "benchmarks"


def models_dir() -> Path:
    return cache_dir() / "models"


def default_url() -> str:
    """The store: `GUANACO_DB` if set, else a SQLite file in the working directory."""
    return os.environ.get("GUANACO_DB") or "sqlite:///guanaco.db"
