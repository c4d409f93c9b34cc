"""The generation workflow (`guanaco generate`): load the benchmark if needed, then every contestant
answers the prompts it has not answered yet (:mod:`arena.generate` is the runner)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from arena.generate import generate
from arena.generate_config import GenerateConfig
from arena.store import Store
from foundations.errors import UserError


def answer_benchmark(store: Store, config: GenerateConfig) -> pd.DataFrame:
    """Generate the missing answers; one report row per model (see :func:`check_complete`)."""
    load_prompts(store, config.benchmark, config.prompts)
    return generate(
        store, config.benchmark, config.models, config.backend, config.params(), limit=config.limit
    )


def check_complete(report: pd.DataFrame) -> None:
    """A UserError saying what to do when some prompts got no answer (they are retried by the next
    run); called after the report is shown."""
    failed = int(report["failed"].sum())
    if failed:
        raise UserError(
            f"{failed} prompt(s) got no answer (the first reason is logged above): check the model or its "
            "endpoint, then run the same command to answer them"
        )


def load_prompts(store: Store, benchmark: str, source: Path | None) -> None:
    """Load the benchmark into the store when a file is given or it is a known benchmark not yet there."""
    from arena import benchmarks
    from arena.query.prompts import has_prompts
    from foundations.sources import BenchmarkFileError

    with store.session() as session:
        present = has_prompts(session, benchmark)
    if present and source is None:
        return
    if source is not None and not source.is_file():
        raise UserError(f"prompt file {source} not found")
    try:
        rows = benchmarks.load_benchmark(benchmark, source)
    except KeyError as err:
        if source is None:
            return  # not a known benchmark: the runner says it has no prompts
        raise UserError(str(err.args[0])) from None
    except (BenchmarkFileError, FileNotFoundError, ValueError) as err:
        raise UserError(str(err)) from None
    if not rows:
        raise UserError(f"{source or benchmark}: no prompts found")
    with store.session() as session:
        benchmarks.insert_prompts(session, rows)
