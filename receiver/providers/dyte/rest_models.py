"""Frozen pydantic models of Dyte v2 REST API objects, tolerant of the spec's oddities.

Field names follow the snake_case REST objects of
``shared/dyte/openapi-v2.yaml`` (components ``ActiveSession``,
``ParticipantsList``, ``Recording``, ``LivestreamBase``, ``Meeting``,
``Webhook``, ``PagingResponse.paging``). Every model:

* ignores extra fields and accepts camelCase keys (as in webhook payloads)
  when the snake_case key is absent;
* treats a missing field, ``null``, ``""``, ``"null"`` and ``"undefined"`` as
  ``None`` (or ``()`` / the documented default for non-optional fields);
* reads numbers given as strings (``"12"``, ``"12.5"``);
* reads both timestamp formats (``2022-12-13T06:57:09.736Z`` and
  ``2023-01-25 04:51:35.903816Z``) into aware UTC datetimes;
* never raises for a malformed timestamp, number or boolean: the field is
  set to ``None`` and its name is recorded in ``invalid_fields`` (the spec's
  own example carries ``'2023-02-01T10:50:36.846Z"'``).

The value rules are those of the webhook models too, in one place:
:mod:`receiver.providers.dyte.coercion` (its lenient converters).

Only ``id`` is required (a non-empty string; numbers are stringified);
without it validation raises :class:`pydantic.ValidationError`.

Units: all datetimes are UTC; ``ApiParticipant.duration_minutes`` is in
minutes (spec ``duration``); ``ApiRecording.recording_duration`` is in
seconds and ``file_size`` in bytes; ``ApiSession.minutes_consumed`` is in
minutes.

Secrets (``ApiLivestream.stream_key`` and ``ingest_server``) are
:class:`pydantic.SecretStr`: masked in ``repr`` and in
``model_dump(mode="json")``; call ``.get_secret_value()`` deliberately.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, SecretStr, model_validator

from receiver.providers.dyte.coercion import (
    CoercionError,
    Converter,
    converter_for,
    is_nullish,
    to_number,
    to_str_tuple,
)

__all__ = [
    "DyteModel",
    "ApiSession",
    "ApiParticipant",
    "ApiRecording",
    "ApiLivestream",
    "ApiMeeting",
    "ApiWebhook",
    "ApiPeerEvent",
    "ApiLivestreamSession",
    "Page",
]

_CAMEL = re.compile(r"(?<=[a-z0-9])([A-Z])")


def _snake(key: str) -> str:
    return _CAMEL.sub(r"_\1", key).lower()


class DyteModel(BaseModel):
    """Base of the API models: frozen, extra fields ignored, lenient coercion (see module docstring).

    Attributes:
        invalid_fields: names of fields whose present value could not be
            read (the field is then ``None``), in field order.
    """

    model_config = ConfigDict(frozen=True, extra="ignore", hide_input_in_errors=True)

    # Source key -> field name, applied when the field's own key is absent.
    _renames: ClassVar[dict[str, str]] = {}
    # Values used when a non-optional field is absent or null.
    _null_defaults: ClassVar[dict[str, Any]] = {}
    _converters_cache: ClassVar[dict[type, dict[str, Converter | None]]] = {}

    invalid_fields: tuple[str, ...] = ()

    @classmethod
    def _field_converters(cls) -> dict[str, Converter | None]:
        """Field name -> its lenient converter (None: passed to pydantic as is), built once per class."""
        converters = DyteModel._converters_cache.get(cls)
        if converters is None:
            converters = {
                name: converter_for(info.annotation)
                for name, info in cls.model_fields.items()
                if name != "invalid_fields"
            }
            DyteModel._converters_cache[cls] = converters
        return converters

    @classmethod
    def _prepare(cls, data: dict[str, Any]) -> dict[str, Any]:
        """Hook for subclasses: adjust the raw mapping before coercion."""
        return data

    @model_validator(mode="before")
    @classmethod
    def _coerce(cls, data: Any) -> Any:
        if not isinstance(data, Mapping):
            return data  # pydantic reports the type error (or accepts a model)
        raw: dict[str, Any] = {}
        for key, value in data.items():
            if isinstance(key, str):
                raw.setdefault(key, value)
        for key, value in list(raw.items()):
            snake = _snake(key)
            if snake != key:
                raw.setdefault(snake, value)
        for source, target in cls._renames.items():
            if target not in raw and source in raw:
                raw[target] = raw[source]
        raw = cls._prepare(raw)

        try:
            invalid = list(to_str_tuple(raw.get("invalid_fields") or ()))
        except CoercionError:
            invalid = []
        out: dict[str, Any] = {}
        for name, convert in cls._field_converters().items():
            if name not in raw:
                if name in cls._null_defaults:
                    out[name] = cls._null_defaults[name]
                continue
            value = raw[name]
            if convert is None:
                out[name] = value
                continue
            if is_nullish(value):
                if name != "id":  # a null id stays missing: pydantic rejects it
                    out[name] = cls._null_defaults.get(name)
                continue
            try:
                out[name] = convert(value)
            except CoercionError:
                if name == "id":
                    out[name] = value  # let pydantic reject an unusable id
                    continue
                out[name] = cls._null_defaults.get(name)
                if name not in invalid:
                    invalid.append(name)
        out["invalid_fields"] = tuple(invalid)
        return out


def _upper(value: Any) -> Any:
    return value.strip().upper() if isinstance(value, str) else value


def _mappings(value: Any) -> tuple[Mapping[str, Any], ...]:
    """The objects of a list field (``peer_events``, ``breakout_rooms``); anything else is dropped."""
    if not isinstance(value, (list, tuple)):
        return ()
    return tuple(item for item in value if isinstance(item, Mapping))


def _rounded(data: dict[str, Any], *names: str) -> None:
    """Round numbers with a fraction (the spec types counts and sizes as ``number``) to the nearest integer."""
    for name in names:
        value = data.get(name)
        if isinstance(value, bool) or is_nullish(value):
            continue
        try:
            number = to_number(value)
        except CoercionError:
            continue  # left to the converter: recorded in invalid_fields
        if isinstance(number, float):
            data[name] = round(number)


_REASON_IN_TEXT = re.compile(r"""['"]reason['"]\s*:\s*['"]([^'"]+)['"]""")


def _reason_code(value: Any) -> Any:
    """A start/stop reason as its code: ``{"reason": "ALL_PEERS_LEFT", ...}`` (spec ``stopReason``), the
    webhook's Python-repr text of that object, or a plain string; other values are left to the converter."""
    if isinstance(value, Mapping):
        return value.get("reason")
    if isinstance(value, str):
        found = _REASON_IN_TEXT.search(value)
        return found.group(1) if found else value
    return value


class ApiSession(DyteModel):
    """A meeting session (spec ``ActiveSession``; ``GET /sessions``, ``GET /sessions/{session_id}``).

    ``associated_id`` is the meeting id; ``status`` is ``LIVE`` or ``ENDED``
    (upper-cased); ``minutes_consumed`` is in minutes; datetimes are UTC.
    """

    id: str
    associated_id: str | None = None
    meeting_display_name: str | None = None
    type: str | None = None
    status: str | None = None
    live_participants: int | None = None
    max_concurrent_participants: int | None = None
    minutes_consumed: float | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None
    started_at: datetime | None = None
    ended_at: datetime | None = None
    #: Breakout room sessions (``GET /sessions/{id}?include_breakout_rooms=true``), each an ApiSession.
    breakout_rooms: tuple[ApiSession, ...] = ()

    @classmethod
    def _prepare(cls, data: dict[str, Any]) -> dict[str, Any]:
        if "status" in data:
            data["status"] = _upper(data["status"])
        _rounded(data, "live_participants", "max_concurrent_participants")
        if "breakout_rooms" in data:
            data["breakout_rooms"] = _mappings(data["breakout_rooms"])
        return data

    @property
    def meeting_id(self) -> str | None:
        """Alias of ``associated_id``."""
        return self.associated_id


class ApiParticipant(DyteModel):
    """One participant of a session (spec ``ParticipantsList``; ``GET /sessions/{session_id}/participants``).

    Peer identity: the spec's participant object has no ``peer_id`` field;
    its ``id`` "maps to the corresponding peerId". So ``peer_id`` is the
    object's ``peer_id`` (or ``peerId``) when present, else ``id``.

    Every field is optional, ``id`` included (the spec requires none): a
    participant without ``id`` still validates, with ``id`` and ``peer_id``
    None (an ``id`` that is not a string or number is recorded in
    ``invalid_fields``). ``peer_events`` holds the per-peer join/leave
    events of ``include_peer_events=true`` (example
    ``ParticipantListWithPeerEventSucces``).

    ``duration_minutes`` is the spec's ``duration``, in MINUTES (kept as is;
    see :attr:`duration_seconds`). Datetimes are UTC.
    """

    _renames: ClassVar[dict[str, str]] = {"duration": "duration_minutes"}

    id: str | None = None
    peer_id: str | None = None
    user_id: str | None = None
    custom_participant_id: str | None = None
    display_name: str | None = None
    preset_name: str | None = None
    joined_at: datetime | None = None
    left_at: datetime | None = None
    duration_minutes: float | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None
    peer_events: tuple[ApiPeerEvent, ...] = ()

    @classmethod
    def _prepare(cls, data: dict[str, Any]) -> dict[str, Any]:
        identity = data.get("id")
        if not is_nullish(identity) and (isinstance(identity, bool) or not isinstance(identity, (str, int, float))):
            data["id"] = None  # unusable: kept out of the identity, recorded as unreadable
            data["invalid_fields"] = ("id",)
        if "peer_events" in data:
            data["peer_events"] = _mappings(data["peer_events"])
        # Deprecated webhook name for custom_participant_id (FACTS.md).
        if is_nullish(data.get("custom_participant_id")) and not is_nullish(data.get("client_specific_id")):
            data["custom_participant_id"] = data["client_specific_id"]
        if is_nullish(data.get("peer_id")):
            data["peer_id"] = data.get("id")
        return data

    @property
    def participant_key(self) -> str:
        """Stable key for attendance: ``custom_participant_id``, else ``peer_id``, else ``id``, else
        ``user_id`` (``""`` when the participant carries none of them)."""
        return self.custom_participant_id or self.peer_id or self.id or self.user_id or ""

    @property
    def duration_seconds(self) -> float | None:
        """``duration_minutes * 60``, or ``None``."""
        return None if self.duration_minutes is None else self.duration_minutes * 60.0


class ApiRecording(DyteModel):
    """A recording (spec ``Recording``; ``GET /recordings/{recording_id}``).

    ``status`` is upper-cased (INVOKED, RECORDING, UPLOADING, UPLOADED,
    ERRORED, PAUSED). ``meeting_id`` is not in the spec's ``Recording``
    schema: it is read from ``meeting_id`` or from a nested ``meeting.id``
    (as in ``GET /recordings``). ``file_size`` is in bytes,
    ``recording_duration`` in seconds; datetimes (often space-separated with
    microseconds) are UTC. ``download_url`` expires at ``download_url_expiry``.
    """

    id: str
    meeting_id: str | None = None
    session_id: str | None = None
    status: str | None = None
    invoked_time: datetime | None = None
    started_time: datetime | None = None
    stopped_time: datetime | None = None
    download_url: str | None = None
    download_url_expiry: datetime | None = None
    audio_download_url: str | None = None
    file_size: int | None = None
    recording_duration: float | None = None
    output_file_name: str | None = None
    #: Reason codes of ``GET /recordings/{id}`` (spec ``startReason`` / ``stopReason``), e.g. ``API_CALL``, ``ALL_PEERS_LEFT``.
    start_reason: str | None = None
    stop_reason: str | None = None

    @classmethod
    def _prepare(cls, data: dict[str, Any]) -> dict[str, Any]:
        if "status" in data:
            data["status"] = _upper(data["status"])
        _rounded(data, "file_size")
        for name in ("start_reason", "stop_reason"):
            if name in data:
                data[name] = _reason_code(data[name])
        meeting = data.get("meeting")
        if is_nullish(data.get("meeting_id")) and isinstance(meeting, Mapping) and meeting.get("id"):
            data["meeting_id"] = meeting["id"]
        return data


class ApiLivestream(DyteModel):
    """A livestream (spec ``LivestreamBase`` / ``data.livestream`` of ``GET /livestreams/{livestream_id}``).

    ``status`` is upper-cased; REST statuses are LIVE, IDLE, ERRORED, INVOKED
    (webhooks also send OFFLINE). ``session_id`` is filled only when the
    object itself carries ``session_id``: the ``sessions`` listed beside a
    livestream are livestream sessions, not meeting sessions.
    ``stream_key`` and ``ingest_server`` (the RTMP ingest URL) are secrets,
    held as :class:`~pydantic.SecretStr`. Datetimes are UTC.
    """

    id: str
    meeting_id: str | None = None
    session_id: str | None = None
    name: str | None = None
    status: str | None = None
    playback_url: str | None = None
    disabled: bool | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None
    stream_key: SecretStr | None = None
    ingest_server: SecretStr | None = None

    @classmethod
    def _prepare(cls, data: dict[str, Any]) -> dict[str, Any]:
        if "status" in data:
            data["status"] = _upper(data["status"])
        if "id" not in data and not is_nullish(data.get("stream_id")):
            data["id"] = data["stream_id"]
        return data


class ApiPeerEvent(DyteModel):
    """One per-peer event of a participant (``include_peer_events=true``): ``event_name`` is
    ``PEER_JOINING`` or ``PEER_LEAVING`` (upper-cased), at ``created_at`` (UTC), for ``peer_id``."""

    id: str | None = None
    peer_id: str | None = None
    event_name: str | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None

    @classmethod
    def _prepare(cls, data: dict[str, Any]) -> dict[str, Any]:
        if "event_name" in data:
            data["event_name"] = _upper(data["event_name"])
        return data


class ApiLivestreamSession(DyteModel):
    """One run of a livestream (spec: ``GET /sessions/{session_id}/livestream-sessions``,
    ``/livestreams/sessions/{id}``, the ``sessions`` of ``GET /meetings/{meeting_id}/livestream``).

    ``id`` is the livestream session id, ``livestream_id`` its livestream,
    ``session_id`` the meeting session when the object says so.
    ``ingest_seconds`` (input streamed) and ``viewer_seconds`` (total view
    time of all viewers) are seconds (the spec types them as number,
    integer or string); datetimes are UTC.
    """

    id: str
    livestream_id: str | None = None
    session_id: str | None = None
    err_message: str | None = None
    invoked_time: datetime | None = None
    started_time: datetime | None = None
    stopped_time: datetime | None = None
    ingest_seconds: float | None = None
    viewer_seconds: float | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None


class ApiMeeting(DyteModel):
    """A meeting (spec ``Meeting``; ``GET /meetings/{meeting_id}``); ``status`` is ACTIVE or INACTIVE, datetimes UTC."""

    id: str
    title: str | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None
    status: str | None = None

    @classmethod
    def _prepare(cls, data: dict[str, Any]) -> dict[str, Any]:
        if "status" in data:
            data["status"] = _upper(data["status"])
        return data


class ApiWebhook(DyteModel):
    """A webhook subscription (spec ``Webhook``; ``/webhooks`` CRUD).

    ``events`` is a tuple of event names (``()`` when absent); ``enabled``
    defaults to ``True`` (the spec's create default) when absent or null.
    Datetimes are UTC.
    """

    _null_defaults: ClassVar[dict[str, Any]] = {"events": (), "enabled": True}

    id: str
    name: str | None = None
    url: str | None = None
    events: tuple[str, ...] = ()
    enabled: bool = True
    created_at: datetime | None = None
    updated_at: datetime | None = None


class Page(DyteModel):
    """The spec's ``paging`` object: ``total_count``, ``start_offset``, ``end_offset`` (1-based item offsets)."""

    total_count: int | None = None
    start_offset: int | None = None
    end_offset: int | None = None
