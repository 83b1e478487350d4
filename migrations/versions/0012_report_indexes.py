"""report indexes: the attendance listing's keyset order

Revision ID: 0012
Revises: 0010
Create Date: 2026-12-07

* ``ix_sessions_started_at_session_id`` on ``sessions (started_at,
  session_id)``: the order of the attendance listing (session start, then
  session id; then ``session_attendance.position`` through its primary key).
  ``GET /api/attendance`` walks it from a cursor (keyset pagination), so a
  page deep in a 10,000,000-interval listing reads about as many index
  entries as the first one (``receiver bench reports``, README
  "Performance"). ``ix_sessions_started_at`` stays: other queries use it.
* ``ix_session_attendance_participant_key`` on ``session_attendance
  (participant_key)``: the same listing filtered to one person
  (``?participant=``) and its total read that person's stored rows instead
  of scanning every session's.

Downgrade drops both indexes.
"""

from __future__ import annotations

from alembic import op


revision = "0012"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_sessions_started_at_session_id", "sessions", ["started_at", "session_id"], unique=False)
    op.create_index("ix_session_attendance_participant_key", "session_attendance", ["participant_key"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_session_attendance_participant_key", table_name="session_attendance")
    op.drop_index("ix_sessions_started_at_session_id", table_name="sessions")
