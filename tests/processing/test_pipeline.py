"""A scripted meeting through HTTP, the inbox and the worker, with numbers worked out by hand.

Session S (10:00-11:00 UTC, 3600 s):
  alice  peer a1 10:00-10:30, rejoins as a2 10:40-11:00          -> 1800+1200 = 3000 s, 2 joins, 0.8333
  bob    two devices b1 10:10-10:50 and b2 10:20-10:55          -> union 10:10-10:55 = 2700 s, 0.75
  carol  (no custom id: keyed by peer c1) 10:15, never leaves   -> closed at 11:00: 2700 s, flagged
  dave   d1 10:05-10:25, leave delivered before the join        -> 1200 s
Deliveries: alice's join twice (same dyte-uuid), bob's b2 leave after meeting.ended,
dave's leave before his join, and the whole batch replayed a second time.
"""

from __future__ import annotations

import asyncio
import json

import pytest
from helpers import app_client, compact, post_signed

from receiver.db.engine import make_engine
from receiver.processing.worker import Worker
from receiver.reports.queries import ReportFilter, attendance_report, recordings_report
from receiver.timeparse import parse_timestamp

MEETING = {
    "id": "meet-1",
    "sessionId": "sess-1",
    "title": "Standup",
    "status": "LIVE",
    "startedAt": "2026-01-01T10:00:00.000Z",
    "createdAt": "2026-01-01T09:59:00.000Z",
}


def joined(peer: str, at: str, name: str, custom: str | None = None) -> dict:
    participant = {"peerId": peer, "userDisplayName": name, "joinedAt": f"2026-01-01T{at}:00.000Z"}
    if custom:
        participant["customParticipantId"] = custom
    return {"event": "meeting.participantJoined", "meeting": MEETING, "participant": participant}


def left(peer: str, joined_at: str, left_at: str, name: str, custom: str | None = None) -> dict:
    event = joined(peer, joined_at, name, custom)
    event["event"] = "meeting.participantLeft"
    event["participant"]["leftAt"] = f"2026-01-01T{left_at}:00.000Z"
    return event


ENDED = {
    "event": "meeting.ended",
    "meeting": {**MEETING, "endedAt": "2026-01-01T11:00:00.000Z"},
    "reason": "HOST_ENDED_MEETING",
}

SCRIPT = [
    ("started", {"event": "meeting.started", "meeting": MEETING}),
    ("a1-j", joined("a1", "10:00", "Alice", "alice")),
    ("a1-j", joined("a1", "10:00", "Alice", "alice")),  # Dyte retry: same dyte-uuid
    ("d1-l", left("d1", "10:05", "10:25", "Dave", "dave")),  # leave before join
    ("d1-j", joined("d1", "10:05", "Dave", "dave")),
    ("b1-j", joined("b1", "10:10", "Bob", "bob")),
    ("c1-j", joined("c1", "10:15", "Carol")),
    ("b2-j", joined("b2", "10:20", "Bob (phone)", "bob")),
    ("a1-l", left("a1", "10:00", "10:30", "Alice", "alice")),
    ("a2-j", joined("a2", "10:40", "Alice", "alice")),
    ("b1-l", left("b1", "10:10", "10:50", "Bob", "bob")),
    ("ended", ENDED),
    ("a2-l", left("a2", "10:40", "11:00", "Alice", "alice")),
    ("b2-l", left("b2", "10:20", "10:55", "Bob (phone)", "bob")),  # after meeting.ended
]

EXPECTED = {
    # key: (attended_seconds, join_count, ratio, closed_at_session_end, first_joined, last_left)
    "alice": (3000.0, 2, 0.8333, False, "10:00", "11:00"),
    "bob": (2700.0, 2, 0.75, False, "10:10", "10:55"),
    "c1": (2700.0, 1, 0.75, True, "10:15", "11:00"),
    "dave": (1200.0, 1, 0.3333, False, "10:05", "10:25"),
}


def _drain(settings, engine) -> None:
    asyncio.run(Worker(settings, engine).run(once=True))


def test_scripted_meeting_gives_hand_computed_attendance(settings, signing_key):
    """Attendance from duplicated, reordered deliveries equals the numbers worked out by hand."""
    engine = make_engine(settings.database_url)
    with app_client(settings) as client:
        for delivery_id, event in SCRIPT:
            assert post_signed(client, compact(event), signing_key, delivery_id=delivery_id).status_code == 200
    _drain(settings, engine)
    rows = {r["participant_key"]: r for r in attendance_report(engine, ReportFilter(session_id="sess-1"))}
    assert set(rows) == set(EXPECTED)
    for key, (seconds, joins, ratio, closed, first, last) in EXPECTED.items():
        row = rows[key]
        assert row["attended_seconds"] == seconds, key
        assert row["join_count"] == joins, key
        assert row["attendance_ratio"] == ratio, key
        assert row["closed_at_session_end"] is closed, key
        assert row["first_joined_at"] == parse_timestamp(f"2026-01-01T{first}:00Z"), key
        assert row["last_left_at"] == parse_timestamp(f"2026-01-01T{last}:00Z"), key
        assert row["provenance"] == "webhook" and row["meeting_id"] == "meet-1"
    assert rows["bob"]["display_names"] == ["Bob", "Bob (phone)"]
    engine.dispose()


def test_processing_everything_twice_changes_nothing(settings, signing_key):
    """Replaying every event (new dyte-uuids, same content) leaves the report unchanged."""
    engine = make_engine(settings.database_url)
    with app_client(settings) as client:
        for delivery_id, event in SCRIPT:
            post_signed(client, compact(event), signing_key, delivery_id=delivery_id)
    _drain(settings, engine)
    first = attendance_report(engine, ReportFilter(session_id="sess-1"))
    with app_client(settings) as client:
        for delivery_id, event in reversed(SCRIPT):  # replayed in reverse order
            post_signed(client, compact(event), signing_key, delivery_id=f"replay-{delivery_id}")
    _drain(settings, engine)
    assert attendance_report(engine, ReportFilter(session_id="sess-1")) == first
    engine.dispose()


def test_recording_status_never_moves_backwards(settings, signing_key, tmp_path):
    """An UPLOADED recording stays UPLOADED when its older RECORDING event arrives late."""
    from conftest import PAYLOADS_DIR

    source = PAYLOADS_DIR / "recording-statusUpdate-uploaded.json"
    if not source.is_file():
        pytest.skip(f"{source} not found (../shared/dyte/payloads sits beside the repo in CI)")
    uploaded = json.loads(source.read_text())
    recording = json.loads(json.dumps(uploaded))
    recording["recording"]["status"] = "RECORDING"
    for key in ("stoppedTime", "downloadUrl", "downloadUrlExpiry", "fileSize"):
        recording["recording"].pop(key)
    engine = make_engine(settings.database_url)
    with app_client(settings) as client:
        post_signed(client, compact(uploaded), signing_key)
        post_signed(client, compact(recording), signing_key)
    _drain(settings, engine)
    [row] = recordings_report(engine)
    assert row["status"] == "UPLOADED"
    assert row["file_size_bytes"] == 2044680
    assert row["download_url"].endswith("test.mp4")
    assert row["started_at"] == parse_timestamp("2023-04-14 04:46:08.306221Z")
    engine.dispose()
