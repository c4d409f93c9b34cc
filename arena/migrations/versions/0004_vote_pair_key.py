"""One vote per annotator per unordered pair of answers: `judgments.pair_key` and its unique key.

Existing votes are backfilled: each annotator's earliest vote on a pair gets the key; later votes
on the same pair (the old app let both orders through) keep a null key and stay as they were.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

HUMAN_TEMPLATE_HASH = "c15ea3e9de6b4b33b291397fdab542775729c4b21c1de32a1a7cd5c971234d29"
"""The human voting protocol's hash when this revision was written (arena/votes.py)."""

LOW = "CASE WHEN generation1_id < generation2_id THEN generation1_id ELSE generation2_id END"
HIGH = "CASE WHEN generation1_id < generation2_id THEN generation2_id ELSE generation1_id END"
VOTES = "template_hash = :protocol AND judge LIKE 'human:%'"


def upgrade() -> None:
    with op.batch_alter_table("judgments") as batch:
        batch.add_column(sa.Column("pair_key", sa.String(length=41), nullable=True))
    op.get_bind().execute(
        sa.text(
            f"UPDATE judgments SET pair_key = CAST({LOW} AS VARCHAR(20)) || '-' || CAST({HIGH} AS VARCHAR(20)) "
            f"WHERE {VOTES} AND id IN (SELECT MIN(id) FROM judgments WHERE {VOTES} GROUP BY judge, {LOW}, {HIGH})"
        ),
        {"protocol": HUMAN_TEMPLATE_HASH},
    )
    with op.batch_alter_table("judgments") as batch:
        batch.create_unique_constraint("uq_judgment_pair", ["judge", "template_hash", "pair_key"])


def downgrade() -> None:
    with op.batch_alter_table("judgments") as batch:
        batch.drop_constraint("uq_judgment_pair", type_="unique")
        batch.drop_column("pair_key")
