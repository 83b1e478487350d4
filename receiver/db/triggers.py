"""The triggers that keep precomputed attendance honest (migration 0004), on SQLite and PostgreSQL.

Owns :func:`trigger_statements` / :func:`drop_trigger_statements` (the SQL)
and :func:`create_change_triggers` / :func:`drop_change_triggers` (running
it), and ``ADVISORY_LOCK_CLASS``, the PostgreSQL advisory lock class shared
by the triggers and :func:`receiver.reports.queries.refresh_session_attendance`.
Any change to a session's intervals or bounds deletes its
``session_attendance_refreshes`` row, so its ``session_attendance`` rows
stop being read (:mod:`receiver.reports.precomputed`).
"""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.engine import Connection

__all__ = [
    "ADVISORY_LOCK_CLASS",
    "trigger_statements",
    "drop_trigger_statements",
    "create_change_triggers",
    "drop_change_triggers",
]

# Advisory lock class (PostgreSQL) of "session attendance of session hashtext(id)":
# writers of a session's intervals or bounds hold it shared until they commit,
# refreshers exclusively (see receiver.reports.queries.refresh_session_attendance).
ADVISORY_LOCK_CLASS = 74_010

# (table, trigger) pairs, for dropping; functions (PostgreSQL) after them.
_TRIGGERS = {
    "postgresql": (
        ("participant_intervals", "trg_participant_intervals_invalidate_insert"),
        ("participant_intervals", "trg_participant_intervals_invalidate_update"),
        ("participant_intervals", "trg_participant_intervals_invalidate_delete"),
        ("participant_intervals", "trg_participant_intervals_invalidate_truncate"),
        ("sessions", "trg_sessions_invalidate_insert_delete"),
        ("sessions", "trg_sessions_invalidate_update"),
        ("sessions", "trg_sessions_invalidate_truncate"),
    ),
    "sqlite": (
        ("participant_intervals", "trg_participant_intervals_invalidate_insert"),
        ("participant_intervals", "trg_participant_intervals_invalidate_update"),
        ("participant_intervals", "trg_participant_intervals_invalidate_delete"),
        ("sessions", "trg_sessions_invalidate_insert"),
        ("sessions", "trg_sessions_invalidate_delete"),
        ("sessions", "trg_sessions_invalidate_update"),
    ),
}
_PG_FUNCTIONS = (
    "receiver_invalidate_interval_sessions",
    "receiver_invalidate_session",
    "receiver_invalidate_all_sessions",
)

_SESSION_BOUNDS_CHANGED = (
    "OLD.session_id {ne} NEW.session_id OR OLD.started_at {ne} NEW.started_at OR OLD.ended_at {ne} NEW.ended_at"
)


def _is_postgresql(dialect_name: str) -> bool:
    """True for ``postgresql``, False for ``sqlite``; ValueError for another dialect."""
    if dialect_name not in ("sqlite", "postgresql"):
        raise ValueError(f"triggers are written for sqlite and postgresql, not {dialect_name!r}")
    return dialect_name == "postgresql"


def trigger_statements(dialect_name: str) -> list[str]:
    """``CREATE FUNCTION`` / ``CREATE TRIGGER`` statements that invalidate precomputed attendance.

    On every insert, update and delete of ``participant_intervals`` (old and
    new session of a row), every insert and delete of ``sessions`` and every
    change of a session's id, ``started_at`` or ``ended_at`` (its other
    columns are read live), the session's ``session_attendance_refreshes``
    row is deleted: its ``session_attendance`` rows stop being current in
    the same transaction as the change. PostgreSQL: statement-level triggers
    (one DELETE per statement, e.g. per ``COPY``), which first take the
    session's advisory lock (class :data:`ADVISORY_LOCK_CLASS`) shared until
    commit, so a refresh in progress cannot mark the session current from
    intervals that miss the change; ``TRUNCATE`` of either table deletes
    every refresh row. SQLite: row triggers (its writers are serialised).

    Raises:
        ValueError: another dialect.
    """
    if not _is_postgresql(dialect_name):
        changed = _SESSION_BOUNDS_CHANGED.format(ne="IS NOT")
        forget = "DELETE FROM session_attendance_refreshes WHERE session_id = {row}.session_id;"
        return [
            f"""CREATE TRIGGER trg_participant_intervals_invalidate_insert AFTER INSERT ON participant_intervals
BEGIN
    {forget.format(row="NEW")}
END""",
            f"""CREATE TRIGGER trg_participant_intervals_invalidate_update AFTER UPDATE ON participant_intervals
BEGIN
    {forget.format(row="NEW")}
    {forget.format(row="OLD")}
END""",
            f"""CREATE TRIGGER trg_participant_intervals_invalidate_delete AFTER DELETE ON participant_intervals
BEGIN
    {forget.format(row="OLD")}
END""",
            f"""CREATE TRIGGER trg_sessions_invalidate_insert AFTER INSERT ON sessions
BEGIN
    {forget.format(row="NEW")}
END""",
            f"""CREATE TRIGGER trg_sessions_invalidate_delete AFTER DELETE ON sessions
BEGIN
    {forget.format(row="OLD")}
END""",
            f"""CREATE TRIGGER trg_sessions_invalidate_update AFTER UPDATE ON sessions
WHEN {changed}
BEGIN
    {forget.format(row="NEW")}
    {forget.format(row="OLD")}
END""",
        ]
    forget = (
        "PERFORM pg_advisory_xact_lock_shared({lock_class}, hashtext(session_id))\n"
        "            FROM (SELECT DISTINCT session_id FROM {rows}) changed ORDER BY session_id;\n"
        "        DELETE FROM session_attendance_refreshes WHERE session_id IN (SELECT session_id FROM {rows});"
    )
    forget_one = (
        "PERFORM pg_advisory_xact_lock_shared({lock_class}, hashtext({sid}));\n"
        "        DELETE FROM session_attendance_refreshes WHERE session_id = {sid};"
    )
    both = "(SELECT session_id FROM old_rows UNION SELECT session_id FROM new_rows) both_sides"
    changed = _SESSION_BOUNDS_CHANGED.format(ne="IS DISTINCT FROM")
    c = ADVISORY_LOCK_CLASS
    return [
        f"""CREATE OR REPLACE FUNCTION receiver_invalidate_interval_sessions() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        {forget.format(lock_class=c, rows="new_rows")}
    ELSIF TG_OP = 'DELETE' THEN
        {forget.format(lock_class=c, rows="old_rows")}
    ELSE
        {forget.format(lock_class=c, rows=both)}
    END IF;
    RETURN NULL;
END
$$""",
        f"""CREATE OR REPLACE FUNCTION receiver_invalidate_session() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        {forget_one.format(lock_class=c, sid="NEW.session_id")}
    ELSIF TG_OP = 'DELETE' THEN
        {forget_one.format(lock_class=c, sid="OLD.session_id")}
    ELSE
        {forget_one.format(lock_class=c, sid="OLD.session_id")}
        IF OLD.session_id <> NEW.session_id THEN
            {forget_one.format(lock_class=c, sid="NEW.session_id")}
        END IF;
    END IF;
    RETURN NULL;
END
$$""",
        """CREATE OR REPLACE FUNCTION receiver_invalidate_all_sessions() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM session_attendance_refreshes;
    RETURN NULL;
END
$$""",
        """CREATE TRIGGER trg_participant_intervals_invalidate_insert AFTER INSERT ON participant_intervals
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION receiver_invalidate_interval_sessions()""",
        """CREATE TRIGGER trg_participant_intervals_invalidate_update AFTER UPDATE ON participant_intervals
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION receiver_invalidate_interval_sessions()""",
        """CREATE TRIGGER trg_participant_intervals_invalidate_delete AFTER DELETE ON participant_intervals
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION receiver_invalidate_interval_sessions()""",
        """CREATE TRIGGER trg_participant_intervals_invalidate_truncate AFTER TRUNCATE ON participant_intervals
    FOR EACH STATEMENT EXECUTE FUNCTION receiver_invalidate_all_sessions()""",
        """CREATE TRIGGER trg_sessions_invalidate_insert_delete AFTER INSERT OR DELETE ON sessions
    FOR EACH ROW EXECUTE FUNCTION receiver_invalidate_session()""",
        f"""CREATE TRIGGER trg_sessions_invalidate_update AFTER UPDATE ON sessions
    FOR EACH ROW WHEN ({changed}) EXECUTE FUNCTION receiver_invalidate_session()""",
        """CREATE TRIGGER trg_sessions_invalidate_truncate AFTER TRUNCATE ON sessions
    FOR EACH STATEMENT EXECUTE FUNCTION receiver_invalidate_all_sessions()""",
    ]


def drop_trigger_statements(dialect_name: str) -> list[str]:
    """Statements dropping what :func:`trigger_statements` creates (missing ones are fine)."""
    if not _is_postgresql(dialect_name):
        return [f"DROP TRIGGER IF EXISTS {name}" for _, name in _TRIGGERS["sqlite"]]
    return [f"DROP TRIGGER IF EXISTS {name} ON {table}" for table, name in _TRIGGERS["postgresql"]] + [
        f"DROP FUNCTION IF EXISTS {name}()" for name in _PG_FUNCTIONS
    ]


def create_change_triggers(connection: Connection) -> None:
    """(Re)create the invalidation triggers on ``connection``, in its transaction."""
    drop_change_triggers(connection)
    for statement in trigger_statements(connection.dialect.name):
        connection.execute(text(statement))


def drop_change_triggers(connection: Connection) -> None:
    """Drop the invalidation triggers (and PostgreSQL functions) on ``connection``; missing ones are fine."""
    for statement in drop_trigger_statements(connection.dialect.name):
        connection.execute(text(statement))
