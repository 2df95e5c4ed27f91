"""rollups: customer messages per conversation and hour, and per hour, network and team

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-06

`/api/stats` had counted a window's messages per conversation from the raw rows,
a cost that grew with the traffic. Two roll-up tables (`storage.rollups`), kept
by triggers on `customer_message` (insert) and `conversation` (team changes),
and backfilled here from the raw rows.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from storage.rollups import drop_trigger_statements, rebuild_statements, trigger_statements

revision: str = "0018"
down_revision: str | None = "0017"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "stats_conversation_hour",
        sa.Column("conversation_id", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("hour", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("network", sa.String(length=32), nullable=False),
        sa.Column("team", sa.String(length=64), nullable=True),
        sa.Column("prev_hour", sa.Integer(), nullable=True),
        sa.Column("messages", sa.Integer(), nullable=False),
    )
    op.create_index(
        "ix_stats_conversation_hour_hour",
        "stats_conversation_hour",
        ["hour", "prev_hour", "network", "team", "messages"],
    )
    op.create_table(
        "stats_hour",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("hour", sa.Integer(), nullable=False),
        sa.Column("network", sa.String(length=32), nullable=False),
        sa.Column("team", sa.String(length=64), nullable=True),
        sa.Column("messages", sa.Integer(), nullable=False),
        sa.Column("lasts", sa.Integer(), nullable=False),
    )
    op.create_index(
        "ix_stats_hour_hour", "stats_hour", ["hour", "network", "team", "messages", "lasts"]
    )
    dialect = op.get_bind().dialect.name
    for statement in [*trigger_statements(dialect), *rebuild_statements(dialect)]:
        op.execute(statement)


def downgrade() -> None:
    for statement in drop_trigger_statements(op.get_bind().dialect.name):
        op.execute(statement)
    op.drop_table("stats_hour")
    op.drop_table("stats_conversation_hour")
