"""`guanaco sweep`: train a grid of LoRA settings, judge them against each other, one table."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from arena.sweep.config import SweepConfig
from foundations.configs import add_arguments, given
from foundations.errors import UserError

FLAGS = ["out", "prompts", "max_new_tokens", "judge_model", "judge_name", "base_url", "local_judge",
         "judge_max_tokens", "template", "budget_usd", "human"]  # fmt: skip
"""The SweepConfig fields with a flag (after --grid and --set); the others are set in the --config file."""


def register(subparsers: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    p = subparsers.add_parser(
        "sweep",
        parents=[common],
        help="choose LoRA settings by tournament: one adapter per grid point, judged pairwise, one table",
        description="Defaults < --config YAML < flags. Rerun the same command after a crash: finished "
        "points are not retrained, stored answers and judgments are not asked again. Example: "
        "--grid lora_r=8,16 target_modules=qv,all bits=4,8 --judge-model gpt-4 --dry-run",
    )
    p.add_argument("--config", type=Path, help="YAML file of sweep fields (see docs/sweep.md)")
    add_arguments(p, SweepConfig, ["name", "base", "data"])
    p.add_argument("--grid", nargs="+", metavar="FIELD=V1,V2", help="trainer field and its values, e.g. "
                   "lora_r=8,16,64 target_modules=qv,all bits=4,8")  # fmt: skip
    p.add_argument("--set", nargs="+", default=[], metavar="FIELD=VALUE",
                   help="a trainer field shared by every point, e.g. preset=smoke max_steps=20")  # fmt: skip
    add_arguments(p, SweepConfig, FLAGS)
    p.add_argument(
        "--dry-run", action="store_true", help="print trainings, generations, judgments, cost; stop"
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from arena.store import Store
    from arena.sweep.config import build_config, parse_grid
    from arena.sweep.plan import dry_run
    from arena.sweep.workflow import run_sweep

    shared = parse_grid(args.set)
    for key, values in shared.items():
        if len(values) != 1:
            raise UserError(f"--set {key}: one value (several values make a grid: use --grid)")
    overrides = given(args, SweepConfig)
    overrides["grid"] = parse_grid(args.grid) if args.grid else None
    cfg = build_config(args.config, overrides, {key: values[0] for key, values in shared.items()})
    store = Store(args.db)
    if args.dry_run:
        print("\n".join(dry_run(store, cfg)))
        return 0
    result = run_sweep(store, cfg)
    for line in result.messages:
        print(line)
    print(result.markdown.read_text(encoding="utf-8"))
    written = [result.csv, result.markdown, *([result.plot] if result.plot else [])]
    print("wrote " + ", ".join(str(p) for p in written), file=sys.stderr)
    return 0
