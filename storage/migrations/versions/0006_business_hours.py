"""business hours: each answered turn's response time counted in open time only

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-07

`turn.business_response_seconds` is stored when a reply answers a turn, like
`response_seconds`, computed in the `BUSINESS_HOURS` in force then. Turns answered
before this revision get their wall-clock figure (the hours they were answered in
are not known). The stats covering index gains the column, so the window's figures
are still read from the index alone.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_TURN_WINDOW = ["started_at", "network", "team", "answered_at", "is_first", "response_seconds"]


def upgrade() -> None:
    with op.batch_alter_table("turn", schema=None) as batch_op:
        batch_op.add_column(sa.Column("business_response_seconds", sa.Float(), nullable=True))
    op.execute("UPDATE turn SET business_response_seconds = response_seconds")
    with op.batch_alter_table("turn", schema=None) as batch_op:
        batch_op.drop_index("ix_turn_window")
        batch_op.create_index(
            "ix_turn_window", [*_TURN_WINDOW, "business_response_seconds"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("turn", schema=None) as batch_op:
        batch_op.drop_index("ix_turn_window")
        batch_op.create_index("ix_turn_window", _TURN_WINDOW, unique=False)
        batch_op.drop_column("business_response_seconds")
