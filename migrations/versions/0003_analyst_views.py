"""analyst views

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-24

Creates the read-only SQL views documented in docs/schema.md:
attendance_intervals, attendance, sessions_summary, recording_index and
daily_usage. The SQL lives in :mod:`receiver.db.views` (one spelling per
dialect); a later change to a view ships as a new migration that calls
``create_views`` again (it drops and recreates every view).
"""

from __future__ import annotations

from alembic import context, op

from receiver.db.views import create_views, drop_statements, drop_views, view_statements


revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if context.is_offline_mode():  # `alembic upgrade --sql`: emit the statements
        for statement in drop_statements() + view_statements(op.get_context().dialect.name):
            op.execute(statement)
        return
    create_views(op.get_bind())


def downgrade() -> None:
    if context.is_offline_mode():
        for statement in drop_statements():
            op.execute(statement)
        return
    drop_views(op.get_bind())
