"""Migration 0007 (issue #18, reconciliation): columns and livestream_sessions go down and come back, keeping data."""

from __future__ import annotations

from alembic import command
from sqlalchemy import inspect, text

from receiver.db.engine import alembic_config, current_revision, head_revision, make_engine

NEW_SESSION_COLUMNS = {"end_inferred", "parent_session_id", "api_meeting_id", "media_reconciled_at", "truncated_fields"}


def test_migration_0007_downgrade_and_upgrade(db_url):
    """Down to 0006: new columns and table gone, triggers and views still work; up again: back, existing rows not inferred."""
    engine = make_engine(db_url)
    try:
        with engine.begin() as connection:
            connection.execute(
                text(
                    "INSERT INTO sessions (session_id, status, started_at, ended_at, updated_at, reconcile_added, reconcile_changed) "
                    "VALUES ('old', 'ended', '2026-01-01 10:00:00', '2026-01-01 11:00:00', '2026-01-01 11:00:00', 0, 0)"
                )
            )
        command.downgrade(alembic_config(db_url), "0006")
        inspector = inspect(engine)
        assert "livestream_sessions" not in inspector.get_table_names()
        assert not NEW_SESSION_COLUMNS & {c["name"] for c in inspector.get_columns("sessions")}
        with engine.connect() as connection:
            assert connection.execute(text("SELECT count(*) FROM sessions_summary")).scalar() == 1
        command.upgrade(alembic_config(db_url), "head")
        assert current_revision(engine) == head_revision()
        inspector = inspect(engine)
        assert "livestream_sessions" in inspector.get_table_names()
        assert NEW_SESSION_COLUMNS <= {c["name"] for c in inspector.get_columns("sessions")}
        with engine.begin() as connection:
            assert connection.execute(text("SELECT end_inferred FROM sessions WHERE session_id = 'old'")).scalar() in (
                False,
                0,
            )
            connection.execute(text("DELETE FROM sessions WHERE session_id = 'old'"))
    finally:
        engine.dispose()
