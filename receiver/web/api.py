"""The reports HTTP API under ``/api`` (JSON by default, CSV on request) and its OpenAPI 3 document.

Endpoints (all ``GET`` but the retry; see
:func:`receiver.web.openapi.openapi_document` for the full contract, served at
``GET /api/openapi.json``):

* ``/api/sessions`` (``meeting_id``, ``since``, ``until``, search ``q``,
  ``sort``), ``/api/sessions/{session_id}``, ``/api/sessions/{session_id}/attendance``;
* ``/api/attendance`` (``meeting_id``, ``since``, ``until``, ``participant``, ``cursor``);
* ``/api/recordings`` (``meeting_id``, ``session_id``, ``since``, ``until``,
  ``q``, ``sort``);
* ``/api/events`` (``status``, ``session_id``, ``event_name``,
  ``delivery_id``, ``since``/``until`` on receipt, ``sort``): the stored
  webhook events for operators, **without** raw bodies;
  ``POST /api/events/{event_id}/retry`` requeues one (any state but
  ``processing`` and ``ignored``);
* the mirrors of the person, series, overview and payload pages
  (:mod:`receiver.web.api_analytics`): ``/api/events/{event_id}``,
  ``/api/people/{participant_key}`` (+ ``/weeks``),
  ``/api/meetings/{meeting_id}/series``, ``/api/overview``;
* ``POST /api/erasures``: erase one person (:mod:`receiver.web.erasures`);
* ``/api/outbound`` (``status``, ``session_id``): the outbound attendance
  webhook's deliveries; ``POST /api/outbound/{delivery_id}/retry`` sends a
  failed or dead one again (:mod:`receiver.web.outbound`).

Conventions:

* Auth: ``Authorization: Bearer <token>`` with a token of ``API_TOKENS``
  (:mod:`receiver.web.auth`); 401 + ``WWW-Authenticate`` when missing or wrong;
  503 ``not_configured`` when ``API_TOKENS`` is unset. The OpenAPI document
  needs no token. Roles: every ``GET`` needs ``analyst``; the retry needs
  ``operator`` (403 otherwise) and is recorded in the audit log
  (:mod:`receiver.web.audit`) under the token's name.
* Expired recording links in ``/api/recordings`` are queued for a refresh by
  the worker (:mod:`receiver.processing.links`); the request itself never
  calls the provider.
* Format: JSON, or CSV with ``?format=csv`` or ``Accept: text/csv`` (the
  query parameter wins). CSV is the same rows as ``receiver report``:
  header row, ISO 8601 UTC timestamps, empty cell for null. Every list
  answer is written by :func:`receiver.web.exports.export_response`.
* Sort: ``sort=key`` or ``sort=-key`` (descending) with a key of the
  list's whitelist (``SESSION_SORTS``, ``RECORDING_SORTS``, ``EVENT_SORTS``);
  another key is a 400 naming the allowed ones.
* Pagination: ``limit`` (1..1000, default 100) and ``offset`` (default 0),
  read with ``LIMIT``/``OFFSET`` and one ``COUNT`` (never every row).
  JSON lists are ``{"items": [...], "total": N, "limit": L, "offset": O}``;
  CSV has no envelope. Both carry ``X-Total-Count``. ``/api/attendance``
  pages with a ``cursor`` instead (``next_cursor`` in the envelope, a
  ``Link: rel="next"`` header) and may estimate a large ``total``
  (``total_exact``, ``X-Total-Exact``); see :func:`list_attendance`.
* Times (``since``/``until``): ``YYYY-MM-DD`` or ISO 8601 (no offset = UTC);
  the window applies to the session start (recordings: recording start).
* Errors: JSON ``{"error": code, "detail": text}``; bad parameters are 400
  (parsed and checked in :mod:`receiver.web.params`),
  never 500; so is an unknown query parameter (a misspelt filter must not
  silently return everything). An empty id or time filter (``meeting_id=``) means "no filter";
  ``limit``, ``offset``, ``format`` and ``status`` must be valid when present.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session as OrmSession
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from receiver.db.models import EVENT_DONE, EVENT_IGNORED, EVENT_PROCESSING, Session, WebhookEvent
from receiver.errors import HTTPError
from receiver.processing.links import LinkState, expired_recording_ids, queue_link_refresh
from receiver.processing.queue import requeue_events
from receiver.reports.browse import RECORDING_SORTS, SESSION_SORTS, recordings_page, sessions_page
from receiver.reports.event_log import EVENT_COLUMNS, EVENT_SORTS, EventFilter, event_page
from receiver.reports.formatting import cell, to_csv
from receiver.reports.queries import (
    ATTENDANCE_REPORT_COLUMNS,
    RECORDING_COLUMNS,
    SESSION_COLUMNS,
    ReportFilter,
    add_analyst_columns,
    attendance_after,
    attendance_page,
    attendance_total,
    display_names_of,
    iter_attendance,
    iter_recordings,
    iter_sessions,
    sessions_report,
)
from receiver.responses import http_error_response
from receiver.settings import Settings
from receiver.web import api_analytics, audit
from receiver.web.auth import Role, TokenAuth, bearer_token
from receiver.web.erasures import erasure_routes
from receiver.web.exports import export_response, json_items, stream_download
from receiver.web.openapi import openapi_document
from receiver.web.outbound import outbound_routes
from receiver.web.params import (
    DEFAULT_LIMIT,
    MAX_LIMIT,
    check_known_params,
    cursor_param,
    encode_cursor,
    event_id_param,
    event_status_param,
    export_format,
    int_param,
    page_params,
    parse_time_param,
    path_text,
    report_filter,
    response_format,
    sort_param,
    text_param,
    zone_param,
)

__all__ = [
    "ApiError",
    "ATTENDANCE_ITEM_COLUMNS",
    "EVENT_COLUMNS",
    "EVENT_PARAMS",
    "DEFAULT_LIMIT",
    "MAX_LIMIT",
    "analyst_routes",
    "api_routes",
    "event_filter",
    "event_rows",
    "get_event",
    "retry_event",
    # Re-exported from receiver.web.openapi and receiver.web.params (receiver.web.pages imports them from here).
    "openapi_document",
    "int_param",
    "parse_time_param",
    "path_text",
    "text_param",
]


#: JSON attendance items: the report columns plus every display name the person used.
ATTENDANCE_ITEM_COLUMNS: tuple[str, ...] = (*ATTENDANCE_REPORT_COLUMNS, "display_names")


_NO_STORE = {"Cache-Control": "no-store"}

#: Query parameters of ``/api/events`` besides the page ones.
EVENT_PARAMS: tuple[str, ...] = ("status", "session_id", "event_name", "delivery_id", "since", "until", "sort")


# An answer other than 200: the service's one HTTP error type.
ApiError = HTTPError


# --------------------------------------------------------------------------
# Rendering
# --------------------------------------------------------------------------


def _json(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(data, status_code=status, headers={**_NO_STORE, **(headers or {})})


def error_response(exc: HTTPError) -> Response:
    """The JSON answer of an :class:`receiver.errors.HTTPError` (:func:`receiver.responses.http_error_response`)."""
    return http_error_response(exc)


def _listing(
    request: Request,
    rows: Sequence[dict[str, Any]],
    total: int,
    limit: int,
    offset: int,
    json_columns: Sequence[str],
    csv_columns: Sequence[str],
    fmt: str,
    extra: dict[str, Any] | None = None,
    extra_headers: dict[str, str] | None = None,
) -> Response:
    zone = zone_param(request)
    headers = {"X-Total-Count": str(total), **(extra_headers or {})}
    body = {
        "items": json_items(rows, json_columns, zone),
        "total": total,
        "limit": limit,
        "offset": offset,
        **(extra or {}),
    }
    return export_response(fmt, rows, csv_columns, json_body=body, headers=headers, zone=zone)


# --------------------------------------------------------------------------
# Queries (shared with receiver.web.pages)
# --------------------------------------------------------------------------


def _event_dict(row: WebhookEvent) -> dict[str, Any]:
    return {column: getattr(row, column) for column in EVENT_COLUMNS}


def event_rows(
    engine: Engine,
    *,
    status: str | None = None,
    session_id: str | None = None,
    limit: int = DEFAULT_LIMIT,
    offset: int = 0,
) -> tuple[list[dict[str, Any]], int]:
    """Stored events (``EVENT_COLUMNS``, newest first) and the total matching; no raw bodies
    (:func:`receiver.reports.event_log.event_page`)."""
    page = event_page(engine, EventFilter(status=status, session_id=session_id), limit=limit, offset=offset)
    return list(page.rows), page.total


def get_event(engine: Engine, event_id: int) -> dict[str, Any] | None:
    """One stored event (``EVENT_COLUMNS``) or None."""
    with OrmSession(engine) as db:
        row = db.get(WebhookEvent, event_id)
        return _event_dict(row) if row is not None else None


def retry_event(engine: Engine, event_id: int) -> dict[str, Any]:
    """Requeue event ``event_id`` (back to ``pending``, attempts reset) and return it.

    Raises:
        ApiError: 404 when there is no such event; 409 when it is being
            processed or was ignored (nothing to apply).
    """
    event = get_event(engine, event_id)
    if event is None:
        raise ApiError(404, "not_found", f"no event {event_id}")
    if event["status"] in (EVENT_PROCESSING, EVENT_IGNORED):
        raise ApiError(409, "conflict", f"event {event_id} is {event['status']}: it cannot be requeued")
    if requeue_events(engine, event_ids=[event_id]) == 0:
        raise ApiError(409, "conflict", f"event {event_id} changed state meanwhile; try again")
    event = get_event(engine, event_id)
    assert event is not None
    return event


def _one_session(engine: Engine, session_id: str) -> dict[str, Any]:
    rows = sessions_report(engine, ReportFilter(session_id=session_id))
    if not rows:
        raise ApiError(404, "not_found", f"no session {session_id!r}")
    return rows[0]


Handler = Callable[[Request], Awaitable[Response]]


def _guarded(auth: TokenAuth, handler: Handler, params: Sequence[str] = (), role: Role = Role.ANALYST) -> Handler:
    """Wrap ``handler`` with bearer auth, the role it needs, the query parameter whitelist ``params`` and
    the ApiError -> JSON mapping. A role without the right gets 403 (and, for an operator action, a
    ``denied`` audit row)."""
    known = frozenset(params)

    @functools.wraps(handler)
    async def endpoint(request: Request) -> Response:
        if not auth.configured:
            return error_response(ApiError(503, "not_configured", "the reports API is disabled: set API_TOKENS"))
        token = bearer_token(request)
        principal = auth.identify(token)
        if principal is None:
            detail = "missing bearer token" if token is None else "invalid bearer token"
            return error_response(
                ApiError(401, "unauthorized", detail, {"WWW-Authenticate": auth.challenge(token is not None)})
            )
        request.state.principal = principal
        try:
            if not principal.role.allows(role):
                await audit.record_request(
                    request, handler.__name__, target=request.url.path, outcome="denied", source="api"
                )
                raise ApiError(
                    403, "forbidden", f"this needs the {role.value} role; {principal.name!r} is {principal.role.value}"
                )
            check_known_params(request, known)
            return await handler(request)
        except ApiError as exc:
            return error_response(exc)

    return endpoint


def _engine(request: Request) -> Engine:
    return request.app.state.engine


async def list_sessions(request: Request) -> Response:
    """GET /api/sessions: sessions, oldest first (``sort``: a key of ``SESSION_SORTS``); ``q`` searches."""
    fmt = response_format(request)
    limit, offset = page_params(request)
    flt = report_filter(request, "meeting_id", "since", "until")
    q = text_param(request, "q")
    sort = sort_param(request, SESSION_SORTS, "started_at")
    page = await run_in_threadpool(
        functools.partial(sessions_page, _engine(request), flt, q=q, sort=sort, limit=limit, offset=offset)
    )
    return _listing(request, page.rows, page.total, limit, offset, SESSION_COLUMNS, SESSION_COLUMNS, fmt)


async def show_session(request: Request) -> Response:
    """GET /api/sessions/{session_id}: one session."""
    fmt = response_format(request)
    session_id = path_text(request, "session_id")
    zone = zone_param(request)
    row = await run_in_threadpool(_one_session, _engine(request), session_id)
    if fmt == "csv":
        return Response(to_csv([row], SESSION_COLUMNS, zone), media_type="text/csv", headers=_NO_STORE)
    return _json({c: cell(row.get(c), zone) for c in SESSION_COLUMNS})


def _with_display_names(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Attendance rows with ``display_names`` filled in (every name used; the report leaves it None for one)."""
    return [{**row, "display_names": display_names_of(row)} for row in rows]


async def session_attendance(request: Request) -> Response:
    """GET /api/sessions/{session_id}/attendance: one row per person of the session."""
    fmt = response_format(request)
    limit, offset = page_params(request)
    session_id = path_text(request, "session_id")
    engine = _engine(request)

    def load() -> tuple[list[dict[str, Any]], int]:
        with engine.connect() as connection:
            found = connection.execute(select(Session.session_id).where(Session.session_id == session_id)).first()
        if found is None:
            raise ApiError(404, "not_found", f"no session {session_id!r}")
        flt = ReportFilter(session_id=session_id)
        if offset > 0:
            return _with_analyst_columns(engine, attendance_page(engine, flt, limit=limit, offset=offset))
        # The first page reads only its rows (not the session's 10,000 for a large one), then counts exactly.
        page, _ = attendance_after(engine, flt, limit=limit)
        return _with_analyst_columns(engine, (page, attendance_total(engine, flt, estimate=False)[0]))

    rows, total = await run_in_threadpool(load)
    return _attendance_listing(request, rows, total, limit, offset, fmt)


def _attendance_listing(
    request: Request, rows: list[dict[str, Any]], total: int, limit: int, offset: int, fmt: str, **more: Any
) -> Response:
    """An attendance list answer: the report's columns (JSON items also ``display_names``); ``more``: see :func:`_listing`."""
    items = _with_display_names(rows)
    return _listing(
        request, items, total, limit, offset, ATTENDANCE_ITEM_COLUMNS, ATTENDANCE_REPORT_COLUMNS, fmt, **more
    )


def _with_analyst_columns(engine: Engine, page: tuple[list[dict[str, Any]], int]) -> tuple[list[dict[str, Any]], int]:
    """A page of attendance rows (and its total) with the analysts' columns added in place."""
    rows, total = page
    with engine.connect() as connection:
        add_analyst_columns(connection, rows)
    return rows, total


async def list_attendance(request: Request) -> Response:
    """GET /api/attendance: attendance rows across sessions, page by page after a cursor (or at an offset).

    Without ``offset`` (or with ``offset=0``) the page is read after ``cursor``
    (keyset pagination: as fast deep in the listing as at its start) and the
    answer carries ``next_cursor`` (null on the last page; also a ``Link:
    <...>; rel="next"`` header). ``offset`` > 0 skips rows the old way: it
    counts every session before the page (slow on large databases) and
    gives no ``next_cursor``; it cannot be combined with ``cursor`` (400).
    ``total`` is exact (``total_exact`` true) except on PostgreSQL when the
    planner estimates more than 50,000 matching rows: then it is that
    estimate (``total_exact`` false; ``X-Total-Exact`` header likewise).
    """
    fmt = response_format(request)
    limit, offset = page_params(request)
    after = cursor_param(request)
    flt = report_filter(request, "meeting_id", "since", "until", "participant")
    engine = _engine(request)
    if offset > 0:
        if after is not None:
            raise ApiError(400, "bad_request", "cursor and offset: use one or the other (next_cursor replaces offset)")

        def load_offset() -> tuple[list[dict[str, Any]], int]:
            return _with_analyst_columns(engine, attendance_page(engine, flt, limit=limit, offset=offset))

        rows, total = await run_in_threadpool(load_offset)
        exact, next_cursor = True, None
    else:

        def load() -> tuple[list[dict[str, Any]], Any, tuple[int, bool]]:
            page, next_key = attendance_after(engine, flt, limit=limit, after=after)
            return _with_analyst_columns(engine, (page, 0))[0], next_key, attendance_total(engine, flt)

        rows, next_key, (total, exact) = await run_in_threadpool(load)
        next_cursor = None if next_key is None else encode_cursor(next_key)
    headers = {"X-Total-Exact": "true" if exact else "false"}
    if next_cursor is not None:
        headers["Link"] = (
            f'<{request.url.remove_query_params("offset").include_query_params(cursor=next_cursor)}>; rel="next"'
        )
    extra = {"total_exact": exact, "next_cursor": next_cursor}
    return _attendance_listing(request, rows, total, limit, offset, fmt, extra=extra, extra_headers=headers)


async def export_attendance(request: Request) -> Response:
    """GET /api/export/attendance: every matching attendance row, streamed as CSV, JSON or XLSX."""
    fmt = export_format(request)
    zone = zone_param(request)
    flt = report_filter(request, "meeting_id", "session_id", "since", "until", "participant")
    rows = iter_attendance(_engine(request), flt)  # lazy: read a batch of sessions at a time while sending
    return stream_download(rows, ATTENDANCE_REPORT_COLUMNS, fmt, zone, "attendance")


async def export_sessions(request: Request) -> Response:
    """GET /api/export/sessions: every matching session, streamed as CSV, JSON or XLSX."""
    fmt = export_format(request)
    zone = zone_param(request)
    flt = report_filter(request, "meeting_id", "since", "until")
    return stream_download(iter_sessions(_engine(request), flt), SESSION_COLUMNS, fmt, zone, "sessions")


async def export_recordings(request: Request) -> Response:
    """GET /api/export/recordings: the matching recording index, streamed as CSV, JSON or XLSX (links as stored)."""
    fmt = export_format(request)
    zone = zone_param(request)
    flt = report_filter(request, "meeting_id", "session_id", "since", "until")
    return stream_download(iter_recordings(_engine(request), flt), RECORDING_COLUMNS, fmt, zone, "recordings")


async def queue_expired_links(request: Request, rows: Sequence[dict[str, Any]]) -> dict[str, LinkState]:
    """Queue a worker refresh of the expired download links among ``rows``; never calls the provider.

    Returns each expired row's :class:`receiver.processing.links.LinkState` (see
    :func:`receiver.processing.links.queue_link_refresh`). Nothing is queued when no
    worker could refresh a link (reconciliation off, or no provider credentials).
    """
    now = datetime.now(UTC)
    ids = expired_recording_ids(rows, now)
    if not ids:
        return {}
    settings = request.app.state.settings
    enabled = settings.reconcile_enabled and settings.api_credentials_set
    return await run_in_threadpool(functools.partial(queue_link_refresh, _engine(request), ids, now, enabled=enabled))


async def list_recordings(request: Request) -> Response:
    """GET /api/recordings: the recording index, newest first; expired links of the page are queued for refresh."""
    fmt = response_format(request)
    limit, offset = page_params(request)
    flt = report_filter(request, "meeting_id", "session_id", "since", "until")
    q = text_param(request, "q")
    sort = sort_param(request, RECORDING_SORTS, "-started_at")
    page = await run_in_threadpool(
        functools.partial(recordings_page, _engine(request), flt, q=q, sort=sort, limit=limit, offset=offset)
    )
    await queue_expired_links(request, page.rows)
    return _listing(request, page.rows, page.total, limit, offset, RECORDING_COLUMNS, RECORDING_COLUMNS, fmt)


def event_filter(request: Request) -> EventFilter:
    """The :class:`EventFilter` of the query: ``status``, ``event_name``, ``session_id``, ``delivery_id``,
    ``since``/``until`` (on ``received_at``); 400 on a bad value."""
    return EventFilter(
        status=event_status_param(request),
        event_name=text_param(request, "event_name"),
        session_id=text_param(request, "session_id"),
        delivery_id=text_param(request, "delivery_id"),
        since=parse_time_param("since", request.query_params.get("since")),
        until=parse_time_param("until", request.query_params.get("until")),
    )


async def list_events(request: Request) -> Response:
    """GET /api/events: stored webhook events, newest first (``sort``: a key of ``EVENT_SORTS``), no raw bodies."""
    fmt = response_format(request)
    limit, offset = page_params(request)
    flt = event_filter(request)
    sort = sort_param(request, EVENT_SORTS, "-id")
    page = await run_in_threadpool(
        functools.partial(event_page, _engine(request), flt, sort=sort, limit=limit, offset=offset)
    )
    return _listing(request, page.rows, page.total, limit, offset, EVENT_COLUMNS, EVENT_COLUMNS, fmt)


async def retry(request: Request) -> Response:
    """POST /api/events/{event_id}/retry (operator): requeue one event (a done one is replayed); audited."""
    event_id = event_id_param(request)
    before = await run_in_threadpool(get_event, _engine(request), event_id)
    event = await run_in_threadpool(retry_event, _engine(request), event_id)
    action = "replay" if before is not None and before["status"] == EVENT_DONE else "retry"
    await audit.record_request(
        request, action, target=f"event:{event_id}", detail=event.get("event_name"), source="api"
    )
    return _json({"requeued": True, "event": {c: cell(event.get(c)) for c in EVENT_COLUMNS}})


async def openapi_endpoint(request: Request) -> Response:
    """GET /api/openapi.json: the OpenAPI 3 document (no token needed)."""
    return JSONResponse(openapi_document())


def api_routes(settings: Settings) -> list[BaseRoute]:
    """The ``/api`` routes, guarded by the bearer tokens of ``settings.api_tokens``."""
    auth = TokenAuth.from_settings(settings)
    page = ("limit", "offset", "format", "tz")
    export = ("format", "tz")

    def guard(handler: Handler, *params: str) -> Handler:
        return _guarded(auth, handler, params)

    return [
        Route("/api/openapi.json", openapi_endpoint, methods=["GET"]),
        Route(
            "/api/sessions", guard(list_sessions, "meeting_id", "since", "until", "q", "sort", *page), methods=["GET"]
        ),
        Route("/api/sessions/{session_id}", guard(show_session, "format", "tz"), methods=["GET"]),
        Route("/api/sessions/{session_id}/attendance", guard(session_attendance, *page), methods=["GET"]),
        Route(
            "/api/attendance",
            guard(list_attendance, "meeting_id", "since", "until", "participant", "cursor", *page),
            methods=["GET"],
        ),
        Route(
            "/api/recordings",
            guard(list_recordings, "meeting_id", "session_id", "since", "until", "q", "sort", *page),
            methods=["GET"],
        ),
        Route(
            "/api/export/attendance",
            guard(export_attendance, "meeting_id", "session_id", "since", "until", "participant", *export),
            methods=["GET"],
        ),
        Route("/api/export/sessions", guard(export_sessions, "meeting_id", "since", "until", *export), methods=["GET"]),
        Route(
            "/api/export/recordings",
            guard(export_recordings, "meeting_id", "session_id", "since", "until", *export),
            methods=["GET"],
        ),
        Route("/api/events", guard(list_events, *EVENT_PARAMS, *page), methods=["GET"]),
        Route("/api/events/{event_id}", guard(api_analytics.show_event), methods=["GET"]),
        Route(
            "/api/people/{participant_key}", guard(api_analytics.show_person, "since", "until", *page), methods=["GET"]
        ),
        Route(
            "/api/people/{participant_key}/weeks",
            guard(api_analytics.person_weeks, "since", "until", "format"),
            methods=["GET"],
        ),
        Route(
            "/api/meetings/{meeting_id}/series",
            guard(api_analytics.show_series, "since", "until", "occurrences", "format"),
            methods=["GET"],
        ),
        Route(
            "/api/overview", guard(api_analytics.show_overview, "period", "since", "until", "format"), methods=["GET"]
        ),
        Route("/api/events/{event_id}/retry", _guarded(auth, retry, (), Role.OPERATOR), methods=["POST"]),
        *erasure_routes(lambda handler: _guarded(auth, handler, (), Role.OPERATOR)),
        *outbound_routes(guard, lambda handler: _guarded(auth, handler, (), Role.OPERATOR)),
    ]


def analyst_routes(settings: Settings) -> list[BaseRoute]:
    """Every analyst route: the reports API (``/api``) and the pages (``/ui``), for ``create_app(extra_routes=...)``.

    Raises:
        ConfigurationError: API_TOKENS is malformed (checked here, at start-up).
    """
    from receiver.web.pages import page_routes  # pages builds on this module's queries

    return [*api_routes(settings), *page_routes(settings)]
