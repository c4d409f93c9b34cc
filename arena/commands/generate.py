"""`guanaco generate --benchmark B --models a,b --backend transformers|vllm|openai`: answers, resumably.

Flags or a YAML file (`--config`, flags override it) make a :class:`GenerateConfig`; the workflow
(:mod:`arena.generate_workflow`) loads the prompts and runs the generation."""

from __future__ import annotations

import argparse
from pathlib import Path

from arena.generate_config import GenerateConfig
from foundations.configs import add_arguments

FLAGS = ["benchmark", "prompts", "models", "backend", "batch_size", "max_new_tokens", "temperature", "top_p",
         "seed", "concurrency", "limit"]  # fmt: skip


def register(subparsers: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    p = subparsers.add_parser(
        "generate", parents=[common], help="generate the contestants' answers to a benchmark"
    )
    p.add_argument("--config", type=Path, help="YAML file of GenerateConfig fields (flags override it)")
    add_arguments(p, GenerateConfig, FLAGS)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from arena.generate_workflow import answer_benchmark, check_complete
    from arena.store import Store
    from foundations.configs import from_args

    config = from_args(GenerateConfig, args, args.config, command="guanaco generate")
    report = answer_benchmark(Store(args.db), config)
    print(report.to_string(index=False))
    check_complete(report)
    return 0
