"""Alembic migrations: an empty database upgraded to head matches the models exactly; 0004 goes down and up."""

from __future__ import annotations

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, text

from receiver.db.engine import alembic_config, current_revision, head_revision, make_engine, migrate
from receiver.db.models import Base


def test_upgraded_database_matches_the_models(db_url):
    """No table, column, index or constraint differs between head and receiver.db.models (SQLite and PostgreSQL)."""
    engine = make_engine(db_url)
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        diff = compare_metadata(context, Base.metadata)
    engine.dispose()
    assert diff == []


def test_fresh_database_reaches_head(tmp_path):
    """`receiver migrate` on an empty SQLite file creates every table and records the head revision."""
    url = f"sqlite:///{tmp_path / 'fresh.db'}"
    migrate(url)
    engine = make_engine(url)
    assert current_revision(engine) == head_revision()
    assert set(Base.metadata.tables) <= set(inspect(engine).get_table_names())
    migrate(url)  # idempotent
    engine.dispose()


def _trigger_names(engine) -> set[str]:
    with engine.connect() as connection:
        if engine.dialect.name == "postgresql":
            rows = connection.execute(text("SELECT tgname FROM pg_trigger WHERE NOT tgisinternal"))
        else:
            rows = connection.execute(text("SELECT name FROM sqlite_master WHERE type = 'trigger'"))
        return {name for (name,) in rows}


SUMMARY_TABLES = {"session_attendance", "session_attendance_refreshes"}


def test_migration_0004_downgrade_and_upgrade(db_url):
    """0004 down: summary tables and triggers gone, 0003 views work; up again: tables, triggers and views back."""
    engine = make_engine(db_url)
    try:
        with engine.begin() as connection:
            connection.execute(
                text(
                    "INSERT INTO sessions (session_id, status, started_at, ended_at, updated_at, reconcile_added, reconcile_changed) "
                    "VALUES ('old', 'ended', '2026-01-01 10:00:00', '2026-01-01 11:00:00', '2026-01-01 11:00:00', 0, 0)"
                )
            )
        assert SUMMARY_TABLES <= set(inspect(engine).get_table_names())
        assert len(_trigger_names(engine)) >= 6
        command.downgrade(alembic_config(db_url), "0003")
        assert not SUMMARY_TABLES & set(inspect(engine).get_table_names())
        assert _trigger_names(engine) == set()
        with engine.connect() as connection:  # the 0003 attendance view, without the summary tables
            assert connection.execute(text("SELECT count(*) FROM attendance")).scalar() == 0
            assert connection.execute(text("SELECT count(*) FROM daily_usage")).scalar() == 1
        command.upgrade(alembic_config(db_url), "head")
        assert current_revision(engine) == head_revision()
        assert SUMMARY_TABLES <= set(inspect(engine).get_table_names())
        with engine.begin() as connection:  # the triggers invalidate again
            connection.execute(
                text(
                    "INSERT INTO session_attendance_refreshes (session_id, refreshed_at) VALUES ('old', '2026-01-02 00:00:00')"
                )
            )
            assert connection.execute(text("SELECT count(*) FROM attendance")).scalar() == 0
            connection.execute(text("UPDATE sessions SET ended_at = started_at WHERE session_id = 'old'"))
            assert connection.execute(text("SELECT count(*) FROM session_attendance_refreshes")).scalar() == 0
            connection.execute(text("DELETE FROM sessions WHERE session_id = 'old'"))
    finally:
        engine.dispose()


def test_migration_0004_offline_sql(capsys):
    """`alembic upgrade 0003:0004 --sql` (and the downgrade) renders for both dialects with triggers and views."""
    for url in ("sqlite:///offline.db", "postgresql://nobody@127.0.0.1:1/offline"):
        command.upgrade(alembic_config(url), "0003:0004", sql=True)
        up = capsys.readouterr().out
        assert "CREATE TABLE session_attendance" in up and "trg_participant_intervals_invalidate_insert" in up
        assert "CREATE VIEW attendance" in up and "session_attendance_refreshes r" in up
        command.downgrade(alembic_config(url), "0004:0003", sql=True)
        down = capsys.readouterr().out
        assert "DROP TABLE session_attendance" in down and "DROP TRIGGER IF EXISTS" in down
        assert "CREATE VIEW attendance" in down and "session_attendance a" not in down
