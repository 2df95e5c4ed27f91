"""stats: covering indexes for a window's messages and turns

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-04

`/api/stats`, `/social-stats` and the daily summary scan a time window of
`customer_message` (counted per conversation) and of `turn` (grouped by network
and team), and the open turns (ix_turn_open). Each of these indexes is replaced
by one that also holds every column those scans read, so they never visit the
table rows.
`turn.response_seconds` exists since 0001 and is stored whenever a turn is
answered: nothing to backfill.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_TURN_WINDOW = ["started_at", "network", "team", "answered_at", "is_first", "response_seconds"]
_TURN_OPEN = ["answered_at", "started_at", "conversation_id", "network", "team"]


def upgrade() -> None:
    with op.batch_alter_table("customer_message", schema=None) as batch_op:
        batch_op.create_index(
            "ix_customer_message_sent", ["sent_at", "conversation_id"], unique=False
        )
        batch_op.drop_index("ix_customer_message_sent_at")
    with op.batch_alter_table("turn", schema=None) as batch_op:
        batch_op.create_index("ix_turn_window", _TURN_WINDOW, unique=False)
        batch_op.drop_index("ix_turn_started")
        batch_op.drop_index("ix_turn_open")
        batch_op.create_index("ix_turn_open", _TURN_OPEN, unique=False)


def downgrade() -> None:
    with op.batch_alter_table("turn", schema=None) as batch_op:
        batch_op.drop_index("ix_turn_open")
        batch_op.create_index("ix_turn_open", ["answered_at", "started_at"], unique=False)
        batch_op.create_index("ix_turn_started", ["started_at"], unique=False)
        batch_op.drop_index("ix_turn_window")
    with op.batch_alter_table("customer_message", schema=None) as batch_op:
        batch_op.create_index("ix_customer_message_sent_at", ["sent_at"], unique=False)
        batch_op.drop_index("ix_customer_message_sent")
