"""`guanaco app`: serve the human arena (vote, leaderboard, and explore if asked) in a browser."""

from __future__ import annotations

import argparse
import os

from foundations.errors import UserError


def register(subparsers: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    parser = subparsers.add_parser(
        "app", parents=[common], help="the human arena: vote, leaderboard, explore (Gradio)",
        description="Serve the arena in a browser. Votes are stored as judgments by human:<annotator>, "
                    "the annotator being the logged-in user or an anonymous id the server gives each browser.",
    )  # fmt: skip
    parser.add_argument("--benchmark", help="only battles from this benchmark (vicuna, oa, ...); default all")
    parser.add_argument(
        "--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)"
    )
    parser.add_argument("--port", type=int, default=7860, help="port (default 7860)")
    parser.add_argument(
        "--auth-file", help="logins (user:scrypt hash lines, written by `guanaco users add`): people log in "
                            "and vote under their user name",
    )  # fmt: skip
    parser.add_argument(
        "--anonymous", action="store_true",
        help="beyond this machine, let anyone vote without logging in (one anonymous id per browser)",
    )  # fmt: skip
    parser.add_argument(
        "--allowed-host", action="append", default=[], metavar="NAME",
        help="a host name people use to reach the arena (repeatable); requests naming any other host, "
             "or coming from another site's page, are refused",
    )  # fmt: skip
    parser.add_argument(
        "--explore", action="store_true",
        help="show the Explore tab (it names the models behind answers people are judging: keep it for "
             "a private instance)",
    )  # fmt: skip
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import SQLAlchemyError

    from arena.passwords import read_auth_file
    from arena.store import Store
    from arena.webapp import Exposure, serve

    try:
        users = read_auth_file(args.auth_file) if args.auth_file else None
    except (OSError, ValueError) as err:
        raise UserError(f"auth file: {err}") from err
    exposure = Exposure(host=args.host, port=args.port, allowed_hosts=tuple(args.allowed_host), users=users,
                        anonymous=args.anonymous, explore=args.explore)  # fmt: skip
    try:
        exposure.check()
    except ValueError as err:
        raise UserError(str(err)) from err
    try:
        shown_db = make_url(args.db).render_as_string(hide_password=True)
    except SQLAlchemyError as err:
        raise UserError("--db: not a database URL (sqlite:///FILE or postgresql+psycopg://...)") from err
    who = "logins" if users else "anonymous voters"
    print(f"guanaco arena on http://{args.host}:{args.port} (store {shown_db}; {who}"
          f"{'; Explore on' if args.explore else ''}); Ctrl+C to stop", flush=True)  # fmt: skip
    try:
        store = Store(args.db)
    except SQLAlchemyError as err:
        raise UserError(f"cannot open the store {shown_db}: {getattr(err, 'orig', None) or err}") from err
    serve(store, exposure, args.benchmark)
    return 0
