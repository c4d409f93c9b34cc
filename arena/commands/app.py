"""`guanaco app`: serve the human arena (vote, leaderboard, explore) in a browser."""

from __future__ import annotations

import argparse
import os

from arena.cli import UserError


def register(subparsers: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    parser = subparsers.add_parser(
        "app", parents=[common], help="the human arena: vote, leaderboard, explore (Gradio)",
        description="Serve the arena in a browser. Votes are stored as judgments by human:<annotator>.",
    )  # fmt: skip
    parser.add_argument("--benchmark", help="only battles from this benchmark (vicuna, oa, ...); default all")
    parser.add_argument(
        "--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)"
    )
    parser.add_argument("--port", type=int, default=7860, help="port (default 7860)")
    parser.add_argument(
        "--auth-file", help="file of user:password lines: people log in and vote under their user name"
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
    from arena.store import Store
    from arena.webapp import launch, read_auth_file

    try:
        auth = read_auth_file(args.auth_file) if args.auth_file else None
    except (OSError, ValueError) as err:
        raise UserError(f"auth file: {err}") from err
    print(f"guanaco arena on http://{args.host}:{args.port} (store {args.db}); Ctrl+C to stop")
    launch(Store(args.db), args.benchmark, args.host, args.port, auth)
    return 0
