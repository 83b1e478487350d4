"""session attendance summary

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-25

Precomputed attendance for ended sessions (docs/schema.md, "Precomputed
attendance"):

* ``session_attendance`` - one row per person of an ended session;
* ``session_attendance_refreshes`` - one row per session whose rows are
  current, deleted by the triggers of :func:`receiver.db.views.trigger_statements`
  on every change of the session's ``participant_intervals`` or bounds.

The tables start empty: every session is stale until the first report (or
:func:`receiver.reports.queries.refresh_session_attendance`) computes it, so nothing
is ever read stale. The views are recreated: ``attendance`` now reads the
current precomputed rows and computes only the other sessions. Downgrade
drops all of it and restores the ``0003`` views.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import context, op

import receiver.db.models
from receiver.db.views import (
    create_change_triggers,
    create_views,
    drop_change_triggers,
    drop_statements,
    drop_trigger_statements,
    drop_views,
    trigger_statements,
    view_statements,
)


revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "session_attendance_refreshes",
        sa.Column("session_id", sa.String(length=100), nullable=False),
        sa.Column("refreshed_at", receiver.db.models.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("session_id", name=op.f("pk_session_attendance_refreshes")),
    )
    op.create_table(
        "session_attendance",
        sa.Column("session_id", sa.String(length=100), nullable=False),
        sa.Column("position", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("participant_key", sa.String(length=200), nullable=False),
        sa.Column("display_name", sa.Text(), nullable=True),
        sa.Column("display_names", sa.Text(), nullable=True),
        sa.Column("first_joined_at", receiver.db.models.UTCDateTime(timezone=True), nullable=True),
        sa.Column("last_left_at", receiver.db.models.UTCDateTime(timezone=True), nullable=True),
        sa.Column("attended_seconds", sa.Float(), nullable=False),
        sa.Column("join_count", sa.Integer(), nullable=False),
        sa.Column("attendance_ratio", sa.Float(), nullable=True),
        sa.Column("closed_at_session_end", sa.Boolean(), nullable=False),
        sa.Column("provenance", sa.String(length=10), nullable=False),
        sa.PrimaryKeyConstraint("session_id", "position", name=op.f("pk_session_attendance")),
    )
    dialect = op.get_context().dialect.name
    if context.is_offline_mode():  # `alembic upgrade --sql`: emit the statements
        for statement in drop_trigger_statements(dialect) + trigger_statements(dialect):
            op.execute(statement)
        for statement in drop_statements() + view_statements(dialect, summary=True):
            op.execute(statement)
        return
    create_change_triggers(op.get_bind())
    create_views(op.get_bind(), summary=True)


def downgrade() -> None:
    dialect = op.get_context().dialect.name
    if context.is_offline_mode():
        for statement in drop_statements() + drop_trigger_statements(dialect):
            op.execute(statement)
    else:
        drop_views(op.get_bind())
        drop_change_triggers(op.get_bind())
    op.drop_table("session_attendance")
    op.drop_table("session_attendance_refreshes")
    if context.is_offline_mode():
        for statement in view_statements(dialect, summary=False):
            op.execute(statement)
    else:
        create_views(op.get_bind(), summary=False)
