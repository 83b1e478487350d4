"""Typed models of Dyte webhook payloads: one frozen pydantic model per event (:data:`DyteEvent`).

Every payload is a JSON object whose top-level ``event`` names one of the nine
events of the v2 spec (:data:`KNOWN_EVENTS`; :data:`EVENT_MODELS` maps each to
its model). Validation goes through
:func:`receiver.providers.dyte.events.parse_event`, which raises only
``EventParseError`` subclasses. Value coercions (null-like strings, numbers as
strings, timestamps) are shared with the REST models:
:mod:`receiver.providers.dyte.coercion`.

Quirks handled (``shared/dyte/FACTS.md``, "Payload quirks", and the example
payloads in ``shared/dyte/payloads/``):

* Webhook payloads are camelCase: model attributes are snake_case with
  camelCase aliases; snake_case keys are accepted too. Unknown keys are
  ignored, never rejected (Dyte may add fields at any time).
* Two timestamp formats (``2022-12-13T06:57:09.736Z`` for meetings and
  participants, ``2023-01-25 04:51:35.903816Z`` for recordings and download
  URL expiries); ``null``, ``"null"`` and ``""`` mean "absent". Every
  timestamp becomes a timezone-aware UTC ``datetime`` (via
  :mod:`receiver.timeparse`, :data:`~receiver.providers.dyte.coercion.OptTimestamp`).
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
from collections.abc import Mapping
from datetime import datetime
from typing import Annotated, Any, Literal, get_args

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator
from pydantic.alias_generators import to_camel

from receiver.enums import EventType
from receiver.providers.dyte.coercion import (
    CoercionError,
    DurationSeconds,
    FileSizeBytes,
    OptTimestamp,
    pydantic_validator,
)

__all__ = [
    "KNOWN_EVENTS",
    "EVENT_MODELS",
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
]

#: The nine event names of the Dyte v2 spec enum (FACTS.md, "Delivery").
KNOWN_EVENTS: tuple[str, ...] = tuple(name.value for name in EventType)


# --------------------------------------------------------------------------
# Field rules of webhook payloads (value-free errors; see coercion.pydantic_validator)
# --------------------------------------------------------------------------


def _stop_reason(value: object) -> str | None:
    """Strings as sent; anything else (an object) as its compact JSON text."""
    if value is None or isinstance(value, str):
        return value
    try:
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    except (TypeError, ValueError, RecursionError):
        raise CoercionError("stop_reason", "stop reason is neither a string nor JSON") from None


def _upper_status(value: object) -> str:
    """Non-empty string, stripped and upper-cased."""
    if not isinstance(value, str):
        raise CoercionError("status_type", "expected a status string")
    status = value.strip().upper()
    if not status:
        raise CoercionError("status_empty", "empty status")
    if len(status) > 20:
        raise CoercionError("status_length", "status longer than 20 characters")
    return status


# Lengths follow the database columns (receiver/models.py): ids 100, person ids 200.
_Id = Annotated[str, Field(min_length=1, max_length=100)]
_OptId = Annotated[str | None, Field(max_length=100)]
_OptPersonId = Annotated[str | None, Field(max_length=200)]
_Status = Annotated[str, BeforeValidator(pydantic_validator(_upper_status))]


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
    created_at: OptTimestamp = None
    started_at: OptTimestamp = None
    ended_at: OptTimestamp = None
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
    joined_at: OptTimestamp = None
    left_at: OptTimestamp = None

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
    started_time: OptTimestamp = None
    stopped_time: OptTimestamp = None
    file_size: FileSizeBytes = None
    download_url: str | None = None
    audio_download_url: str | None = None
    download_url_expiry: OptTimestamp = None
    output_file_name: str | None = None
    recording_duration: DurationSeconds = None
    stop_reason: Annotated[str | None, BeforeValidator(pydantic_validator(_stop_reason))] = None
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
    chat_download_url_expiry: OptTimestamp = None
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
    transcript_download_url_expiry: OptTimestamp = None

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
    summary_download_url_expiry: OptTimestamp = None

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
