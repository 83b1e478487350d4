"""Report queries: plain rows (dicts with documented keys) from the attendance database.

This module is the public entry point; the queries live in
:mod:`~receiver.reports.attendance_queries` (attendance report and pages,
attendance with breakout rooms folded in),
:mod:`~receiver.reports.attendance_keyset` (pages after a cursor, the total),
:mod:`~receiver.reports.listings` (sessions, recordings with their REST
reasons, livestreams),
:mod:`~receiver.reports.precomputed` (the ``session_attendance`` store),
:mod:`~receiver.reports.intervals` (loading intervals) and
:mod:`~receiver.reports.rows` (columns, filter).

The paged listings and analyses of the pages and API (issue #21) have
their own modules: :mod:`~receiver.reports.browse` (sessions and
recordings: search, sort, LIMIT/OFFSET), :mod:`~receiver.reports.event_log`,
:mod:`~receiver.reports.people`, :mod:`~receiver.reports.series`,
:mod:`~receiver.reports.overview` and the pure :mod:`~receiver.reports.trends`.
:func:`iter_attendance` (:mod:`~receiver.reports.attendance_stream`) yields the same rows with the
analysts' columns (:mod:`~receiver.reports.analyst_columns`), a batch of sessions at a time, for exports.

Formatting (table, CSV, JSON, HTML) is elsewhere (:mod:`receiver.reports.formatting`).
Attendance arithmetic is :mod:`receiver.reports.attendance`; this module only loads
rows and hands them over. Attendance of ended sessions is precomputed in
``session_attendance`` (migration 0004) and read from there while current
(database triggers invalidate it on any change); see
:func:`attendance_report` and :func:`refresh_session_attendance`.

Keys of an attendance row (``ATTENDANCE_COLUMNS``):
    session_id, meeting_id, participant_key (custom participant id, else peer
    id), display_name (latest), first_joined_at, last_left_at (UTC),
    attended_seconds (union of the person's intervals), join_count (peers),
    attendance_ratio (attended_seconds / session duration), closed_at_session_end
    (an interval had no leave and was closed at the session end),
    provenance (webhook, api or both), session_reconciled (the REST API
    confirmed the session); and ``display_names``: the person's distinct
    names in join order when there are several, else None.
"""

from receiver.reports.analyst_columns import ANALYST_COLUMNS, add_analyst_columns, attended_minutes
from receiver.reports.attendance_keyset import PageKey, attendance_after, attendance_total
from receiver.reports.attendance_queries import (
    attendance_page,
    attendance_report,
    attendance_with_breakouts,
    session_attendance_rows,
)
from receiver.reports.attendance_stream import iter_attendance
from receiver.reports.intervals import intervals_by_session
from receiver.reports.listings import (
    iter_recordings,
    iter_sessions,
    livestreams_report,
    recordings_detail_report,
    recordings_report,
    sessions_report,
)
from receiver.reports.precomputed import refresh_session_attendance
from receiver.reports.rows import (
    ATTENDANCE_COLUMNS,
    ATTENDANCE_REPORT_COLUMNS,
    BREAKOUT_ATTENDANCE_COLUMNS,
    LIVESTREAM_COLUMNS,
    RECORDING_COLUMNS,
    RECORDING_DETAIL_COLUMNS,
    SESSION_COLUMNS,
    ReportFilter,
    display_names_of,
)

__all__ = [
    "ANALYST_COLUMNS",
    "ATTENDANCE_COLUMNS",
    "ATTENDANCE_REPORT_COLUMNS",
    "add_analyst_columns",
    "attended_minutes",
    "iter_attendance",
    "iter_recordings",
    "iter_sessions",
    "BREAKOUT_ATTENDANCE_COLUMNS",
    "LIVESTREAM_COLUMNS",
    "RECORDING_COLUMNS",
    "RECORDING_DETAIL_COLUMNS",
    "SESSION_COLUMNS",
    "attendance_report",
    "attendance_page",
    "attendance_after",
    "attendance_total",
    "PageKey",
    "attendance_with_breakouts",
    "session_attendance_rows",
    "livestreams_report",
    "recordings_detail_report",
    "recordings_report",
    "sessions_report",
    "ReportFilter",
    "display_names_of",
    "intervals_by_session",
    "refresh_session_attendance",
]
