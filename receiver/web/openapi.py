"""The hand-written OpenAPI 3.0.3 document of the reports API (``GET /api/openapi.json``).

Owns the schemas of every ``/api`` answer (sessions, attendance rows,
recordings, events, pages, errors), the shared parameter descriptions (their
limits come from :mod:`receiver.web.params`, so the document and the checks
cannot drift), the operations and the bearer security scheme. Tests compare
this document with live answers (``tests/web/test_api.py``).
"""

from __future__ import annotations

from typing import Any

from receiver.db.models import EVENT_STATUSES
from receiver.reports.export import MEDIA_TYPES
from receiver.web import outbound
from receiver.web.erasures import openapi_paths, openapi_schemas
from receiver.web.openapi_analytics import analytics_parameters, analytics_paths, analytics_schemas
from receiver.web.params import (
    DEFAULT_LIMIT,
    MAX_CURSOR,
    MAX_EVENT_ID,
    MAX_LIMIT,
    MAX_OFFSET,
    MAX_TEXT,
    MAX_TIME_TEXT,
)

__all__ = ["openapi_document"]


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
            # issue #18: inferred ends, breakout rooms, meeting id disagreements
            "end_inferred": {
                **_BOOL,
                "description": "the end was inferred (nobody present, no event for SESSION_IDLE_END_SECONDS), "
                "not yet confirmed by meeting.ended or the REST API",
            },
            "parent_session_id": _nullable({**_STR, "description": "for a breakout room: its main session"}),
            "api_meeting_id": _nullable(
                {**_STR, "description": "the REST API's meeting id when it differs from meeting_id (kept)"}
            ),
        },
        "One session (one live run of a meeting). Times are UTC (or in the zone of tz=).",
    )
    attendance = _object(
        {
            "session_id": _STR,
            "meeting_id": _nullable(_STR),
            "meeting_title": _nullable({**_STR, "description": "title of the session's meeting"}),
            "participant_key": {**_STR, "description": "custom participant id, else peer id"},
            "display_name": _nullable({**_STR, "description": "latest display name"}),
            "preset_name": _nullable(
                {**_STR, "description": "role: the preset of most of the person's peers (a tie: the later peer)"}
            ),
            "is_guest": {**_BOOL, "description": "no peer of the person carried a custom participant id"},
            "custom_participant_id": _nullable(
                {**_STR, "description": "the app's id of the person (join to a user directory on it)"}
            ),
            "user_id": _nullable({**_STR, "description": "Dyte's participant user id (most of the peers')"}),
            "first_joined_at": _nullable(_TIME),
            "last_left_at": _nullable(_TIME),
            "attended_seconds": {**_NUM, "minimum": 0, "description": "union of the person's intervals, seconds"},
            "attended_minutes": {
                **_NUM,
                "minimum": 0,
                "description": "attended_seconds / 60, rounded half up to one decimal",
            },
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
        "AttendanceCursorPage": _object(
            {
                **page("AttendanceRow")["properties"],
                "total": {
                    **_INT,
                    "minimum": 0,
                    "description": "rows matching the filters, all pages; an estimate when total_exact is false",
                },
                "total_exact": {
                    **_BOOL,
                    "description": "false when total is the PostgreSQL planner's estimate (more than 50,000 rows)",
                },
                "next_cursor": _nullable(
                    {
                        **_STR,
                        "description": "pass as ?cursor= for the next page; null on the last page and with offset > 0",
                    }
                ),
            },
            "One page of AttendanceRow rows, with the cursor of the next one.",
        ),
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
    "cursor": _query(
        "cursor",
        "Start after the row this cursor names: next_cursor of the previous page, unchanged (opaque). "
        "As fast deep in the listing as at its start; not with offset > 0.",
        {"type": "string", "maxLength": MAX_CURSOR},
    ),
    "format": _query(
        "format",
        "json (default), csv or xlsx (a workbook, as an attachment); wins over the Accept header"
        " (Accept: text/csv also gives CSV).",
        {"type": "string", "enum": ["json", "csv", "xlsx"]},
    ),
    "tz": _query(
        "tz",
        "IANA time zone (Europe/Berlin) to show times in, with its offset; absent or empty: UTC.",
        {"type": "string", "maxLength": 64},
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
            "parameters": [_ref(p) for p in params] + [_ref("limit"), _ref("offset"), _ref("format"), _ref("tz")],
            "responses": {
                "200": {
                    "description": f"One page. JSON: the {page} envelope. CSV and XLSX ({csv_note}): header row and"
                    " the page's rows, no envelope.",
                    "headers": _TOTAL_HEADER,
                    "content": {
                        "application/json": {"schema": {"$ref": f"#/components/schemas/{page}"}},
                        "text/csv": {"schema": {"type": "string"}},
                        MEDIA_TYPES["xlsx"]: {"schema": {"type": "string", "format": "binary"}},
                    },
                },
                **_COMMON_ERRORS,
            },
        }
    }


_EXPORT_FORMAT = _query(
    "format", "csv (default), json (a plain array) or xlsx.", {"type": "string", "enum": ["csv", "json", "xlsx"]}
)


def _export_operation(summary: str, params: list[str], item: str) -> dict[str, Any]:
    return {
        "get": {
            "summary": summary,
            "operationId": summary.lower().replace(" ", "_"),
            "description": f"Every matching row (columns of {item}"
            + (" but display_names" if item == "AttendanceRow" else "")
            + "), streamed as an attachment; no pages. XLSX: typed cells (dates, numbers), text never a formula.",
            # Inline, not a component: a second component named "format" would clash with the listings' one.
            "parameters": [_EXPORT_FORMAT, _ref("tz")] + [_ref(p) for p in params],
            "responses": {
                "200": {
                    "description": "The rows: CSV with a header row, a JSON array, or an XLSX workbook.",
                    "headers": {
                        "Content-Disposition": {"description": "attachment; filename=...", "schema": {"type": "string"}}
                    },
                    "content": {
                        "text/csv": {"schema": {"type": "string"}},
                        "application/json": {"schema": {"type": "array", "items": {"type": "object"}}},
                        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": {
                            "schema": {"type": "string", "format": "binary"}
                        },
                    },
                },
                **_COMMON_ERRORS,
            },
        }
    }


def _attendance_operation() -> dict[str, Any]:
    """``GET /api/attendance``: a list operation with ``cursor``, the cursor envelope and its headers."""
    operation = _list_operation(
        "List attendance",
        "AttendanceCursorPage",
        ["meeting_id", "since", "until", "participant", "cursor"],
        "columns of AttendanceRow but display_names",
    )
    get = operation["get"]
    get["description"] = (
        "Page with cursor: omit offset, then pass next_cursor as ?cursor= (a Link rel=next header carries the same "
        "URL). offset > 0 still works but counts every row before the page (slow on large databases) and returns "
        "next_cursor null. total is exact unless total_exact is false: on PostgreSQL, above 50,000 matching rows, "
        "it is the query planner's estimate."
    )
    get["responses"]["200"]["headers"] = {
        **_TOTAL_HEADER,
        "X-Total-Exact": {
            "description": "false when X-Total-Count is an estimate.",
            "schema": {"type": "string", "enum": ["true", "false"]},
        },
        "Link": {"description": 'The next page: <url>; rel="next" (absent on the last page).', "schema": _STR},
    }
    return operation


def openapi_document() -> dict[str, Any]:
    """The OpenAPI 3.0.3 description of every ``/api`` endpoint, its parameters, answers and the bearer scheme."""
    not_found = _error("No such object.")
    paths: dict[str, Any] = {
        "/api/sessions": _list_operation(
            "List sessions", "SessionPage", ["meeting_id", "since", "until", "q", "sort_sessions"], "columns of Session"
        ),
        "/api/sessions/{session_id}": {
            "get": {
                "summary": "Get session",
                "operationId": "get_session",
                "parameters": [_ref("session_id"), _ref("format"), _ref("tz")],
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
                "parameters": [_ref("session_id"), _ref("limit"), _ref("offset"), _ref("format"), _ref("tz")],
            }
        },
        "/api/attendance": _attendance_operation(),
        "/api/recordings": {
            "get": {
                **_list_operation(
                    "List recordings",
                    "RecordingPage",
                    ["meeting_id", "session_id_q", "recording_since", "recording_until", "q", "sort_recordings"],
                    "columns of Recording",
                )["get"],
                "description": "Download links expire at download_url_expires_at. An expired link on the page "
                "returned is queued for a refresh by the worker (not fetched during the request); ask again "
                "later for the fresh link.",
            }
        },
        "/api/events": _list_operation(
            "List events",
            "EventPage",
            ["status", "session_id_q", "event_name", "delivery_id", "received_since", "received_until", "sort_events"],
            "columns of Event",
        ),
        "/api/export/attendance": _export_operation(
            "Export attendance", ["meeting_id", "session_id_q", "since", "until", "participant"], "AttendanceRow"
        ),
        "/api/export/sessions": _export_operation("Export sessions", ["meeting_id", "since", "until"], "Session"),
        "/api/export/recordings": _export_operation(
            "Export recordings", ["meeting_id", "session_id_q", "since", "until"], "Recording"
        ),
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
    paths.update(openapi_paths(_COMMON_ERRORS))
    paths.update(outbound.openapi_paths(_COMMON_ERRORS, _PARAMETERS))
    paths.update(analytics_paths(_COMMON_ERRORS))
    schemas = _schemas()
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
                    "Every GET needs the analyst role; the retry and the erasure need operator.",
                }
            },
            "parameters": {**_PARAMETERS, **analytics_parameters()},
            "schemas": {
                **schemas,
                **openapi_schemas(),
                **outbound.openapi_schemas(),
                **analytics_schemas(schemas["Event"]["properties"], schemas["AttendanceRow"]["properties"]),
            },
        },
        "security": [{"bearerAuth": []}],
    }
