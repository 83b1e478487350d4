"""Stable SQL views for analysts, identical on SQLite and PostgreSQL (docs/schema.md).

Five views. Migrations ``0003`` and ``0004`` carry this SQL frozen as it was
when they were written; a test keeps the head migration equal to
:func:`create_views`:

* ``attendance_intervals`` - one row per peer interval, as counted;
* ``attendance`` - one row per person per session, the numbers of
  :func:`receiver.reports.queries.attendance_report`: from ``session_attendance``
  for ended sessions whose precomputed rows are current (migration 0004),
  computed in SQL for the others (the union of a person's intervals is a
  gaps-and-islands window query);
* ``sessions_summary`` - one row per session, with peak concurrency (a
  running sum over +1/-1 events, leaves before joins at equal times);
* ``recording_index`` - the ``recordings`` table with the columns of
  :data:`receiver.reports.queries.RECORDING_COLUMNS` (the name ``recordings`` is taken
  by the table);
* ``daily_usage`` - per UTC day of session start.

Representation, the same on both databases so rows compare equal:

* timestamps are UTC text ``YYYY-MM-DDTHH:MM:SS.ffffffZ`` (fixed width: they
  sort and compare as text); days are ``YYYY-MM-DD``;
* durations are seconds (float, rounded to 3 decimals = milliseconds),
  minutes only where the column name says so; ratios are rounded to 4
  decimals (as :mod:`receiver.reports.attendance` rounds them);
* flags are booleans (PostgreSQL ``boolean``; SQLite has none and gives 1/0).

Sessions still live (``ended_at`` unknown) have no end to close open
intervals at: a view uses the leaves known so far, open intervals count
nothing, and ``attendance_ratio`` is NULL. (``attendance_report`` instead
measures a live session up to "now"; the two agree on ended sessions.)

Date/time arithmetic differs per dialect and is written once here
(:class:`_Dialect`). Timestamps are compared natively: PostgreSQL
``timestamptz``, and on SQLite the fixed-format UTC text SQLAlchemy writes
(``YYYY-MM-DD HH:MM:SS.ffffff``), whose text order is time order. Epoch
seconds, only where a duration is needed: PostgreSQL ``EXTRACT(EPOCH ...)``
(exact numeric), SQLite ``strftime('%s')`` of the whole seconds plus the
microsecond digits (``julianday`` would round to milliseconds).

Performance: each view is one pass of window functions and GROUP BYs, with
no joins between derived tables (SQLite would nest-loop those); about a
second on SQLite for 100,000 intervals. Window functions need SQLite 3.25+.
``attendance`` computes only sessions without current precomputed rows
(~1 s org-wide over 1,000,000 intervals on PostgreSQL when all are current).

Migration 0004 also installs the triggers of
:func:`receiver.db.triggers.trigger_statements`, which keep
``session_attendance_refreshes`` honest. Their names are re-exported here
because the migrations of ``migrations/versions`` import them from this
module.
"""

from __future__ import annotations

from sqlalchemy import inspect, text
from sqlalchemy.engine import Connection

# Re-exported for migrations 0003/0004, which import them from here.
from receiver.db.triggers import (
    ADVISORY_LOCK_CLASS,
    create_change_triggers,
    drop_change_triggers,
    drop_trigger_statements,
    trigger_statements,
)

__all__ = [
    "VIEW_NAMES",
    "view_statements",
    "drop_statements",
    "create_views",
    "drop_views",
    "ADVISORY_LOCK_CLASS",
    "trigger_statements",
    "drop_trigger_statements",
    "create_change_triggers",
    "drop_change_triggers",
]

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
            return f"""to_char(({ts}) AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')"""
        return (
            f"(substr({ts}, 1, 10) || 'T' || substr({ts}, 12, 8) || '.'"
            f" || substr(substr({ts}, 21) || '000000', 1, 6) || 'Z')"
        )

    def day(self, ts: str) -> str:
        """The UTC date ``YYYY-MM-DD`` of a timestamp."""
        if self.pg:
            return f"to_char(({ts}) AT TIME ZONE 'UTC', 'YYYY-MM-DD')"
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

    def greatest(self, a: str, b: str) -> str:
        """The later of two timestamps (callers make sure neither is NULL)."""
        return f"GREATEST({a}, {b})" if self.pg else f"max({a}, {b})"

    def least(self, a: str, b: str) -> str:
        """The earlier of two timestamps (callers make sure neither is NULL)."""
        return f"LEAST({a}, {b})" if self.pg else f"min({a}, {b})"

    def max_text(self, expr: str) -> str:
        """Aggregate: byte-wise greatest text (independent of the database collation)."""
        return f'MAX({expr} COLLATE "C")' if self.pg else f"MAX({expr})"

    def padded(self, number: str) -> str:
        """A non-negative integer as 10-digit text, so that text order is numeric order."""
        if self.pg:
            return f"lpad(CAST({number} AS text), 10, '0')"
        return f"printf('%010d', {number})"


def _spans_cte(d: _Dialect, stale_only: bool = False) -> str:
    """CTEs ``base`` and ``spans``: every interval of a known session, as counted.

    ``stale_only``: only sessions without current ``session_attendance`` rows
    (see :func:`_fresh_condition`); the others come from that table.

    Mirrors :func:`receiver.reports.attendance._effective_span`: no join time means no
    span (``has_span`` false); an open interval ends at the session end (no
    span while the session is live); the span ``[start_ts, span_end_ts]`` is
    clipped to the session bounds and never negative.
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
        s.reconciled_at AS session_reconciled_at,
        (i.joined_at IS NOT NULL AND COALESCE(i.left_at, s.ended_at) IS NOT NULL) AS has_span,
        CASE WHEN i.left_at IS NULL THEN TRUE ELSE i.closed_at_session_end END AS closed_eff,
        CASE WHEN i.joined_at IS NOT NULL
            THEN {d.greatest("i.joined_at", "COALESCE(s.started_at, i.joined_at)")} END AS start_ts,
        CASE WHEN COALESCE(i.left_at, s.ended_at) IS NOT NULL
            THEN {d.least("COALESCE(i.left_at, s.ended_at)", "COALESCE(s.ended_at, i.left_at)")} END AS end_ts
    FROM {_interval_source(d, stale_only)}
),
spans AS (
    SELECT
        b.*,
        CASE WHEN b.has_span THEN {d.greatest("b.end_ts", "b.start_ts")} END AS span_end_ts
    FROM base b
)"""


def _fresh_condition(d: _Dialect, session: str) -> str:
    """SQL condition: the session (alias ``session``, a ``sessions`` row) has current ``session_attendance`` rows.

    Current means: ended, with a ``session_attendance_refreshes`` row. The
    database triggers of :func:`trigger_statements` delete that row on every
    change of the session's intervals or bounds. (One plain EXISTS, ended
    check inside: PostgreSQL then estimates the stale sessions well, instead
    of a 50 % guess that made it JIT-compile the window query for a second.)
    """
    return f"""EXISTS (
        SELECT 1 FROM session_attendance_refreshes r
        WHERE r.session_id = {session}.session_id AND {session}.ended_at IS NOT NULL)"""


def _interval_source(d: _Dialect, stale_only: bool) -> str:
    """FROM clause (aliases ``i`` and ``s``) of the intervals to compute: all, or of stale sessions only."""
    if not stale_only:
        return "participant_intervals i\n    JOIN sessions s ON s.session_id = i.session_id"
    # SQLite: CROSS JOIN keeps sessions as the outer loop (few stale sessions,
    # then their intervals by index) instead of scanning every interval.
    join = "CROSS JOIN" if not d.pg else "JOIN"
    return (
        f"sessions s\n    {join} participant_intervals i ON i.session_id = s.session_id"
        f"\n    WHERE NOT {_fresh_condition(d, 's')}"
    )


def _attendance_intervals(d: _Dialect) -> str:
    # left_at of an open interval: the session end, or the join when that is
    # later (as receiver.processing.writes.close_open_intervals writes it).
    return f"""CREATE VIEW attendance_intervals AS
WITH {_spans_cte(d)}
SELECT
    session_id,
    meeting_id,
    participant_key,
    peer_id,
    display_name,
    {d.iso("joined_at")} AS joined_at,
    {d.iso(f"CASE WHEN left_at IS NOT NULL THEN left_at WHEN joined_at IS NOT NULL AND session_ended_at IS NOT NULL THEN {d.greatest('joined_at', 'session_ended_at')} ELSE session_ended_at END")} AS left_at,
    CASE WHEN has_span THEN {d.round(f"{d.epoch('span_end_ts')} - {d.epoch('start_ts')}", 3)} END AS duration_seconds,
    source,
    CASE WHEN has_span THEN closed_eff ELSE closed_flag END AS closed_at_session_end
FROM spans"""


def _attendance(d: _Dialect, summary: bool = False) -> str:
    # One pass: one window (one sort) over the interval rows, then GROUP BY
    # (person, name) and GROUP BY person. No joins between derived tables:
    # SQLite would nest-loop them.
    #
    # Union of a person's spans (gaps and islands): in join order (= start
    # order: clipping to the session start keeps it), ``reach`` is the
    # furthest end of the person's earlier spans. A span starting at or after
    # the reach opens a new island and counts whole; one starting inside the
    # current island counts only what it adds past the reach. Overlaps thus
    # count once (receiver.reports.attendance.union_seconds).
    #
    # display_name: of the distinct non-empty names in join order, the one
    # that first appeared last (receiver.reports.attendance: names[-1]); equal join
    # times are ordered by id. Arg-max via "10-digit position || name".
    return "CREATE VIEW attendance AS\n" + _with_analyst_columns(d, _attendance_rows(d, summary))


def _attendance_rows(d: _Dialect, summary: bool) -> str:
    """The ``SELECT`` of the attendance numbers (``ATTENDANCE_COLUMNS``): computed, and with ``summary`` the
    precomputed rows of current sessions (``UNION ALL``)."""
    person_in_join_order = (
        "PARTITION BY session_id, participant_key ORDER BY CASE WHEN joined_at IS NULL THEN 1 ELSE 0 END, joined_at, id"
    )
    return f"""WITH {_spans_cte(d, stale_only=summary)},
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
            {person_in_join_order}
            ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING
        ) AS reach,
        ROW_NUMBER() OVER ({person_in_join_order}) AS position
    FROM spans
),
counted AS (
    SELECT
        o.*,
        CASE
            WHEN NOT (o.has_span AND o.span_end_ts > o.start_ts) THEN 0
            WHEN o.reach IS NULL OR o.start_ts >= o.reach THEN {d.epoch("o.span_end_ts")} - {d.epoch("o.start_ts")}
            WHEN o.span_end_ts > o.reach THEN {d.epoch("o.span_end_ts")} - {d.epoch("o.reach")}
            ELSE 0
        END AS added_seconds
    FROM ordered o
),
by_name AS (
    SELECT
        session_id,
        participant_key,
        CASE WHEN display_name IS NOT NULL AND display_name <> ''
            THEN {d.padded("MIN(position)")} || display_name END AS ranked_name,
        MAX(meeting_id) AS meeting_id,
        MIN(joined_at) AS first_joined_ts,
        MAX(CASE WHEN has_span THEN span_end_ts END) AS last_left_ts,
        SUM(added_seconds) AS seconds,
        COUNT(*) AS join_count,
        {d.any_true("has_span AND closed_eff")} AS any_closed,
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
        substr({d.max_text("ranked_name")}, 11) AS display_name,
        MIN(first_joined_ts) AS first_joined_ts,
        MAX(last_left_ts) AS last_left_ts,
        SUM(seconds) AS seconds,
        CAST(SUM(join_count) AS INTEGER) AS join_count,
        {d.any_true("any_closed" if d.pg else "any_closed = 1")} AS closed_at_session_end,
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
                THEN {d.epoch("p.session_ended_at")} - {d.epoch("p.session_started_at")}
            ELSE 0
        END AS session_seconds
    FROM people p
)
SELECT
    session_id,
    meeting_id,
    participant_key,
    display_name,
    {d.iso("first_joined_ts")} AS first_joined_at,
    {d.iso("last_left_ts")} AS last_left_at,
    {d.round("seconds", 3)} AS attended_seconds,
    join_count,
    CASE WHEN session_seconds > 0 THEN {d.round("seconds / session_seconds", 4)} END AS attendance_ratio,
    closed_at_session_end,
    CASE
        WHEN min_source = 'webhook' AND max_source = 'webhook' THEN 'webhook'
        WHEN min_source = 'api' AND max_source = 'api' THEN 'api'
        ELSE 'both'
    END AS provenance,
    (session_reconciled_at IS NOT NULL) AS session_reconciled
FROM measured""" + (_attendance_from_summary(d) if summary else "")


def _with_analyst_columns(d: _Dialect, rows: str) -> str:
    """``rows`` (the attendance numbers) followed by the analysts' columns (issue #21; same rules as
    :mod:`receiver.reports.analyst_columns`).

    Each is looked up per row through ``ix_participant_intervals_session_key``
    (a correlated subquery: a filtered query reads only its sessions' peers,
    and an aggregate over the view computes none of them): the value most of
    the person's peers carried, a tie going to the later peer (highest row
    id); ``is_guest`` when no peer carried a custom participant id; the
    meeting's title; ``attended_minutes`` = the whole milliseconds / 60,000
    rounded half up to a tenth, in integer arithmetic (the report's exact
    decimal rule).
    """
    real = "double precision" if d.pg else "REAL"

    def most(column: str) -> str:
        return f"""(SELECT i.{column} FROM participant_intervals i
        WHERE i.session_id = a.session_id AND i.participant_key = a.participant_key AND i.{column} <> ''
        GROUP BY i.{column} ORDER BY COUNT(*) DESC, MAX(i.id) DESC LIMIT 1)"""

    return f"""SELECT
    a.*,
    m.title AS meeting_title,
    {most("preset_name")} AS preset_name,
    (NOT EXISTS (SELECT 1 FROM participant_intervals i
        WHERE i.session_id = a.session_id AND i.participant_key = a.participant_key
        AND i.custom_participant_id <> '')) AS is_guest,
    {most("custom_participant_id")} AS custom_participant_id,
    {most("user_id")} AS user_id,
    CAST((CAST(ROUND(a.attended_seconds * 1000) AS INTEGER) + 3000) / 6000 AS {real}) / 10 AS attended_minutes
FROM ({rows}) a
LEFT JOIN meetings m ON m.meeting_id = a.meeting_id"""


def _attendance_from_summary(d: _Dialect) -> str:
    """``UNION ALL`` branch of ``attendance``: the precomputed rows of sessions whose rows are current.

    Complementary to the computed branch (``_spans_cte(stale_only=True)``):
    every session comes from exactly one of the two.
    """
    return f"""
UNION ALL
SELECT
    a.session_id,
    s.meeting_id,
    a.participant_key,
    a.display_name,
    {d.iso("a.first_joined_at")} AS first_joined_at,
    {d.iso("a.last_left_at")} AS last_left_at,
    a.attended_seconds,
    a.join_count,
    a.attendance_ratio,
    a.closed_at_session_end,
    a.provenance,
    (s.reconciled_at IS NOT NULL) AS session_reconciled
FROM sessions s
{"CROSS JOIN" if not d.pg else "JOIN"} session_attendance a ON a.session_id = s.session_id
WHERE {_fresh_condition(d, "s")}"""


def _sessions_summary(d: _Dialect) -> str:
    # Peak concurrency: +1 at each join, -1 at each leave (open peers leave at
    # the session end; none while live), a running sum in time order with
    # leaves before joins at equal times, its maximum per session. Like
    # receiver.reports.queries.sessions_report: raw times, not clipped, empty spans skipped.
    return f"""CREATE VIEW sessions_summary AS
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
    {d.iso("s.started_at")} AS started_at,
    {d.iso("s.ended_at")} AS ended_at,
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
    {d.iso("started_at")} AS started_at,
    {d.iso("stopped_at")} AS stopped_at,
    duration_seconds,
    file_size_bytes,
    output_file_name,
    download_url,
    {d.iso("download_url_expires_at")} AS download_url_expires_at,
    audio_download_url
FROM recordings"""


def _daily_usage(d: _Dialect) -> str:
    return f"""CREATE VIEW daily_usage AS
WITH session_days AS (
    SELECT session_id, {d.day("started_at")} AS day FROM sessions WHERE started_at IS NOT NULL
),
recording_days AS (
    SELECT {d.day("started_at")} AS day, duration_seconds FROM recordings WHERE started_at IS NOT NULL
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
    {d.round("COALESCE(att.seconds, 0) / 60.0", 3)} AS participant_minutes,
    {d.round("COALESCE(rc.seconds, 0) / 60.0", 3)} AS recorded_minutes
FROM days
LEFT JOIN session_counts sc ON sc.day = days.day
LEFT JOIN attended att ON att.day = days.day
LEFT JOIN recorded rc ON rc.day = days.day"""


def view_statements(dialect_name: str, *, summary: bool = False) -> list[str]:
    """``CREATE VIEW`` statements for ``dialect_name`` (``sqlite`` or ``postgresql``), in creation order.

    ``summary``: ``attendance`` reads the precomputed ``session_attendance``
    rows of sessions whose rows are current and computes only the others
    (schema ``0004``: needs its tables); False gives the ``0003`` views.

    Raises:
        ValueError: another dialect.
    """
    d = _Dialect(dialect_name)
    return [
        _attendance_intervals(d),
        _attendance(d, summary=summary),
        _sessions_summary(d),
        _recording_index(d),
        _daily_usage(d),
    ]


def drop_statements() -> list[str]:
    """``DROP VIEW IF EXISTS`` statements, dependents first (valid on both dialects)."""
    return [f"DROP VIEW IF EXISTS {name}" for name in reversed(VIEW_NAMES)]


def create_views(connection: Connection, *, summary: bool | None = None) -> None:
    """(Re)create every view on ``connection`` (drops existing ones first), in its transaction.

    ``summary`` None: the summary-backed ``attendance`` when the table
    ``session_attendance`` exists (schema ``0004``), else the ``0003`` one.
    """
    if summary is None:
        summary = inspect(connection).has_table("session_attendance")
    drop_views(connection)
    for statement in view_statements(connection.dialect.name, summary=summary):
        connection.execute(text(statement))


def drop_views(connection: Connection) -> None:
    """Drop every view on ``connection`` (missing views are fine)."""
    for statement in drop_statements():
        connection.execute(text(statement))
