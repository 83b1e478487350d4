"""Parsing of Dyte webhook payloads: :func:`parse_event` and its errors.

:func:`parse_event` turns a decoded webhook body into one frozen pydantic
model per event (:data:`DyteEvent`, defined with the payload quirks in
:mod:`receiver.providers.dyte.event_models` and re-exported here) and raises
only :class:`EventParseError` subclasses: :class:`UnknownEventError` for a
body that is not a known event (stored and flagged, never a failed
delivery), :class:`EventValidationError` for a known event with missing or
malformed fields. Error messages name paths, never values (a value may be a
secret such as ``streamKey``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError

from receiver.errors import ReceiverError
from receiver.providers.dyte.event_models import (
    EVENT_MODELS,
    KNOWN_EVENTS,
    ChatSynced,
    DyteEvent,
    LivestreamStatusUpdate,
    MeetingEnded,
    MeetingInfo,
    MeetingStarted,
    Organizer,
    ParticipantInfo,
    ParticipantJoined,
    ParticipantLeft,
    RecordingInfo,
    RecordingStatusUpdate,
    SummaryReady,
    TranscriptReady,
)

__all__ = [
    "KNOWN_EVENTS",
    "EVENT_MODELS",
    "EventParseError",
    "UnknownEventError",
    "EventValidationError",
    "Organizer",
    "MeetingInfo",
    "ParticipantInfo",
    "RecordingInfo",
    "MeetingStarted",
    "MeetingEnded",
    "ParticipantJoined",
    "ParticipantLeft",
    "ChatSynced",
    "TranscriptReady",
    "SummaryReady",
    "RecordingStatusUpdate",
    "LivestreamStatusUpdate",
    "DyteEvent",
    "parse_event",
    "event_name_of",
]

# How many pydantic errors are spelled out in an EventValidationError.
_MAX_REPORTED_ERRORS = 5
_MAX_NAME_IN_MESSAGE = 100


# --------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------


class EventParseError(ReceiverError, ValueError):
    """A webhook payload that cannot be turned into a :data:`DyteEvent`.

    Attributes:
        event_name: the payload's ``event`` string, or ``None`` when the
            payload is not an object or has no string ``event``.
        reason: short human summary; never contains field values (which may
            be secrets such as ``streamKey``). ``str(error) == reason``.
    """

    def __init__(self, event_name: str | None, reason: str) -> None:
        super().__init__(reason)
        self.event_name = event_name
        self.reason = reason

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.event_name, self.reason))


class UnknownEventError(EventParseError):
    """The payload is not a JSON object, has no string ``event``, or names an
    event outside :data:`KNOWN_EVENTS` (the receiver should store and skip it,
    not fail the delivery)."""


class EventValidationError(EventParseError):
    """A known event whose fields are missing or of the wrong type.

    ``reason`` lists up to five problems as ``"<path>: <message>"`` joined by
    ``"; "``, for example ``"participant.joinedAt: malformed timestamp"``.
    Paths use the payload's (camelCase) keys.

    Attributes:
        problems: every problem as a ``(path, message)`` pair.
    """

    def __init__(
        self,
        event_name: str | None,
        reason: str,
        problems: tuple[tuple[str, str], ...] = (),
    ) -> None:
        super().__init__(event_name, reason)
        self.problems = problems

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.event_name, self.reason, self.problems))


# --------------------------------------------------------------------------
# Parsing
# --------------------------------------------------------------------------


def event_name_of(payload: object) -> str | None:
    """The payload's top-level ``event`` if it is a string, else ``None``.

    Never raises; meant for storing a delivery before validating it.
    """
    if isinstance(payload, dict):
        name = payload.get("event")
        if isinstance(name, str):
            return name
    return None


def _path(loc: tuple[int | str, ...]) -> str:
    parts: list[str] = []
    for item in loc:
        if isinstance(item, int):
            parts.append(f"[{item}]")
        else:
            parts.append(("." if parts else "") + str(item)[:_MAX_NAME_IN_MESSAGE])
    return "".join(parts) or "payload"


def _message(error: Mapping[str, Any]) -> str:
    # Pydantic's own messages describe the expected type, not the input; our
    # validators raise value-free PydanticCustomError messages. A plain
    # ValueError text could quote the value, so it is replaced.
    if error.get("type") in ("value_error", "assertion_error"):
        return "invalid value"
    msg = str(error.get("msg") or "invalid value")
    return msg[:1].lower() + msg[1:]


def _summarise(exc: ValidationError) -> tuple[str, tuple[tuple[str, str], ...]]:
    problems = tuple(
        (_path(tuple(err.get("loc", ()))), _message(err))
        for err in exc.errors(include_url=False, include_input=False, include_context=False)
    )
    shown = "; ".join(f"{path}: {msg}" for path, msg in problems[:_MAX_REPORTED_ERRORS])
    hidden = len(problems) - _MAX_REPORTED_ERRORS
    if hidden > 0:
        shown += f"; and {hidden} more"
    return shown or "invalid payload", problems


def _storable_text(payload: object) -> bool:
    """False when any string (key or value) holds NUL or a lone surrogate (iterative walk)."""
    stack = [payload]
    while stack:
        node = stack.pop()
        if isinstance(node, str):
            if "\x00" in node:
                return False
            try:
                node.encode("utf-8")
            except UnicodeEncodeError:
                return False
        elif isinstance(node, dict):
            stack.extend(node.keys())
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return True


def parse_event(payload: object, *, raw_body: bytes | None = None) -> DyteEvent:
    """Validate one decoded webhook body into its event model.

    Args:
        payload: the decoded JSON (any type).
        raw_body: the UTF-8 JSON text ``payload`` was decoded from, when the
            caller has it. A string can only hold NUL or a lone surrogate
            through a ``\\u`` escape (JSON forbids raw control characters and
            the text is valid UTF-8), so a body without one skips the walk
            over every string.

    Returns:
        One of the :data:`DyteEvent` models, with aware UTC timestamps.

    Raises:
        UnknownEventError: ``payload`` is not a JSON object, its ``event`` is
            missing or not a string, or not in :data:`KNOWN_EVENTS`.
        EventValidationError: a known event with missing or malformed fields
            (``reason`` names the paths, never the values).

    No other exception escapes.
    """
    if not isinstance(payload, dict):
        raise UnknownEventError(None, "payload is not a JSON object")
    if "event" not in payload:
        raise UnknownEventError(None, 'payload has no "event" field')
    name = payload["event"]
    if not isinstance(name, str):
        raise UnknownEventError(None, '"event" is not a string')
    model = EVENT_MODELS.get(name)
    if model is None:
        shown = name if len(name) <= _MAX_NAME_IN_MESSAGE else name[:_MAX_NAME_IN_MESSAGE] + "..."
        raise UnknownEventError(name, f"unknown event {shown!r}")
    if (raw_body is None or b"\\u" in raw_body) and not _storable_text(payload):
        # PostgreSQL text cannot hold NUL; lone surrogates cannot be encoded.
        raise EventValidationError(name, "a text field contains NUL or invalid Unicode")
    try:
        return model.model_validate(payload)  # type: ignore[return-value]
    except ValidationError as exc:
        reason, problems = _summarise(exc)
        error = EventValidationError(name, reason, problems)
    except RecursionError:
        error = EventValidationError(name, "payload is too deeply nested")
    except Exception as exc:  # the contract: only EventParseError escapes
        error = EventValidationError(name, f"payload could not be validated ({type(exc).__name__})")
    # Raised outside the except blocks so that no exception (whose text may
    # quote secret field values) is chained onto the error.
    raise error
