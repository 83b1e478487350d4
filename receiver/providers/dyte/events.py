"""Typed models for Dyte webhook payloads, and :func:`parse_event`.

Every payload is a JSON object whose top-level ``event`` names one of the nine
events of the v2 spec (:data:`KNOWN_EVENTS`). :func:`parse_event` turns the
decoded JSON into one frozen pydantic model per event (:data:`DyteEvent`) and
raises only :class:`EventParseError` subclasses.

Quirks handled (``shared/dyte/FACTS.md``, "Payload quirks", and the example
payloads in ``shared/dyte/payloads/``):

* Webhook payloads are camelCase: model attributes are snake_case with
  camelCase aliases; snake_case keys are accepted too. Unknown keys are
  ignored, never rejected (Dyte may add fields at any time).
* Two timestamp formats (``2022-12-13T06:57:09.736Z`` for meetings and
  participants, ``2023-01-25 04:51:35.903816Z`` for recordings and download
  URL expiries); ``null``, ``"null"`` and ``""`` mean "absent". Every
  timestamp becomes a timezone-aware UTC ``datetime`` (via
  :mod:`receiver.timeparse`).
* ``participant.clientSpecificId`` is deprecated in favour of
  ``customParticipantId``; when only the old key is present its value is used
  for :attr:`ParticipantInfo.custom_participant_id`.
* ``meeting.sessionId`` can be missing (recording ``UPLOADING`` example);
  ``livestreaming.statusUpdate`` may carry only ``streamId`` and ``status``.
* ``meeting.chatSynced`` is flat: ``sessionId``, ``meetingId`` and the chat
  URL sit at top level, with no ``meeting`` object.
* ``recording.fileSize`` is a number or a numeric string (bytes);
  ``recording.stopReason`` is a string (an object arriving instead is kept as
  its compact JSON text); the recording id is ``id``, else ``recordingId``.
* A JSON object may repeat a key (``recording-statusUpdate-uploading.json``
  repeats ``meeting.createdAt``): the JSON decoder keeps the last value,
  before this module sees the payload.
* ``meeting.status`` stays ``LIVE`` even inside ``meeting.ended``: it is kept
  as sent and must not be read as the meeting's state.
* ``streamKey`` on livestream events is a secret: no model keeps it (it stays
  only in the raw stored body), and error messages never quote field values.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from datetime import datetime
from typing import Annotated, Any, Literal, get_args

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    model_validator,
)
from pydantic.alias_generators import to_camel
from pydantic_core import PydanticCustomError

from receiver.enums import EventType
from receiver.errors import ReceiverError
from receiver.timeparse import TimestampError, parse_optional_timestamp

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

#: The nine event names of the Dyte v2 spec enum (FACTS.md, "Delivery").
KNOWN_EVENTS: tuple[str, ...] = tuple(name.value for name in EventType)

# Largest file size accepted (fits a signed 64-bit database column).
_MAX_FILE_SIZE = 2**63 - 1
_NULLISH = {"", "null", "none", "undefined"}
_DIGITS = re.compile(r"^[0-9]{1,20}$")
_DECIMAL = re.compile(r"^[0-9]{1,20}(\.[0-9]{1,20})?$")
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
# Field validators (all raise PydanticCustomError with value-free messages)
# --------------------------------------------------------------------------


def _custom(kind: str, message: str) -> PydanticCustomError:
    return PydanticCustomError(kind, message)


def _optional_timestamp(value: object) -> datetime | None:
    """Aware UTC datetime, or ``None`` for null/"null"/"" (both Dyte formats)."""
    if value is not None and (isinstance(value, bool) or not isinstance(value, (str, int, float, datetime))):
        # Checked here so that timeparse never builds a repr of large junk.
        raise _custom("timestamp_type", "expected a timestamp string")
    try:
        return parse_optional_timestamp(value)
    except (TimestampError, ValueError, OverflowError, TypeError, RecursionError):
        raise _custom("timestamp", "malformed timestamp") from None


def _file_size(value: object) -> int | None:
    """Bytes as an ``int``: a whole JSON number or a numeric string."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise _custom("file_size", "expected a whole number of bytes")
    if isinstance(value, int):
        size = value
    elif isinstance(value, float):
        if not value.is_integer():  # also rejects NaN and infinities
            raise _custom("file_size", "expected a whole number of bytes")
        size = int(value)
    elif isinstance(value, str):
        text = value.strip()
        if text.lower() in _NULLISH:
            return None
        if not _DIGITS.match(text):
            raise _custom("file_size", "expected a whole number of bytes")
        size = int(text)
    else:
        raise _custom("file_size", "expected a whole number of bytes")
    if size < 0 or size > _MAX_FILE_SIZE:
        raise _custom("file_size", "file size out of range")
    return size


def _duration_seconds(value: object) -> float | None:
    """Seconds as a finite, non-negative ``float``: a JSON number or numeric string."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise _custom("duration", "expected a number of seconds")
    if isinstance(value, (int, float)):
        try:
            seconds = float(value)
        except OverflowError:
            raise _custom("duration", "duration out of range") from None
    elif isinstance(value, str):
        text = value.strip()
        if text.lower() in _NULLISH:
            return None
        if not _DECIMAL.match(text):
            raise _custom("duration", "expected a number of seconds")
        seconds = float(text)
    else:
        raise _custom("duration", "expected a number of seconds")
    if seconds != seconds or seconds in (float("inf"), float("-inf")) or seconds < 0:
        raise _custom("duration", "duration out of range")
    return seconds


def _stop_reason(value: object) -> str | None:
    """Strings as sent; anything else (an object) as its compact JSON text."""
    if value is None or isinstance(value, str):
        return value
    try:
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    except (TypeError, ValueError, RecursionError):
        raise _custom("stop_reason", "stop reason is neither a string nor JSON") from None


def _upper_status(value: object) -> str:
    """Non-empty string, stripped and upper-cased."""
    if not isinstance(value, str):
        raise _custom("status_type", "expected a status string")
    status = value.strip().upper()
    if not status:
        raise _custom("status_empty", "empty status")
    if len(status) > 20:
        raise _custom("status_length", "status longer than 20 characters")
    return status


_OptTimestamp = Annotated[datetime | None, BeforeValidator(_optional_timestamp)]
# Lengths follow the database columns (receiver/models.py): ids 100, person ids 200.
_Id = Annotated[str, Field(min_length=1, max_length=100)]
_OptId = Annotated[str | None, Field(max_length=100)]
_OptPersonId = Annotated[str | None, Field(max_length=200)]
_Status = Annotated[str, BeforeValidator(_upper_status)]


def _present(data: Mapping[Any, Any], *keys: str) -> object:
    """First value that is not None/"" under any of ``keys`` (alias first)."""
    for key in keys:
        value = data.get(key)
        if value is not None and value != "":
            return value
    return None


# --------------------------------------------------------------------------
# Building blocks
# --------------------------------------------------------------------------


class _Model(BaseModel):
    """Frozen, camelCase aliases, snake_case names accepted, extras ignored."""

    model_config = ConfigDict(
        frozen=True,
        populate_by_name=True,
        alias_generator=to_camel,
        extra="ignore",
    )


class Organizer(_Model):
    """``meeting.organizedBy`` / chatSynced ``organizedBy``: ``{id, name}``
    (the organisation that owns the meeting; both may be absent)."""

    id: str | None = None
    name: str | None = None


class MeetingInfo(_Model):
    """The ``meeting`` object of meeting, recording and livestream events.

    Shape (payloads ``meeting-*.json``): ``id`` (required), ``sessionId``
    (may be missing, e.g. ``recording-statusUpdate-uploading.json``),
    ``title``, ``roomName``, ``status``, ``createdAt``, ``startedAt``,
    ``endedAt`` (ISO 8601 UTC, ``null`` while live), ``organizedBy``.

    ``status`` stays ``LIVE`` even in ``meeting.ended`` (FACTS.md): do not
    derive meeting state from it. Timestamps are aware UTC.
    """

    id: _Id
    session_id: _OptId = None
    title: str | None = None
    room_name: str | None = None
    status: str | None = None
    created_at: _OptTimestamp = None
    started_at: _OptTimestamp = None
    ended_at: _OptTimestamp = None
    organized_by: Organizer | None = None


class ParticipantInfo(_Model):
    """The ``participant`` object of participantJoined/participantLeft.

    Shape (payloads ``meeting-participant*.json``): ``peerId`` (required; one
    per connection), ``userDisplayName``, ``customParticipantId`` (your own
    user id), deprecated ``clientSpecificId``, ``userId``, ``presetName``,
    ``joinedAt``, ``leftAt`` (aware UTC).

    ``custom_participant_id`` falls back to ``clientSpecificId`` when
    ``customParticipantId`` is absent or empty (FACTS.md: the old key may be
    the only one present); ``client_specific_id`` keeps the old key as sent.
    """

    peer_id: _Id
    user_display_name: str | None = None
    custom_participant_id: _OptPersonId = None
    client_specific_id: _OptPersonId = None
    user_id: _OptId = None
    preset_name: _OptPersonId = None
    joined_at: _OptTimestamp = None
    left_at: _OptTimestamp = None

    @model_validator(mode="before")
    @classmethod
    def _fallback_to_client_specific_id(cls, data: Any) -> Any:
        if isinstance(data, Mapping) and _present(data, "customParticipantId", "custom_participant_id") is None:
            old = _present(data, "clientSpecificId", "client_specific_id")
            if old is not None:
                data = {**data, "customParticipantId": old}
        return data

    @property
    def participant_key(self) -> str:
        """Stable identity of the person: ``custom_participant_id``, else ``peer_id``."""
        return self.custom_participant_id or self.peer_id


class RecordingInfo(_Model):
    """The ``recording`` object of ``recording.statusUpdate``.

    Shape (payloads ``recording-statusUpdate-*.json``):

    * ``id`` (required; taken from ``recordingId`` when ``id`` is absent),
      ``meetingId``, ``sessionId`` (not in the examples; kept if sent),
      ``organizationId``, ``roomUUID``, ``outputFileName``;
    * ``status``: upper-cased, e.g. INVOKED, RECORDING, UPLOADING, UPLOADED,
      ERRORED, PAUSED (FACTS.md, REST recordings);
    * ``startedTime``, ``stoppedTime``, ``downloadUrlExpiry``: aware UTC
      (sent as ``2023-01-25 04:51:35.903816Z``);
    * ``fileSize``: bytes, a number or a numeric string (FACTS.md);
    * ``recordingDuration``: seconds (float);
    * ``downloadUrl``, ``audioDownloadUrl``: pre-signed URLs that expire;
    * ``stopReason``: a string in real payloads (e.g. the Python-repr text
      ``"{'reason':'ALL_PEERS_LEFT',...}"``); an object is kept as JSON text.
    """

    id: _Id
    meeting_id: _OptId = None
    session_id: _OptId = None
    status: _Status
    started_time: _OptTimestamp = None
    stopped_time: _OptTimestamp = None
    file_size: Annotated[int | None, BeforeValidator(_file_size)] = None
    download_url: str | None = None
    audio_download_url: str | None = None
    download_url_expiry: _OptTimestamp = None
    output_file_name: str | None = None
    recording_duration: Annotated[float | None, BeforeValidator(_duration_seconds)] = None
    stop_reason: Annotated[str | None, BeforeValidator(_stop_reason)] = None
    room_uuid: str | None = Field(default=None, alias="roomUUID")
    organization_id: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _id_from_recording_id(cls, data: Any) -> Any:
        if isinstance(data, Mapping) and data.get("id") is None:
            recording_id = _present(data, "recordingId", "recording_id")
            if recording_id is not None:
                data = {**data, "id": recording_id}
        return data


# --------------------------------------------------------------------------
# Events
# --------------------------------------------------------------------------


class _MeetingEvent(_Model):
    """Common properties of events that carry a ``meeting`` object."""

    meeting: MeetingInfo

    @property
    def meeting_id(self) -> str | None:
        """``meeting.id``."""
        return self.meeting.id

    @property
    def session_id(self) -> str | None:
        """``meeting.sessionId`` (may be ``None``)."""
        return self.meeting.session_id


class MeetingStarted(_MeetingEvent):
    """``meeting.started`` (``meeting-started.json``): ``{event, meeting}``.

    ``occurred_at``: ``meeting.startedAt``, else ``meeting.createdAt``.
    """

    event: Literal["meeting.started"] = "meeting.started"

    @property
    def occurred_at(self) -> datetime | None:
        return self.meeting.started_at or self.meeting.created_at


class MeetingEnded(_MeetingEvent):
    """``meeting.ended`` (``meeting-ended.json``): ``{event, meeting, reason}``,
    ``reason`` e.g. ``HOST_ENDED_MEETING``. Arrives about a minute after the
    last participant leaves (FACTS.md); ``meeting.status`` still says ``LIVE``.

    ``occurred_at``: ``meeting.endedAt`` (``None`` if absent).
    """

    event: Literal["meeting.ended"] = "meeting.ended"
    reason: str | None = None

    @property
    def occurred_at(self) -> datetime | None:
        return self.meeting.ended_at


class ParticipantJoined(_MeetingEvent):
    """``meeting.participantJoined`` (``meeting-participantJoined.json``):
    ``{event, meeting, participant}``. ``occurred_at``: ``participant.joinedAt``.
    """

    event: Literal["meeting.participantJoined"] = "meeting.participantJoined"
    participant: ParticipantInfo

    @property
    def occurred_at(self) -> datetime | None:
        return self.participant.joined_at


class ParticipantLeft(_MeetingEvent):
    """``meeting.participantLeft`` (``meeting-participantLeft.json``):
    ``{event, meeting, participant}`` with ``joinedAt`` and ``leftAt``.
    ``occurred_at``: ``participant.leftAt``.
    """

    event: Literal["meeting.participantLeft"] = "meeting.participantLeft"
    participant: ParticipantInfo

    @property
    def occurred_at(self) -> datetime | None:
        return self.participant.left_at


class ChatSynced(_Model):
    """``meeting.chatSynced`` (``meeting-chatSynced.json``): flat, no
    ``meeting`` object (FACTS.md): ``sessionId``, ``meetingId``,
    ``chatDownloadUrl``, ``chatDownloadUrlExpiry`` (aware UTC),
    ``organizedBy``. ``occurred_at`` is always ``None`` (no event time sent).
    """

    event: Literal["meeting.chatSynced"] = "meeting.chatSynced"
    session_id: _OptId = None
    meeting_id: _OptId = None
    chat_download_url: str | None = None
    chat_download_url_expiry: _OptTimestamp = None
    organized_by: Organizer | None = None

    @property
    def occurred_at(self) -> datetime | None:
        return None


class TranscriptReady(_MeetingEvent):
    """``meeting.transcript`` (``meeting-transcript.json``): ``{event, meeting,
    transcriptDownloadUrl, transcriptDownloadUrlExpiry}`` (expiry aware UTC).

    ``occurred_at``: ``meeting.endedAt`` (the transcript follows the end).
    """

    event: Literal["meeting.transcript"] = "meeting.transcript"
    transcript_download_url: str | None = None
    transcript_download_url_expiry: _OptTimestamp = None

    @property
    def occurred_at(self) -> datetime | None:
        return self.meeting.ended_at


class SummaryReady(_MeetingEvent):
    """``meeting.summary`` (``meeting-summary.json``): ``{event, meeting,
    summaryDownloadUrl, summaryDownloadUrlExpiry}`` (expiry aware UTC).

    ``occurred_at``: ``meeting.endedAt``.
    """

    event: Literal["meeting.summary"] = "meeting.summary"
    summary_download_url: str | None = None
    summary_download_url_expiry: _OptTimestamp = None

    @property
    def occurred_at(self) -> datetime | None:
        return self.meeting.ended_at


class RecordingStatusUpdate(_Model):
    """``recording.statusUpdate`` (``recording-statusUpdate-*.json``):
    ``{event, recording, meeting}``; ``meeting`` may be absent.

    * ``meeting_id``: ``meeting.id``, else ``recording.meetingId`` (the two
      differ in ``recording-statusUpdate-uploaded.json``; the meeting object
      wins);
    * ``session_id``: ``recording.sessionId``, else ``meeting.sessionId``
      (both absent in the ``UPLOADING`` example);
    * ``occurred_at``: ``recording.stoppedTime``, else ``startedTime``.
    """

    event: Literal["recording.statusUpdate"] = "recording.statusUpdate"
    recording: RecordingInfo
    meeting: MeetingInfo | None = None

    @property
    def meeting_id(self) -> str | None:
        if self.meeting is not None:
            return self.meeting.id
        return self.recording.meeting_id

    @property
    def session_id(self) -> str | None:
        if self.recording.session_id:
            return self.recording.session_id
        return self.meeting.session_id if self.meeting is not None else None

    @property
    def occurred_at(self) -> datetime | None:
        return self.recording.stopped_time or self.recording.started_time


class LivestreamStatusUpdate(_Model):
    """``livestreaming.statusUpdate`` (``livestreaming-statusUpdate-*.json``):
    ``{event, streamId, status}``, optionally ``meetingId``, ``sessionId``
    and a ``meeting`` object.

    ``status`` is upper-cased (webhook values LIVE, OFFLINE, IDLE; FACTS.md).
    ``meeting_id``/``session_id`` come from the flat keys, else from
    ``meeting``. ``streamKey`` (a secret, FACTS.md) is deliberately not a
    field: it never appears in the model, its dump or its repr.
    ``occurred_at`` is always ``None``.
    """

    event: Literal["livestreaming.statusUpdate"] = "livestreaming.statusUpdate"
    stream_id: _Id
    status: _Status
    meeting_id: _OptId = None
    session_id: _OptId = None
    meeting: MeetingInfo | None = None

    @model_validator(mode="after")
    def _ids_from_meeting(self) -> LivestreamStatusUpdate:
        if self.meeting is None:
            return self
        update: dict[str, str] = {}
        if self.meeting_id is None:
            update["meeting_id"] = self.meeting.id
        if self.session_id is None and self.meeting.session_id is not None:
            update["session_id"] = self.meeting.session_id
        return self.model_copy(update=update) if update else self

    @property
    def occurred_at(self) -> datetime | None:
        return None


#: Any parsed Dyte webhook event, discriminated on ``event``.
DyteEvent = Annotated[
    MeetingStarted
    | MeetingEnded
    | ParticipantJoined
    | ParticipantLeft
    | ChatSynced
    | TranscriptReady
    | SummaryReady
    | RecordingStatusUpdate
    | LivestreamStatusUpdate,
    Field(discriminator="event"),
]

#: Event name -> model class, one per name in :data:`KNOWN_EVENTS`.
EVENT_MODELS: Mapping[str, type[BaseModel]] = {
    get_args(model.model_fields["event"].annotation)[0]: model for model in get_args(get_args(DyteEvent)[0])
}
if set(EVENT_MODELS) != set(KNOWN_EVENTS):  # pragma: no cover - import-time guard
    raise RuntimeError("EVENT_MODELS and KNOWN_EVENTS disagree")


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
