"""listening: brand mentions, their digests, and poll cursors

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-06

Mentions found by listening (LISTEN_TERMS) are stored once per source key and
posted to SLACK_LISTENING_CHANNEL alone or in a digest; the X recent search
resumes from its stored `since_id`.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import storage.models

revision: str = "0017"
down_revision: str | None = "0016"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _ts(name: str, nullable: bool = True) -> sa.Column:
    return sa.Column(name, storage.models.UTCDateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "listen_mention",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("source_key", sa.String(300), nullable=False, unique=True),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("external_id", sa.String(255), nullable=False),
        sa.Column("url", sa.String(2000), nullable=True),
        sa.Column("author_id", sa.String(255), nullable=False),
        sa.Column("author_name", sa.String(255), nullable=False),
        sa.Column("author_handle", sa.String(255), nullable=True),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("term", sa.String(255), nullable=False),
        sa.Column("variant", sa.String(255), nullable=False),
        sa.Column("found", sa.String(255), nullable=False),
        sa.Column("edits", sa.Integer(), nullable=False),
        _ts("sent_at", nullable=False),
        _ts("found_at", nullable=False),
        sa.Column("opening", sa.JSON(), nullable=True),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("digest_id", sa.Integer(), nullable=True),
        sa.Column("chunk", sa.Integer(), nullable=True),
        sa.Column("slack_channel", sa.String(32), nullable=True),
        sa.Column("slack_ts", sa.String(32), nullable=True),
        _ts("attempt_at"),
        sa.Column("acted_by", sa.String(32), nullable=True),
        _ts("acted_at"),
        sa.Column("conversation_id", sa.Integer(), nullable=True),
    )
    op.create_index("ix_listen_mention_found_at", "listen_mention", ["found_at"])
    op.create_index("ix_listen_mention_state", "listen_mention", ["state"])
    op.create_index("ix_listen_mention_digest_id", "listen_mention", ["digest_id"])
    op.create_index("ix_listen_mention_slack_ts", "listen_mention", ["slack_ts"])
    op.create_table(
        "listen_digest",
        sa.Column("id", sa.Integer(), primary_key=True),
        _ts("window_start", nullable=False),
        sa.Column("channel", sa.String(32), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.Column("chunks", sa.Integer(), nullable=False),
        sa.Column("posted_chunks", sa.Integer(), nullable=False),
        sa.Column("root_ts", sa.String(32), nullable=True),
        _ts("attempt_at"),
        _ts("created_at", nullable=False),
        sa.UniqueConstraint("window_start"),
    )
    op.create_table(
        "listen_cursor",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("value", sa.String(255), nullable=False),
        _ts("updated_at", nullable=False),
    )


def downgrade() -> None:
    op.drop_table("listen_cursor")
    op.drop_table("listen_digest")
    op.drop_index("ix_listen_mention_slack_ts", "listen_mention")
    op.drop_index("ix_listen_mention_digest_id", "listen_mention")
    op.drop_index("ix_listen_mention_state", "listen_mention")
    op.drop_index("ix_listen_mention_found_at", "listen_mention")
    op.drop_table("listen_mention")
