"""The `guanaco` command line: one parser whose subcommands live in `arena.commands`."""

from __future__ import annotations

import argparse
import importlib
import logging
import pkgutil
import sys
import traceback
from collections.abc import Sequence
from typing import NoReturn

from arena import commands
from foundations.errors import UserError
from foundations.paths import default_url

__all__ = ["UserError", "build_parser", "common_options", "main"]


def common_options() -> argparse.ArgumentParser:
    """Options every subcommand takes (pass as `parents=[common]`)."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--db", default=default_url(), help="database URL: sqlite:///FILE (default) or postgresql://..."
    )
    common.add_argument("-v", "--verbose", action="store_true", help="log debugging detail")
    return common


class Parser(argparse.ArgumentParser):
    """argparse's parser, but a bad flag ends in one `error:` line naming the command and its help,
    like every other error a user can cause (subcommands' parsers are of this class too)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"error: {self.prog}: {message} (see `{self.prog} --help`)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="guanaco",
        description="Train Guanaco-style chatbots, generate answers, judge tournaments, rate, release.",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    # a command that runs other commands (the demo) is handed the CLI, so it never imports this module
    parser.set_defaults(guanaco=main)
    common = common_options()
    for info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
        importlib.import_module(f"arena.commands.{info.name}").register(subparsers, common)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command. An error the user can fix (:class:`UserError`) ends in one `error:` line
    and exit status 2; with `-v`, its traceback comes first."""
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as stop:  # --help, or a bad flag (already printed)
        return stop.code if isinstance(stop.code, int) else 2
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO, format="%(levelname)s %(name)s: %(message)s"
    )
    if not args.verbose:  # Alembic announces every schema check at INFO
        logging.getLogger("alembic").setLevel(logging.WARNING)
    try:
        return int(args.func(args) or 0)
    except UserError as err:
        if args.verbose:
            traceback.print_exc()
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: everything finished so far is stored; run the same command to resume.",
              file=sys.stderr)  # fmt: skip
        return 130


if __name__ == "__main__":
    sys.exit(main())
