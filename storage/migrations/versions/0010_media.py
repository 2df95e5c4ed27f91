"""media: one row per customer file to upload into Slack, with its own retries

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-06

`customer_media` holds each file of a posted customer message until it is uploaded
to the conversation's thread (or said to be too large or unreachable). Keyed by
(message, position), so a retried or concurrent pass creates and uploads it once.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from storage.models import UTCDateTime

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

PENDING = "state = 'pending'"
RETRYING = "state = 'pending' AND next_attempt_at IS NOT NULL"


def upgrade() -> None:
    op.create_table(
        "customer_media",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("message_id", sa.Integer(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("conversation_id", sa.Integer(), nullable=False),
        sa.Column("attachment", sa.JSON(), nullable=True),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", UTCDateTime(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("slack_file_id", sa.String(length=64), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["conversation_id"], ["conversation.id"]),
        sa.ForeignKeyConstraint(["message_id"], ["customer_message.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("message_id", "position"),
    )
    for name, columns, where in (
        ("ix_customer_media_due", ["conversation_id", "next_attempt_at"], PENDING),
        ("ix_customer_media_retry", ["next_attempt_at"], RETRYING),
    ):
        op.create_index(
            name,
            "customer_media",
            columns,
            unique=False,
            sqlite_where=sa.text(where),
            postgresql_where=sa.text(where),
        )


def downgrade() -> None:
    op.drop_index("ix_customer_media_retry", table_name="customer_media")
    op.drop_index("ix_customer_media_due", table_name="customer_media")
    op.drop_table("customer_media")
