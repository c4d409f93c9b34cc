"""`guanaco sweep`: train a grid of LoRA settings, judge them against each other, one table."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from foundations.errors import UserError


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
    p.add_argument("--name", help="benchmark name of the held-out prompts and prefix of contestant names")
    p.add_argument("--base", help="base model: hub id, local folder or smollm2 (the embedded model)")
    p.add_argument("--data", help="local JSONL/JSON/Parquet (Alpaca, messages, ...) or a HF dataset id")
    p.add_argument("--grid", nargs="+", metavar="FIELD=V1,V2", help="trainer field and its values, e.g. "
                   "lora_r=8,16,64 target_modules=qv,all bits=4,8")  # fmt: skip
    p.add_argument("--set", nargs="+", default=[], metavar="FIELD=VALUE",
                   help="a trainer field shared by every point, e.g. preset=smoke max_steps=20")  # fmt: skip
    p.add_argument("--out", help="folder for the adapters, the table and the plot (default runs/sweep)")
    p.add_argument("--prompts", type=int, help="held-out prompts each contestant answers (default 20)")
    p.add_argument("--max-new-tokens", type=int, help="answer length limit (default 128)")
    p.add_argument("--judge-model", help="judge as the endpoint names it (default gpt-4)")
    p.add_argument("--judge-name", help="name stored with each judgment (default: --judge-model)")
    p.add_argument("--base-url", help="OpenAI-compatible judge endpoint, e.g. http://127.0.0.1:8000/v1")
    p.add_argument("--local-judge", action="store_true", default=None,
                   help="judge with the embedded SmolLM2 served on 127.0.0.1 (shows the pipeline only)")  # fmt: skip
    p.add_argument("--judge-max-tokens", type=int, help="judge output limit per call (default 1024)")
    p.add_argument("--template", help="judge template (default qlora-vicuna; the small-judge one locally)")
    p.add_argument("--budget-usd", type=float, help="stop judging before spending more than this")
    p.add_argument("--human", action="store_true", default=None, help="queue the answers for the human arena")
    p.add_argument(
        "--dry-run", action="store_true", help="print trainings, generations, judgments, cost; stop"
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from arena.store import Store
    from arena.sweep import dry_run, run_sweep
    from arena.sweep_config import build_config, parse_grid

    shared = parse_grid(args.set)
    for key, values in shared.items():
        if len(values) != 1:
            raise UserError(f"--set {key}: one value (several values make a grid: use --grid)")
    overrides = {name: getattr(args, name) for name in ("name", "base", "data", "out", "prompts", "max_new_tokens",
                 "judge_model", "judge_name", "base_url", "local_judge", "template", "budget_usd", "human",
                 "judge_max_tokens")}  # fmt: skip
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
