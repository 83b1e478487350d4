"""The OpenAPI parts of the issue #21 endpoints and filters (merged by :func:`receiver.web.openapi.openapi_document`).

Owns the schemas of the answers of :mod:`receiver.web.api_analytics` (an
event with its payload, a person, their weeks, a series, the overview) and
the parameters the listings gained (search ``q``, the ``sort`` whitelists,
the event filters); the limits come from :mod:`receiver.web.params` and the
sort keys from the report modules, so the document cannot drift from the checks.
"""

from __future__ import annotations

from typing import Any

from receiver.reports.browse import RECORDING_SORTS, SESSION_SORTS
from receiver.reports.event_log import EVENT_SORTS
from receiver.reports.export import MEDIA_TYPES
from receiver.reports.overview import MAX_BUCKETS, PERIODS
from receiver.reports.series import MAX_OCCURRENCES
from receiver.web.params import MAX_LIMIT, MAX_TEXT, MAX_TIME_TEXT

__all__ = ["analytics_parameters", "analytics_paths", "analytics_schemas"]

_STR = {"type": "string"}
_TIME = {"type": "string", "format": "date-time"}
_DATE = {"type": "string", "format": "date"}
_INT = {"type": "integer"}
_NUM = {"type": "number"}
_TEXT = {"type": "string", "maxLength": MAX_TEXT, "pattern": "^[^\\x00-\\x1f\\x7f]*$"}
_PATH_TEXT = {"type": "string", "minLength": 1, "maxLength": MAX_TEXT, "pattern": "^[^\\x00-\\x1f\\x7f/]+$"}


def _nullable(schema: dict[str, Any]) -> dict[str, Any]:
    return {**schema, "nullable": True}


def _object(properties: dict[str, dict[str, Any]], description: str) -> dict[str, Any]:
    return {
        "type": "object",
        "description": description,
        "properties": properties,
        "required": list(properties),
        "additionalProperties": False,
    }


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _param(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/parameters/{name}"}


def _query(name: str, description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "description": description, "schema": schema}


def _sort(allowed: dict[str, Any], default: str) -> dict[str, Any]:
    keys = sorted(allowed)
    return _query(
        "sort",
        f"Sort key, - prefix for descending (default {default}); ties by id. Another key: 400.",
        {"type": "string", "enum": [*keys, *(f"-{k}" for k in keys)]},
    )


def analytics_parameters() -> dict[str, Any]:
    """Components ``parameters``: search, sorts, event filters, windows, period, occurrences, path keys."""
    window = {"type": "string", "maxLength": MAX_TIME_TEXT}
    return {
        "q": _query(
            "q",
            "Search, case-insensitive: sessions by session/meeting id, meeting title, a person's key (exact) or "
            "display name; recordings by id, file name, meeting/session id or meeting title.",
            _TEXT,
        ),
        "sort_sessions": _sort(SESSION_SORTS, "started_at"),
        "sort_recordings": _sort(RECORDING_SORTS, "-started_at"),
        "sort_events": _sort(EVENT_SORTS, "-id"),
        "event_name": _query("event_name", "Only events of this type (e.g. meeting.participantJoined).", _TEXT),
        "delivery_id": _query("delivery_id", "Only the event of this delivery id (idempotency key).", _TEXT),
        "received_since": _query("since", "Events received at or after this time (YYYY-MM-DD or ISO 8601).", window),
        "received_until": _query("until", "Events received before this time (YYYY-MM-DD or ISO 8601).", window),
        "recording_since": _query("since", "Recordings started at or after this time.", window),
        "recording_until": _query("until", "Recordings started before this time.", window),
        "period": _query(
            "period", "Bucket: UTC day or ISO week (Monday). Default day.", {"type": "string", "enum": list(PERIODS)}
        ),
        "overview_since": _query(
            "since",
            f"Sessions started at or after this time (default: 90 days / 26 weeks before until; at most "
            f"{MAX_BUCKETS} buckets).",
            window,
        ),
        "overview_until": _query("until", "Sessions started before this time (default now).", window),
        "occurrences": _query(
            "occurrences",
            "How many of the newest occurrences (sessions) of the meeting to show.",
            {"type": "integer", "minimum": 1, "maximum": MAX_OCCURRENCES, "default": 12},
        ),
        "participant_key": {
            "name": "participant_key",
            "in": "path",
            "required": True,
            "description": "The person: custom participant id, else peer id.",
            "schema": _PATH_TEXT,
        },
        "meeting_id_path": {
            "name": "meeting_id",
            "in": "path",
            "required": True,
            "description": "Dyte meeting id.",
            "schema": _PATH_TEXT,
        },
    }


def analytics_schemas(event_properties: dict[str, Any], attendance_properties: dict[str, Any]) -> dict[str, Any]:
    """Components ``schemas``: ``EventDetail``, ``Person``, ``PersonReport``, ``Weeks``, ``Series``, ``Overview``.

    ``event_properties`` / ``attendance_properties``: the properties of the
    ``Event`` and ``AttendanceRow`` schemas, extended here.
    """
    week = _object(
        {
            "period_start": {**_DATE, "description": "Monday of the ISO week (UTC)"},
            "sessions": {**_INT, "minimum": 0},
            "attended_minutes": {**_NUM, "minimum": 0, "description": "minutes, 0.1"},
        },
        "One ISO week of a person.",
    )
    person_session = _object(
        {
            **{k: v for k, v in attendance_properties.items() if k != "display_names"},
            "session_started_at": _nullable(_TIME),
            "meeting_title": _nullable(_STR),
        },
        "One session a person attended: the attendance row plus the session start and meeting title.",
    )
    person = _object(
        {
            "participant_key": _STR,
            "display_names": {"type": "array", "items": _STR, "description": "every name used, first seen first"},
            "sessions": {**_INT, "minimum": 1},
            "meetings": {**_INT, "minimum": 0},
            "attended_seconds": {**_NUM, "minimum": 0, "description": "seconds, all sessions in the window"},
            "first_seen_at": _nullable(_TIME),
            "last_seen_at": _nullable(_TIME),
        },
        "A person's totals in the window.",
    )
    return {
        "EventDetail": _object(
            {
                **event_properties,
                "purged_at": _nullable(_TIME),
                "erased_at": _nullable(_TIME),
                "payload_state": {"type": "string", "enum": ["stored", "purged", "erased", "empty"]},
                "payload": _nullable(
                    {**_STR, "description": "the stored raw body, pretty-printed, secrets replaced by [redacted]"}
                ),
            },
            "One stored event with its payload (secrets redacted; null once purged or erased).",
        ),
        "Person": person,
        "PersonSession": person_session,
        "Week": week,
        "PersonReport": _object(
            {
                "person": _ref("Person"),
                "weeks": {"type": "array", "items": _ref("Week")},
                "items": {"type": "array", "items": _ref("PersonSession")},
                "total": {**_INT, "minimum": 0, "description": "sessions attended in the window, all pages"},
                "limit": {**_INT, "minimum": 1, "maximum": MAX_LIMIT},
                "offset": {**_INT, "minimum": 0},
            },
            "A person: totals, minutes per week, one page of sessions (newest first).",
        ),
        "Weeks": _object({"items": {"type": "array", "items": _ref("Week")}}, "A person's weeks, oldest first."),
        "Series": _object(
            {
                "meeting_id": _STR,
                "title": _nullable(_STR),
                "total_occurrences": {**_INT, "minimum": 0, "description": "sessions in the window (all, not shown)"},
                "average_ratio": _nullable({**_NUM, "description": "mean attendance ratio over every cell, 0..1"}),
                "occurrences": {
                    "type": "array",
                    "items": _object(
                        {
                            "session_id": _STR,
                            "started_at": _nullable(_TIME),
                            "people": {**_INT, "minimum": 0},
                            "attended_minutes": {**_NUM, "minimum": 0},
                            "average_ratio": _nullable(_NUM),
                        },
                        "One occurrence and its attendance (the trend).",
                    ),
                },
                "people": {
                    "type": "array",
                    "items": _object(
                        {
                            "participant_key": _STR,
                            "display_name": _nullable(_STR),
                            "attended": {**_INT, "minimum": 0, "description": "occurrences attended"},
                            "average_ratio": _nullable(_NUM),
                            "minutes": {
                                "type": "array",
                                "items": _nullable(_NUM),
                                "description": "minutes per occurrence (same order); null: absent",
                            },
                        },
                        "One person of the series.",
                    ),
                },
            },
            "A recurring meeting: its newest occurrences (oldest first) x people.",
        ),
        "Overview": _object(
            {
                "period": {"type": "string", "enum": list(PERIODS)},
                "since": _TIME,
                "until": _TIME,
                "items": {
                    "type": "array",
                    "items": _object(
                        {
                            "period_start": _DATE,
                            "sessions": {**_INT, "minimum": 0},
                            "people": {**_INT, "minimum": 0, "description": "distinct people in the bucket"},
                            "attended_minutes": {**_NUM, "minimum": 0},
                        },
                        "One day or week.",
                    ),
                },
            },
            "Sessions, people and attended minutes per day or week of session start (UTC).",
        ),
    }


def _get(
    summary: str, params: list[str], schema: str, description: str, common_errors: dict[str, Any], csv: str | None
) -> dict[str, Any]:
    content: dict[str, Any] = {"application/json": {"schema": _ref(schema)}}
    if csv:
        content["text/csv"] = {"schema": {"type": "string"}}
        content[MEDIA_TYPES["xlsx"]] = {"schema": {"type": "string", "format": "binary"}}
    return {
        "get": {
            "summary": summary,
            "operationId": summary.lower().replace(" ", "_"),
            "description": description,
            "parameters": [_param(p) for p in params],
            "responses": {
                "200": {"description": f"JSON: {schema}." + (f" CSV: {csv}." if csv else ""), "content": content},
                "404": {"description": "No such object.", "content": {"application/json": {"schema": _ref("Error")}}},
                **common_errors,
            },
        }
    }


def analytics_paths(common_errors: dict[str, Any]) -> dict[str, Any]:
    """The path items of :mod:`receiver.web.api_analytics`; ``common_errors`` are the API's 400/401/503 answers."""
    return {
        "/api/events/{event_id}": _get(
            "Get event",
            ["event_id"],
            "EventDetail",
            "One stored event with its raw body pretty-printed, secrets redacted. JSON only.",
            common_errors,
            None,
        ),
        "/api/people/{participant_key}": _get(
            "Get person",
            ["participant_key", "since", "until", "limit", "offset", "format"],
            "PersonReport",
            "One person across sessions started in the window. 404: no attendance in it.",
            common_errors,
            "the page's PersonSession rows",
        ),
        "/api/people/{participant_key}/weeks": _get(
            "Person weeks",
            ["participant_key", "since", "until", "format"],
            "Weeks",
            "A person's attended minutes and sessions per ISO week (Monday, UTC), gaps as 0.",
            common_errors,
            "the weeks",
        ),
        "/api/meetings/{meeting_id}/series": _get(
            "Get series",
            ["meeting_id_path", "since", "until", "occurrences", "format"],
            "Series",
            "A recurring meeting: who came to which of its newest occurrences, minutes, the trend.",
            common_errors,
            "meeting_id, session_id, session_started_at, participant_key, display_name, attended_minutes: "
            "one row per person per occurrence attended",
        ),
        "/api/overview": {
            "get": {
                **_get(
                    "Get overview",
                    ["period", "overview_since", "overview_until", "format"],
                    "Overview",
                    "Sessions, people and attended minutes per UTC day or ISO week.",
                    common_errors,
                    "period_start, sessions, people, attended_minutes",
                )["get"],
            }
        },
    }
