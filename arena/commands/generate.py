"""`guanaco generate --benchmark B --models a,b --backend transformers|vllm|openai`: answers, resumably."""

from __future__ import annotations

import argparse
from pathlib import Path

from arena.backends import BACKENDS, GenerateParams

DEFAULTS = GenerateParams()


def register(subparsers: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    p = subparsers.add_parser(
        "generate", parents=[common], help="generate the contestants' answers to a benchmark"
    )
    p.add_argument(
        "--benchmark", required=True, help="vicuna, oa, mt-bench, sample, or any benchmark in the store"
    )
    p.add_argument("--prompts", type=Path, help="load the benchmark's prompts from this file first")
    p.add_argument(
        "--models", required=True, help="comma-separated contestant names (see `guanaco models list`)"
    )
    p.add_argument(
        "--backend",
        choices=BACKENDS,
        default="transformers",
        help="engine for local models (API models always use openai)",
    )
    p.add_argument("--batch-size", type=int, default=DEFAULTS.batch_size)
    p.add_argument("--max-new-tokens", type=int, default=DEFAULTS.max_new_tokens)
    p.add_argument("--temperature", type=float, default=DEFAULTS.temperature, help="0 = greedy")
    p.add_argument("--top-p", type=float, default=DEFAULTS.top_p)
    p.add_argument("--seed", type=int, default=DEFAULTS.seed)
    p.add_argument("--concurrency", type=int, default=DEFAULTS.concurrency, help="parallel API calls")
    p.add_argument("--limit", type=int, help="only the first N prompts")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from arena.generate import generate
    from arena.store import Store
    from foundations.errors import UserError

    if args.batch_size < 1 or args.max_new_tokens < 1 or (args.limit is not None and args.limit < 1):
        raise UserError("--batch-size, --max-new-tokens and --limit must be at least 1")
    store = Store(args.db)
    _load_prompts(store, args.benchmark, args.prompts)
    params = GenerateParams(temperature=args.temperature, top_p=args.top_p, max_new_tokens=args.max_new_tokens,
                            seed=args.seed, batch_size=args.batch_size, concurrency=args.concurrency)  # fmt: skip
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    report = generate(store, args.benchmark, models, args.backend, params, limit=args.limit)
    print(report.to_string(index=False))
    failed = int(report["failed"].sum())
    if failed:  # an unreachable endpoint, a model that errs: the run is not complete
        raise UserError(
            f"{failed} prompt(s) got no answer (the first reason is logged above): check the model or its "
            "endpoint, then run the same command to answer them"
        )
    return 0


def _load_prompts(store, benchmark: str, source: Path | None) -> None:
    """Load the benchmark into the store when a file is given or it is a known benchmark not yet there."""
    from arena import benchmarks
    from arena.query.prompts import has_prompts
    from foundations.errors import UserError
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
