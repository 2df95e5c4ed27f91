"""csat: rating questions sent on resolve, and the customers' 1-5 answers

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-07

`csat_survey` holds each question (claimed at most once per conversation per 24 hours,
sent like the out-of-hours auto-reply, pending rows read from a partial index);
`csat_rating` one answer per survey (UNIQUE(survey_id): a second tap counts nothing),
read by the stats from `ix_csat_rating_window`.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from storage.models import UTCDateTime

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

PENDING = "state = 'pending'"


def upgrade() -> None:
    op.create_table(
        "csat_survey",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column(
            "conversation_id", sa.Integer(), sa.ForeignKey("conversation.id"), nullable=False
        ),
        sa.Column("network", sa.String(length=32), nullable=False),
        sa.Column("team", sa.String(length=64), nullable=True),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", UTCDateTime(), nullable=True),
        sa.Column("attempt_at", UTCDateTime(), nullable=True),
        sa.Column("sent_at", UTCDateTime(), nullable=True),
        sa.Column("external_id", sa.String(length=255), nullable=True),
        sa.Column("last_error", sa.String(length=500), nullable=True),
    )
    op.create_index("ix_csat_survey_conv", "csat_survey", ["conversation_id", "created_at"])
    op.create_index(
        "ix_csat_survey_due",
        "csat_survey",
        ["next_attempt_at", "conversation_id"],
        sqlite_where=sa.text(PENDING),
        postgresql_where=sa.text(PENDING),
    )
    op.create_table(
        "csat_rating",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("survey_id", sa.Integer(), sa.ForeignKey("csat_survey.id"), nullable=False),
        sa.Column(
            "conversation_id", sa.Integer(), sa.ForeignKey("conversation.id"), nullable=False
        ),
        sa.Column("network", sa.String(length=32), nullable=False),
        sa.Column("team", sa.String(length=64), nullable=True),
        sa.Column("score", sa.Integer(), nullable=False),
        sa.Column("rated_at", UTCDateTime(), nullable=False),
        sa.Column("event_id", sa.String(length=255), nullable=False),
        sa.Column("comment", sa.Text(), nullable=True),
        sa.Column("comment_message_id", sa.String(length=255), nullable=True),
        sa.Column("comment_at", UTCDateTime(), nullable=True),
        sa.UniqueConstraint("survey_id"),
    )
    op.create_index("ix_csat_rating_conversation_id", "csat_rating", ["conversation_id"])
    op.create_index(
        "ix_csat_rating_window", "csat_rating", ["rated_at", "network", "team", "score"]
    )


def downgrade() -> None:
    op.drop_table("csat_rating")
    op.drop_table("csat_survey")
