"""team replies: what to send, and how much of it was sent

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-06

`slack_message` keeps the Slack message a reply was written as (its `text`, rich_text
`blocks` and `files`, as JSON): the reply is converted for its network when it is
sent, and an edit in Slack replaces it. `sent_ids` lists the network's ids of the
messages already sent (a long private reply goes as several): a retry after a failure
midway sends only the rest, and edits and deletes reach each copy.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("team_reply", sa.Column("slack_message", sa.Text(), nullable=True))
    op.add_column("team_reply", sa.Column("sent_ids", sa.Text(), nullable=True))


def downgrade() -> None:
    for column in ("sent_ids", "slack_message"):
        # Plain DROP COLUMN on both databases (SQLite 3.35+): a batch copy of the
        # table would trip the foreign keys that point at it.
        op.execute(f"ALTER TABLE team_reply DROP COLUMN {column}")
