"""complete reconciliation: breakout links, inferred ends, livestream runs, flags

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01

Issue #18 (docs/schema.md):

* ``sessions``: ``end_inferred`` (the end was inferred from inactivity),
  ``parent_session_id`` (breakout room -> main session, indexed),
  ``api_meeting_id`` (the REST API's meeting id when it disagrees with the
  webhooks'), ``media_reconciled_at``;
* ``participant_intervals.invalid_fields`` (REST fields that could not be read);
* ``recordings.start_reason`` (REST startReason code);
* ``truncated_fields`` on meetings, sessions, participant_intervals,
  recordings and livestreams: values cut to fit their column;
* new table ``livestream_sessions``: runs of livestreams with ingest and
  viewer seconds.

Only columns and a table are added (no view or trigger changes); existing
rows get ``end_inferred = false`` and NULL elsewhere. Downgrade drops them.

On PostgreSQL, 0006's default privileges make ``livestream_sessions``
readable by ``receiver_analyst``: it holds ids, times, seconds and the
provider's error text, no stream key or URL, so nothing is revoked.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import receiver.db.models

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

_TRUNCATED = ("meetings", "sessions", "participant_intervals", "recordings", "livestreams")


def upgrade() -> None:
    for table in _TRUNCATED:
        op.add_column(table, sa.Column("truncated_fields", sa.Text(), nullable=True))
    op.add_column("sessions", sa.Column("end_inferred", sa.Boolean(), server_default=sa.false(), nullable=False))
    op.add_column("sessions", sa.Column("parent_session_id", sa.String(length=100), nullable=True))
    op.add_column("sessions", sa.Column("api_meeting_id", sa.String(length=100), nullable=True))
    op.add_column(
        "sessions", sa.Column("media_reconciled_at", receiver.db.models.UTCDateTime(timezone=True), nullable=True)
    )
    op.create_index("ix_sessions_parent_session_id", "sessions", ["parent_session_id"])
    op.add_column("participant_intervals", sa.Column("invalid_fields", sa.Text(), nullable=True))
    op.add_column("recordings", sa.Column("start_reason", sa.Text(), nullable=True))
    op.create_table(
        "livestream_sessions",
        sa.Column("livestream_session_id", sa.String(length=100), nullable=False),
        sa.Column("livestream_id", sa.String(length=100), nullable=True),
        sa.Column("session_id", sa.String(length=100), nullable=True),
        sa.Column("meeting_id", sa.String(length=100), nullable=True),
        sa.Column("invoked_at", receiver.db.models.UTCDateTime(timezone=True), nullable=True),
        sa.Column("started_at", receiver.db.models.UTCDateTime(timezone=True), nullable=True),
        sa.Column("stopped_at", receiver.db.models.UTCDateTime(timezone=True), nullable=True),
        sa.Column("ingest_seconds", sa.Float(), nullable=True),
        sa.Column("viewer_seconds", sa.Float(), nullable=True),
        sa.Column("err_message", sa.Text(), nullable=True),
        sa.Column("updated_at", receiver.db.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("truncated_fields", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("livestream_session_id", name=op.f("pk_livestream_sessions")),
    )
    op.create_index("ix_livestream_sessions_livestream_id", "livestream_sessions", ["livestream_id"])
    op.create_index("ix_livestream_sessions_session_id", "livestream_sessions", ["session_id"])


def downgrade() -> None:
    # Plain DROP COLUMN (SQLite 3.35+ and PostgreSQL): a batch "recreate" would drop the
    # triggers and break the views of 0004 that read these tables.
    op.drop_index("ix_livestream_sessions_session_id", table_name="livestream_sessions")
    op.drop_index("ix_livestream_sessions_livestream_id", table_name="livestream_sessions")
    op.drop_table("livestream_sessions")
    op.drop_column("recordings", "start_reason")
    op.drop_column("participant_intervals", "invalid_fields")
    op.drop_index("ix_sessions_parent_session_id", table_name="sessions")
    for column in ("media_reconciled_at", "api_meeting_id", "parent_session_id", "end_inferred"):
        op.drop_column("sessions", column)
    for table in _TRUNCATED:
        op.drop_column(table, "truncated_fields")
