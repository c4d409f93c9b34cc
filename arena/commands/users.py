"""`guanaco users add NAME --auth-file FILE`: write a login for the human arena (scrypt-hashed)."""

from __future__ import annotations

import argparse
import getpass
import sys

from foundations.errors import UserError


def register(subparsers: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    parser = subparsers.add_parser(
        "users", help="logins of the human arena (guanaco app --auth-file)",
        description="Manage the auth file of `guanaco app`: user names with scrypt-hashed passwords.",
    )  # fmt: skip
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    add = actions.add_parser("add", parents=[common], help="add a user, or set a new password for one")
    add.add_argument("name", help="the user name (votes are stored as human:<name>)")
    add.add_argument("--auth-file", required=True, help="the file to write (created, mode 600)")
    add.add_argument(
        "--password-stdin", action="store_true", help="read the password from the first line of stdin"
    )
    add.set_defaults(func=run_add)


def run_add(args: argparse.Namespace) -> int:
    from arena.passwords import add_user

    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = getpass.getpass(f"password for {args.name}: ")
        if getpass.getpass("again: ") != password:
            raise UserError("the two passwords differ")
    try:
        new = add_user(args.auth_file, args.name, password)
    except (OSError, ValueError) as err:
        raise UserError(f"{args.auth_file}: {err}") from err
    print(f"{'added' if new else 'updated'} {args.name.strip()} in {args.auth_file}")
    return 0
