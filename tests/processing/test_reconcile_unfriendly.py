"""Reconciliation against a REST API that is valid per the spec but unfriendly (issue #18).

The fake (:mod:`fake_dyte`) serves spec-shaped objects with missing optional
fields, the spec's own stray-quote timestamp, fractions where integers are
usual, capped page sizes and a meeting id that disagrees with the webhooks.
Every test runs on SQLite and PostgreSQL.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta

import pytest
from fake_dyte import FakeDyte, fake_client
from sqlalchemy import select
from sqlalchemy.orm import Session as OrmSession

from receiver.db.models import (
    Livestream,
    LivestreamSession,
    ParticipantInterval,
    ReconcileTask,
    Recording,
    Session,
)
from receiver.processing.apply import apply_event
from receiver.processing.reconcile import Reconciler
from receiver.processing.writes import schedule_task
from receiver.providers.dyte.events import parse_event
from receiver.reports.queries import ReportFilter, attendance_report

T0 = datetime(2023, 2, 1, 10, 0, tzinfo=UTC)


def iso(minutes: float) -> str:
    return (T0 + timedelta(minutes=minutes)).isoformat().replace("+00:00", "Z")


def api_session(session_id: str = "s-1", meeting_id: str = "m-1", **extra) -> dict:
    return {
        "id": session_id,
        "associated_id": meeting_id,
        "meeting_display_name": "Weekly",
        "type": "meeting",
        "status": "ENDED",
        "live_participants": 0,
        "max_concurrent_participants": 2.5,  # a fraction where an integer is usual: the spec says number
        "started_at": iso(0),
        "ended_at": iso(60),
        **extra,
    }


def person(peer: str, joined: float, left: float, **extra) -> dict:
    return {
        "id": peer,
        "user_id": f"u-{peer}",
        "display_name": peer.title(),
        "joined_at": iso(joined),
        "left_at": iso(left),
        "duration": left - joined,
        **extra,
    }


def reconcile(engine, fake: FakeDyte, *, per_page: int = 100) -> None:
    """Run every due task (and those they arm) to completion."""

    async def go() -> None:
        reconciler = Reconciler(engine, fake_client(fake, per_page=per_page), worker_id="test")
        try:
            for _ in range(20):
                if not await reconciler.run_due(now=datetime.now(UTC) + timedelta(seconds=1)):
                    return
        finally:
            await reconciler.aclose()

    asyncio.run(go())


def arm(engine, kind: str, object_id: str) -> None:
    now = datetime.now(UTC)
    with OrmSession(engine) as db, db.begin():
        schedule_task(db, kind, object_id, now, now)


def webhook(engine, payload: dict, number: int = 1) -> None:
    with OrmSession(engine) as db, db.begin():
        apply_event(db, parse_event(payload), event_id=number, received_at=T0 + timedelta(minutes=61))


def intervals(engine, session_id: str = "s-1") -> dict[str, ParticipantInterval]:
    with OrmSession(engine) as db:
        rows = db.execute(select(ParticipantInterval).where(ParticipantInterval.session_id == session_id)).scalars()
        return {row.peer_id: row for row in rows}


def tasks(engine) -> dict[tuple[str, str], ReconcileTask]:
    with OrmSession(engine) as db:
        return {(t.kind, t.object_id): t for t in db.execute(select(ReconcileTask)).scalars()}


def test_participants_missing_optional_fields_or_with_unreadable_times_are_kept(engine, caplog):
    """No id, an object as id, the spec's stray quote, nothing to identify: the session still reconciles.

    The person without a peer id is keyed by user id; the unreadable join
    becomes left_at - duration and the row is flagged; the value is logged
    once with its field name; the unidentifiable participant is skipped.
    """
    fake = FakeDyte(sessions={"s-1": api_session()})
    fake.participants["s-1"] = [
        {"user_id": "u-noid", "display_name": "No Id", "joined_at": iso(5), "left_at": iso(15), "duration": 10},
        {"id": {"oid": 1}, "custom_participant_id": "carol", "joined_at": iso(0), "left_at": iso(30), "duration": 30},
        {**person("henry", 0, 6.9263), "joined_at": '2023-02-01T10:00:00.000Z"'},  # sic: the spec's example
        {"display_name": "Nobody", "joined_at": iso(1), "left_at": iso(2)},
        {**person("x", 1, 2), "custom_participant_id": "k" * 300, "preset_name": "p" * 250},  # REST: no length limits
    ]
    arm(engine, "session", "s-1")
    with caplog.at_level(logging.WARNING, logger="receiver.providers.http"):
        reconcile(engine, fake)
        reconcile(engine, fake)  # a second round logs nothing new
    assert tasks(engine)[("session", "s-1")].status == "done"
    rows = intervals(engine)
    by_key = {row.participant_key: row for row in rows.values()}
    assert set(by_key) == {"u-noid", "carol", "henry", "k" * 200}
    no_id = by_key["u-noid"]
    assert no_id.peer_id.startswith("api:u-noid@") and no_id.source == "api" and no_id.user_id == "u-noid"
    henry = by_key["henry"]
    assert henry.joined_at == T0 and henry.left_at == T0 + timedelta(minutes=6.9263)
    assert henry.invalid_fields == "joined_at"
    assert by_key["carol"].invalid_fields == "id" and by_key["carol"].joined_at == T0
    long = by_key["k" * 200]
    assert long.truncated_fields == "custom_participant_id,participant_key,preset_name"
    [henry_row] = [
        r for r in attendance_report(engine, ReportFilter(session_id="s-1")) if r["participant_key"] == "henry"
    ]
    assert henry_row["attended_seconds"] == pytest.approx(415.578, abs=0.01)
    logged = [r.getMessage() for r in caplog.records if "unreadable joined_at" in r.getMessage()]
    assert len(logged) == 1 and '2023-02-01T10:00:00.000Z"' in logged[0] and "Henry" not in logged[0]


def test_a_meeting_id_disagreement_is_kept_and_flagged(engine):
    """Webhooks say meeting m-1, the API says m-2: the session and its rows stay on m-1, the API's id is flagged."""
    webhook(
        engine,
        {
            "event": "meeting.participantJoined",
            "meeting": {"id": "m-1", "sessionId": "s-1", "startedAt": iso(0)},
            "participant": {"peerId": "alice", "joinedAt": iso(1)},
        },
    )
    fake = FakeDyte(sessions={"s-1": api_session(meeting_id="m-2")})
    fake.participants["s-1"] = [person("alice", 1, 20), person("bob", 2, 30)]
    arm(engine, "session", "s-1")
    reconcile(engine, fake)
    with OrmSession(engine) as db:
        row = db.get(Session, "s-1")
    assert (row.meeting_id, row.api_meeting_id, row.status) == ("m-1", "m-2", "ended")
    assert {i.meeting_id for i in intervals(engine).values()} == {"m-1"}
    assert {r["meeting_id"] for r in attendance_report(engine, ReportFilter(session_id="s-1"))} == {"m-1"}


def test_a_server_capping_its_page_size_loses_no_participant(engine):
    """130 participants, asked 100 a page, served 25: all 130 are stored."""
    fake = FakeDyte(sessions={"s-1": api_session()}, page_cap=25)
    fake.participants["s-1"] = [person(f"p{n:03d}", 1, 10 + n % 40) for n in range(130)]
    arm(engine, "session", "s-1")
    reconcile(engine, fake)
    assert len(intervals(engine)) == 130
    with OrmSession(engine) as db:
        assert db.get(Session, "s-1").reconcile_added == 130


def test_an_ended_session_without_a_readable_end_ends_at_its_last_leave(engine):
    """status ENDED with an unreadable ended_at: the session is final, ended at the last leave (not live for ever)."""
    fake = FakeDyte(sessions={"s-1": api_session(ended_at="2023-02-01 11:00:00Z!")})
    fake.participants["s-1"] = [person("alice", 1, 20), person("bob", 2, 45)]
    arm(engine, "session", "s-1")
    reconcile(engine, fake)
    with OrmSession(engine) as db:
        row = db.get(Session, "s-1")
    assert row.status == "ended" and row.ended_at == T0 + timedelta(minutes=45) and row.reconciled_at is not None


def test_recordings_and_livestreams_no_webhook_announced_are_found(engine):
    """The session's reconciliation lists the meeting's recordings and the session's livestream runs.

    r-1 (this session) and r-3 (no session) are stored, r-2 (another session)
    is not; the recording task then fetches the start/stop reasons; a
    fractional file size is rounded; livestream runs keep viewer and ingest
    seconds and link the livestream to the session.
    """
    fake = FakeDyte(sessions={"s-1": api_session()})
    fake.participants["s-1"] = [person("alice", 1, 20)]
    base = {"status": "UPLOADED", "meeting_id": "m-1", "started_time": iso(5), "stopped_time": iso(50)}
    fake.recordings = [
        {
            **base,
            "id": "r-1",
            "session_id": "s-1",
            "file_size": 1234.6,
            "recording_duration": 2700,
            "start_reason": {"reason": "API_CALL", "caller": {"type": "ORGANIZATION"}},
            "stop_reason": {"reason": "ALL_PEERS_LEFT"},
        },
        {**base, "id": "r-2", "session_id": "s-other"},
        {**base, "id": "r-3", "session_id": None, "status": "ERRORED"},
    ]
    fake.meeting_livestreams["m-1"] = [
        {"id": "ls-1", "status": "idle", "name": "Town hall", "meeting_id": "m-1", "stream_key": "sk_SECRET"}
    ]
    fake.session_livestream_sessions["s-1"] = [
        {
            "id": "lss-1",
            "livestream_id": "ls-1",
            "started_time": iso(10),
            "stopped_time": iso(40),
            "ingest_seconds": "1800",
            "viewer_seconds": 5400.5,
        }
    ]
    arm(engine, "session", "s-1")
    reconcile(engine, fake)
    done = tasks(engine)
    assert {key for key, task in done.items() if task.status == "done"} >= {
        ("session", "s-1"),
        ("session_media", "s-1"),
        ("recording", "r-1"),
        ("recording", "r-3"),
    }
    with OrmSession(engine) as db:
        recordings = {r.recording_id: r for r in db.execute(select(Recording)).scalars()}
        stream = db.get(Livestream, "ls-1")
        run = db.get(LivestreamSession, "lss-1")
        session = db.get(Session, "s-1")
    assert set(recordings) == {"r-1", "r-3"}
    r1 = recordings["r-1"]
    assert (r1.file_size_bytes, r1.start_reason, r1.stop_reason, r1.duration_seconds) == (
        1235,
        "API_CALL",
        "ALL_PEERS_LEFT",
        2700.0,
    )
    assert recordings["r-3"].status == "ERRORED" and recordings["r-3"].session_id is None
    assert (stream.meeting_id, stream.session_id, stream.status, stream.name) == ("m-1", "s-1", "IDLE", "Town hall")
    assert (run.livestream_id, run.session_id, run.viewer_seconds, run.ingest_seconds) == (
        "ls-1",
        "s-1",
        5400.5,
        1800.0,
    )
    assert run.started_at == T0 + timedelta(minutes=10) and run.stopped_at == T0 + timedelta(minutes=40)
    assert session.media_reconciled_at is not None
    assert ("/recordings", {"meeting_id": "m-1", "page_no": "1", "per_page": "100"}) in fake.calls


def test_listings_the_provider_does_not_serve_count_as_empty(engine):
    """404 on the livestream listings (an org without livestreaming): the media task still completes."""
    fake = FakeDyte(sessions={"s-1": api_session()})
    fake.participants["s-1"] = [person("alice", 1, 20)]
    fake.session_livestream_sessions = {}  # the fake answers an empty list; drop the route instead:
    original = fake.handle

    def without_livestreams(request):
        if "livestream" in request.url.path:
            return __import__("httpx").Response(404, json={"success": False})
        return original(request)

    fake.handle = without_livestreams  # type: ignore[method-assign]
    arm(engine, "session", "s-1")
    reconcile(engine, fake)
    assert tasks(engine)[("session_media", "s-1")].status == "done"


def test_peer_events_split_a_rejoin_so_the_gap_is_not_attendance(engine):
    """The participant spans 10:00-10:50 but its peer events show 10:00-10:10 and 10:30-10:50: 30 minutes, 2 joins."""
    fake = FakeDyte(sessions={"s-1": api_session()})
    events = [
        {"peer_id": "pa", "event_name": "PEER_JOINING", "created_at": iso(0)},
        {"peer_id": "pa", "event_name": "PEER_LEAVING", "created_at": iso(10)},
        {"peer_id": "pb", "event_name": "PEER_JOINING", "created_at": iso(30)},
        {"peer_id": "pb", "event_name": "PEER_LEAVING", "created_at": iso(50)},
    ]
    fake.participants["s-1"] = [{**person("alice", 0, 50), "custom_participant_id": "alice", "peer_events": events}]
    arm(engine, "session", "s-1")
    reconcile(engine, fake)
    assert sorted(intervals(engine)) == ["pa", "pb"]
    [row] = attendance_report(engine, ReportFilter(session_id="s-1"))
    assert (row["attended_seconds"], row["join_count"]) == (1800.0, 2)
    assert (
        "/sessions/s-1/participants",
        {"include_peer_events": "true", "page_no": "1", "per_page": "100"},
    ) in fake.calls
