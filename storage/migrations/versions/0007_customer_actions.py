"""customer actions: reactions, removals, edits and notices, and their marks

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-06

What a customer does that is not a message is stored in `customer_action` before
the webhook's 200 (unique on the network's event id) and carried out in Slack by
the dispatcher. A customer message's Slack copy shows whether it was edited or
deleted since (`customer_message.mark`, `conversation.root_mark` for the first).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

PENDING = "state = 'pending'"
RETRYING = "state = 'pending' AND next_attempt_at IS NOT NULL"


def upgrade() -> None:
    op.create_table(
        "customer_action",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column(
            "conversation_id", sa.Integer(), sa.ForeignKey("conversation.id"), nullable=False
        ),
        sa.Column("network", sa.String(length=32), nullable=False),
        sa.Column("event_id", sa.String(length=255), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("target_id", sa.String(length=255), nullable=True),
        sa.Column("payload", sa.JSON(), nullable=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=True),
        sa.UniqueConstraint("network", "event_id"),
    )
    for name, columns, where in (
        ("ix_customer_action_due", ["conversation_id", "next_attempt_at"], PENDING),
        ("ix_customer_action_retry", ["next_attempt_at"], RETRYING),
    ):
        op.create_index(
            name,
            "customer_action",
            columns,
            unique=False,
            sqlite_where=sa.text(where),
            postgresql_where=sa.text(where),
        )
    op.add_column("customer_message", sa.Column("mark", sa.String(length=16), nullable=True))
    op.add_column("conversation", sa.Column("root_mark", sa.String(length=16), nullable=True))


def downgrade() -> None:
    op.drop_column("conversation", "root_mark")
    op.drop_column("customer_message", "mark")
    op.drop_index("ix_customer_action_retry", table_name="customer_action")
    op.drop_index("ix_customer_action_due", table_name="customer_action")
    op.drop_table("customer_action")
