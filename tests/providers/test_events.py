"""Tests for receiver.providers.dyte.events: real Dyte payloads, quirks, and error contract."""

from __future__ import annotations

import copy
import json
import os
import pickle
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, TypeAdapter, ValidationError

from receiver.providers.dyte.events import (
    EVENT_MODELS,
    KNOWN_EVENTS,
    ChatSynced,
    DyteEvent,
    EventParseError,
    EventValidationError,
    LivestreamStatusUpdate,
    MeetingEnded,
    MeetingStarted,
    ParticipantInfo,
    ParticipantJoined,
    ParticipantLeft,
    RecordingInfo,
    RecordingStatusUpdate,
    SummaryReady,
    TranscriptReady,
    UnknownEventError,
    event_name_of,
    parse_event,
)

UTC = UTC


def _payload_dir() -> Path:
    env = os.environ.get("DYTE_PAYLOADS_DIR")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[3] / "shared" / "dyte" / "payloads"


PAYLOAD_DIR = _payload_dir()
PAYLOAD_FILES = sorted(PAYLOAD_DIR.glob("*.json")) if PAYLOAD_DIR.is_dir() else []


def load(name: str) -> dict[str, Any]:
    """Decoded JSON of one example payload (skips when the file is absent)."""
    path = PAYLOAD_DIR / name
    if not path.is_file():
        pytest.skip(f"payload {name} not found in {PAYLOAD_DIR}")
    return json.loads(path.read_text(encoding="utf-8"))


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def iter_datetimes(value: object):
    """Every datetime reachable from a model's fields."""
    if isinstance(value, datetime):
        yield value
    elif isinstance(value, BaseModel):
        for name in type(value).model_fields:
            yield from iter_datetimes(getattr(value, name))


def assert_aware_utc(event: BaseModel) -> None:
    for moment in iter_datetimes(event):
        assert moment.tzinfo is not None and moment.utcoffset().total_seconds() == 0


# Hand-written expectations for the 13 example payloads:
# file -> (class, meeting_id, session_id, occurred_at, extra attribute checks)
EXPECTED: dict[str, tuple[type, str | None, str | None, datetime | None, dict[str, Any]]] = {
    "meeting-started.json": (
        MeetingStarted,
        "50c8940e-1b97-402a-97d6-2708b7feca41",
        "05e57591-d89e-45c9-ae44-08dc1eaad0e0",
        utc(2022, 12, 13, 6, 57, 9, 736000),
        {
            "meeting.room_name": "lcfvaa-absxch",
            "meeting.created_at": utc(2022, 12, 13, 6, 57, 9, 736000),
            "meeting.ended_at": None,
            "meeting.organized_by.id": "70c5d391-5bca-4cf3-9907-bec205798adb",
            "meeting.organized_by.name": "Dyte",
        },
    ),
    "meeting-ended.json": (
        MeetingEnded,
        "50c8940e-1b97-402a-97d6-2708b7feca41",
        "05e57591-d89e-45c9-ae44-58dc1eaad0e0",
        utc(2022, 12, 13, 7, 4, 37, 52000),
        {"reason": "HOST_ENDED_MEETING", "meeting.status": "LIVE"},
    ),
    "meeting-participantJoined.json": (
        ParticipantJoined,
        "50c8940e-1b97-402a-97d6-240227feca41",
        "05e57591-d89e-45c9-ae44-78d53eaad0e0",
        utc(2022, 12, 13, 6, 57, 51, 631000),
        {
            "participant.peer_id": "e32fb785-ddd0-4b96-b577-879327c0082f",
            "participant.user_display_name": "John Doe",
            "participant.custom_participant_id": "l08is183rld",
            "participant.client_specific_id": "l08is183rld",
            "participant.participant_key": "l08is183rld",
            "participant.left_at": None,
        },
    ),
    "meeting-participantLeft.json": (
        ParticipantLeft,
        "d9fc4d6a-a5a0-4430-9a73-d4ba14e597f9",
        "79365b9b-e5ef-452f-934e-e171d75d254b",
        utc(2022, 12, 13, 7, 3, 42, 420000),
        {
            "participant.peer_id": "023d3ea6-0af0-40ad-8aa3-6645c4ff1db8",
            "participant.custom_participant_id": "dj287lon9c",
            "participant.joined_at": utc(2022, 12, 13, 7, 1, 41, 535000),
        },
    ),
    "meeting-chatSynced.json": (
        ChatSynced,
        "d9fc4d6a-a5a0-4430-9a73-d4ba14e597f9",
        "79365b9b-e5ef-452f-934e-e171d75d254b",
        None,
        {
            "chat_download_url": "https://sample.com",
            "chat_download_url_expiry": utc(2022, 12, 13, 7, 8, 39, 51621),
            "organized_by.id": "70c5d391-4bac-4cf3-9907-bec205798adb",
        },
    ),
    "meeting-transcript.json": (
        TranscriptReady,
        "bbbba351-90c5-487f-8358-ce4885555134",
        "01eab2e1-3cd4-4237-8cf3-c8c071ef87e9",
        utc(2023, 8, 10, 10, 33, 56, 771000),
        {
            "transcript_download_url": "https://sample.com/transcript.csv",
            "transcript_download_url_expiry": utc(2023, 12, 13, 7, 8, 39, 51621),
        },
    ),
    "meeting-summary.json": (
        SummaryReady,
        "bbbba351-90c5-487f-8358-ce4885555134",
        "01eab2e1-3cd4-4237-8cf3-c8c071ef87e9",
        utc(2023, 8, 10, 10, 33, 56, 771000),
        {
            "summary_download_url": "https://sample.com/summary.txt",
            "summary_download_url_expiry": utc(2023, 12, 13, 7, 8, 39, 51621),
        },
    ),
    "recording-statusUpdate-recording.json": (
        RecordingStatusUpdate,
        "26c31468-55d4-4099-b49d-109778b182df",
        "56b81d16-5d4e-45ed-85b4-056587b00aa0",
        utc(2023, 1, 25, 4, 51, 35, 903816),
        {
            "recording.id": "97cb480d-5840-4528-ace3-919b5e386c68",
            "recording.status": "RECORDING",
            "recording.started_time": utc(2023, 1, 25, 4, 51, 35, 903816),
            "recording.stopped_time": None,
            "recording.room_uuid": "56b81d16-5d4e-45ed-85b4-056587b00aa0",
            "recording.organization_id": "c94c437b-592a-4a39-b9e2-47ef1451e43b",
            "recording.output_file_name": "26c31468-55d4-4099-b49d-109778b182df_1674622294193.mp4",
            "meeting.started_at": utc(2023, 1, 26, 3, 36, 23, 224000),
            "meeting.ended_at": None,
        },
    ),
    "recording-statusUpdate-uploaded.json": (
        RecordingStatusUpdate,
        # meeting.id wins over recording.meetingId (they differ in this example).
        "f489904b-c6d7-4a90-a9b1-cf941cb31f01",
        "5a0c5abd-97a3-4dac-b2d2-19ed3d7bb3c2",
        utc(2023, 4, 14, 4, 46, 55, 420986),
        {
            "recording.id": "ab920f84-2d19-4013-99c7-5b80291d0188",
            "recording.meeting_id": "f489904b-c6d7-4a90-a9b1-cf941cb31f05",
            "recording.status": "UPLOADED",
            "recording.file_size": 2044680,
            "recording.recording_duration": 0.0,
            "recording.started_time": utc(2023, 4, 14, 4, 46, 8, 306221),
            "recording.download_url_expiry": utc(2023, 4, 21, 4, 46, 55, 608944),
            "recording.audio_download_url": (
                "https://dyte-recordings-test.s3.ap-south-1.amazonaws.com/c94c437b-592a-4a39-b9e2-47ef1451e43b/test.mp3"
            ),
            "recording.stop_reason": "{'reason':'ALL_PEERS_LEFT','caller':{'type':'INTERNAL'}}",
        },
    ),
    "recording-statusUpdate-uploading.json": (
        RecordingStatusUpdate,
        "50c8940e-1b97-402a-97d6-2408b7feca41",
        None,  # neither recording.sessionId nor meeting.sessionId is sent
        utc(2022, 12, 13, 7, 9, 45, 865627),
        {
            "recording.id": "6c81b7c4-4465-4e16-a36f-21b501d619bc",
            "recording.status": "UPLOADING",
            "recording.file_size": 216787,
            "recording.started_time": utc(2022, 12, 13, 7, 8, 39, 51621),
            # The repeated "createdAt" key: the JSON decoder keeps the last one.
            "meeting.created_at": utc(2023, 1, 25, 4, 51, 22, 116000),
        },
    ),
    "livestreaming-statusUpdate-live.json": (
        LivestreamStatusUpdate,
        None,
        None,
        None,
        {"stream_id": "d231d346-c422-43a6-a324-c0d65b79c8a7", "status": "LIVE", "meeting": None},
    ),
    "livestreaming-statusUpdate-offline.json": (
        LivestreamStatusUpdate,
        None,
        None,
        None,
        {"stream_id": "d231d346-c422-43a6-a324-c0d65b79c8a7", "status": "OFFLINE"},
    ),
    "livestreaming-statusUpdate-idle.json": (
        LivestreamStatusUpdate,
        None,
        None,
        None,
        {"stream_id": "d231d346-c422-43a6-a324-c0d65b79c8a7", "status": "IDLE"},
    ),
}


def attr_path(obj: object, dotted: str) -> object:
    for part in dotted.split("."):
        obj = getattr(obj, part)
    return obj


# --------------------------------------------------------------------------
# Real payloads
# --------------------------------------------------------------------------


def test_payload_directory_has_examples() -> None:
    """The example payload directory exists and holds at least one JSON file."""
    if not PAYLOAD_FILES:
        pytest.skip(f"no payloads in {PAYLOAD_DIR} (set DYTE_PAYLOADS_DIR)")
    assert len(PAYLOAD_FILES) >= 1


@pytest.mark.parametrize("path", PAYLOAD_FILES, ids=lambda p: p.name)
def test_every_payload_file_parses(path: Path) -> None:
    """Every example file parses to the model registered for its event name, with aware UTC times."""
    payload = json.loads(path.read_text(encoding="utf-8"))
    event = parse_event(payload)
    assert isinstance(event, EVENT_MODELS[payload["event"]])
    assert event.event == payload["event"]
    assert_aware_utc(event)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_payload_fields_match_hand_written_values(name: str) -> None:
    """Each known example yields the expected class, ids, event time and fields."""
    cls, meeting_id, session_id, occurred_at, fields = EXPECTED[name]
    event = parse_event(load(name))
    assert type(event) is cls
    assert event.meeting_id == meeting_id
    assert event.session_id == session_id
    assert event.occurred_at == occurred_at
    if occurred_at is not None:
        assert event.occurred_at.tzinfo is not None
    for dotted, expected in fields.items():
        assert attr_path(event, dotted) == expected, dotted


def test_recording_started_time_space_format_is_utc() -> None:
    """The space-separated recording timestamp becomes 2023-01-25 04:51:35.903816 UTC."""
    event = parse_event(load("recording-statusUpdate-recording.json"))
    started = event.recording.started_time
    assert started == datetime(2023, 1, 25, 4, 51, 35, 903816, tzinfo=UTC)
    assert started.utcoffset().total_seconds() == 0


def test_payloads_validate_through_discriminated_union() -> None:
    """The DyteEvent union alone picks the same class as parse_event for every example."""
    adapter = TypeAdapter(DyteEvent)
    for path in PAYLOAD_FILES:
        payload = json.loads(path.read_text(encoding="utf-8"))
        assert type(adapter.validate_python(payload)) is type(parse_event(payload))


def test_known_events_cover_models() -> None:
    """KNOWN_EVENTS lists exactly the nine event names, one model each."""
    assert len(KNOWN_EVENTS) == 9 and len(set(KNOWN_EVENTS)) == 9
    assert set(EVENT_MODELS) == set(KNOWN_EVENTS)


# --------------------------------------------------------------------------
# Quirks
# --------------------------------------------------------------------------


def _joined(participant: dict[str, Any]) -> dict[str, Any]:
    return {
        "event": "meeting.participantJoined",
        "meeting": {"id": "m1", "sessionId": "s1"},
        "participant": participant,
    }


def _recording(**recording: Any) -> dict[str, Any]:
    body = {"id": "r1", "status": "uploaded"}
    body.update(recording)
    return {"event": "recording.statusUpdate", "recording": body}


def test_client_specific_id_only_fills_custom_participant_id() -> None:
    """A participant with only the deprecated clientSpecificId gets it as custom_participant_id."""
    event = parse_event(_joined({"peerId": "p1", "clientSpecificId": "old-id"}))
    assert event.participant.custom_participant_id == "old-id"
    assert event.participant.client_specific_id == "old-id"
    assert event.participant.participant_key == "old-id"


def test_custom_participant_id_wins_over_client_specific_id() -> None:
    """When both ids are present, customParticipantId is kept."""
    event = parse_event(_joined({"peerId": "p1", "clientSpecificId": "old", "customParticipantId": "new"}))
    assert event.participant.custom_participant_id == "new"


def test_participant_key_falls_back_to_peer_id() -> None:
    """Without any custom id the participant key is the peerId."""
    event = parse_event(_joined({"peerId": "p1"}))
    assert event.participant.custom_participant_id is None
    assert event.participant.participant_key == "p1"


def test_file_size_numeric_string_becomes_int() -> None:
    """fileSize sent as the string "2044680" parses to the int 2044680 (bytes)."""
    event = parse_event(_recording(fileSize="2044680"))
    assert event.recording.file_size == 2044680
    assert isinstance(event.recording.file_size, int)


def test_stop_reason_string_is_kept_verbatim() -> None:
    """A stopReason string is kept exactly as sent."""
    text = "{'reason':'ALL_PEERS_LEFT','caller':{'type':'INTERNAL'}}"
    assert parse_event(_recording(stopReason=text)).recording.stop_reason == text


def test_stop_reason_object_is_kept_as_json_text() -> None:
    """A stopReason object is kept as its compact JSON text."""
    event = parse_event(_recording(stopReason={"reason": "ALL_PEERS_LEFT", "caller": {"type": "INTERNAL"}}))
    assert json.loads(event.recording.stop_reason) == {"reason": "ALL_PEERS_LEFT", "caller": {"type": "INTERNAL"}}


def test_recording_id_falls_back_to_recording_id_and_status_is_upper_cased() -> None:
    """Without `id` the recording id comes from recordingId; status is upper-cased."""
    event = parse_event({"event": "recording.statusUpdate", "recording": {"recordingId": "r9", "status": " uploaded "}})
    assert event.recording.id == "r9"
    assert event.recording.status == "UPLOADED"
    assert event.meeting is None and event.meeting_id is None and event.occurred_at is None


def test_recording_ids_prefer_recording_session_and_meeting_object() -> None:
    """Recording events take session_id from the recording first and meeting_id from the meeting object first."""
    payload = _recording(sessionId="rec-session", meetingId="rec-meeting")
    payload["meeting"] = {"id": "meeting-obj", "sessionId": "meeting-session"}
    event = parse_event(payload)
    assert event.session_id == "rec-session"
    assert event.meeting_id == "meeting-obj"
    no_meeting = parse_event(_recording(meetingId="rec-meeting"))
    assert no_meeting.meeting_id == "rec-meeting"


def test_recording_duration_and_sizes_accept_numbers() -> None:
    """recordingDuration (seconds) and fileSize (bytes) accept JSON numbers."""
    rec = parse_event(_recording(recordingDuration=12.5, fileSize=10.0)).recording
    assert rec.recording_duration == 12.5
    assert rec.file_size == 10 and isinstance(rec.file_size, int)


@pytest.mark.parametrize("absent", [None, "null", ""])
def test_null_like_optional_timestamps_become_none(absent: object) -> None:
    """endedAt given as null, "null" or "" is None."""
    event = parse_event({"event": "meeting.ended", "meeting": {"id": "m1", "endedAt": absent}})
    assert event.meeting.ended_at is None
    assert event.occurred_at is None


def test_livestream_stream_key_is_dropped() -> None:
    """A livestream streamKey appears neither in model_dump(), the JSON dump nor repr()."""
    secret = "live_sk_123456_TOPSECRET"
    event = parse_event(
        {
            "event": "livestreaming.statusUpdate",
            "streamId": "st1",
            "status": "live",
            "streamKey": secret,
            "meetingId": "m1",
        }
    )
    assert isinstance(event, LivestreamStatusUpdate)
    assert event.status == "LIVE" and event.meeting_id == "m1"
    assert secret not in repr(event)
    assert secret not in str(event.model_dump())
    assert secret not in event.model_dump_json()
    assert "streamKey" not in event.model_dump(by_alias=True)
    assert not hasattr(event, "stream_key")


def test_livestream_ids_fall_back_to_meeting_object() -> None:
    """Livestream meeting_id/session_id come from the meeting object when the flat keys are absent."""
    event = parse_event(
        {
            "event": "livestreaming.statusUpdate",
            "streamId": "st1",
            "status": "IDLE",
            "meeting": {"id": "m1", "sessionId": "s1"},
        }
    )
    assert (event.meeting_id, event.session_id) == ("m1", "s1")


def test_extra_fields_are_ignored() -> None:
    """Unknown keys at any level are ignored, not rejected."""
    payload = load("meeting-participantJoined.json")
    payload["brandNew"] = {"x": 1}
    payload["meeting"]["futureField"] = [1, 2]
    payload["participant"]["somethingElse"] = True
    assert isinstance(parse_event(payload), ParticipantJoined)


def test_snake_case_keys_are_accepted() -> None:
    """Snake_case keys (populate_by_name) work like the camelCase aliases."""
    info = ParticipantInfo.model_validate({"peer_id": "p1", "client_specific_id": "c1"})
    assert info.custom_participant_id == "c1"
    rec = RecordingInfo.model_validate({"recording_id": "r1", "status": "x", "file_size": "5"})
    assert (rec.id, rec.file_size) == ("r1", 5)


def test_models_are_frozen() -> None:
    """Parsed events cannot be mutated."""
    event = parse_event(load("meeting-started.json"))
    with pytest.raises(ValidationError):
        event.meeting.id = "other"  # type: ignore[misc]


def test_event_name_of() -> None:
    """event_name_of returns the event string or None without validating."""
    assert event_name_of({"event": "meeting.started"}) == "meeting.started"
    assert event_name_of({"event": "whatever.else", "x": 1}) == "whatever.else"
    assert event_name_of({"event": 3}) is None
    assert event_name_of({}) is None
    assert event_name_of(["event"]) is None
    assert event_name_of(None) is None


# --------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------


def test_unknown_event_raises_unknown_event_error() -> None:
    """An event name outside KNOWN_EVENTS raises UnknownEventError carrying the name."""
    with pytest.raises(UnknownEventError) as info:
        parse_event({"event": "meeting.exploded", "meeting": {"id": "m1"}})
    assert info.value.event_name == "meeting.exploded"
    assert isinstance(info.value, EventParseError) and isinstance(info.value, ValueError)


@pytest.mark.parametrize("payload", [{}, {"event": None}, {"event": 42}, {"event": ["meeting.started"]}])
def test_missing_or_non_string_event_is_unknown(payload: dict[str, Any]) -> None:
    """A missing or non-string `event` raises UnknownEventError with event_name None."""
    with pytest.raises(UnknownEventError) as info:
        parse_event(payload)
    assert info.value.event_name is None


@pytest.mark.parametrize("payload", [[1, 2], "meeting.started", 3, 1.5, None, True])
def test_non_object_json_is_unknown(payload: object) -> None:
    """A JSON value that is not an object raises UnknownEventError(None, ...)."""
    with pytest.raises(UnknownEventError) as info:
        parse_event(payload)
    assert info.value.event_name is None
    assert info.value.reason == "payload is not a JSON object"


def test_malformed_joined_at_names_the_field_but_not_the_value() -> None:
    """joinedAt "yesterday" raises EventValidationError naming participant.joinedAt, not the value."""
    with pytest.raises(EventValidationError) as info:
        parse_event(_joined({"peerId": "p1", "joinedAt": "yesterday"}))
    err = info.value
    assert err.event_name == "meeting.participantJoined"
    assert "participant.joinedAt" in err.reason
    assert "yesterday" not in err.reason
    assert str(err) == err.reason


def test_bad_file_size_names_the_field() -> None:
    """fileSize "big" raises EventValidationError naming recording.fileSize."""
    with pytest.raises(EventValidationError) as info:
        parse_event(_recording(fileSize="big"))
    assert "recording.fileSize" in info.value.reason
    assert "big" not in info.value.reason


@pytest.mark.parametrize("bad", [-1, 1.5, True, [], "12abc", float("nan")])
def test_other_bad_file_sizes_are_rejected(bad: object) -> None:
    """Negative, fractional, boolean, list and non-numeric file sizes are validation errors."""
    with pytest.raises(EventValidationError, match=r"recording\.fileSize"):
        parse_event(_recording(fileSize=bad))


def test_missing_peer_id_names_the_field() -> None:
    """A participant without peerId raises EventValidationError naming participant.peerId."""
    with pytest.raises(EventValidationError) as info:
        parse_event(_joined({"userDisplayName": "Jane"}))
    assert "participant.peerId" in info.value.reason
    assert ("participant.peerId", "field required") in info.value.problems


def test_missing_meeting_object_is_a_validation_error() -> None:
    """meeting.started without a meeting object raises EventValidationError on `meeting`."""
    with pytest.raises(EventValidationError, match="meeting"):
        parse_event({"event": "meeting.started"})


def test_validation_error_never_quotes_secret_values() -> None:
    """A broken livestream payload's error message does not contain the streamKey or other values."""
    secret = "sk_live_DO_NOT_LEAK"
    with pytest.raises(EventValidationError) as info:
        parse_event(
            {
                "event": "livestreaming.statusUpdate",
                "streamId": {"nested": secret},
                "status": secret,
                "streamKey": secret,
                "meeting": secret,
            }
        )
    err = info.value
    assert secret not in err.reason
    assert secret not in repr(err) and secret not in repr(err.problems)
    assert err.__cause__ is None and err.__context__ is None
    assert "streamId" in err.reason and "meeting" in err.reason


def test_many_errors_are_summarised_briefly() -> None:
    """More than five problems are summarised as the first five plus a count."""
    payload = _joined({"joinedAt": "x", "leftAt": "y", "userId": 1, "presetName": 2, "userDisplayName": 3})
    payload["meeting"] = {"id": 1, "title": 2}
    with pytest.raises(EventValidationError) as info:
        parse_event(payload)
    assert "more" in info.value.reason
    assert len(info.value.problems) > 5


def test_errors_pickle_round_trip() -> None:
    """Parse errors survive pickling with their attributes."""
    err = EventValidationError("meeting.started", "meeting: field required", (("meeting", "field required"),))
    clone = pickle.loads(pickle.dumps(err))
    assert (clone.event_name, clone.reason, clone.problems) == (err.event_name, err.reason, err.problems)
    unknown = pickle.loads(pickle.dumps(UnknownEventError(None, "payload is not a JSON object")))
    assert unknown.reason == "payload is not a JSON object"


# --------------------------------------------------------------------------
# Robustness: junk never escapes as anything but EventParseError
# --------------------------------------------------------------------------


def _deep_list(depth: int) -> list[Any]:
    value: list[Any] = []
    for _ in range(depth):
        value = [value]
    return value


def _deep_dict(depth: int) -> dict[str, Any]:
    value: dict[str, Any] = {}
    for _ in range(depth):
        value = {"a": value}
    return value


@pytest.mark.parametrize("where", ["meeting", "participant", "participant.joinedAt", "extra"])
def test_deeply_nested_junk_raises_only_parse_errors(where: str) -> None:
    """Junk nested 50,000 levels deep in any field yields an EventParseError or a valid event."""
    junk = _deep_list(50_000)
    payload = _joined({"peerId": "p1"})
    if where == "extra":
        payload["junk"] = junk
    elif where == "participant.joinedAt":
        payload["participant"]["joinedAt"] = junk
    else:
        payload[where] = junk
    try:
        parse_event(payload)
    except EventParseError:
        pass


def test_deeply_nested_stop_reason_object_raises_only_parse_errors() -> None:
    """A stopReason object too deep to serialise yields EventValidationError, not RecursionError."""
    with pytest.raises(EventValidationError, match=r"recording\.stopReason"):
        parse_event(_recording(stopReason=_deep_dict(50_000)))


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4),
    max_leaves=20,
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    name=st.sampled_from(sorted(EXPECTED)),
    junk=json_values,
    data=st.data(),
)
def test_random_junk_in_real_payloads_raises_only_parse_errors(name: str, junk: Any, data: st.DataObject) -> None:
    """Replacing any value of a real payload with random JSON yields an event or an EventParseError."""
    path = PAYLOAD_DIR / name
    if not path.is_file():
        return
    payload = json.loads(path.read_text(encoding="utf-8"))
    # Pick a random location (top level or one level down) and overwrite it.
    target: Any = payload
    keys = sorted(target)
    key = data.draw(st.sampled_from(keys))
    if isinstance(target[key], dict) and target[key] and data.draw(st.booleans()):
        target = target[key]
        key = data.draw(st.sampled_from(sorted(target)))
    target[key] = copy.deepcopy(junk)
    try:
        event = parse_event(payload)
    except EventParseError as exc:
        assert isinstance(exc.reason, str) and exc.reason  # noqa: PT017
    else:
        assert_aware_utc(event)


@settings(max_examples=100, deadline=None)
@given(payload=json_values)
def test_random_json_raises_only_parse_errors(payload: Any) -> None:
    """Arbitrary JSON values never raise anything but EventParseError."""
    try:
        parse_event(payload)
    except EventParseError:
        pass


@pytest.mark.parametrize(
    "participant",
    [
        {"peerId": "p" * 101},
        {"peerId": "p", "customParticipantId": "c" * 201},
        {"peerId": "p", "userDisplayName": "nul\x00name"},
        {"peerId": "p", "userDisplayName": "lone \ud800 surrogate"},
    ],
)
def test_values_the_database_cannot_hold_are_flagged_invalid_on_receipt(participant):
    """Over-long ids, NUL and lone surrogates fail validation up front instead of failing in the worker forever."""
    payload = {"event": "meeting.participantJoined", "meeting": {"id": "m"}, "participant": participant}
    with pytest.raises(EventValidationError):
        parse_event(payload)
