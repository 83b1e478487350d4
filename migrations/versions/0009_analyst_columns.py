"""analyst columns on the attendance view

Revision ID: 0009
Revises: 0005
Create Date: 2026-12-07

The view ``attendance`` gains the analysts' columns of issue #21, after its
existing ones (docs/schema.md, "attendance"): ``meeting_title``,
``preset_name`` (the preset most of the person's peers had; a tie goes to
the later peer), ``is_guest`` (no peer carried a custom participant id),
``custom_participant_id``, ``user_id`` (the value most peers carried) and
``attended_minutes`` (attended_seconds / 60, half up to a tenth), the rules
of :mod:`receiver.reports.analyst_columns`. ``daily_usage`` reads
``attendance``, so it is dropped and recreated around it (same SQL as 0004).
No table changes; on PostgreSQL the analyst role reads the recreated views
through the default privileges of 0006.

Downgrade restores the ``0004`` SQL of both views (read from revision 0004,
which is frozen too).

The SQL below is frozen: a byte-exact copy of what ``receiver.db.views``
generated when this revision was written (``view_statements(dialect,
summary=True)``). Never edit it: a later change ships as a new revision.
``tests/db/test_migrations.py`` checks that the head revision's views equal
what :mod:`receiver.db.views` generates today.
"""

from __future__ import annotations

from alembic import context, op

revision = "0009"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    dialect = _dialect()
    _drop_replaced_views()
    for statement in VIEWS[dialect].values():
        op.execute(statement)


def downgrade() -> None:
    dialect = _dialect()
    _drop_replaced_views()
    views_0004 = context.script.get_revision("0004").module.VIEWS[dialect]
    for name in VIEWS[dialect]:
        op.execute(views_0004[name])


def _drop_replaced_views() -> None:
    """Drop ``daily_usage`` (it reads ``attendance``), then ``attendance``."""
    op.execute("DROP VIEW IF EXISTS daily_usage")
    op.execute("DROP VIEW IF EXISTS attendance")


def _dialect() -> str:
    name = op.get_context().dialect.name
    if name not in VIEWS:
        raise ValueError(f"revision 0009 has views for sqlite and postgresql, not {name!r}")
    return name


# The two replaced views per dialect, in creation order (whitespace is part of the copy).
VIEWS = {
    "sqlite": {
        "attendance": """CREATE VIEW attendance AS
SELECT
    a.*,
    m.title AS meeting_title,
    (SELECT i.preset_name FROM participant_intervals i
        WHERE i.session_id = a.session_id AND i.participant_key = a.participant_key AND i.preset_name <> ''
        GROUP BY i.preset_name ORDER BY COUNT(*) DESC, MAX(i.id) DESC LIMIT 1) AS preset_name,
    (NOT EXISTS (SELECT 1 FROM participant_intervals i
        WHERE i.session_id = a.session_id AND i.participant_key = a.participant_key
        AND i.custom_participant_id <> '')) AS is_guest,
    (SELECT i.custom_participant_id FROM participant_intervals i
        WHERE i.session_id = a.session_id AND i.participant_key = a.participant_key AND i.custom_participant_id <> ''
        GROUP BY i.custom_participant_id ORDER BY COUNT(*) DESC, MAX(i.id) DESC LIMIT 1) AS custom_participant_id,
    (SELECT i.user_id FROM participant_intervals i
        WHERE i.session_id = a.session_id AND i.participant_key = a.participant_key AND i.user_id <> ''
        GROUP BY i.user_id ORDER BY COUNT(*) DESC, MAX(i.id) DESC LIMIT 1) AS user_id,
    CAST((CAST(ROUND(a.attended_seconds * 1000) AS INTEGER) + 3000) / 6000 AS REAL) / 10 AS attended_minutes
FROM (WITH 
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
        WHERE r.session_id = s.session_id AND s.ended_at IS NOT NULL)) a
LEFT JOIN meetings m ON m.meeting_id = a.meeting_id""",
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
SELECT
    a.*,
    m.title AS meeting_title,
    (SELECT i.preset_name FROM participant_intervals i
        WHERE i.session_id = a.session_id AND i.participant_key = a.participant_key AND i.preset_name <> ''
        GROUP BY i.preset_name ORDER BY COUNT(*) DESC, MAX(i.id) DESC LIMIT 1) AS preset_name,
    (NOT EXISTS (SELECT 1 FROM participant_intervals i
        WHERE i.session_id = a.session_id AND i.participant_key = a.participant_key
        AND i.custom_participant_id <> '')) AS is_guest,
    (SELECT i.custom_participant_id FROM participant_intervals i
        WHERE i.session_id = a.session_id AND i.participant_key = a.participant_key AND i.custom_participant_id <> ''
        GROUP BY i.custom_participant_id ORDER BY COUNT(*) DESC, MAX(i.id) DESC LIMIT 1) AS custom_participant_id,
    (SELECT i.user_id FROM participant_intervals i
        WHERE i.session_id = a.session_id AND i.participant_key = a.participant_key AND i.user_id <> ''
        GROUP BY i.user_id ORDER BY COUNT(*) DESC, MAX(i.id) DESC LIMIT 1) AS user_id,
    CAST((CAST(ROUND(a.attended_seconds * 1000) AS INTEGER) + 3000) / 6000 AS double precision) / 10 AS attended_minutes
FROM (WITH 
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
        WHERE r.session_id = s.session_id AND s.ended_at IS NOT NULL)) a
LEFT JOIN meetings m ON m.meeting_id = a.meeting_id""",
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
