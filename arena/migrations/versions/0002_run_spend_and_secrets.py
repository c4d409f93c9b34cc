"""Runs record their tournament and spend (so a budget holds across reruns); a table of the
store's own secrets (the key of annotator pseudonyms).

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        batch.add_column(sa.Column("tournament", sa.String(length=64), nullable=True))
        batch.add_column(sa.Column("spent_usd", sa.Float(), nullable=False, server_default="0"))
        batch.create_index("ix_runs_tournament", ["tournament"], unique=False)
    op.create_table(
        "secrets",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("value", sa.String(length=256), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("name"),
    )


def downgrade() -> None:
    op.drop_table("secrets")
    with op.batch_alter_table("runs") as batch:
        batch.drop_index("ix_runs_tournament")
        batch.drop_column("spent_usd")
        batch.drop_column("tournament")
