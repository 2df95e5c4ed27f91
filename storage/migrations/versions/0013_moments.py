"""moments and spikes: meaningful relationship moments, and volume spike alerts

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-06

`moment` holds one row per moment, unique on `key` (the reaction's channel, message
and person, or the shortcut form's view id), so Slack's retries and concurrent
processes record it once; `ix_moment_at` serves the windows of the stats, the
summary and `/api/moments`; a partial index holds the few whose note in the thread
is still to post. `spike` holds one row per volume spike; UNIQUE(open_slot), 1 while
the spike lasts and NULL after, lets one spike be open at a time.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from storage.models import UTCDateTime

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UNPOSTED = "post_ts IS NULL"


def upgrade() -> None:
    op.create_table(
        "moment",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("key", sa.String(length=255), nullable=False),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column(
            "conversation_id", sa.Integer(), sa.ForeignKey("conversation.id"), nullable=False
        ),
        sa.Column("network", sa.String(length=32), nullable=False),
        sa.Column("customer", sa.String(length=255), nullable=False),
        sa.Column("user_id", sa.String(length=32), nullable=False),
        sa.Column("at", UTCDateTime(), nullable=False),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("slack_channel", sa.String(length=32), nullable=False),
        sa.Column("slack_ts", sa.String(length=32), nullable=False),
        sa.Column("thread_ts", sa.String(length=32), nullable=False),
        sa.Column("post_ts", sa.String(length=32), nullable=True),
        sa.UniqueConstraint("key"),
    )
    op.create_index("ix_moment_at", "moment", ["at"])
    op.create_index("ix_moment_conversation_id", "moment", ["conversation_id"])
    op.create_index(
        "ix_moment_unposted",
        "moment",
        ["at"],
        sqlite_where=sa.text(UNPOSTED),
        postgresql_where=sa.text(UNPOSTED),
    )
    op.create_table(
        "spike",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("open_slot", sa.Integer(), nullable=True),
        sa.Column("started_at", UTCDateTime(), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.Column("baseline", sa.Float(), nullable=False),
        sa.Column("paged_user", sa.String(length=32), nullable=True),
        sa.Column("paged_ts", sa.String(length=32), nullable=True),
        sa.Column("ended_at", UTCDateTime(), nullable=True),
        sa.Column("ended_ts", sa.String(length=32), nullable=True),
        sa.UniqueConstraint("open_slot"),
    )


def downgrade() -> None:
    op.drop_table("spike")
    op.drop_table("moment")
