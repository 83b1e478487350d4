"""The read-only pages: meetings, one session (timeline, curve), its attendance CSV, audit.

Every handler here runs behind :func:`receiver.web.login.guarded` (role
analyst); the operator actions are in :mod:`receiver.web.pages.actions`, the
list pages (sessions, recordings, events) in :mod:`receiver.web.pages.listings`.
"""

from __future__ import annotations

import functools
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session as OrmSession
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from receiver.db.models import Meeting, Session, SessionArtifact
from receiver.reports.attendance import Interval
from receiver.reports.formatting import to_csv
from receiver.reports.queries import (
    ATTENDANCE_COLUMNS,
    ReportFilter,
    attendance_report,
    intervals_by_session,
    recordings_report,
    sessions_report,
)
from receiver.web import audit
from receiver.web.api import ApiError, int_param, path_text
from receiver.web.auth import Role
from receiver.web.pages.geometry import (
    CHART_WIDTH,
    CURVE_HEIGHT,
    ROW_HEIGHT,
    concurrency_curve,
    time_ticks,
    timeline_bounds,
    timeline_layout,
)
from receiver.web.templating import SECURITY_HEADERS, render

__all__ = [
    "PAGE_SIZE",
    "base_context",
    "meetings_rows",
    "session_page_data",
    "index",
    "meetings_page",
    "session_page",
    "session_csv",
    "audit_page",
]

#: Rows per page of the session, event and audit lists.
PAGE_SIZE = 100


def _as_utc(value: Any) -> datetime | None:
    """A datetime from a possibly raw aggregate value (SQLite returns text), aware UTC."""
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def meetings_rows(engine: Engine) -> list[dict[str, Any]]:
    """Meetings with their session count and last session start (UTC), most recently active first."""
    statement = (
        select(
            Meeting.meeting_id,
            Meeting.title,
            Meeting.room_name,
            Meeting.organized_by_name,
            func.count(Session.session_id),
            func.max(Session.started_at),
        )
        .join(Session, Session.meeting_id == Meeting.meeting_id, isouter=True)
        .group_by(Meeting.meeting_id, Meeting.title, Meeting.room_name, Meeting.organized_by_name)
    )
    with engine.connect() as connection:
        rows = [
            {
                "meeting_id": meeting_id,
                "title": title,
                "room_name": room,
                "organized_by_name": organizer,
                "sessions": int(count),
                "last_started_at": _as_utc(last),
            }
            for meeting_id, title, room, organizer, count, last in connection.execute(statement).all()
        ]
    epoch = datetime.min.replace(tzinfo=UTC)
    rows.sort(key=lambda r: (r["last_started_at"] or epoch, r["meeting_id"]), reverse=True)
    return rows


def _intervals(db: OrmSession, session_id: str) -> list[Interval]:
    return intervals_by_session(db, [session_id])[session_id]


def session_page_data(engine: Engine, session_id: str, now: datetime) -> dict[str, Any]:
    """Everything the session page shows (raises ApiError 404 when the session is unknown)."""
    sessions = sessions_report(engine, ReportFilter(session_id=session_id), as_of=now)
    if not sessions:
        raise ApiError(404, "not_found", f"No session {session_id!r}.")
    session = sessions[0]
    with OrmSession(engine) as db:
        intervals = _intervals(db, session_id)
        artifacts = [
            {"kind": a.kind, "download_url": a.download_url, "expires_at": a.download_url_expires_at}
            for a in db.execute(
                select(SessionArtifact).where(SessionArtifact.session_id == session_id).order_by(SessionArtifact.kind)
            ).scalars()
        ]
    attendance = attendance_report(engine, ReportFilter(session_id=session_id), as_of=now)
    recordings = recordings_report(engine, ReportFilter(session_id=session_id))
    start, end = timeline_bounds(session["started_at"], session["ended_at"], intervals, now)
    rows = timeline_layout(start, end, intervals, CHART_WIDTH)
    curve = concurrency_curve(start, end, intervals, CHART_WIDTH, CURVE_HEIGHT)
    with OrmSession(engine) as db:  # issue #18: the breakout rooms opened from this session
        breakout_sessions = list(
            db.execute(
                select(Session.session_id)
                .where(Session.parent_session_id == session_id)
                .order_by(Session.started_at, Session.session_id)
            ).scalars()
        )
    return {
        "session": session,
        "breakout_sessions": breakout_sessions,
        "attendance": attendance,
        "recordings": recordings,
        "artifacts": artifacts,
        "axis_start": start,
        "axis_end": end,
        "rows": rows,
        "curve": curve,
        "ticks": time_ticks(start, end, CHART_WIDTH),
        "interval_count": sum(len(r.bars) for r in rows),
    }


def _engine(request: Request) -> Engine:
    return request.app.state.engine


def _now() -> datetime:
    return datetime.now(UTC)


def base_context(request: Request, active: str) -> dict[str, Any]:
    """What base.html needs: the active tab, the CSRF field value, who is signed in (name, role, via session)."""
    principal = request.state.principal
    return {
        "active": active,
        "csrf": request.state.csrf,
        "who": principal.name,
        "role": principal.role.value,
        "operator": principal.role is Role.OPERATOR,
        "signed_in": request.state.session is not None,
    }


async def index(request: Request) -> Response:
    """GET /ui: redirect to the sessions list."""
    return RedirectResponse("/ui/sessions", status_code=307, headers=SECURITY_HEADERS)


async def meetings_page(request: Request) -> Response:
    """GET /ui/meetings."""
    rows = await run_in_threadpool(meetings_rows, _engine(request))
    return render("meetings.html", **base_context(request, "meetings"), title="Meetings", meetings=rows)


async def session_page(request: Request) -> Response:
    """GET /ui/sessions/{session_id}: attendance, timeline, concurrency curve, recordings."""
    session_id = path_text(request, "session_id")
    data = await run_in_threadpool(session_page_data, _engine(request), session_id, _now())
    return render(
        "session.html",
        **base_context(request, "sessions"),
        title=f"Session {session_id}",
        now=_now(),
        chart_width=CHART_WIDTH,
        row_height=ROW_HEIGHT,
        curve_height=CURVE_HEIGHT,
        **data,
    )


async def session_csv(request: Request) -> Response:
    """GET /ui/sessions/{session_id}/attendance.csv: the attendance table as a CSV download."""
    session_id = path_text(request, "session_id")
    engine = _engine(request)

    def load() -> list[dict[str, Any]]:
        if not sessions_report(engine, ReportFilter(session_id=session_id)):
            raise ApiError(404, "not_found", f"No session {session_id!r}.")
        return attendance_report(engine, ReportFilter(session_id=session_id))

    rows = await run_in_threadpool(load)
    safe = "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in session_id)[:80]
    return Response(
        to_csv(rows, ATTENDANCE_COLUMNS),
        media_type="text/csv",
        headers={**SECURITY_HEADERS, "Content-Disposition": f'attachment; filename="attendance-{safe}.csv"'},
    )


async def audit_page(request: Request) -> Response:
    """GET /ui/audit: who did what (operator actions, sign-ins, refusals), newest first, and the active sign-ins."""
    offset = int_param(request, "offset", 0, 0, 1_000_000_000)
    engine = _engine(request)
    rows, total = await run_in_threadpool(functools.partial(audit.recent, engine, limit=PAGE_SIZE, offset=offset))
    sessions = await run_in_threadpool(request.state.page_auth.sessions.active, engine, _now())
    current = request.state.session.session_hash if request.state.session is not None else None
    return render(
        "audit.html",
        **base_context(request, "audit"),
        title="Audit log",
        entries=rows,
        total=total,
        offset=offset,
        page_size=PAGE_SIZE,
        sign_ins=sessions,
        current_session=current,
        revoked=request.query_params.get("revoked") == "1",
    )
