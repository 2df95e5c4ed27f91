"""health: a one-row table that /healthz rewrites to notice failing writes

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-06

A ping (SELECT 1) answers while the database refuses writes: disk full, a
read-only database, revoked privileges. `/healthz` rewrites this row (at most
every few seconds) so it says 503 while writes fail.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import storage.models

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "health_probe",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("probed_at", storage.models.UTCDateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("health_probe")
