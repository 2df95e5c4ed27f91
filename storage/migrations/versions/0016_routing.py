"""routing: a conversation's priority and tags, set by the routing rules

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-06

`ROUTING_RULES` gives a new conversation a team (the existing column), a priority
(`urgent` escalates after SLA_MINUTES_URGENT) and tags, which the root shows and the
stats filter on. Existing conversations get no priority and no tags.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0016"
down_revision: str | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute("ALTER TABLE conversation ADD COLUMN priority VARCHAR(16)")
    op.execute("ALTER TABLE conversation ADD COLUMN tags JSON DEFAULT '[]' NOT NULL")


def downgrade() -> None:
    op.drop_column("conversation", "tags")
    op.drop_column("conversation", "priority")
