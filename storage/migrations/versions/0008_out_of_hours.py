"""out of hours: one auto-reply row per conversation per closed period

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-07

`out_of_hours_reply` is keyed on (conversation, the opening that ends the closed
period) and inserted with ON CONFLICT DO NOTHING before the auto-reply is sent, so
it goes out once across processes. Pending rows (to send, or to retry) are read
from a partial index.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from storage.models import UTCDateTime

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

PENDING = "state = 'pending'"


def upgrade() -> None:
    op.create_table(
        "out_of_hours_reply",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column(
            "conversation_id", sa.Integer(), sa.ForeignKey("conversation.id"), nullable=False
        ),
        sa.Column("opens_at", UTCDateTime(), nullable=False),
        sa.Column("network", sa.String(length=32), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", UTCDateTime(), nullable=True),
        sa.Column("attempt_at", UTCDateTime(), nullable=True),
        sa.Column("sent_at", UTCDateTime(), nullable=True),
        sa.Column("external_id", sa.String(length=255), nullable=True),
        sa.Column("last_error", sa.String(length=500), nullable=True),
        sa.UniqueConstraint("conversation_id", "opens_at"),
    )
    op.create_index("ix_out_of_hours_reply_external_id", "out_of_hours_reply", ["external_id"])
    op.create_index(
        "ix_out_of_hours_reply_due",
        "out_of_hours_reply",
        ["next_attempt_at", "conversation_id"],
        sqlite_where=sa.text(PENDING),
        postgresql_where=sa.text(PENDING),
    )


def downgrade() -> None:
    op.drop_table("out_of_hours_reply")
