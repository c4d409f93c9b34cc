"""`guanaco judge`: a judge model compares contestants' answers, both orders, cached and resumable.

Flags or a YAML file (`--config`, flags override it) make a :class:`TournamentConfig`; the
workflow (:mod:`arena.tournament.workflow`) plans, judges and keeps the run record. Ctrl-C or
SIGTERM stops sending and lets the calls in flight finish and be stored (they are paid for); a
second one abandons them, still storing every reply already received."""

from __future__ import annotations

import argparse
from dataclasses import fields
from pathlib import Path
from typing import Any

from arena.tournament.config import TournamentConfig
from foundations.configs import add_arguments


def register(subparsers: Any, common: argparse.ArgumentParser) -> None:
    p = subparsers.add_parser(
        "judge",
        parents=[common],
        help="judge contestants' answers with GPT-4 or any OpenAI-compatible model",
        description="Judge every chosen match (both orders by default) with an OpenAI-compatible model. "
        "Each judgment is stored as it completes: rerun the same command to resume; nothing is asked twice. "
        "Defaults < --config YAML < flags.",
    )
    p.add_argument("--config", type=Path, help="YAML file of TournamentConfig fields (flags override it)")
    add_arguments(p, TournamentConfig, [f.name for f in fields(TournamentConfig) if f.name != "seed"])
    p.add_argument("--dry-run", action="store_true", help="print calls, estimated tokens and cost, and stop")
    add_arguments(p, TournamentConfig, ["seed"])
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import logging

    from arena.store import Store
    from arena.tournament.workflow import judge_tournament
    from foundations.configs import from_args

    if not args.verbose:  # one line per HTTP request would bury the progress bar
        for name in ("httpx", "httpx2", "openai"):
            logging.getLogger(name).setLevel(logging.WARNING)
    config = from_args(TournamentConfig, args, args.config, command="guanaco judge")
    judge_tournament(Store(args.db), config, dry_run=args.dry_run)
    return 0
