"""data lifecycle: retention purge markers, erasure log, maintenance runs

Revision ID: 0008
Revises: 0004
Create Date: 2026-12-07

Issue #22 (docs/operations.md, "Retention" and "Erasure"):

* ``webhook_events.purged_at`` - when the retention purge emptied the raw
  body; ``webhook_events.erased_at`` - when an erasure dropped or rewrote it.
  Both NULL on existing rows (nothing purged yet).
* ``ix_webhook_events_unpurged_received_at`` - (received_at, id) of the rows
  whose body is still there (partial index, PostgreSQL and SQLite): what the
  purge walks, so a daily run reads only the bodies it removes.
* ``erasures`` - one row per erasure request carried out, without the
  person's data (a SHA-256 of the identifier, counts, time, actor).
* ``maintenance_runs`` - one row per periodic job: the daily purge is
  claimed here so at most one worker a day runs it.

Additive only: downgrade drops what upgrade added.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import receiver.db.models

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "webhook_events", sa.Column("purged_at", receiver.db.models.UTCDateTime(timezone=True), nullable=True)
    )
    op.add_column(
        "webhook_events", sa.Column("erased_at", receiver.db.models.UTCDateTime(timezone=True), nullable=True)
    )
    op.create_index(
        "ix_webhook_events_unpurged_received_at",
        "webhook_events",
        ["received_at", "id"],
        unique=False,
        postgresql_where=sa.text("purged_at IS NULL"),
        sqlite_where=sa.text("purged_at IS NULL"),
    )
    op.create_table(
        "erasures",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("subject_kind", sa.String(length=40), nullable=False),
        sa.Column("subject_sha256", sa.String(length=64), nullable=False),
        sa.Column("requested_by", sa.String(length=200), nullable=False),
        sa.Column("reference", sa.String(length=200), nullable=True),
        sa.Column("erased_at", receiver.db.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("sessions_touched", sa.Integer(), nullable=False),
        sa.Column("intervals_deleted", sa.Integer(), nullable=False),
        sa.Column("attendance_rows_deleted", sa.Integer(), nullable=False),
        sa.Column("events_dropped", sa.Integer(), nullable=False),
        sa.Column("events_rewritten", sa.Integer(), nullable=False),
        sa.Column("meetings_scrubbed", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_erasures")),
    )
    op.create_index("ix_erasures_subject_sha256", "erasures", ["subject_sha256"], unique=False)
    op.create_table(
        "maintenance_runs",
        sa.Column("job", sa.String(length=50), nullable=False),
        sa.Column("started_at", receiver.db.models.UTCDateTime(timezone=True), nullable=True),
        sa.Column("finished_at", receiver.db.models.UTCDateTime(timezone=True), nullable=True),
        sa.Column("run_by", sa.String(length=200), nullable=True),
        sa.Column("summary", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("job", name=op.f("pk_maintenance_runs")),
    )


def downgrade() -> None:
    op.drop_table("maintenance_runs")
    op.drop_index("ix_erasures_subject_sha256", table_name="erasures")
    op.drop_table("erasures")
    op.drop_index("ix_webhook_events_unpurged_received_at", table_name="webhook_events")
    # Plain DROP COLUMN (SQLite >= 3.35 has it): no batch table copy, which would
    # need reflection and so could not render offline (`alembic upgrade --sql`).
    op.drop_column("webhook_events", "erased_at")
    op.drop_column("webhook_events", "purged_at")
