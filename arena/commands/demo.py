"""`guanaco demo`: the whole mission end to end on embedded defaults (what `make demo` runs)."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(subparsers: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    parser = subparsers.add_parser(
        "demo",
        parents=[common],
        help="train, generate, judge, rate, release and vote, on embedded defaults",
        description="Runs the ordinary guanaco commands in order, printing each one. Rerunning reuses "
        "what exists. --db is ignored: the demo keeps its store in WORKDIR/arena.db.",
    )
    parser.add_argument("--workdir", type=Path, default=Path("demo"), help="where the demo keeps everything")
    parser.add_argument("--prompts", type=int, default=6, help="prompts per contestant (default 6)")
    parser.add_argument("--train-steps", type=int, default=20, help="QLoRA steps on the OASST1 sample")
    parser.add_argument("--max-new-tokens", type=int, default=96, help="answer length limit")
    parser.add_argument("--from", dest="mirror", type=Path, help="local mirror of the public benchmark files")
    parser.add_argument("--port", type=int, default=7860, help="port for the app on 127.0.0.1")
    parser.add_argument(
        "--no-app", action="store_true", help="stop after the release instead of serving the app"
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from arena.demo import DemoConfig, run_demo

    cfg = DemoConfig(workdir=args.workdir, prompts=args.prompts, train_steps=args.train_steps,
                     max_new_tokens=args.max_new_tokens, mirror=args.mirror, port=args.port,
                     app=not args.no_app)  # fmt: skip
    run_demo(cfg, args.guanaco)
    return 0
