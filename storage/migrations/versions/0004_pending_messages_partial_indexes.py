"""dispatcher: index only the messages still to relay

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-05

The dispatcher looks for due conversations and for the earliest retry time on
every wake-up. `ix_customer_message_pending (state, next_attempt_at)` held every
message ever stored, and the look read all pending rows: with a backlog of
15,000 messages (Slack pacing one inbox channel) it took about 17 ms of
PostgreSQL per wake-up. Two partial indexes replace it: pending messages in
conversation order (the look stops after its limit), and the few messages
waiting for a retry (the earliest is the first entry).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

PENDING = "state = 'pending'"
RETRYING = "state = 'pending' AND next_attempt_at IS NOT NULL"


def upgrade() -> None:
    partial = (
        ("ix_customer_message_due", ["conversation_id", "next_attempt_at"], PENDING),
        ("ix_customer_message_retry", ["next_attempt_at"], RETRYING),
    )
    for name, columns, where in partial:
        op.create_index(
            name,
            "customer_message",
            columns,
            unique=False,
            sqlite_where=sa.text(where),
            postgresql_where=sa.text(where),
        )
    op.drop_index("ix_customer_message_pending", table_name="customer_message")


def downgrade() -> None:
    op.create_index("ix_customer_message_pending", "customer_message", ["state", "next_attempt_at"])
    op.drop_index("ix_customer_message_retry", table_name="customer_message")
    op.drop_index("ix_customer_message_due", table_name="customer_message")
