"""Server-rendered pages under ``/ui`` for analysts and operators (Jinja2, no JavaScript).

Pages: ``/ui/meetings``, ``/ui/sessions`` (``?meeting_id=``),
``/ui/sessions/{session_id}`` (attendance table, a timeline and the
concurrency curve as inline SVG, recordings and artifacts; CSV download at
``/ui/sessions/{session_id}/attendance.csv``), ``/ui/recordings``
(``?meeting_id=``; expired download links marked) and ``/ui/events``
(``?status=``; the event log with a retry button posting to
``/ui/events/{event_id}/retry``). ``/ui`` redirects to ``/ui/sessions``.

Auth (:mod:`receiver.web.auth`): ``Authorization: Bearer <token>``, or the
HttpOnly cookie that ``?token=<token>`` sets on any page (then a 303 to the
same URL without the token). ``API_TOKENS`` unset: 503. Templates are
autoescaped; raw bodies, tokens and stream keys are never rendered.

The geometry of the timeline and the curve is pure (:func:`timeline_layout`,
:func:`concurrency_curve`, :func:`time_ticks`) and tested without a server.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs, quote, urlencode

import jinja2
from sqlalchemy import func, select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session as OrmSession
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from receiver.db.models import EVENT_STATUSES, Meeting, Session, SessionArtifact
from receiver.processing.queue import queue_stats
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
from receiver.settings import Settings
from receiver.timeparse import to_iso
from receiver.web.api import (
    ApiError,
    event_rows,
    int_param,
    path_text,
    queue_expired_links,
    retry_event,
    text_param,
)
from receiver.web.auth import COOKIE_NAME, TokenAuth, bearer_token, csrf_token

__all__ = [
    "TimelineBar",
    "TimelineRow",
    "ConcurrencyCurve",
    "Tick",
    "timeline_bounds",
    "timeline_layout",
    "concurrency_curve",
    "time_ticks",
    "page_routes",
]

#: Width of the time axis of the timeline and the curve, px.
CHART_WIDTH = 720
#: Height of one timeline row, px.
ROW_HEIGHT = 22
#: Height of the concurrency plot, px.
CURVE_HEIGHT = 120
#: Narrowest drawn bar, px (so an instant join/leave stays visible).
MIN_BAR_WIDTH = 1.0
#: Rows per page of the session and event lists.
PAGE_SIZE = 100
# Cookie lifetime, seconds (12 hours).
COOKIE_MAX_AGE = 12 * 3600
_SECURITY_HEADERS = {
    "Cache-Control": "no-store",
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
}


# --------------------------------------------------------------------------
# Geometry (pure)
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class TimelineBar:
    """One peer interval drawn on the timeline; ``x`` and ``width`` in px from the axis origin."""

    peer_id: str
    start: datetime
    end: datetime
    x: float
    width: float
    open_end: bool  # no leave seen: closed at the session end (or at "now" for a live session)
    overlaps: bool  # overlaps another interval of the same person (second device): drawn semi-transparent


@dataclass(frozen=True)
class TimelineRow:
    """One person (participant key) and their bars, in join order."""

    participant_key: str
    label: str
    bars: tuple[TimelineBar, ...]


@dataclass(frozen=True)
class ConcurrencyCurve:
    """Concurrent peers over time: the step ``points`` (px, y down) and the ``peak`` count."""

    points: tuple[tuple[float, float], ...]
    peak: int
    steps: tuple[tuple[datetime, int], ...]  # (time, peers connected from then on)

    @property
    def svg_points(self) -> str:
        """The points as an SVG ``points`` attribute (``"x,y x,y ..."``, px)."""
        return " ".join(f"{x:.2f},{y:.2f}" for x, y in self.points)


@dataclass(frozen=True)
class Tick:
    """An axis tick at ``x`` px with its UTC ``label``."""

    x: float
    label: str


def timeline_bounds(
    session_start: datetime | None, session_end: datetime | None, intervals: Sequence[Interval], as_of: datetime
) -> tuple[datetime, datetime]:
    """The time axis ``(start, end)`` (UTC) of a session.

    Start: the session start, else the first join, else ``as_of``. End: the
    session end; for a live session ``as_of``, or the last known join/leave
    when later; never before the start.
    """
    joins = [i.joined_at for i in intervals if i.joined_at is not None]
    leaves = [i.left_at for i in intervals if i.left_at is not None]
    start = session_start or (min(joins) if joins else as_of)
    if session_end is not None:
        end = session_end
    else:
        end = max([as_of, *joins, *leaves]) if session_start is not None or joins else as_of
    return start, max(start, end)


def _scale(start: datetime, end: datetime, width: float) -> Callable[[datetime], float]:
    span = (end - start).total_seconds()

    def x_of(moment: datetime) -> float:
        if span <= 0:
            return 0.0
        offset = (moment - start).total_seconds()
        return min(max(offset / span, 0.0), 1.0) * width

    return x_of


def _clip(interval: Interval, start: datetime, end: datetime) -> tuple[datetime, datetime, bool] | None:
    """The interval as drawn: clipped to the axis, a missing leave closed at ``end``."""
    if interval.joined_at is None:
        return None
    left = interval.left_at
    open_end = interval.closed_at_session_end or left is None
    if left is None:
        left = end
    lo = min(max(interval.joined_at, start), end)
    hi = min(max(left, lo), end)
    return lo, hi, open_end


def timeline_layout(
    session_start: datetime, session_end: datetime, intervals: Sequence[Interval], width: float
) -> list[TimelineRow]:
    """Rows of bars for a timeline ``width`` px wide spanning ``[session_start, session_end]`` (UTC).

    One row per person (``participant_key``), ordered by first join then key;
    one bar per interval (peer), clipped to the axis, at least
    ``MIN_BAR_WIDTH`` px wide. A missing leave is drawn up to the axis end and
    flagged ``open_end``. A bar that overlaps another bar of the same person
    (two devices at once) is flagged ``overlaps``. Intervals without a join
    time are left out. Rejoins show as several bars with gaps between them.
    """
    x_of = _scale(session_start, session_end, width)
    people: dict[str, list[tuple[Interval, datetime, datetime, bool]]] = {}
    for interval in intervals:
        clipped = _clip(interval, session_start, session_end)
        if clipped is not None:
            people.setdefault(interval.participant_key, []).append((interval, *clipped))
    rows: list[TimelineRow] = []
    for key, spans in people.items():
        spans.sort(key=lambda s: (s[1], s[2], s[0].peer_id))
        bars = []
        for index, (interval, lo, hi, open_end) in enumerate(spans):
            overlaps = any(
                other_lo < hi and lo < other_hi
                for other_index, (_, other_lo, other_hi, _) in enumerate(spans)
                if other_index != index
            )
            x = x_of(lo)
            bar_width = max(x_of(hi) - x, MIN_BAR_WIDTH)
            x = min(x, max(width - bar_width, 0.0))
            bars.append(TimelineBar(interval.peer_id, lo, hi, round(x, 2), round(bar_width, 2), open_end, overlaps))
        names = [i.display_name for i, *_ in spans if i.display_name]
        rows.append(TimelineRow(key, names[-1] if names else key, tuple(bars)))
    rows.sort(key=lambda r: (r.bars[0].start, r.participant_key))
    return rows


def concurrency_curve(
    session_start: datetime, session_end: datetime, intervals: Sequence[Interval], width: float, height: float
) -> ConcurrencyCurve:
    """The step curve of concurrent peers over ``[session_start, session_end]`` in a ``width`` x ``height`` px box.

    x grows with time, y grows downwards: 0 peers at ``y = height``, the
    peak at ``y = 0``. Intervals are clipped and a missing leave is closed at
    ``session_end``, as in :func:`timeline_layout`; a leave and a join at the
    same instant do not overlap (as in :func:`receiver.reports.attendance.peak_concurrency`).
    """
    deltas: dict[datetime, int] = {}
    at_start = 0
    for interval in intervals:
        clipped = _clip(interval, session_start, session_end)
        if clipped is None:
            continue
        lo, hi, _ = clipped
        if hi <= lo:
            continue
        if lo <= session_start:
            at_start += 1
        else:
            deltas[lo] = deltas.get(lo, 0) + 1
        if hi < session_end:
            deltas[hi] = deltas.get(hi, 0) - 1
    steps = [(session_start, at_start)]
    current = at_start
    for moment in sorted(deltas):
        if deltas[moment] == 0:
            continue
        current += deltas[moment]
        steps.append((moment, current))
    peak = max(count for _, count in steps)
    x_of = _scale(session_start, session_end, width)

    def y_of(count: int) -> float:
        return round(height - (count / peak * height if peak else 0.0), 2)

    points: list[tuple[float, float]] = [(0.0, y_of(at_start))]
    previous = at_start
    for moment, count in steps[1:]:
        x = round(x_of(moment), 2)
        points.append((x, y_of(previous)))
        points.append((x, y_of(count)))
        previous = count
    points.append((float(width), y_of(previous)))
    return ConcurrencyCurve(tuple(points), peak, tuple(steps))


_TICK_STEPS_SECONDS = (1, 5, 10, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400)


def time_ticks(start: datetime, end: datetime, width: float, max_ticks: int = 8) -> list[Tick]:
    """Axis ticks at round UTC times (1 s .. 1 day apart), at most ``max_ticks``, ``x`` in px."""
    span = (end - start).total_seconds()
    if span <= 0:
        return [Tick(0.0, start.strftime("%H:%M:%S"))]
    step = next((s for s in _TICK_STEPS_SECONDS if span / s <= max_ticks), _TICK_STEPS_SECONDS[-1])
    while span / step > max_ticks:
        step *= 2
    fmt = "%H:%M:%S" if step < 60 else ("%H:%M" if step < 86400 else "%m-%d")
    first = int(start.timestamp() // step + 1) * step
    if first - step >= start.timestamp():
        first -= step
    x_of = _scale(start, end, width)
    ticks = []
    moment = first
    while moment <= end.timestamp():
        at = datetime.fromtimestamp(moment, tz=UTC)
        ticks.append(Tick(round(x_of(at), 2), at.strftime(fmt)))
        moment += step
    return ticks


# --------------------------------------------------------------------------
# Templates
# --------------------------------------------------------------------------


def _fmt_time(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        value = value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)
        return value.strftime("%Y-%m-%d %H:%M:%S") + "Z"
    return str(value)


def _fmt_duration(seconds: Any) -> str:
    if seconds is None:
        return ""
    total = int(round(float(seconds)))
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}"


def _fmt_bytes(value: Any) -> str:
    if value is None:
        return ""
    size = float(value)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return str(value)


def _is_http_url(value: Any) -> bool:
    """True for an http(s) URL: only those become links (never ``javascript:`` or ``data:``)."""
    return isinstance(value, str) and value.lower().startswith(("https://", "http://"))


@functools.lru_cache(maxsize=1)
def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("receiver.web", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["ts"] = _fmt_time
    env.filters["iso"] = to_iso
    env.filters["duration"] = _fmt_duration
    env.filters["bytes"] = _fmt_bytes
    env.filters["seg"] = lambda value: quote(str(value), safe="")
    env.tests["http_url"] = _is_http_url
    return env


def render(
    template: str, *, status_code: int = 200, headers: dict[str, str] | None = None, **context: Any
) -> HTMLResponse:
    """An HTML answer from ``templates/<template>`` (autoescaped) with the pages' security headers."""
    html = _environment().get_template(template).render(**context)
    return HTMLResponse(html, status_code=status_code, headers={**_SECURITY_HEADERS, **(headers or {})})


# --------------------------------------------------------------------------
# Auth
# --------------------------------------------------------------------------

Handler = Callable[[Request], Awaitable[Response]]


def _url_without_token(request: Request) -> str:
    query = [(k, v) for k, v in request.query_params.multi_items() if k != "token"]
    return request.url.path + ("?" + urlencode(query) if query else "")


def _guarded(auth: TokenAuth, handler: Handler) -> Handler:
    """Wrap a page ``handler`` with token auth (header, cookie or ``?token=``) and error pages."""

    @functools.wraps(handler)
    async def endpoint(request: Request) -> Response:
        if not auth.configured:
            return render(
                "error.html", status_code=503, title="Not configured", message="The pages are disabled: set API_TOKENS."
            )
        query_token = request.query_params.get("token")
        if query_token is not None and request.method == "GET":
            if not auth.check(query_token):
                return _unauthorized(auth, "The token in the link is not valid.", wrong=True)
            response = RedirectResponse(_url_without_token(request), status_code=303, headers=_SECURITY_HEADERS)
            response.set_cookie(
                COOKIE_NAME,
                query_token,
                max_age=COOKIE_MAX_AGE,
                path="/ui",
                httponly=True,
                samesite="strict",
                secure=request.url.scheme == "https",
            )
            return response
        header_token = bearer_token(request)
        cookie_token = request.cookies.get(COOKIE_NAME)
        token = header_token if header_token is not None else cookie_token
        if not auth.check(token):
            return _unauthorized(auth, "Sign in: open this page with ?token=<API token>.", wrong=token is not None)
        assert token is not None
        request.state.token = token
        request.state.via_cookie = header_token is None
        request.state.csrf = csrf_token(token)
        try:
            return await handler(request)
        except ApiError as exc:
            return render(
                "error.html", status_code=exc.status, title=exc.error.replace("_", " ").capitalize(), message=exc.detail
            )

    return endpoint


def _unauthorized(auth: TokenAuth, message: str, *, wrong: bool) -> Response:
    response = render(
        "error.html",
        status_code=401,
        headers={"WWW-Authenticate": auth.challenge(wrong)},
        title="Unauthorized",
        message=message,
    )
    if wrong:
        response.delete_cookie(COOKIE_NAME, path="/ui")
    return response


# --------------------------------------------------------------------------
# Queries
# --------------------------------------------------------------------------


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
    return {
        "session": session,
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


# --------------------------------------------------------------------------
# Handlers
# --------------------------------------------------------------------------


def _engine(request: Request) -> Engine:
    return request.app.state.engine


def _now() -> datetime:
    return datetime.now(UTC)


def _base(request: Request, active: str) -> dict[str, Any]:
    return {"active": active, "csrf": request.state.csrf}


async def index(request: Request) -> Response:
    """GET /ui: redirect to the sessions list."""
    return RedirectResponse("/ui/sessions", status_code=307, headers=_SECURITY_HEADERS)


async def meetings_page(request: Request) -> Response:
    """GET /ui/meetings."""
    rows = await run_in_threadpool(meetings_rows, _engine(request))
    return render("meetings.html", **_base(request, "meetings"), title="Meetings", meetings=rows)


async def sessions_page(request: Request) -> Response:
    """GET /ui/sessions: newest first, ``PAGE_SIZE`` per page (``offset``)."""
    meeting_id = text_param(request, "meeting_id")
    offset = int_param(request, "offset", 0, 0, 1_000_000_000)
    rows = await run_in_threadpool(sessions_report, _engine(request), ReportFilter(meeting_id=meeting_id))
    rows.reverse()
    return render(
        "sessions.html",
        **_base(request, "sessions"),
        title="Sessions",
        sessions=rows[offset : offset + PAGE_SIZE],
        total=len(rows),
        offset=offset,
        page_size=PAGE_SIZE,
        meeting_id=meeting_id,
    )


async def session_page(request: Request) -> Response:
    """GET /ui/sessions/{session_id}: attendance, timeline, concurrency curve, recordings."""
    session_id = path_text(request, "session_id")
    data = await run_in_threadpool(session_page_data, _engine(request), session_id, _now())
    return render(
        "session.html",
        **_base(request, "sessions"),
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
        headers={**_SECURITY_HEADERS, "Content-Disposition": f'attachment; filename="attendance-{safe}.csv"'},
    )


async def recordings_page(request: Request) -> Response:
    """GET /ui/recordings: the recording index with download links; expired links marked."""
    meeting_id = text_param(request, "meeting_id")
    flt = ReportFilter(meeting_id=meeting_id)
    rows = await run_in_threadpool(recordings_report, _engine(request), flt)
    link_states = await queue_expired_links(request, rows)
    return render(
        "recordings.html",
        **_base(request, "recordings"),
        title="Recordings",
        recordings=rows,
        link_states=link_states,
        now=_now(),
        meeting_id=meeting_id,
    )


async def events_page(request: Request) -> Response:
    """GET /ui/events: the event log (newest first) with queue counts and retry buttons."""
    status = request.query_params.get("status") or None
    if status is not None and status not in EVENT_STATUSES:
        raise ApiError(400, "bad_request", f"status: use one of {', '.join(EVENT_STATUSES)}")
    offset = int_param(request, "offset", 0, 0, 1_000_000_000)
    engine = _engine(request)
    rows, total = await run_in_threadpool(
        functools.partial(event_rows, engine, status=status, limit=PAGE_SIZE, offset=offset)
    )
    stats = await run_in_threadpool(queue_stats, engine)
    retried = request.query_params.get("retried")
    return render(
        "events.html",
        **_base(request, "events"),
        title="Events",
        events=rows,
        total=total,
        offset=offset,
        page_size=PAGE_SIZE,
        status=status,
        statuses=EVENT_STATUSES,
        stats=stats,
        retried=retried if retried and retried.isdigit() else None,
        retry_statuses=("failed", "dead", "done"),
    )


async def retry_page(request: Request) -> Response:
    """POST /ui/events/{event_id}/retry: requeue (form with the CSRF field), then back to the event log."""
    raw_id = str(request.path_params["event_id"])
    if not raw_id.isdigit() or not 1 <= int(raw_id) <= 2**63 - 1:
        raise ApiError(400, "bad_request", "event_id: not a positive integer")
    body = (await request.body())[:4096].decode("utf-8", "replace")
    form = parse_qs(body)
    if request.state.via_cookie:
        sent = (form.get("csrf") or [None])[0]
        if not TokenAuth.check_csrf(request.state.token, sent):
            raise ApiError(403, "forbidden", "The form is stale or forged (CSRF check failed); reload the page.")
    event = await run_in_threadpool(retry_event, _engine(request), int(raw_id))
    back = (form.get("status") or [""])[0]
    query = {"retried": str(event["id"])}
    if back in EVENT_STATUSES:
        query["status"] = back
    return RedirectResponse("/ui/events?" + urlencode(query), status_code=303, headers=_SECURITY_HEADERS)


def page_routes(settings: Settings) -> list[BaseRoute]:
    """The ``/ui`` routes, guarded by the tokens of ``settings.api_tokens``."""
    auth = TokenAuth.from_settings(settings)
    guard = functools.partial(_guarded, auth)
    return [
        Route("/ui", guard(index), methods=["GET"]),
        Route("/ui/meetings", guard(meetings_page), methods=["GET"]),
        Route("/ui/sessions", guard(sessions_page), methods=["GET"]),
        Route("/ui/sessions/{session_id}", guard(session_page), methods=["GET"]),
        Route("/ui/sessions/{session_id}/attendance.csv", guard(session_csv), methods=["GET"]),
        Route("/ui/recordings", guard(recordings_page), methods=["GET"]),
        Route("/ui/events", guard(events_page), methods=["GET"]),
        Route("/ui/events/{event_id}/retry", guard(retry_page), methods=["POST"]),
    ]
