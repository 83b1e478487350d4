"""The indexed fields the receive path reads without validating agree with the validated model."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from conftest import payload_files

from receiver.providers.dyte.events import parse_event
from receiver.providers.dyte.indexed import IndexedFields, indexed_fields

PAYLOADS = payload_files()


@pytest.mark.parametrize("path", PAYLOADS, ids=[p.name for p in PAYLOADS])
def test_every_real_payload_gives_the_models_fields(path):
    """For each of Dyte's example payloads: event name, meeting id, session id and event time as the model reads them."""
    payload = json.loads(path.read_bytes())
    event = parse_event(payload)
    fields = indexed_fields(payload)
    assert fields.unknown_reason is None
    assert (fields.event_name, fields.meeting_id, fields.session_id, fields.occurred_at) == (
        event.event,
        event.meeting_id,
        event.session_id,
        event.occurred_at,
    )


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        ([1, 2], "payload is not a JSON object"),
        ({"meeting": {}}, 'payload has no "event" field'),
        ({"event": 7}, '"event" is not a string'),
        ({"event": "meeting.pollCreated"}, "unknown event 'meeting.pollCreated'"),
    ],
)
def test_bodies_that_are_not_known_events_say_why(payload, reason):
    """Not an event: flagged at once, with parse_event's wording."""
    assert indexed_fields(payload).unknown_reason == reason


def test_bad_values_are_left_out_never_raised():
    """A wrong-typed id or an unparseable time is left out (the worker's validation flags the event)."""
    fields = indexed_fields(
        {"event": "meeting.participantJoined", "meeting": {"id": 5, "sessionId": "s"}, "participant": {"joinedAt": "x"}}
    )
    assert fields == IndexedFields("meeting.participantJoined", None, None, "s", None)


def test_fallback_paths_of_recordings_and_livestreams():
    """Recording: meeting.id else recording.meetingId, recording.sessionId first; livestream: flat keys first."""
    recording = indexed_fields(
        {
            "event": "recording.statusUpdate",
            "recording": {"meetingId": "m2", "sessionId": "s2", "startedTime": "2023-01-25 04:51:35.903816Z"},
            "meeting": {"sessionId": "s1"},
        }
    )
    assert (recording.meeting_id, recording.session_id) == ("m2", "s2")
    assert recording.occurred_at == datetime(2023, 1, 25, 4, 51, 35, 903816, tzinfo=UTC)
    stream = indexed_fields(
        {"event": "livestreaming.statusUpdate", "meeting_id": "m3", "meeting": {"id": "m4", "sessionId": "s4"}}
    )
    assert (stream.meeting_id, stream.session_id, stream.occurred_at) == ("m3", "s4", None)
