"""The few fields the inbox indexes, read from a decoded webhook body without validating it.

The receive path acknowledges a delivery once it is verified and stored; it
does not validate the payload against its model (that costs ~12 us of
pydantic per delivery, more than the JSON decode and about half an RSA
check). It still stores, for ``webhook_events``'s indexes and the analysts'
filters, the event name, meeting id, session id and event time.
:func:`indexed_fields` reads them from the same paths as the models of
:mod:`receiver.providers.dyte.event_models` (camelCase key first, then
snake_case; ``null`` and ``""`` mean absent) and never raises: a value of
the wrong type, or a timestamp that does not parse, is left out (None).

The worker validates the full model later
(:meth:`receiver.processing.worker.Worker`), flags an invalid event
(``parse_status = 'invalid'``, ``parse_error``, status ``ignored``) and
corrects these fields from the model when they differ, so the model stays
the one source of truth.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from receiver.enums import EventType
from receiver.timeparse import parse_timestamp

__all__ = ["IndexedFields", "indexed_fields"]

_KNOWN = frozenset(name.value for name in EventType)
_MAX_NAME_IN_MESSAGE = 100


@dataclass(frozen=True, slots=True)
class IndexedFields:
    """What the receive path stores beside the body.

    ``event_name``: the top-level ``event`` when a string (None otherwise);
    ``unknown_reason``: why the body is not a known event (None when it is;
    the same wording as :class:`receiver.providers.dyte.events.UnknownEventError`);
    ``occurred_at``: aware UTC, or None.
    """

    event_name: str | None
    unknown_reason: str | None = None
    meeting_id: str | None = None
    session_id: str | None = None
    occurred_at: datetime | None = None


def _get(data: Any, camel: str, snake: str) -> Any:
    """``data[camel]``, else ``data[snake]``; None for a missing, null or empty value or a non-object ``data``."""
    if not isinstance(data, dict):
        return None
    value = data.get(camel)
    if value is None or value == "":
        value = data.get(snake)
    return None if value == "" else value


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _time(data: Any, *keys: tuple[str, str]) -> datetime | None:
    """The first of ``keys`` present in ``data``, parsed (None when absent or unparseable)."""
    for camel, snake in keys:
        value = _get(data, camel, snake)
        if value is None:
            continue
        try:
            return parse_timestamp(value)
        except (ValueError, TypeError, OverflowError):
            return None
    return None


def _first(*values: str | None) -> str | None:
    for value in values:
        if value:
            return value
    return None


def indexed_fields(payload: Any) -> IndexedFields:
    """The indexed fields of a decoded body (see the module docstring for the paths, per event).

    Never raises. A body that is not an object, has no string ``event`` or an
    event outside the Dyte v2 enum (FACTS.md, "Delivery") gets ``unknown_reason``.
    """
    if not isinstance(payload, dict):
        return IndexedFields(None, "payload is not a JSON object")
    if "event" not in payload:
        return IndexedFields(None, 'payload has no "event" field')
    name = payload["event"]
    if not isinstance(name, str):
        return IndexedFields(None, '"event" is not a string')
    if name not in _KNOWN:
        shown = name if len(name) <= _MAX_NAME_IN_MESSAGE else name[:_MAX_NAME_IN_MESSAGE] + "..."
        return IndexedFields(name, f"unknown event {shown!r}")
    meeting = payload.get("meeting")
    meeting_id = _text(_get(meeting, "id", "id"))
    session_id = _text(_get(meeting, "sessionId", "session_id"))
    occurred_at: datetime | None = None
    if name == EventType.PARTICIPANT_JOINED:
        occurred_at = _time(payload.get("participant"), ("joinedAt", "joined_at"))
    elif name == EventType.PARTICIPANT_LEFT:
        occurred_at = _time(payload.get("participant"), ("leftAt", "left_at"))
    elif name == EventType.MEETING_STARTED:
        occurred_at = _time(meeting, ("startedAt", "started_at"), ("createdAt", "created_at"))
    elif name in (EventType.MEETING_ENDED, EventType.TRANSCRIPT, EventType.SUMMARY):
        occurred_at = _time(meeting, ("endedAt", "ended_at"))
    elif name == EventType.CHAT_SYNCED:
        meeting_id = _text(_get(payload, "meetingId", "meeting_id"))
        session_id = _text(_get(payload, "sessionId", "session_id"))
    elif name == EventType.RECORDING_STATUS_UPDATE:
        recording = payload.get("recording")
        meeting_id = _first(meeting_id, _text(_get(recording, "meetingId", "meeting_id")))
        session_id = _first(_text(_get(recording, "sessionId", "session_id")), session_id)
        occurred_at = _time(recording, ("stoppedTime", "stopped_time"), ("startedTime", "started_time"))
    elif name == EventType.LIVESTREAM_STATUS_UPDATE:
        meeting_id = _first(_text(_get(payload, "meetingId", "meeting_id")), meeting_id)
        session_id = _first(_text(_get(payload, "sessionId", "session_id")), session_id)
    return IndexedFields(name, None, meeting_id, session_id, occurred_at)
