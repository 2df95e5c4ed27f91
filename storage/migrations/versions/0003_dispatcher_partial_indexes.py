"""dispatcher: partial indexes for conversations whose root needs work

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-04

The dispatcher looks, on every wake-up, for conversations whose root is out of
date (`rendered_version < version`) or not posted yet after a handoff
(`thread_ts IS NULL AND channel IS NOT NULL`). Without an index that is a scan
of every conversation; these partial indexes hold only the few rows that match.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

STALE_ROOT = "rendered_version < version AND thread_ts IS NOT NULL"
ROOTLESS = "thread_ts IS NULL AND channel IS NOT NULL"


def upgrade() -> None:
    indexes = (("ix_conversation_stale_root", STALE_ROOT), ("ix_conversation_rootless", ROOTLESS))
    for name, where in indexes:
        op.create_index(
            name,
            "conversation",
            ["id"],
            unique=False,
            sqlite_where=sa.text(where),
            postgresql_where=sa.text(where),
        )


def downgrade() -> None:
    op.drop_index("ix_conversation_rootless", table_name="conversation")
    op.drop_index("ix_conversation_stale_root", table_name="conversation")
