"""The store's own secrets, which never leave it."""

from __future__ import annotations

import secrets

from sqlalchemy import select
from sqlalchemy.orm import Session

from arena.query.writes import insert_ignore
from arena.store import Secret


def store_secret(session: Session, name: str) -> str:
    """The store's secret called `name`: 256 random bits, made on first use and kept in the store
    (never exported), so every process and machine sharing the store derives the same values."""
    insert_ignore(session, Secret, [{"name": name, "value": secrets.token_hex(32)}])
    return session.scalars(select(Secret.value).where(Secret.name == name)).one()
