"""The reports HTTP API under ``/api`` (JSON by default, CSV on request) and its OpenAPI 3 document.

Endpoints (all ``GET`` but the retry; see
:func:`receiver.web.openapi.openapi_document` for the full contract, served at
``GET /api/openapi.json``):

* ``/api/sessions`` (``meeting_id``, ``since``, ``until``),
  ``/api/sessions/{session_id}``, ``/api/sessions/{session_id}/attendance``;
* ``/api/attendance`` (``meeting_id``, ``since``, ``until``, ``participant``, ``cursor``);
* ``/api/recordings`` (``meeting_id``, ``session_id``);
* ``/api/events`` (``status``, ``session_id``): the stored webhook events for
  operators, **without** raw bodies; ``POST /api/events/{event_id}/retry``
  requeues one (any state but ``processing`` and ``ignored``);
* ``POST /api/erasures``: erase one person (:mod:`receiver.web.erasures`).

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
  header row, ISO 8601 UTC timestamps, empty cell for null.
* Pagination: ``limit`` (1..1000, default 100) and ``offset`` (default 0).
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

from sqlalchemy import func, select
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
from receiver.reports.formatting import cell, to_csv
from receiver.reports.queries import (
    ATTENDANCE_COLUMNS,
    RECORDING_COLUMNS,
    SESSION_COLUMNS,
    ReportFilter,
    attendance_after,
    attendance_page,
    attendance_total,
    display_names_of,
    recordings_report,
    sessions_report,
)
from receiver.responses import http_error_response
from receiver.settings import Settings
from receiver.web import audit
from receiver.web.auth import Role, TokenAuth, bearer_token
from receiver.web.erasures import erasure_routes
from receiver.web.openapi import openapi_document
from receiver.web.params import (
    DEFAULT_LIMIT,
    MAX_LIMIT,
    check_known_params,
    cursor_param,
    encode_cursor,
    event_id_param,
    event_status_param,
    int_param,
    page_params,
    parse_time_param,
    path_text,
    report_filter,
    response_format,
    text_param,
)

__all__ = [
    "ApiError",
    "ATTENDANCE_ITEM_COLUMNS",
    "EVENT_COLUMNS",
    "DEFAULT_LIMIT",
    "MAX_LIMIT",
    "analyst_routes",
    "api_routes",
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
ATTENDANCE_ITEM_COLUMNS: tuple[str, ...] = (*ATTENDANCE_COLUMNS, "display_names")

#: Columns of ``/api/events`` (never ``raw_body``).
EVENT_COLUMNS: tuple[str, ...] = (
    "id",
    "delivery_id",
    "webhook_id",
    "event_name",
    "received_at",
    "occurred_at",
    "meeting_id",
    "session_id",
    "signature_scheme",
    "body_sha256",
    "parse_status",
    "parse_error",
    "status",
    "attempts",
    "last_error",
    "next_attempt_at",
    "locked_by",
    "locked_until",
    "processed_at",
    "duplicate_count",
    "conflict_count",
)

_NO_STORE = {"Cache-Control": "no-store"}


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


def _items(rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> list[dict[str, Any]]:
    return [{c: cell(r.get(c)) for c in columns} for r in rows]


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
    headers = {**_NO_STORE, "X-Total-Count": str(total), **(extra_headers or {})}
    if fmt == "csv":
        return Response(to_csv(rows, csv_columns), media_type="text/csv", headers=headers)
    body = {"items": _items(rows, json_columns), "total": total, "limit": limit, "offset": offset, **(extra or {})}
    return JSONResponse(body, headers=headers)


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
    """Stored events (``EVENT_COLUMNS``, newest first) and the total matching; no raw bodies."""
    conditions: list[Any] = []
    if status:
        conditions.append(WebhookEvent.status == status)
    if session_id:
        conditions.append(WebhookEvent.session_id == session_id)
    columns = [getattr(WebhookEvent, c) for c in EVENT_COLUMNS]
    with engine.connect() as connection:
        total = connection.execute(select(func.count()).select_from(WebhookEvent).where(*conditions)).scalar_one()
        result = connection.execute(
            select(*columns).where(*conditions).order_by(WebhookEvent.id.desc()).limit(limit).offset(offset)
        )
        rows = [dict(zip(EVENT_COLUMNS, values, strict=False)) for values in result.all()]
    return rows, int(total)


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
                await run_in_threadpool(
                    functools.partial(
                        audit.record,
                        _engine(request),
                        principal,
                        handler.__name__,
                        target=request.url.path,
                        outcome="denied",
                        source="api",
                        client=audit.client_address(request.scope.get("client")),
                    )
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
    """GET /api/sessions: sessions ordered by start (oldest first)."""
    fmt = response_format(request)
    limit, offset = page_params(request)
    flt = report_filter(request, "meeting_id", "since", "until")
    rows = await run_in_threadpool(sessions_report, _engine(request), flt)
    return _listing(
        request, rows[offset : offset + limit], len(rows), limit, offset, SESSION_COLUMNS, SESSION_COLUMNS, fmt
    )


async def show_session(request: Request) -> Response:
    """GET /api/sessions/{session_id}: one session."""
    fmt = response_format(request)
    session_id = path_text(request, "session_id")
    row = await run_in_threadpool(_one_session, _engine(request), session_id)
    if fmt == "csv":
        return Response(to_csv([row], SESSION_COLUMNS), media_type="text/csv", headers=_NO_STORE)
    return _json({c: cell(row.get(c)) for c in SESSION_COLUMNS})


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
            return attendance_page(engine, flt, limit=limit, offset=offset)
        # The first page reads only its rows (not the session's 10,000 for a large one), then counts exactly.
        page, _ = attendance_after(engine, flt, limit=limit)
        return page, attendance_total(engine, flt, estimate=False)[0]

    rows, total = await run_in_threadpool(load)
    return _listing(
        request, _with_display_names(rows), total, limit, offset, ATTENDANCE_ITEM_COLUMNS, ATTENDANCE_COLUMNS, fmt
    )


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
        rows, total = await run_in_threadpool(
            functools.partial(attendance_page, engine, flt, limit=limit, offset=offset)
        )
        exact, next_cursor = True, None
    else:

        def load() -> tuple[list[dict[str, Any]], Any, tuple[int, bool]]:
            page, next_key = attendance_after(engine, flt, limit=limit, after=after)
            return page, next_key, attendance_total(engine, flt)

        rows, next_key, (total, exact) = await run_in_threadpool(load)
        next_cursor = None if next_key is None else encode_cursor(next_key)
    headers = {"X-Total-Exact": "true" if exact else "false"}
    if next_cursor is not None:
        headers["Link"] = (
            f'<{request.url.remove_query_params("offset").include_query_params(cursor=next_cursor)}>; rel="next"'
        )
    return _listing(
        request,
        _with_display_names(rows),
        total,
        limit,
        offset,
        ATTENDANCE_ITEM_COLUMNS,
        ATTENDANCE_COLUMNS,
        fmt,
        extra={"total_exact": exact, "next_cursor": next_cursor},
        extra_headers=headers,
    )


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
    flt = report_filter(request, "meeting_id", "session_id")
    rows = await run_in_threadpool(recordings_report, _engine(request), flt)
    page = rows[offset : offset + limit]
    await queue_expired_links(request, page)
    return _listing(request, page, len(rows), limit, offset, RECORDING_COLUMNS, RECORDING_COLUMNS, fmt)


async def list_events(request: Request) -> Response:
    """GET /api/events: stored webhook events, newest first, without raw bodies."""
    fmt = response_format(request)
    limit, offset = page_params(request)
    status = event_status_param(request)
    session_id = text_param(request, "session_id")
    rows, total = await run_in_threadpool(
        functools.partial(
            event_rows, _engine(request), status=status, session_id=session_id, limit=limit, offset=offset
        )
    )
    return _listing(request, rows, total, limit, offset, EVENT_COLUMNS, EVENT_COLUMNS, fmt)


async def retry(request: Request) -> Response:
    """POST /api/events/{event_id}/retry (operator): requeue one event (a done one is replayed); audited."""
    event_id = event_id_param(request)
    before = await run_in_threadpool(get_event, _engine(request), event_id)
    event = await run_in_threadpool(retry_event, _engine(request), event_id)
    action = "replay" if before is not None and before["status"] == EVENT_DONE else "retry"
    await run_in_threadpool(
        functools.partial(
            audit.record,
            _engine(request),
            request.state.principal,
            action,
            target=f"event:{event_id}",
            detail=event.get("event_name"),
            source="api",
            client=audit.client_address(request.scope.get("client")),
        )
    )
    return _json({"requeued": True, "event": {c: cell(event.get(c)) for c in EVENT_COLUMNS}})


async def openapi_endpoint(request: Request) -> Response:
    """GET /api/openapi.json: the OpenAPI 3 document (no token needed)."""
    return JSONResponse(openapi_document())


def api_routes(settings: Settings) -> list[BaseRoute]:
    """The ``/api`` routes, guarded by the bearer tokens of ``settings.api_tokens``."""
    auth = TokenAuth.from_settings(settings)
    page = ("limit", "offset", "format")

    def guard(handler: Handler, *params: str) -> Handler:
        return _guarded(auth, handler, params)

    return [
        Route("/api/openapi.json", openapi_endpoint, methods=["GET"]),
        Route("/api/sessions", guard(list_sessions, "meeting_id", "since", "until", *page), methods=["GET"]),
        Route("/api/sessions/{session_id}", guard(show_session, "format"), methods=["GET"]),
        Route("/api/sessions/{session_id}/attendance", guard(session_attendance, *page), methods=["GET"]),
        Route(
            "/api/attendance",
            guard(list_attendance, "meeting_id", "since", "until", "participant", "cursor", *page),
            methods=["GET"],
        ),
        Route("/api/recordings", guard(list_recordings, "meeting_id", "session_id", *page), methods=["GET"]),
        Route("/api/events", guard(list_events, "status", "session_id", *page), methods=["GET"]),
        Route("/api/events/{event_id}/retry", _guarded(auth, retry, (), Role.OPERATOR), methods=["POST"]),
        *erasure_routes(lambda handler: _guarded(auth, handler, (), Role.OPERATOR)),
    ]


def analyst_routes(settings: Settings) -> list[BaseRoute]:
    """Every analyst route: the reports API (``/api``) and the pages (``/ui``), for ``create_app(extra_routes=...)``.

    Raises:
        ConfigurationError: API_TOKENS is malformed (checked here, at start-up).
    """
    from receiver.web.pages import page_routes  # pages builds on this module's queries

    return [*api_routes(settings), *page_routes(settings)]
