"""`guanaco mt-bench show|export`: MT-bench judgments as FastChat prints and writes them."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from arena.query.judges import SELECTOR_HELP
from foundations.errors import UserError


def register(subparsers: Any, common: argparse.ArgumentParser) -> None:
    parser = subparsers.add_parser(
        "mt-bench", help="MT-bench results per turn as FastChat's show_result prints them, or its files"
    )
    actions = parser.add_subparsers(dest="mt_bench_action", metavar="ACTION", required=True)
    show = actions.add_parser(
        "show",
        parents=[common],
        help="single grading: mean score for turn 1, turn 2 and their average; pairwise: win rates "
        "per turn and over both",
    )
    export = actions.add_parser(
        "export", parents=[common], help="write FastChat model_judgment files (<judge>_pair/_single.jsonl)"
    )
    export.add_argument("out", type=Path, metavar="DIR", help="folder for the JSONL files")
    for sub in (show, export):
        sub.add_argument("--benchmark", default="mt-bench", help="benchmark name (default: mt-bench)")
        sub.add_argument("--judge", help=f"{SELECTOR_HELP} (default: every model judge)")
    show.add_argument("--baseline", help="pairwise-baseline mode: only games against this model")
    show.set_defaults(func=run_show)
    export.set_defaults(func=run_export)


def _records(args: argparse.Namespace) -> Any:
    from arena.fastchat_results import export_records
    from arena.store import Store

    records = export_records(Store(args.db, create=False), args.benchmark, args.judge)
    if not records.pair and not records.single:
        raise UserError(
            f"no model judgments of benchmark {args.benchmark!r}"
            + (f" by {args.judge!r}" if args.judge else "")
            + " with both slot orders or single grades: judge with --template mt-bench-pair[-multi-turn] "
            "or import FastChat files"
        )
    return records


def run_show(args: argparse.Namespace) -> int:
    from arena.fastchat_results import show

    sys.stdout.write(show(_records(args), args.baseline))
    return 0


def run_export(args: argparse.Namespace) -> int:
    from arena.fastchat_results import write_records

    records = _records(args)
    for path in write_records(records, args.out, args.judge or "judges"):
        print(f"wrote {path}")
    if records.one_order_only:
        print(f"left out {records.one_order_only} pairwise judgments without their other slot order")
    return 0
