"""managed webhook subscriptions

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-24
"""

from __future__ import annotations

from alembic import op
import sqlalchemy as sa
import receiver.db.models


revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "managed_subscriptions",
        sa.Column("webhook_id", sa.String(length=200), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("events", sa.Text(), nullable=False),
        sa.Column("created_at", receiver.db.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("last_ensured_at", receiver.db.models.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("webhook_id", name=op.f("pk_managed_subscriptions")),
    )


def downgrade() -> None:
    op.drop_table("managed_subscriptions")
