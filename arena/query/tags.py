"""People's lemon/cherry tags on judgments."""

from __future__ import annotations

from collections.abc import Iterable

import pandas as pd
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from arena.query.writes import insert_ignore
from arena.store import Tag

TAG_COLUMNS = ["judgment_id", "tag", "annotator", "note"]


def put_tag(session: Session, judgment_id: int, annotator: str, tag: str, note: str | None) -> bool:
    """Store one person's tag on a judgment; tagging again replaces the note. True if new."""
    key = {"judgment_id": int(judgment_id), "annotator": annotator, "tag": tag}
    if insert_ignore(session, Tag, [{**key, "note": note}]) == 1:
        return True
    session.execute(update(Tag).filter_by(**key).values(note=note))
    return False


def tags_of(session: Session, judgment_ids: Iterable[int]) -> list[Tag]:
    """The tags on these judgments, oldest first."""
    return list(session.scalars(select(Tag).where(Tag.judgment_id.in_(list(judgment_ids))).order_by(Tag.id)))


def tags_frame(session: Session) -> pd.DataFrame:
    """Every tag: judgment id, tag, annotator and note, one row each."""
    return pd.DataFrame(
        session.execute(select(Tag.judgment_id, Tag.tag, Tag.annotator, Tag.note)).all(), columns=TAG_COLUMNS
    )
