"""posting: record an attempt in flight, to look for its result after a crash

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-12

A Slack post or a network send that was started and never answered (kill -9, a
timeout after Slack took the post) may have happened. `attempt_at` says so: the
dispatcher looks for the post (message metadata) before posting again, and does
not resend a network reply blindly. Messages Slack refused for good are
counted by /healthz from a partial index.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from storage.models import UTCDateTime

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COLUMNS = (
    ("conversation", "root_attempt_at"),
    ("customer_message", "attempt_at"),
    ("team_reply", "attempt_at"),
)


FAILED = "state = 'failed'"


def upgrade() -> None:
    for table, column in COLUMNS:
        op.add_column(table, sa.Column(column, UTCDateTime(), nullable=True))
    op.create_index(
        "ix_customer_message_failed",
        "customer_message",
        ["conversation_id"],
        unique=False,
        sqlite_where=sa.text(FAILED),
        postgresql_where=sa.text(FAILED),
    )


def downgrade() -> None:
    op.drop_index("ix_customer_message_failed", table_name="customer_message")
    for table, column in COLUMNS:
        # Plain DROP COLUMN on both databases (SQLite 3.35+): a batch copy of the
        # table would trip the foreign keys that point at it.
        op.execute(f"ALTER TABLE {table} DROP COLUMN {column}")
