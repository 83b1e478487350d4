"""outbound deliveries: the outbox of signed attendance webhooks

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-07

* ``outbound_deliveries``: one row per signed outbound webhook (Standard
  Webhooks) carrying a reconciled session's attendance to
  OUTBOUND_WEBHOOK_URL: the frozen JSON body, its ``webhook-id`` (unique,
  the same on every attempt), status (pending, delivered, failed, dead),
  attempts, the next attempt's time, the worker's lease, and the last
  answer (HTTP status, one-line error). Indexed for the sender's claim
  (status, next_attempt_at) and by session.

No views or triggers. On PostgreSQL the analyst role of migration 0006 reads
the new table through its default privileges (the payload holds what the
attendance report shows, nothing more).

Downgrade drops the table.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import receiver.db.models


revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "outbound_deliveries",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("webhook_id", sa.String(length=64), nullable=False),
        sa.Column("event_type", sa.String(length=60), nullable=False),
        sa.Column("session_id", sa.String(length=100), nullable=False),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("payload_sha256", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", receiver.db.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("locked_by", sa.String(length=200), nullable=True),
        sa.Column("locked_until", receiver.db.models.UTCDateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("last_status_code", sa.Integer(), nullable=True),
        sa.Column("created_at", receiver.db.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", receiver.db.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("delivered_at", receiver.db.models.UTCDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_outbound_deliveries")),
        sa.UniqueConstraint("webhook_id", name=op.f("uq_outbound_deliveries_webhook_id")),
    )
    op.create_index(
        "ix_outbound_deliveries_status_next_attempt_at",
        "outbound_deliveries",
        ["status", "next_attempt_at"],
        unique=False,
    )
    op.create_index("ix_outbound_deliveries_session_id", "outbound_deliveries", ["session_id"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_outbound_deliveries_session_id", table_name="outbound_deliveries")
    op.drop_index("ix_outbound_deliveries_status_next_attempt_at", table_name="outbound_deliveries")
    op.drop_table("outbound_deliveries")
