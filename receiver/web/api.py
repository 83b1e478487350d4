"""The reports HTTP API under ``/api`` (JSON by default, CSV on request) and its OpenAPI 3 document.

Endpoints (all ``GET`` but the retry; see :func:`openapi_document` for the
full contract, served at ``GET /api/openapi.json``):

* ``/api/sessions`` (``meeting_id``, ``since``, ``until``),
  ``/api/sessions/{session_id}``, ``/api/sessions/{session_id}/attendance``;
* ``/api/attendance`` (``meeting_id``, ``since``, ``until``, ``participant``);
* ``/api/recordings`` (``meeting_id``, ``session_id``);
* ``/api/events`` (``status``, ``session_id``): the stored webhook events for
  operators, **without** raw bodies; ``POST /api/events/{event_id}/retry``
  requeues one (any state but ``processing`` and ``ignored``).

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
  CSV has no envelope. Both carry ``X-Total-Count``.
* Times (``since``/``until``): ``YYYY-MM-DD`` or ISO 8601 (no offset = UTC);
  the window applies to the session start (recordings: recording start).
* Errors: JSON ``{"error": code, "detail": text}``; bad parameters are 400,
  never 500; so is an unknown query parameter (a misspelt filter must not
  silently return everything). An empty id or time filter (``meeting_id=``) means "no filter";
  ``limit``, ``offset``, ``format`` and ``status`` must be valid when present.
"""

from __future__ import annotations

import functools
import re
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

from receiver.db.models import EVENT_DONE, EVENT_IGNORED, EVENT_PROCESSING, EVENT_STATUSES, WebhookEvent
from receiver.errors import HTTPError
from receiver.processing.links import LinkState, expired_recording_ids, queue_link_refresh
from receiver.processing.queue import requeue_events
from receiver.reports.formatting import cell, to_csv
from receiver.reports.queries import (
    ATTENDANCE_COLUMNS,
    RECORDING_COLUMNS,
    SESSION_COLUMNS,
    ReportFilter,
    attendance_page,
    display_names_of,
    recordings_report,
    sessions_report,
)
from receiver.responses import http_error_response
from receiver.settings import Settings
from receiver.timeparse import TimestampError, parse_timestamp
from receiver.web import audit
from receiver.web.auth import Role, TokenAuth, bearer_token

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
    "openapi_document",
    "parse_time_param",
    "retry_event",
]

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000
MAX_OFFSET = 1_000_000_000
#: Longest accepted filter or path identifier, characters.
MAX_TEXT = 200
#: Longest accepted ``since``/``until`` value, characters.
MAX_TIME_TEXT = 64
MAX_EVENT_ID = 2**63 - 1

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

_DATE_ONLY = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_DIGITS = re.compile(r"^[0-9]{1,19}$")
_NO_STORE = {"Cache-Control": "no-store"}


# An answer other than 200: the service's one HTTP error type.
ApiError = HTTPError


def _bad(detail: str) -> ApiError:
    return ApiError(400, "bad_request", detail)


# --------------------------------------------------------------------------
# Parameters
# --------------------------------------------------------------------------


def _check_text(name: str, value: str) -> str:
    if len(value) > MAX_TEXT:
        raise _bad(f"{name}: longer than {MAX_TEXT} characters")
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in value):
        raise _bad(f"{name}: control characters are not allowed")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise _bad(f"{name}: not valid UTF-8 text") from None
    return value


def text_param(request: Request, name: str) -> str | None:
    """Query parameter ``name`` as text (None when absent or empty); 400 when too long or with control characters."""
    value = request.query_params.get(name)
    if value is None or value == "":
        return None
    return _check_text(name, value)


def path_text(request: Request, name: str) -> str:
    """Path parameter ``name`` as text; 400 when too long or with control characters."""
    return _check_text(name, str(request.path_params[name]))


def parse_time_param(name: str, value: str | None) -> datetime | None:
    """A ``since``/``until`` value as an aware UTC datetime (``YYYY-MM-DD`` = midnight UTC); 400 when unreadable."""
    if value is None or value == "":
        return None
    if len(value) > MAX_TIME_TEXT:
        raise _bad(f"{name}: longer than {MAX_TIME_TEXT} characters")
    _check_text(name, value)
    text = value.strip()
    if _DATE_ONLY.match(text):
        text += "T00:00:00Z"
    try:
        return parse_timestamp(text)
    except (TimestampError, ValueError, OverflowError):
        raise _bad(f"{name}: not a date (YYYY-MM-DD) or ISO 8601 time: {value[:40]!r}") from None


def int_param(request: Request, name: str, default: int, minimum: int, maximum: int) -> int:
    """Query parameter ``name`` as an integer in ``[minimum, maximum]``; 400 otherwise."""
    raw = request.query_params.get(name)
    if raw is None:
        return default
    if not _DIGITS.match(raw):
        raise _bad(f"{name}: not a non-negative integer")
    value = int(raw)
    if value < minimum or value > maximum:
        raise _bad(f"{name}: must be between {minimum} and {maximum}")
    return value


def page_params(request: Request) -> tuple[int, int]:
    """``(limit, offset)`` from the query: limit 1..1000 (default 100), offset 0..1e9 (default 0)."""
    return (
        int_param(request, "limit", DEFAULT_LIMIT, 1, MAX_LIMIT),
        int_param(request, "offset", 0, 0, MAX_OFFSET),
    )


def _accept_prefers_csv(accept: str) -> bool:
    """True when ``Accept`` ranks ``text/csv`` above ``application/json`` (q-values honoured, ties: first listed)."""
    best: dict[str, tuple[float, int]] = {}
    for position, part in enumerate(accept.split(",")):
        media, *params = [p.strip() for p in part.split(";")]
        quality = 1.0
        for param in params:
            key, _, val = param.partition("=")
            if key.strip().lower() == "q":
                try:
                    quality = float(val)
                except ValueError:
                    quality = 0.0
        media = media.lower()
        if media in ("text/csv", "application/json") and media not in best:
            best[media] = (quality, -position)
    csv_rank = best.get("text/csv")
    if csv_rank is None or csv_rank[0] <= 0:
        return False
    json_rank = best.get("application/json")
    return json_rank is None or csv_rank > json_rank


def response_format(request: Request) -> str:
    """``json`` or ``csv``: ``?format=`` when given (400 if unknown), else from ``Accept``."""
    fmt = request.query_params.get("format")
    if fmt is not None:
        if fmt not in ("json", "csv"):
            raise _bad("format: use json or csv")
        return fmt
    return "csv" if _accept_prefers_csv(request.headers.get("accept", "")) else "json"


def _filter(request: Request, *names: str) -> ReportFilter:
    values: dict[str, Any] = {}
    for name in names:
        if name in ("since", "until"):
            values[name] = parse_time_param(name, request.query_params.get(name))
        else:
            values[name] = text_param(request, name)
    return ReportFilter(**values)


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
) -> Response:
    headers = {**_NO_STORE, "X-Total-Count": str(total)}
    if fmt == "csv":
        return Response(to_csv(rows, csv_columns), media_type="text/csv", headers=headers)
    body = {"items": _items(rows, json_columns), "total": total, "limit": limit, "offset": offset}
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


def _event_id(request: Request) -> int:
    raw = str(request.path_params["event_id"])
    if not _DIGITS.match(raw):
        raise _bad("event_id: not a positive integer")
    value = int(raw)
    if value < 1 or value > MAX_EVENT_ID:
        raise _bad(f"event_id: must be between 1 and {MAX_EVENT_ID}")
    return value


# --------------------------------------------------------------------------
# Endpoints
# --------------------------------------------------------------------------

Handler = Callable[[Request], Awaitable[Response]]


def check_known_params(request: Request, known: frozenset[str]) -> None:
    """400 when the query has a parameter outside ``known`` (a misspelt filter must not silently match everything)."""
    unknown = sorted(set(request.query_params.keys()) - known)
    if unknown:
        raise _bad(f"unknown query parameter {unknown[0][:40]!r}; use {', '.join(sorted(known)) or 'none'}")


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
    flt = _filter(request, "meeting_id", "since", "until")
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
        _one_session(engine, session_id)
        return attendance_page(engine, ReportFilter(session_id=session_id), limit=limit, offset=offset)

    rows, total = await run_in_threadpool(load)
    return _listing(
        request, _with_display_names(rows), total, limit, offset, ATTENDANCE_ITEM_COLUMNS, ATTENDANCE_COLUMNS, fmt
    )


async def list_attendance(request: Request) -> Response:
    """GET /api/attendance: attendance rows across sessions."""
    fmt = response_format(request)
    limit, offset = page_params(request)
    flt = _filter(request, "meeting_id", "since", "until", "participant")
    rows, total = await run_in_threadpool(
        functools.partial(attendance_page, _engine(request), flt, limit=limit, offset=offset)
    )
    return _listing(
        request, _with_display_names(rows), total, limit, offset, ATTENDANCE_ITEM_COLUMNS, ATTENDANCE_COLUMNS, fmt
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
    flt = _filter(request, "meeting_id", "session_id")
    rows = await run_in_threadpool(recordings_report, _engine(request), flt)
    page = rows[offset : offset + limit]
    await queue_expired_links(request, page)
    return _listing(request, page, len(rows), limit, offset, RECORDING_COLUMNS, RECORDING_COLUMNS, fmt)


async def list_events(request: Request) -> Response:
    """GET /api/events: stored webhook events, newest first, without raw bodies."""
    fmt = response_format(request)
    limit, offset = page_params(request)
    status = request.query_params.get("status")
    if status is not None and status not in EVENT_STATUSES:
        raise _bad(f"status: use one of {', '.join(EVENT_STATUSES)}")
    session_id = text_param(request, "session_id")
    rows, total = await run_in_threadpool(
        functools.partial(
            event_rows, _engine(request), status=status, session_id=session_id, limit=limit, offset=offset
        )
    )
    return _listing(request, rows, total, limit, offset, EVENT_COLUMNS, EVENT_COLUMNS, fmt)


async def retry(request: Request) -> Response:
    """POST /api/events/{event_id}/retry (operator): requeue one event (a done one is replayed); audited."""
    event_id = _event_id(request)
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
            guard(list_attendance, "meeting_id", "since", "until", "participant", *page),
            methods=["GET"],
        ),
        Route("/api/recordings", guard(list_recordings, "meeting_id", "session_id", *page), methods=["GET"]),
        Route("/api/events", guard(list_events, "status", "session_id", *page), methods=["GET"]),
        Route("/api/events/{event_id}/retry", _guarded(auth, retry, (), Role.OPERATOR), methods=["POST"]),
    ]


def analyst_routes(settings: Settings) -> list[BaseRoute]:
    """Every analyst route: the reports API (``/api``) and the pages (``/ui``), for ``create_app(extra_routes=...)``.

    Raises:
        ConfigurationError: API_TOKENS is malformed (checked here, at start-up).
    """
    from receiver.web.pages import page_routes  # pages builds on this module's queries

    return [*api_routes(settings), *page_routes(settings)]


# --------------------------------------------------------------------------
# OpenAPI 3 document
# --------------------------------------------------------------------------


def _nullable(schema: dict[str, Any]) -> dict[str, Any]:
    return {**schema, "nullable": True}


_STR = {"type": "string"}
_TIME = {"type": "string", "format": "date-time"}
_INT = {"type": "integer"}
_NUM = {"type": "number"}
_BOOL = {"type": "boolean"}


def _object(properties: dict[str, dict[str, Any]], description: str) -> dict[str, Any]:
    return {
        "type": "object",
        "description": description,
        "properties": properties,
        "required": list(properties),
        "additionalProperties": False,
    }


def _schemas() -> dict[str, Any]:
    session = _object(
        {
            "session_id": _STR,
            "meeting_id": _nullable(_STR),
            "meeting_title": _nullable(_STR),
            "started_at": _nullable(_TIME),
            "ended_at": _nullable(_TIME),
            "duration_seconds": _nullable({**_NUM, "description": "ended_at - started_at, seconds"}),
            "end_reason": _nullable(_STR),
            "status": {**_STR, "description": "live or ended"},
            "participants": {**_INT, "minimum": 0, "description": "distinct people (participant keys)"},
            "peers": {**_INT, "minimum": 0, "description": "connections (a person can have several)"},
            "peak_concurrency": {**_INT, "minimum": 0, "description": "most peers connected at once"},
            "reconciled": {**_BOOL, "description": "the Dyte REST API confirmed the session"},
        },
        "One session (one live run of a meeting). Times are UTC.",
    )
    attendance = _object(
        {
            "session_id": _STR,
            "meeting_id": _nullable(_STR),
            "participant_key": {**_STR, "description": "custom participant id, else peer id"},
            "display_name": _nullable({**_STR, "description": "latest display name"}),
            "first_joined_at": _nullable(_TIME),
            "last_left_at": _nullable(_TIME),
            "attended_seconds": {**_NUM, "minimum": 0, "description": "union of the person's intervals, seconds"},
            "join_count": {**_INT, "minimum": 0, "description": "peers (joins) of the person"},
            "attendance_ratio": _nullable({**_NUM, "description": "attended_seconds / session duration"}),
            "closed_at_session_end": {
                **_BOOL,
                "description": "an interval had no leave and was closed at the session end",
            },
            "provenance": {"type": "string", "enum": ["webhook", "api", "both"]},
            "session_reconciled": _BOOL,
            "display_names": {"type": "array", "items": _STR, "description": "every display name used (JSON only)"},
        },
        "One person in one session.",
    )
    recording = _object(
        {
            "recording_id": _STR,
            "meeting_id": _nullable(_STR),
            "session_id": _nullable(_STR),
            "status": {**_STR, "description": "INVOKED, RECORDING, PAUSED, UPLOADING, UPLOADED or ERRORED"},
            "started_at": _nullable(_TIME),
            "stopped_at": _nullable(_TIME),
            "duration_seconds": _nullable(_NUM),
            "file_size_bytes": _nullable(_INT),
            "output_file_name": _nullable(_STR),
            "download_url": _nullable(
                {**_STR, "description": "pre-signed link; stops working at download_url_expires_at"}
            ),
            "download_url_expires_at": _nullable(_TIME),
            "audio_download_url": _nullable(_STR),
        },
        "One recording (newest known state).",
    )
    event = _object(
        {
            "id": {**_INT, "minimum": 1},
            "delivery_id": {**_STR, "description": "dyte-uuid header (idempotency key)"},
            "webhook_id": _nullable(_STR),
            "event_name": _nullable(_STR),
            "received_at": _TIME,
            "occurred_at": _nullable(_TIME),
            "meeting_id": _nullable(_STR),
            "session_id": _nullable(_STR),
            "signature_scheme": _STR,
            "body_sha256": {**_STR, "description": "hex SHA-256 of the stored body (the body itself is never served)"},
            "parse_status": {"type": "string", "enum": ["ok", "unknown_event", "invalid"]},
            "parse_error": _nullable(_STR),
            "status": {"type": "string", "enum": list(EVENT_STATUSES)},
            "attempts": {**_INT, "minimum": 0},
            "last_error": _nullable(_STR),
            "next_attempt_at": _nullable(_TIME),
            "locked_by": _nullable(_STR),
            "locked_until": _nullable(_TIME),
            "processed_at": _nullable(_TIME),
            "duplicate_count": {**_INT, "minimum": 0},
            "conflict_count": {**_INT, "minimum": 0},
        },
        "One stored webhook delivery and its processing state (no raw body).",
    )

    def page(item: str) -> dict[str, Any]:
        return _object(
            {
                "items": {"type": "array", "items": {"$ref": f"#/components/schemas/{item}"}},
                "total": {**_INT, "minimum": 0, "description": "rows matching the filters, all pages"},
                "limit": {**_INT, "minimum": 1, "maximum": MAX_LIMIT},
                "offset": {**_INT, "minimum": 0},
            },
            f"One page of {item} rows.",
        )

    return {
        "Session": session,
        "AttendanceRow": attendance,
        "Recording": recording,
        "Event": event,
        "SessionPage": page("Session"),
        "AttendancePage": page("AttendanceRow"),
        "RecordingPage": page("Recording"),
        "EventPage": page("Event"),
        "RetryResult": _object(
            {"requeued": {"type": "boolean", "enum": [True]}, "event": {"$ref": "#/components/schemas/Event"}},
            "The requeued event, now pending.",
        ),
        "Error": _object(
            {
                "error": {
                    **_STR,
                    "description": "short code: bad_request, unauthorized, forbidden, not_found, conflict, "
                    "not_configured",
                },
                "detail": _STR,
            },
            "An error.",
        ),
    }


def _query(name: str, description: str, schema: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "description": description,
        "schema": schema or {"type": "string", "maxLength": MAX_TEXT},
    }


_TEXT_SCHEMA = {"type": "string", "maxLength": MAX_TEXT, "pattern": "^[^\\x00-\\x1f\\x7f]*$"}
_PARAMETERS: dict[str, Any] = {
    "limit": _query(
        "limit",
        "Rows per page (1..1000).",
        {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT, "default": DEFAULT_LIMIT},
    ),
    "offset": _query("offset", "Rows to skip.", {"type": "integer", "minimum": 0, "maximum": MAX_OFFSET, "default": 0}),
    "format": _query(
        "format",
        "json (default) or csv; wins over the Accept header (Accept: text/csv also gives CSV).",
        {"type": "string", "enum": ["json", "csv"]},
    ),
    "meeting_id": _query("meeting_id", "Only this meeting. Empty: no filter.", _TEXT_SCHEMA),
    "session_id_q": _query("session_id", "Only this session. Empty: no filter.", _TEXT_SCHEMA),
    "participant": _query(
        "participant", "Only this participant key (custom participant id, else peer id).", _TEXT_SCHEMA
    ),
    "since": _query(
        "since",
        "Sessions started at or after this time: YYYY-MM-DD or ISO 8601 (no offset = UTC).",
        {"type": "string", "maxLength": MAX_TIME_TEXT},
    ),
    "until": _query(
        "until",
        "Sessions started before this time: YYYY-MM-DD or ISO 8601 (no offset = UTC).",
        {"type": "string", "maxLength": MAX_TIME_TEXT},
    ),
    "status": _query(
        "status", "Only events in this processing state.", {"type": "string", "enum": list(EVENT_STATUSES)}
    ),
    "session_id": {
        "name": "session_id",
        "in": "path",
        "required": True,
        "description": "Dyte session id.",
        "schema": {"type": "string", "minLength": 1, "maxLength": MAX_TEXT, "pattern": "^[^\\x00-\\x1f\\x7f/]+$"},
    },
    "event_id": {
        "name": "event_id",
        "in": "path",
        "required": True,
        "description": "Stored event id (webhook_events.id).",
        "schema": {"type": "integer", "minimum": 1, "maximum": MAX_EVENT_ID},
    },
}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/parameters/{name}"}


def _error(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
    }


_TOTAL_HEADER = {
    "X-Total-Count": {
        "description": "Rows matching the filters, all pages.",
        "schema": {"type": "integer", "minimum": 0},
    }
}
_COMMON_ERRORS = {
    "400": _error("A query or path parameter is invalid, or the query has an unknown parameter."),
    "401": {
        **_error("Missing or wrong bearer token."),
        "headers": {"WWW-Authenticate": {"description": "Bearer challenge.", "schema": {"type": "string"}}},
    },
    "503": _error("API_TOKENS is not configured: the API is disabled."),
}


def _list_operation(summary: str, page: str, params: list[str], csv_note: str) -> dict[str, Any]:
    return {
        "get": {
            "summary": summary,
            "operationId": summary.lower().replace(" ", "_"),
            "parameters": [_ref(p) for p in params] + [_ref("limit"), _ref("offset"), _ref("format")],
            "responses": {
                "200": {
                    "description": f"One page. JSON: the {page} envelope. CSV ({csv_note}): header row and the page's rows, no envelope.",
                    "headers": _TOTAL_HEADER,
                    "content": {
                        "application/json": {"schema": {"$ref": f"#/components/schemas/{page}"}},
                        "text/csv": {"schema": {"type": "string"}},
                    },
                },
                **_COMMON_ERRORS,
            },
        }
    }


def openapi_document() -> dict[str, Any]:
    """The OpenAPI 3.0.3 description of every ``/api`` endpoint, its parameters, answers and the bearer scheme."""
    not_found = _error("No such object.")
    paths: dict[str, Any] = {
        "/api/sessions": _list_operation(
            "List sessions", "SessionPage", ["meeting_id", "since", "until"], "columns of Session"
        ),
        "/api/sessions/{session_id}": {
            "get": {
                "summary": "Get session",
                "operationId": "get_session",
                "parameters": [_ref("session_id"), _ref("format")],
                "responses": {
                    "200": {
                        "description": "The session (CSV: header and one row).",
                        "content": {
                            "application/json": {"schema": {"$ref": "#/components/schemas/Session"}},
                            "text/csv": {"schema": {"type": "string"}},
                        },
                    },
                    "404": not_found,
                    **_COMMON_ERRORS,
                },
            }
        },
        "/api/sessions/{session_id}/attendance": {
            "get": {
                **_list_operation(
                    "Session attendance", "AttendancePage", [], "columns of AttendanceRow but display_names"
                )["get"],
                "operationId": "session_attendance",
                "parameters": [_ref("session_id"), _ref("limit"), _ref("offset"), _ref("format")],
            }
        },
        "/api/attendance": _list_operation(
            "List attendance",
            "AttendancePage",
            ["meeting_id", "since", "until", "participant"],
            "columns of AttendanceRow but display_names",
        ),
        "/api/recordings": {
            "get": {
                **_list_operation(
                    "List recordings", "RecordingPage", ["meeting_id", "session_id_q"], "columns of Recording"
                )["get"],
                "description": "Download links expire at download_url_expires_at. An expired link on the page "
                "returned is queued for a refresh by the worker (not fetched during the request); ask again "
                "later for the fresh link.",
            }
        },
        "/api/events": _list_operation("List events", "EventPage", ["status", "session_id_q"], "columns of Event"),
        "/api/events/{event_id}/retry": {
            "post": {
                "summary": "Retry event",
                "operationId": "retry_event",
                "description": "Requeue one stored event: status back to pending, attempts reset to 0, error cleared "
                "(a done event is replayed). Needs a token with the operator role; recorded in the audit log "
                "under the token's name (a refused attempt too).",
                "parameters": [_ref("event_id")],
                "responses": {
                    "200": {
                        "description": "Requeued.",
                        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/RetryResult"}}},
                    },
                    "403": _error("The token's role is analyst: retrying needs the operator role."),
                    "404": not_found,
                    "409": _error("The event is being processed, or was ignored (nothing to apply)."),
                    **_COMMON_ERRORS,
                },
            }
        },
        "/api/openapi.json": {
            "get": {
                "summary": "OpenAPI document",
                "operationId": "openapi_document",
                "security": [],
                "responses": {
                    "200": {
                        "description": "This document.",
                        "content": {"application/json": {"schema": {"type": "object"}}},
                    }
                },
            }
        },
    }
    # The list "session attendance" operation has its own 404.
    paths["/api/sessions/{session_id}/attendance"]["get"]["responses"] = {
        **paths["/api/sessions/{session_id}/attendance"]["get"]["responses"],
        "404": not_found,
    }
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "receiver reports API",
            "version": "1",
            "description": "Attendance, sessions, recordings and the webhook event log of the Dyte webhook receiver. "
            "Times are ISO 8601 UTC; durations are seconds. JSON by default; CSV with ?format=csv or Accept: text/csv.",
        },
        "paths": paths,
        "components": {
            "securitySchemes": {
                "bearerAuth": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "A token of API_TOKENS (name:role:token, or a plain token: role analyst). "
                    "Every GET needs the analyst role; the retry needs operator.",
                }
            },
            "parameters": _PARAMETERS,
            "schemas": _schemas(),
        },
        "security": [{"bearerAuth": []}],
    }
