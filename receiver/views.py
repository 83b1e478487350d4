"""Stable SQL views for analysts, identical on SQLite and PostgreSQL (docs/schema.md).

Five views, created by migration ``0003`` (:func:`create_views`):

* ``attendance_intervals`` - one row per peer interval, as counted;
* ``attendance`` - one row per person per session, the numbers of
  :func:`receiver.reports.attendance_report` computed in SQL (the union of a
  person's intervals is a gaps-and-islands window query);
* ``sessions_summary`` - one row per session, with peak concurrency (a
  running sum over +1/-1 events, leaves before joins at equal times);
* ``recording_index`` - the ``recordings`` table with the columns of
  :data:`receiver.reports.RECORDING_COLUMNS` (the name ``recordings`` is taken
  by the table);
* ``daily_usage`` - per UTC day of session start.

Representation, the same on both databases so rows compare equal:

* timestamps are UTC text ``YYYY-MM-DDTHH:MM:SS.ffffffZ`` (fixed width: they
  sort and compare as text); days are ``YYYY-MM-DD``;
* durations are seconds (float, rounded to 3 decimals = milliseconds),
  minutes only where the column name says so; ratios are rounded to 4
  decimals (as :mod:`receiver.attendance` rounds them);
* flags are booleans (PostgreSQL ``boolean``; SQLite has none and gives 1/0).

Sessions still live (``ended_at`` unknown) have no end to close open
intervals at: a view uses the leaves known so far, open intervals count
nothing, and ``attendance_ratio`` is NULL. (``attendance_report`` instead
measures a live session up to "now"; the two agree on ended sessions.)

Date/time arithmetic differs per dialect and is written once here:
SQLite stores SQLAlchemy's ``YYYY-MM-DD HH:MM:SS.ffffff`` text (epoch seconds
via ``strftime('%s')`` plus the microseconds; ``julianday`` would round to
milliseconds), PostgreSQL ``timestamptz`` (``EXTRACT(EPOCH ...)``, exact).
"""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.engine import Connection

__all__ = ["VIEW_NAMES", "view_statements", "drop_statements", "create_views", "drop_views"]

# Creation order (daily_usage reads attendance); dropped in reverse.
VIEW_NAMES = ("attendance_intervals", "attendance", "sessions_summary", "recording_index", "daily_usage")


class _Dialect:
    """SQL fragments whose spelling differs between SQLite and PostgreSQL."""

    def __init__(self, name: str) -> None:
        if name not in ("sqlite", "postgresql"):
            raise ValueError(f"views are written for sqlite and postgresql, not {name!r}")
        self.name = name

    @property
    def pg(self) -> bool:
        return self.name == "postgresql"

    def epoch(self, ts: str) -> str:
        """Seconds since 1970-01-01 UTC, microseconds kept (NULL stays NULL)."""
        if self.pg:
            return f"CAST(EXTRACT(EPOCH FROM {ts}) AS numeric)"
        # Whole seconds of the first 19 characters (strftime would round .9995+ up
        # to the next second), then the microsecond digits, zero-padded.
        return (
            f"(CAST(strftime('%s', substr({ts}, 1, 19)) AS INTEGER)"
            f" + CAST(substr(substr({ts}, 21) || '000000', 1, 6) AS INTEGER) / 1000000.0)"
        )

    def iso(self, ts: str) -> str:
        """``YYYY-MM-DDTHH:MM:SS.ffffffZ`` (UTC) text."""
        if self.pg:
            return f"""to_char({ts} AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')"""
        return (
            f"(substr({ts}, 1, 10) || 'T' || substr({ts}, 12, 8) || '.'"
            f" || substr(substr({ts}, 21) || '000000', 1, 6) || 'Z')"
        )

    def day(self, ts: str) -> str:
        """The UTC date ``YYYY-MM-DD`` of a timestamp."""
        if self.pg:
            return f"to_char({ts} AT TIME ZONE 'UTC', 'YYYY-MM-DD')"
        return f"substr({ts}, 1, 10)"

    def round(self, expr: str, digits: int) -> str:
        """``expr`` rounded to ``digits`` decimals, as a float."""
        if self.pg:
            return f"CAST(ROUND(CAST({expr} AS numeric), {digits}) AS double precision)"
        return f"ROUND({expr}, {digits})"

    def any_true(self, condition: str) -> str:
        """Aggregate: is ``condition`` true for some row of the group (false for none)."""
        if self.pg:
            return f"COALESCE(BOOL_OR({condition}), FALSE)"
        return f"COALESCE(MAX(CASE WHEN {condition} THEN 1 ELSE 0 END), 0)"


def _spans_cte(d: _Dialect) -> str:
    """CTEs ``base`` .. ``spans``: every interval of a known session, as counted.

    Mirrors :func:`receiver.attendance._effective_span`: no join time means no
    span; an open interval ends at the session end (none while live); the span
    is clipped to the session bounds and never negative. ``*_ts`` columns are
    raw timestamps (for output), ``*_ep`` the same instants in epoch seconds
    (for arithmetic and comparisons).
    """
    return f"""
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
        {d.epoch('i.joined_at')} AS joined_ep,
        {d.epoch('i.left_at')} AS left_ep,
        {d.epoch('s.started_at')} AS ss_ep,
        {d.epoch('s.ended_at')} AS se_ep
    FROM participant_intervals i
    JOIN sessions s ON s.session_id = i.session_id
),
ends AS (
    SELECT b.*, COALESCE(b.left_at, b.session_ended_at) AS end_ts
    FROM base b
),
clipped AS (
    SELECT
        e.*,
        COALESCE(e.left_ep, e.se_ep) AS end_ep,
        (e.joined_at IS NOT NULL AND e.end_ts IS NOT NULL) AS has_span,
        CASE WHEN e.left_at IS NULL THEN TRUE ELSE e.closed_flag END AS closed_eff,
        CASE WHEN e.ss_ep IS NOT NULL AND e.joined_ep < e.ss_ep THEN e.session_started_at ELSE e.joined_at END
            AS start_ts,
        CASE WHEN e.ss_ep IS NOT NULL AND e.joined_ep < e.ss_ep THEN e.ss_ep ELSE e.joined_ep END AS start_ep
    FROM ends e
),
bounded AS (
    SELECT
        c.*,
        CASE WHEN c.se_ep IS NOT NULL AND c.end_ep > c.se_ep THEN c.session_ended_at ELSE c.end_ts END AS end0_ts,
        CASE WHEN c.se_ep IS NOT NULL AND c.end_ep > c.se_ep THEN c.se_ep ELSE c.end_ep END AS end0_ep
    FROM clipped c
),
spans AS (
    SELECT
        b.*,
        CASE WHEN b.end0_ep < b.start_ep THEN b.start_ts ELSE b.end0_ts END AS span_end_ts,
        CASE WHEN b.end0_ep < b.start_ep THEN b.start_ep ELSE b.end0_ep END AS span_end_ep
    FROM bounded b
)"""


def _attendance_intervals(d: _Dialect) -> str:
    # left_at of an open interval: the session end, or the join when that is
    # later (as receiver.processing.close_open_intervals writes it).
    return f"""CREATE VIEW attendance_intervals AS
WITH {_spans_cte(d)}
SELECT
    session_id,
    meeting_id,
    participant_key,
    peer_id,
    display_name,
    {d.iso('joined_at')} AS joined_at,
    {d.iso('''CASE
        WHEN left_at IS NOT NULL THEN left_at
        WHEN joined_ep IS NOT NULL AND se_ep IS NOT NULL AND joined_ep > se_ep THEN joined_at
        ELSE session_ended_at
    END''')} AS left_at,
    CASE WHEN has_span THEN {d.round('span_end_ep - start_ep', 3)} END AS duration_seconds,
    source,
    CASE WHEN has_span THEN closed_eff ELSE closed_flag END AS closed_at_session_end
FROM spans"""


def _attendance(d: _Dialect) -> str:
    return f"""CREATE VIEW attendance AS
WITH {_spans_cte(d)},
positive AS (
    SELECT id, session_id, participant_key, start_ep AS s, span_end_ep AS e
    FROM spans
    WHERE has_span AND span_end_ep > start_ep
),
marked AS (
    SELECT
        p.*,
        MAX(p.e) OVER (
            PARTITION BY p.session_id, p.participant_key ORDER BY p.s, p.e, p.id
            ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING
        ) AS reach
    FROM positive p
),
islands AS (
    SELECT
        m.*,
        SUM(CASE WHEN m.reach IS NULL OR m.s > m.reach THEN 1 ELSE 0 END) OVER (
            PARTITION BY m.session_id, m.participant_key ORDER BY m.s, m.e, m.id
            ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW
        ) AS island
    FROM marked m
),
island_lengths AS (
    SELECT session_id, participant_key, island, MAX(e) - MIN(s) AS seconds
    FROM islands
    GROUP BY session_id, participant_key, island
),
attended AS (
    SELECT session_id, participant_key, SUM(seconds) AS seconds
    FROM island_lengths
    GROUP BY session_id, participant_key
),
named AS (
    SELECT
        session_id,
        participant_key,
        display_name,
        ROW_NUMBER() OVER (
            PARTITION BY session_id, participant_key
            ORDER BY CASE WHEN joined_ep IS NULL THEN 1 ELSE 0 END, joined_ep, id
        ) AS position
    FROM spans
    WHERE display_name IS NOT NULL AND display_name <> ''
),
first_seen AS (
    SELECT session_id, participant_key, display_name, MIN(position) AS position
    FROM named
    GROUP BY session_id, participant_key, display_name
),
latest_name AS (
    SELECT session_id, participant_key, display_name
    FROM (
        SELECT
            f.*,
            ROW_NUMBER() OVER (PARTITION BY f.session_id, f.participant_key ORDER BY f.position DESC) AS newest
        FROM first_seen f
    ) ranked
    WHERE newest = 1
),
people AS (
    SELECT
        session_id,
        participant_key,
        MIN(joined_at) AS first_joined_ts,
        MAX(CASE WHEN has_span THEN span_end_ts END) AS last_left_ts,
        COUNT(*) AS join_count,
        {d.any_true('has_span AND closed_eff')} AS closed_at_session_end,
        MIN(source) AS min_source,
        MAX(source) AS max_source
    FROM spans
    GROUP BY session_id, participant_key
),
bounds AS (
    SELECT
        session_id,
        meeting_id,
        reconciled_at,
        CASE
            WHEN started_at IS NULL OR ended_at IS NULL THEN NULL
            WHEN {d.epoch('ended_at')} > {d.epoch('started_at')} THEN {d.epoch('ended_at')} - {d.epoch('started_at')}
            ELSE 0
        END AS duration
    FROM sessions
)
SELECT
    p.session_id,
    b.meeting_id,
    p.participant_key,
    n.display_name,
    {d.iso('p.first_joined_ts')} AS first_joined_at,
    {d.iso('p.last_left_ts')} AS last_left_at,
    {d.round('COALESCE(a.seconds, 0)', 3)} AS attended_seconds,
    p.join_count,
    CASE WHEN b.duration > 0 THEN {d.round('COALESCE(a.seconds, 0) / b.duration', 4)} END AS attendance_ratio,
    p.closed_at_session_end,
    CASE
        WHEN p.min_source = 'webhook' AND p.max_source = 'webhook' THEN 'webhook'
        WHEN p.min_source = 'api' AND p.max_source = 'api' THEN 'api'
        ELSE 'both'
    END AS provenance,
    (b.reconciled_at IS NOT NULL) AS session_reconciled
FROM people p
JOIN bounds b ON b.session_id = p.session_id
LEFT JOIN attended a ON a.session_id = p.session_id AND a.participant_key = p.participant_key
LEFT JOIN latest_name n ON n.session_id = p.session_id AND n.participant_key = p.participant_key"""


def _sessions_summary(d: _Dialect) -> str:
    return f"""CREATE VIEW sessions_summary AS
WITH peer_spans AS (
    SELECT
        i.session_id,
        {d.epoch('i.joined_at')} AS s,
        {d.epoch('COALESCE(i.left_at, x.ended_at)')} AS e
    FROM participant_intervals i
    JOIN sessions x ON x.session_id = i.session_id
    WHERE i.joined_at IS NOT NULL AND COALESCE(i.left_at, x.ended_at) IS NOT NULL
),
changes AS (
    SELECT session_id, s AS t, 1 AS delta FROM peer_spans WHERE e > s
    UNION ALL
    SELECT session_id, e AS t, -1 AS delta FROM peer_spans WHERE e > s
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
    {d.iso('s.started_at')} AS started_at,
    {d.iso('s.ended_at')} AS ended_at,
    CASE WHEN s.started_at IS NOT NULL AND s.ended_at IS NOT NULL
        THEN {d.round(f"{d.epoch('s.ended_at')} - {d.epoch('s.started_at')}", 3)} END AS duration_seconds,
    COALESCE(c.participants, 0) AS participants,
    COALESCE(c.peers, 0) AS peers,
    COALESCE(p.peak, 0) AS peak_concurrency,
    (s.reconciled_at IS NOT NULL) AS reconciled
FROM sessions s
LEFT JOIN meetings m ON m.meeting_id = s.meeting_id
LEFT JOIN counts c ON c.session_id = s.session_id
LEFT JOIN peaks p ON p.session_id = s.session_id"""


def _recording_index(d: _Dialect) -> str:
    return f"""CREATE VIEW recording_index AS
SELECT
    recording_id,
    meeting_id,
    session_id,
    status,
    {d.iso('started_at')} AS started_at,
    {d.iso('stopped_at')} AS stopped_at,
    duration_seconds,
    file_size_bytes,
    output_file_name,
    download_url,
    {d.iso('download_url_expires_at')} AS download_url_expires_at,
    audio_download_url
FROM recordings"""


def _daily_usage(d: _Dialect) -> str:
    return f"""CREATE VIEW daily_usage AS
WITH session_days AS (
    SELECT session_id, {d.day('started_at')} AS day FROM sessions WHERE started_at IS NOT NULL
),
recording_days AS (
    SELECT {d.day('started_at')} AS day, duration_seconds FROM recordings WHERE started_at IS NOT NULL
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
    {d.round('COALESCE(att.seconds, 0) / 60.0', 3)} AS participant_minutes,
    {d.round('COALESCE(rc.seconds, 0) / 60.0', 3)} AS recorded_minutes
FROM days
LEFT JOIN session_counts sc ON sc.day = days.day
LEFT JOIN attended att ON att.day = days.day
LEFT JOIN recorded rc ON rc.day = days.day"""


def view_statements(dialect_name: str) -> list[str]:
    """``CREATE VIEW`` statements for ``dialect_name`` (``sqlite`` or ``postgresql``), in creation order."""
    d = _Dialect(dialect_name)
    return [
        _attendance_intervals(d),
        _attendance(d),
        _sessions_summary(d),
        _recording_index(d),
        _daily_usage(d),
    ]


def drop_statements() -> list[str]:
    """``DROP VIEW IF EXISTS`` statements, dependents first (valid on both dialects)."""
    return [f"DROP VIEW IF EXISTS {name}" for name in reversed(VIEW_NAMES)]


def create_views(connection: Connection) -> None:
    """(Re)create every view on ``connection`` (drops existing ones first), in its transaction."""
    drop_views(connection)
    for statement in view_statements(connection.dialect.name):
        connection.execute(text(statement))


def drop_views(connection: Connection) -> None:
    """Drop every view on ``connection`` (missing views are fine)."""
    for statement in drop_statements():
        connection.execute(text(statement))
