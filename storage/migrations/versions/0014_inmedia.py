"""customer profiles: names and handles from the networks' profile APIs, cached

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-06

Messenger and Instagram webhooks carry only the customer's scoped id; the name and
handle come from the Graph profile APIs. One row per customer, refreshed at most daily.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import storage.models

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "customer_profile",
        sa.Column("network", sa.String(length=32), nullable=False),
        sa.Column("customer_id", sa.String(length=255), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=True),
        sa.Column("handle", sa.String(length=255), nullable=True),
        sa.Column("looked_up_at", storage.models.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("network", "customer_id"),
    )


def downgrade() -> None:
    op.drop_table("customer_profile")
