"""The pages' download buttons: ``/ui/export/{attendance,sessions,recordings}`` as CSV or XLSX (issue #21 item 2).

The same streamed exports as ``/api/export/...``
(:func:`receiver.web.exports.stream_download`) behind the pages' sign-in (a
browser has a session cookie, not a bearer token). Query: ``format``
(``csv`` default, ``json``, ``xlsx``), ``tz``, and the filters of each
list page: ``meeting_id`` (sessions, recordings, attendance) and
``session_id`` (attendance, recordings). A bad value is a 400 error page.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from receiver.reports.queries import (
    ATTENDANCE_REPORT_COLUMNS,
    RECORDING_COLUMNS,
    SESSION_COLUMNS,
    iter_attendance,
    iter_recordings,
    iter_sessions,
)
from receiver.web.exports import stream_download
from receiver.web.params import check_known_params, export_format, report_filter, zone_param

__all__ = ["export_attendance_page", "export_recordings_page", "export_sessions_page"]

_COMMON = frozenset({"format", "tz", "meeting_id"})


async def export_attendance_page(request: Request) -> Response:
    """GET /ui/export/attendance: the attendance rows (all, or of ``session_id`` / ``meeting_id``) as a download."""
    check_known_params(request, _COMMON | {"session_id"})
    fmt, zone = export_format(request), zone_param(request)
    flt = report_filter(request, "meeting_id", "session_id")
    name = f"attendance-{flt.session_id}" if flt.session_id else "attendance"
    return stream_download(iter_attendance(request.app.state.engine, flt), ATTENDANCE_REPORT_COLUMNS, fmt, zone, name)


async def export_sessions_page(request: Request) -> Response:
    """GET /ui/export/sessions: the sessions list (``meeting_id`` filter) as a download."""
    check_known_params(request, _COMMON)
    fmt, zone = export_format(request), zone_param(request)
    flt = report_filter(request, "meeting_id")
    return stream_download(iter_sessions(request.app.state.engine, flt), SESSION_COLUMNS, fmt, zone, "sessions")


async def export_recordings_page(request: Request) -> Response:
    """GET /ui/export/recordings: the recording index (``meeting_id``/``session_id`` filters) as a download."""
    check_known_params(request, _COMMON | {"session_id"})
    fmt, zone = export_format(request), zone_param(request)
    flt = report_filter(request, "meeting_id", "session_id")
    return stream_download(iter_recordings(request.app.state.engine, flt), RECORDING_COLUMNS, fmt, zone, "recordings")
