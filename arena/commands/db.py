"""`guanaco db upgrade | current`: the store's schema revision (Alembic migrations)."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    parser = subparsers.add_parser("db", help="the store's schema: show its revision, upgrade it")
    actions = parser.add_subparsers(dest="db_action", metavar="ACTION", required=True)
    upgrade = actions.add_parser(
        "upgrade",
        parents=[common],
        help="upgrade the store's schema to this version's (opening a store does it too)",
    )
    upgrade.set_defaults(func=run_upgrade)
    current = actions.add_parser("current", parents=[common], help="print the store's schema revision")
    current.set_defaults(func=run_current)


def _revision(url: str) -> str | None:
    from sqlalchemy import create_engine

    from arena.migrations import current

    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            return current(connection)
    finally:
        engine.dispose()


def run_upgrade(args: argparse.Namespace) -> int:
    from arena.migrations import SchemaError, head
    from arena.store import Store
    from foundations.errors import UserError

    before = _revision(args.db)
    try:
        Store(args.db).engine.dispose()
    except SchemaError as err:
        raise UserError(str(err)) from err
    if before == head():
        print(f"the store is already at schema revision {head()}")
    else:
        print(f"the store's schema is now at revision {head()} (was {before or 'empty'})")
    return 0


def run_current(args: argparse.Namespace) -> int:
    from arena.migrations import head
    from arena.store import refuse_missing_file

    refuse_missing_file(args.db)  # connecting would create the file
    revision = _revision(args.db)
    print(f"{revision or 'empty'} (this guanaco writes {head()})")
    return 0
