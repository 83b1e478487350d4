"""analyst views

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-24

Creates the read-only SQL views documented in docs/schema.md:
attendance_intervals, attendance, sessions_summary, recording_index and
daily_usage, one spelling per dialect (SQLite, PostgreSQL).

The SQL below is frozen: a byte-exact copy of what
``receiver.views.view_statements(dialect)`` generated when this revision
was written (commit d57cb1d), so this revision creates the same views
whatever the code does later. Never edit it. A change to a view ships as a
new revision that carries its own copy (drop the changed views and their
dependents, create the new SQL; its downgrade restores the SQL of the
revision before it). ``tests/db/test_migrations.py`` checks that the views
of the head revision equal what :mod:`receiver.db.views` generates today.
"""

from __future__ import annotations

from alembic import op


revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    for statement in VIEWS[_dialect()].values():  # creation order: daily_usage reads attendance
        op.execute(statement)


def downgrade() -> None:
    for name in reversed(VIEWS[_dialect()]):  # dependents first
        op.execute(f"DROP VIEW IF EXISTS {name}")


def _dialect() -> str:
    name = op.get_context().dialect.name
    if name not in VIEWS:
        raise ValueError(f"revision 0003 has views for sqlite and postgresql, not {name!r}")
    return name


# CREATE VIEW statements per dialect and view name, in creation order
# (frozen at d57cb1d; whitespace is part of the copy).
VIEWS = {
    "sqlite": {
        "attendance_intervals": """CREATE VIEW attendance_intervals AS
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
    FROM participant_intervals i
    JOIN sessions s ON s.session_id = i.session_id
),
spans AS (
    SELECT
        b.*,
        CASE WHEN b.has_span THEN max(b.end_ts, b.start_ts) END AS span_end_ts
    FROM base b
)
SELECT
    session_id,
    meeting_id,
    participant_key,
    peer_id,
    display_name,
    (substr(joined_at, 1, 10) || 'T' || substr(joined_at, 12, 8) || '.' || substr(substr(joined_at, 21) || '000000', 1, 6) || 'Z') AS joined_at,
    (substr(CASE WHEN left_at IS NOT NULL THEN left_at WHEN joined_at IS NOT NULL AND session_ended_at IS NOT NULL THEN max(joined_at, session_ended_at) ELSE session_ended_at END, 1, 10) || 'T' || substr(CASE WHEN left_at IS NOT NULL THEN left_at WHEN joined_at IS NOT NULL AND session_ended_at IS NOT NULL THEN max(joined_at, session_ended_at) ELSE session_ended_at END, 12, 8) || '.' || substr(substr(CASE WHEN left_at IS NOT NULL THEN left_at WHEN joined_at IS NOT NULL AND session_ended_at IS NOT NULL THEN max(joined_at, session_ended_at) ELSE session_ended_at END, 21) || '000000', 1, 6) || 'Z') AS left_at,
    CASE WHEN has_span THEN ROUND((CAST(strftime('%s', substr(span_end_ts, 1, 19)) AS INTEGER) + CAST(substr(substr(span_end_ts, 21) || '000000', 1, 6) AS INTEGER) / 1000000.0) - (CAST(strftime('%s', substr(start_ts, 1, 19)) AS INTEGER) + CAST(substr(substr(start_ts, 21) || '000000', 1, 6) AS INTEGER) / 1000000.0), 3) END AS duration_seconds,
    source,
    CASE WHEN has_span THEN closed_eff ELSE closed_flag END AS closed_at_session_end
FROM spans""",
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
    FROM participant_intervals i
    JOIN sessions s ON s.session_id = i.session_id
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
FROM measured""",
        "sessions_summary": """CREATE VIEW sessions_summary AS
WITH peer_spans AS (
    SELECT i.session_id, i.joined_at AS s, COALESCE(i.left_at, x.ended_at) AS e
    FROM participant_intervals i
    JOIN sessions x ON x.session_id = i.session_id
    WHERE i.joined_at IS NOT NULL AND COALESCE(i.left_at, x.ended_at) > i.joined_at
),
changes AS (
    SELECT session_id, s AS t, 1 AS delta FROM peer_spans
    UNION ALL
    SELECT session_id, e AS t, -1 AS delta FROM peer_spans
),
levels AS (
    SELECT
        session_id,
        SUM(delta) OVER (
            PARTITION BY session_id ORDER BY t, delta
            ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW
        ) AS level
    FROM changes
),
peaks AS (
    SELECT session_id, MAX(level) AS peak FROM levels GROUP BY session_id
),
counts AS (
    SELECT session_id, COUNT(DISTINCT participant_key) AS participants, COUNT(*) AS peers
    FROM participant_intervals
    GROUP BY session_id
)
SELECT
    s.meeting_id,
    m.title AS meeting_title,
    s.session_id,
    (substr(s.started_at, 1, 10) || 'T' || substr(s.started_at, 12, 8) || '.' || substr(substr(s.started_at, 21) || '000000', 1, 6) || 'Z') AS started_at,
    (substr(s.ended_at, 1, 10) || 'T' || substr(s.ended_at, 12, 8) || '.' || substr(substr(s.ended_at, 21) || '000000', 1, 6) || 'Z') AS ended_at,
    CASE WHEN s.started_at IS NOT NULL AND s.ended_at IS NOT NULL
        THEN ROUND((CAST(strftime('%s', substr(s.ended_at, 1, 19)) AS INTEGER) + CAST(substr(substr(s.ended_at, 21) || '000000', 1, 6) AS INTEGER) / 1000000.0) - (CAST(strftime('%s', substr(s.started_at, 1, 19)) AS INTEGER) + CAST(substr(substr(s.started_at, 21) || '000000', 1, 6) AS INTEGER) / 1000000.0), 3) END AS duration_seconds,
    COALESCE(c.participants, 0) AS participants,
    COALESCE(c.peers, 0) AS peers,
    COALESCE(p.peak, 0) AS peak_concurrency,
    (s.reconciled_at IS NOT NULL) AS reconciled
FROM sessions s
LEFT JOIN meetings m ON m.meeting_id = s.meeting_id
LEFT JOIN counts c ON c.session_id = s.session_id
LEFT JOIN peaks p ON p.session_id = s.session_id""",
        "recording_index": """CREATE VIEW recording_index AS
SELECT
    recording_id,
    meeting_id,
    session_id,
    status,
    (substr(started_at, 1, 10) || 'T' || substr(started_at, 12, 8) || '.' || substr(substr(started_at, 21) || '000000', 1, 6) || 'Z') AS started_at,
    (substr(stopped_at, 1, 10) || 'T' || substr(stopped_at, 12, 8) || '.' || substr(substr(stopped_at, 21) || '000000', 1, 6) || 'Z') AS stopped_at,
    duration_seconds,
    file_size_bytes,
    output_file_name,
    download_url,
    (substr(download_url_expires_at, 1, 10) || 'T' || substr(download_url_expires_at, 12, 8) || '.' || substr(substr(download_url_expires_at, 21) || '000000', 1, 6) || 'Z') AS download_url_expires_at,
    audio_download_url
FROM recordings""",
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
        "attendance_intervals": """CREATE VIEW attendance_intervals AS
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
    FROM participant_intervals i
    JOIN sessions s ON s.session_id = i.session_id
),
spans AS (
    SELECT
        b.*,
        CASE WHEN b.has_span THEN GREATEST(b.end_ts, b.start_ts) END AS span_end_ts
    FROM base b
)
SELECT
    session_id,
    meeting_id,
    participant_key,
    peer_id,
    display_name,
    to_char((joined_at) AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') AS joined_at,
    to_char((CASE WHEN left_at IS NOT NULL THEN left_at WHEN joined_at IS NOT NULL AND session_ended_at IS NOT NULL THEN GREATEST(joined_at, session_ended_at) ELSE session_ended_at END) AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') AS left_at,
    CASE WHEN has_span THEN CAST(ROUND(CAST(CAST(EXTRACT(EPOCH FROM span_end_ts) AS numeric) - CAST(EXTRACT(EPOCH FROM start_ts) AS numeric) AS numeric), 3) AS double precision) END AS duration_seconds,
    source,
    CASE WHEN has_span THEN closed_eff ELSE closed_flag END AS closed_at_session_end
FROM spans""",
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
    FROM participant_intervals i
    JOIN sessions s ON s.session_id = i.session_id
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
FROM measured""",
        "sessions_summary": """CREATE VIEW sessions_summary AS
WITH peer_spans AS (
    SELECT i.session_id, i.joined_at AS s, COALESCE(i.left_at, x.ended_at) AS e
    FROM participant_intervals i
    JOIN sessions x ON x.session_id = i.session_id
    WHERE i.joined_at IS NOT NULL AND COALESCE(i.left_at, x.ended_at) > i.joined_at
),
changes AS (
    SELECT session_id, s AS t, 1 AS delta FROM peer_spans
    UNION ALL
    SELECT session_id, e AS t, -1 AS delta FROM peer_spans
),
levels AS (
    SELECT
        session_id,
        SUM(delta) OVER (
            PARTITION BY session_id ORDER BY t, delta
            ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW
        ) AS level
    FROM changes
),
peaks AS (
    SELECT session_id, MAX(level) AS peak FROM levels GROUP BY session_id
),
counts AS (
    SELECT session_id, COUNT(DISTINCT participant_key) AS participants, COUNT(*) AS peers
    FROM participant_intervals
    GROUP BY session_id
)
SELECT
    s.meeting_id,
    m.title AS meeting_title,
    s.session_id,
    to_char((s.started_at) AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') AS started_at,
    to_char((s.ended_at) AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') AS ended_at,
    CASE WHEN s.started_at IS NOT NULL AND s.ended_at IS NOT NULL
        THEN CAST(ROUND(CAST(CAST(EXTRACT(EPOCH FROM s.ended_at) AS numeric) - CAST(EXTRACT(EPOCH FROM s.started_at) AS numeric) AS numeric), 3) AS double precision) END AS duration_seconds,
    COALESCE(c.participants, 0) AS participants,
    COALESCE(c.peers, 0) AS peers,
    COALESCE(p.peak, 0) AS peak_concurrency,
    (s.reconciled_at IS NOT NULL) AS reconciled
FROM sessions s
LEFT JOIN meetings m ON m.meeting_id = s.meeting_id
LEFT JOIN counts c ON c.session_id = s.session_id
LEFT JOIN peaks p ON p.session_id = s.session_id""",
        "recording_index": """CREATE VIEW recording_index AS
SELECT
    recording_id,
    meeting_id,
    session_id,
    status,
    to_char((started_at) AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') AS started_at,
    to_char((stopped_at) AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') AS stopped_at,
    duration_seconds,
    file_size_bytes,
    output_file_name,
    download_url,
    to_char((download_url_expires_at) AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') AS download_url_expires_at,
    audio_download_url
FROM recordings""",
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
