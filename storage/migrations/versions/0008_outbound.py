"""team replies: what to send, and how much of it was sent

Revision ID: 0008_outbound
Revises: 0004
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

revision: str = "0008_outbound"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("team_reply") as batch:
        batch.add_column(sa.Column("slack_message", sa.Text(), nullable=True))
        batch.add_column(sa.Column("sent_ids", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("team_reply") as batch:
        batch.drop_column("sent_ids")
        batch.drop_column("slack_message")
