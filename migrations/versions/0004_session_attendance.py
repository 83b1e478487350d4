"""session attendance summary

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-25

Precomputed attendance for ended sessions (docs/schema.md, "Precomputed
attendance"):

* ``session_attendance`` - one row per person of an ended session;
* ``session_attendance_refreshes`` - one row per session whose rows are
  current, deleted by the triggers below on every change of the session's
  ``participant_intervals`` or bounds (PostgreSQL: statement-level
  triggers and three plpgsql functions; SQLite: row triggers).

The tables start empty: every session is stale until the first report (or
:func:`receiver.reports.queries.refresh_session_attendance`) computes it, so
nothing is ever read stale. The view ``attendance`` is replaced: it now reads
the current precomputed rows and computes only the other sessions;
``daily_usage`` reads it, so it is dropped and recreated around it (same
SQL). The other three views of ``0003`` do not change. Downgrade drops all
of it and restores the ``0003`` SQL of both views (read from revision
``0003`` itself, which is frozen too).

The SQL below is frozen: a byte-exact copy of what ``receiver.views``
generated when this revision was written (commit 23149b3:
``view_statements(dialect, summary=True)``, ``trigger_statements(dialect)``,
``drop_trigger_statements(dialect)``). Never edit it: a later change ships
as a new revision with its own copy. ``tests/db/test_migrations.py`` checks
that the views and triggers of the head revision equal what
:mod:`receiver.db.views` generates today.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import context, op

import receiver.db.models


revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    dialect = _dialect()
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
    for statement in TRIGGERS[dialect]:
        op.execute(statement)
    _drop_replaced_views()
    for statement in VIEWS[dialect].values():
        op.execute(statement)


def downgrade() -> None:
    dialect = _dialect()
    _drop_replaced_views()
    for statement in DROP_TRIGGERS[dialect]:
        op.execute(statement)
    op.drop_table("session_attendance")
    op.drop_table("session_attendance_refreshes")
    views_0003 = context.script.get_revision("0003").module.VIEWS[dialect]
    for name in VIEWS[dialect]:
        op.execute(views_0003[name])


def _drop_replaced_views() -> None:
    """Drop ``daily_usage`` (it reads ``attendance``), then ``attendance``."""
    op.execute("DROP VIEW IF EXISTS daily_usage")
    op.execute("DROP VIEW IF EXISTS attendance")


def _dialect() -> str:
    name = op.get_context().dialect.name
    if name not in VIEWS:
        raise ValueError(f"revision 0004 has views and triggers for sqlite and postgresql, not {name!r}")
    return name


# The two replaced views per dialect, in creation order (frozen at 23149b3;
# whitespace is part of the copy).
VIEWS = {
    "sqlite": {
        "attendance": """CREATE VIEW attendance AS
WITH 
base AS (
    SELECT
        i.id,
        i.session_id,
        s.meeting_id,
        i.participant_key,
        i.peer_id,
        i.display_name,
        i.source,
        i.closed_at_session_end AS closed_flag,
        i.joined_at,
        i.left_at,
        s.started_at AS session_started_at,
        s.ended_at AS session_ended_at,
        s.reconciled_at AS session_reconciled_at,
        (i.joined_at IS NOT NULL AND COALESCE(i.left_at, s.ended_at) IS NOT NULL) AS has_span,
        CASE WHEN i.left_at IS NULL THEN TRUE ELSE i.closed_at_session_end END AS closed_eff,
        CASE WHEN i.joined_at IS NOT NULL
            THEN max(i.joined_at, COALESCE(s.started_at, i.joined_at)) END AS start_ts,
        CASE WHEN COALESCE(i.left_at, s.ended_at) IS NOT NULL
            THEN min(COALESCE(i.left_at, s.ended_at), COALESCE(s.ended_at, i.left_at)) END AS end_ts
    FROM sessions s
    CROSS JOIN participant_intervals i ON i.session_id = s.session_id
    WHERE NOT EXISTS (
        SELECT 1 FROM session_attendance_refreshes r
        WHERE r.session_id = s.session_id AND s.ended_at IS NOT NULL)
),
spans AS (
    SELECT
        b.*,
        CASE WHEN b.has_span THEN max(b.end_ts, b.start_ts) END AS span_end_ts
    FROM base b
),
ordered AS (
    SELECT
        session_id,
        participant_key,
        meeting_id,
        display_name,
        source,
        joined_at,
        has_span,
        closed_eff,
        start_ts,
        span_end_ts,
        session_started_at,
        session_ended_at,
        session_reconciled_at,
        MAX(CASE WHEN has_span AND span_end_ts > start_ts THEN span_end_ts END) OVER (
            PARTITION BY session_id, participant_key ORDER BY CASE WHEN joined_at IS NULL THEN 1 ELSE 0 END, joined_at, id
            ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING
        ) AS reach,
        ROW_NUMBER() OVER (PARTITION BY session_id, participant_key ORDER BY CASE WHEN joined_at IS NULL THEN 1 ELSE 0 END, joined_at, id) AS position
    FROM spans
),
counted AS (
    SELECT
        o.*,
        CASE
            WHEN NOT (o.has_span AND o.span_end_ts > o.start_ts) THEN 0
            WHEN o.reach IS NULL OR o.start_ts >= o.reach THEN (CAST(strftime('%s', substr(o.span_end_ts, 1, 19)) AS INTEGER) + CAST(substr(substr(o.span_end_ts, 21) || '000000', 1, 6) AS INTEGER) / 1000000.0) - (CAST(strftime('%s', substr(o.start_ts, 1, 19)) AS INTEGER) + CAST(substr(substr(o.start_ts, 21) || '000000', 1, 6) AS INTEGER) / 1000000.0)
            WHEN o.span_end_ts > o.reach THEN (CAST(strftime('%s', substr(o.span_end_ts, 1, 19)) AS INTEGER) + CAST(substr(substr(o.span_end_ts, 21) || '000000', 1, 6) AS INTEGER) / 1000000.0) - (CAST(strftime('%s', substr(o.reach, 1, 19)) AS INTEGER) + CAST(substr(substr(o.reach, 21) || '000000', 1, 6) AS INTEGER) / 1000000.0)
            ELSE 0
        END AS added_seconds
    FROM ordered o
),
by_name AS (
    SELECT
        session_id,
        participant_key,
        CASE WHEN display_name IS NOT NULL AND display_name <> ''
            THEN printf('%010d', MIN(position)) || display_name END AS ranked_name,
        MAX(meeting_id) AS meeting_id,
        MIN(joined_at) AS first_joined_ts,
        MAX(CASE WHEN has_span THEN span_end_ts END) AS last_left_ts,
        SUM(added_seconds) AS seconds,
        COUNT(*) AS join_count,
        COALESCE(MAX(CASE WHEN has_span AND closed_eff THEN 1 ELSE 0 END), 0) AS any_closed,
        MIN(source) AS min_source,
        MAX(source) AS max_source,
        MAX(session_started_at) AS session_started_at,
        MAX(session_ended_at) AS session_ended_at,
        MAX(session_reconciled_at) AS session_reconciled_at
    FROM counted
    GROUP BY session_id, participant_key, display_name
),
people AS (
    SELECT
        session_id,
        participant_key,
        MAX(meeting_id) AS meeting_id,
        substr(MAX(ranked_name), 11) AS display_name,
        MIN(first_joined_ts) AS first_joined_ts,
        MAX(last_left_ts) AS last_left_ts,
        SUM(seconds) AS seconds,
        CAST(SUM(join_count) AS INTEGER) AS join_count,
        COALESCE(MAX(CASE WHEN any_closed = 1 THEN 1 ELSE 0 END), 0) AS closed_at_session_end,
        MIN(min_source) AS min_source,
        MAX(max_source) AS max_source,
        MAX(session_started_at) AS session_started_at,
        MAX(session_ended_at) AS session_ended_at,
        MAX(session_reconciled_at) AS session_reconciled_at
    FROM by_name
    GROUP BY session_id, participant_key
),
measured AS (
    SELECT
        p.*,
        CASE
            WHEN p.session_started_at IS NULL OR p.session_ended_at IS NULL THEN NULL
            WHEN p.session_ended_at > p.session_started_at
                THEN (CAST(strftime('%s', substr(p.session_ended_at, 1, 19)) AS INTEGER) + CAST(substr(substr(p.session_ended_at, 21) || '000000', 1, 6) AS INTEGER) / 1000000.0) - (CAST(strftime('%s', substr(p.session_started_at, 1, 19)) AS INTEGER) + CAST(substr(substr(p.session_started_at, 21) || '000000', 1, 6) AS INTEGER) / 1000000.0)
            ELSE 0
        END AS session_seconds
    FROM people p
)
SELECT
    session_id,
    meeting_id,
    participant_key,
    display_name,
    (substr(first_joined_ts, 1, 10) || 'T' || substr(first_joined_ts, 12, 8) || '.' || substr(substr(first_joined_ts, 21) || '000000', 1, 6) || 'Z') AS first_joined_at,
    (substr(last_left_ts, 1, 10) || 'T' || substr(last_left_ts, 12, 8) || '.' || substr(substr(last_left_ts, 21) || '000000', 1, 6) || 'Z') AS last_left_at,
    ROUND(seconds, 3) AS attended_seconds,
    join_count,
    CASE WHEN session_seconds > 0 THEN ROUND(seconds / session_seconds, 4) END AS attendance_ratio,
    closed_at_session_end,
    CASE
        WHEN min_source = 'webhook' AND max_source = 'webhook' THEN 'webhook'
        WHEN min_source = 'api' AND max_source = 'api' THEN 'api'
        ELSE 'both'
    END AS provenance,
    (session_reconciled_at IS NOT NULL) AS session_reconciled
FROM measured
UNION ALL
SELECT
    a.session_id,
    s.meeting_id,
    a.participant_key,
    a.display_name,
    (substr(a.first_joined_at, 1, 10) || 'T' || substr(a.first_joined_at, 12, 8) || '.' || substr(substr(a.first_joined_at, 21) || '000000', 1, 6) || 'Z') AS first_joined_at,
    (substr(a.last_left_at, 1, 10) || 'T' || substr(a.last_left_at, 12, 8) || '.' || substr(substr(a.last_left_at, 21) || '000000', 1, 6) || 'Z') AS last_left_at,
    a.attended_seconds,
    a.join_count,
    a.attendance_ratio,
    a.closed_at_session_end,
    a.provenance,
    (s.reconciled_at IS NOT NULL) AS session_reconciled
FROM sessions s
CROSS JOIN session_attendance a ON a.session_id = s.session_id
WHERE EXISTS (
        SELECT 1 FROM session_attendance_refreshes r
        WHERE r.session_id = s.session_id AND s.ended_at IS NOT NULL)""",
        "daily_usage": """CREATE VIEW daily_usage AS
WITH session_days AS (
    SELECT session_id, substr(started_at, 1, 10) AS day FROM sessions WHERE started_at IS NOT NULL
),
recording_days AS (
    SELECT substr(started_at, 1, 10) AS day, duration_seconds FROM recordings WHERE started_at IS NOT NULL
),
days AS (
    SELECT day FROM session_days
    UNION
    SELECT day FROM recording_days
),
session_counts AS (
    SELECT day, COUNT(*) AS sessions FROM session_days GROUP BY day
),
attended AS (
    SELECT sd.day, SUM(a.attended_seconds) AS seconds
    FROM session_days sd
    JOIN attendance a ON a.session_id = sd.session_id
    GROUP BY sd.day
),
recorded AS (
    SELECT day, SUM(duration_seconds) AS seconds FROM recording_days GROUP BY day
)
SELECT
    days.day AS day,
    COALESCE(sc.sessions, 0) AS sessions,
    ROUND(COALESCE(att.seconds, 0) / 60.0, 3) AS participant_minutes,
    ROUND(COALESCE(rc.seconds, 0) / 60.0, 3) AS recorded_minutes
FROM days
LEFT JOIN session_counts sc ON sc.day = days.day
LEFT JOIN attended att ON att.day = days.day
LEFT JOIN recorded rc ON rc.day = days.day""",
    },
    "postgresql": {
        "attendance": """CREATE VIEW attendance AS
WITH 
base AS (
    SELECT
        i.id,
        i.session_id,
        s.meeting_id,
        i.participant_key,
        i.peer_id,
        i.display_name,
        i.source,
        i.closed_at_session_end AS closed_flag,
        i.joined_at,
        i.left_at,
        s.started_at AS session_started_at,
        s.ended_at AS session_ended_at,
        s.reconciled_at AS session_reconciled_at,
        (i.joined_at IS NOT NULL AND COALESCE(i.left_at, s.ended_at) IS NOT NULL) AS has_span,
        CASE WHEN i.left_at IS NULL THEN TRUE ELSE i.closed_at_session_end END AS closed_eff,
        CASE WHEN i.joined_at IS NOT NULL
            THEN GREATEST(i.joined_at, COALESCE(s.started_at, i.joined_at)) END AS start_ts,
        CASE WHEN COALESCE(i.left_at, s.ended_at) IS NOT NULL
            THEN LEAST(COALESCE(i.left_at, s.ended_at), COALESCE(s.ended_at, i.left_at)) END AS end_ts
    FROM sessions s
    JOIN participant_intervals i ON i.session_id = s.session_id
    WHERE NOT EXISTS (
        SELECT 1 FROM session_attendance_refreshes r
        WHERE r.session_id = s.session_id AND s.ended_at IS NOT NULL)
),
spans AS (
    SELECT
        b.*,
        CASE WHEN b.has_span THEN GREATEST(b.end_ts, b.start_ts) END AS span_end_ts
    FROM base b
),
ordered AS (
    SELECT
        session_id,
        participant_key,
        meeting_id,
        display_name,
        source,
        joined_at,
        has_span,
        closed_eff,
        start_ts,
        span_end_ts,
        session_started_at,
        session_ended_at,
        session_reconciled_at,
        MAX(CASE WHEN has_span AND span_end_ts > start_ts THEN span_end_ts END) OVER (
            PARTITION BY session_id, participant_key ORDER BY CASE WHEN joined_at IS NULL THEN 1 ELSE 0 END, joined_at, id
            ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING
        ) AS reach,
        ROW_NUMBER() OVER (PARTITION BY session_id, participant_key ORDER BY CASE WHEN joined_at IS NULL THEN 1 ELSE 0 END, joined_at, id) AS position
    FROM spans
),
counted AS (
    SELECT
        o.*,
        CASE
            WHEN NOT (o.has_span AND o.span_end_ts > o.start_ts) THEN 0
            WHEN o.reach IS NULL OR o.start_ts >= o.reach THEN CAST(EXTRACT(EPOCH FROM o.span_end_ts) AS numeric) - CAST(EXTRACT(EPOCH FROM o.start_ts) AS numeric)
            WHEN o.span_end_ts > o.reach THEN CAST(EXTRACT(EPOCH FROM o.span_end_ts) AS numeric) - CAST(EXTRACT(EPOCH FROM o.reach) AS numeric)
            ELSE 0
        END AS added_seconds
    FROM ordered o
),
by_name AS (
    SELECT
        session_id,
        participant_key,
        CASE WHEN display_name IS NOT NULL AND display_name <> ''
            THEN lpad(CAST(MIN(position) AS text), 10, '0') || display_name END AS ranked_name,
        MAX(meeting_id) AS meeting_id,
        MIN(joined_at) AS first_joined_ts,
        MAX(CASE WHEN has_span THEN span_end_ts END) AS last_left_ts,
        SUM(added_seconds) AS seconds,
        COUNT(*) AS join_count,
        COALESCE(BOOL_OR(has_span AND closed_eff), FALSE) AS any_closed,
        MIN(source) AS min_source,
        MAX(source) AS max_source,
        MAX(session_started_at) AS session_started_at,
        MAX(session_ended_at) AS session_ended_at,
        MAX(session_reconciled_at) AS session_reconciled_at
    FROM counted
    GROUP BY session_id, participant_key, display_name
),
people AS (
    SELECT
        session_id,
        participant_key,
        MAX(meeting_id) AS meeting_id,
        substr(MAX(ranked_name COLLATE "C"), 11) AS display_name,
        MIN(first_joined_ts) AS first_joined_ts,
        MAX(last_left_ts) AS last_left_ts,
        SUM(seconds) AS seconds,
        CAST(SUM(join_count) AS INTEGER) AS join_count,
        COALESCE(BOOL_OR(any_closed), FALSE) AS closed_at_session_end,
        MIN(min_source) AS min_source,
        MAX(max_source) AS max_source,
        MAX(session_started_at) AS session_started_at,
        MAX(session_ended_at) AS session_ended_at,
        MAX(session_reconciled_at) AS session_reconciled_at
    FROM by_name
    GROUP BY session_id, participant_key
),
measured AS (
    SELECT
        p.*,
        CASE
            WHEN p.session_started_at IS NULL OR p.session_ended_at IS NULL THEN NULL
            WHEN p.session_ended_at > p.session_started_at
                THEN CAST(EXTRACT(EPOCH FROM p.session_ended_at) AS numeric) - CAST(EXTRACT(EPOCH FROM p.session_started_at) AS numeric)
            ELSE 0
        END AS session_seconds
    FROM people p
)
SELECT
    session_id,
    meeting_id,
    participant_key,
    display_name,
    to_char((first_joined_ts) AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') AS first_joined_at,
    to_char((last_left_ts) AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') AS last_left_at,
    CAST(ROUND(CAST(seconds AS numeric), 3) AS double precision) AS attended_seconds,
    join_count,
    CASE WHEN session_seconds > 0 THEN CAST(ROUND(CAST(seconds / session_seconds AS numeric), 4) AS double precision) END AS attendance_ratio,
    closed_at_session_end,
    CASE
        WHEN min_source = 'webhook' AND max_source = 'webhook' THEN 'webhook'
        WHEN min_source = 'api' AND max_source = 'api' THEN 'api'
        ELSE 'both'
    END AS provenance,
    (session_reconciled_at IS NOT NULL) AS session_reconciled
FROM measured
UNION ALL
SELECT
    a.session_id,
    s.meeting_id,
    a.participant_key,
    a.display_name,
    to_char((a.first_joined_at) AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') AS first_joined_at,
    to_char((a.last_left_at) AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') AS last_left_at,
    a.attended_seconds,
    a.join_count,
    a.attendance_ratio,
    a.closed_at_session_end,
    a.provenance,
    (s.reconciled_at IS NOT NULL) AS session_reconciled
FROM sessions s
JOIN session_attendance a ON a.session_id = s.session_id
WHERE EXISTS (
        SELECT 1 FROM session_attendance_refreshes r
        WHERE r.session_id = s.session_id AND s.ended_at IS NOT NULL)""",
        "daily_usage": """CREATE VIEW daily_usage AS
WITH session_days AS (
    SELECT session_id, to_char((started_at) AT TIME ZONE 'UTC', 'YYYY-MM-DD') AS day FROM sessions WHERE started_at IS NOT NULL
),
recording_days AS (
    SELECT to_char((started_at) AT TIME ZONE 'UTC', 'YYYY-MM-DD') AS day, duration_seconds FROM recordings WHERE started_at IS NOT NULL
),
days AS (
    SELECT day FROM session_days
    UNION
    SELECT day FROM recording_days
),
session_counts AS (
    SELECT day, COUNT(*) AS sessions FROM session_days GROUP BY day
),
attended AS (
    SELECT sd.day, SUM(a.attended_seconds) AS seconds
    FROM session_days sd
    JOIN attendance a ON a.session_id = sd.session_id
    GROUP BY sd.day
),
recorded AS (
    SELECT day, SUM(duration_seconds) AS seconds FROM recording_days GROUP BY day
)
SELECT
    days.day AS day,
    COALESCE(sc.sessions, 0) AS sessions,
    CAST(ROUND(CAST(COALESCE(att.seconds, 0) / 60.0 AS numeric), 3) AS double precision) AS participant_minutes,
    CAST(ROUND(CAST(COALESCE(rc.seconds, 0) / 60.0 AS numeric), 3) AS double precision) AS recorded_minutes
FROM days
LEFT JOIN session_counts sc ON sc.day = days.day
LEFT JOIN attended att ON att.day = days.day
LEFT JOIN recorded rc ON rc.day = days.day""",
    },
}

# The invalidation triggers (PostgreSQL: the functions first), frozen at 23149b3.
TRIGGERS = {
    "sqlite": (
        """CREATE TRIGGER trg_participant_intervals_invalidate_insert AFTER INSERT ON participant_intervals
BEGIN
    DELETE FROM session_attendance_refreshes WHERE session_id = NEW.session_id;
END""",
        """CREATE TRIGGER trg_participant_intervals_invalidate_update AFTER UPDATE ON participant_intervals
BEGIN
    DELETE FROM session_attendance_refreshes WHERE session_id = NEW.session_id;
    DELETE FROM session_attendance_refreshes WHERE session_id = OLD.session_id;
END""",
        """CREATE TRIGGER trg_participant_intervals_invalidate_delete AFTER DELETE ON participant_intervals
BEGIN
    DELETE FROM session_attendance_refreshes WHERE session_id = OLD.session_id;
END""",
        """CREATE TRIGGER trg_sessions_invalidate_insert AFTER INSERT ON sessions
BEGIN
    DELETE FROM session_attendance_refreshes WHERE session_id = NEW.session_id;
END""",
        """CREATE TRIGGER trg_sessions_invalidate_delete AFTER DELETE ON sessions
BEGIN
    DELETE FROM session_attendance_refreshes WHERE session_id = OLD.session_id;
END""",
        """CREATE TRIGGER trg_sessions_invalidate_update AFTER UPDATE ON sessions
WHEN OLD.session_id IS NOT NEW.session_id OR OLD.started_at IS NOT NEW.started_at OR OLD.ended_at IS NOT NEW.ended_at
BEGIN
    DELETE FROM session_attendance_refreshes WHERE session_id = NEW.session_id;
    DELETE FROM session_attendance_refreshes WHERE session_id = OLD.session_id;
END""",
    ),
    "postgresql": (
        """CREATE OR REPLACE FUNCTION receiver_invalidate_interval_sessions() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        PERFORM pg_advisory_xact_lock_shared(74010, hashtext(session_id))
            FROM (SELECT DISTINCT session_id FROM new_rows) changed ORDER BY session_id;
        DELETE FROM session_attendance_refreshes WHERE session_id IN (SELECT session_id FROM new_rows);
    ELSIF TG_OP = 'DELETE' THEN
        PERFORM pg_advisory_xact_lock_shared(74010, hashtext(session_id))
            FROM (SELECT DISTINCT session_id FROM old_rows) changed ORDER BY session_id;
        DELETE FROM session_attendance_refreshes WHERE session_id IN (SELECT session_id FROM old_rows);
    ELSE
        PERFORM pg_advisory_xact_lock_shared(74010, hashtext(session_id))
            FROM (SELECT DISTINCT session_id FROM (SELECT session_id FROM old_rows UNION SELECT session_id FROM new_rows) both_sides) changed ORDER BY session_id;
        DELETE FROM session_attendance_refreshes WHERE session_id IN (SELECT session_id FROM (SELECT session_id FROM old_rows UNION SELECT session_id FROM new_rows) both_sides);
    END IF;
    RETURN NULL;
END
$$""",
        """CREATE OR REPLACE FUNCTION receiver_invalidate_session() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        PERFORM pg_advisory_xact_lock_shared(74010, hashtext(NEW.session_id));
        DELETE FROM session_attendance_refreshes WHERE session_id = NEW.session_id;
    ELSIF TG_OP = 'DELETE' THEN
        PERFORM pg_advisory_xact_lock_shared(74010, hashtext(OLD.session_id));
        DELETE FROM session_attendance_refreshes WHERE session_id = OLD.session_id;
    ELSE
        PERFORM pg_advisory_xact_lock_shared(74010, hashtext(OLD.session_id));
        DELETE FROM session_attendance_refreshes WHERE session_id = OLD.session_id;
        IF OLD.session_id <> NEW.session_id THEN
            PERFORM pg_advisory_xact_lock_shared(74010, hashtext(NEW.session_id));
        DELETE FROM session_attendance_refreshes WHERE session_id = NEW.session_id;
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
        """CREATE TRIGGER trg_sessions_invalidate_update AFTER UPDATE ON sessions
    FOR EACH ROW WHEN (OLD.session_id IS DISTINCT FROM NEW.session_id OR OLD.started_at IS DISTINCT FROM NEW.started_at OR OLD.ended_at IS DISTINCT FROM NEW.ended_at) EXECUTE FUNCTION receiver_invalidate_session()""",
        """CREATE TRIGGER trg_sessions_invalidate_truncate AFTER TRUNCATE ON sessions
    FOR EACH STATEMENT EXECUTE FUNCTION receiver_invalidate_all_sessions()""",
    ),
}

# What downgrade drops: the triggers, then (PostgreSQL) their functions.
DROP_TRIGGERS = {
    "sqlite": (
        "DROP TRIGGER IF EXISTS trg_participant_intervals_invalidate_insert",
        "DROP TRIGGER IF EXISTS trg_participant_intervals_invalidate_update",
        "DROP TRIGGER IF EXISTS trg_participant_intervals_invalidate_delete",
        "DROP TRIGGER IF EXISTS trg_sessions_invalidate_insert",
        "DROP TRIGGER IF EXISTS trg_sessions_invalidate_delete",
        "DROP TRIGGER IF EXISTS trg_sessions_invalidate_update",
    ),
    "postgresql": (
        "DROP TRIGGER IF EXISTS trg_participant_intervals_invalidate_insert ON participant_intervals",
        "DROP TRIGGER IF EXISTS trg_participant_intervals_invalidate_update ON participant_intervals",
        "DROP TRIGGER IF EXISTS trg_participant_intervals_invalidate_delete ON participant_intervals",
        "DROP TRIGGER IF EXISTS trg_participant_intervals_invalidate_truncate ON participant_intervals",
        "DROP TRIGGER IF EXISTS trg_sessions_invalidate_insert_delete ON sessions",
        "DROP TRIGGER IF EXISTS trg_sessions_invalidate_update ON sessions",
        "DROP TRIGGER IF EXISTS trg_sessions_invalidate_truncate ON sessions",
        "DROP FUNCTION IF EXISTS receiver_invalidate_interval_sessions()",
        "DROP FUNCTION IF EXISTS receiver_invalidate_session()",
        "DROP FUNCTION IF EXISTS receiver_invalidate_all_sessions()",
    ),
}
