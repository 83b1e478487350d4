"""Reconciliation with the Dyte REST API (the sandbox, in-process): merges, live sessions, recordings, livestreams, backfill."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import httpx
from sqlalchemy import select, text, update
from sqlalchemy.orm import Session as OrmSession

from receiver.db.models import (
    Livestream,
    Meeting,
    ParticipantInterval,
    ReconcileTask,
    Recording,
    Session,
)
from receiver.processing.apply import apply_event
from receiver.processing.backfill import run_backfill
from receiver.processing.reconcile import Reconciler
from receiver.providers.dyte.client import DyteClient
from receiver.providers.dyte.events import parse_event
from receiver.providers.dyte.signature import generate_private_key
from receiver.reports.queries import ReportFilter, attendance_report, recordings_report
from receiver.sandbox import (
    SandboxState,
    build_scenario,
    create_sandbox_app,
    demo_world,
    events_for,
)
from receiver.sandbox.groundtruth import compare_attendance, expected_attendance
from receiver.service import refresh_expired_recordings
from receiver.settings import Settings

NOW = datetime.now(UTC)


def sandbox(world):
    """An in-process sandbox state and a transport to it."""
    state = SandboxState(world=world, private_key=generate_private_key())
    return state, httpx.ASGITransport(app=create_sandbox_app(state))


def client_for(state, transport) -> DyteClient:
    return DyteClient("http://sandbox/v2", state.org_id, state.api_key, transport=transport)


def apply_all(engine, deliveries) -> None:
    """Apply webhook payloads directly (what the worker does), in order."""
    for number, delivery in enumerate(deliveries, start=1):
        with OrmSession(engine) as db, db.begin():
            apply_event(db, parse_event(delivery.payload), event_id=number, received_at=NOW, reconcile_delay_seconds=0)


def run_reconciler(engine, state, transport) -> int:
    async def go() -> int:
        reconciler = Reconciler(engine, client_for(state, transport), worker_id="test", stale_session_seconds=0)
        total = 0
        while True:
            done = await reconciler.run_due(now=datetime.now(UTC) + timedelta(seconds=1))
            total += done
            if not done:
                break
        await reconciler.aclose()
        return total

    return asyncio.run(go())


def test_session_merge_keeps_webhook_peers_adds_api_peers_and_api_times_win(engine):
    """Missing webhooks are filled from the API, changed times corrected, and the counts recorded."""
    world = demo_world()
    state, transport = sandbox(world)
    session = world.sessions[0]
    deliveries = [d for d in events_for(world) if d.session_id == session.id]
    peer_events = [d for d in deliveries if d.event.startswith("meeting.participant")]
    dropped_peer = peer_events[0].payload["participant"]["peerId"]
    kept = [d for d in deliveries if d.payload.get("participant", {}).get("peerId") != dropped_peer]
    apply_all(engine, kept)
    run_reconciler(engine, state, transport)
    with OrmSession(engine) as db:
        row = db.get(Session, session.id)
        intervals = {
            i.peer_id: i
            for i in db.execute(
                select(ParticipantInterval).where(ParticipantInterval.session_id == session.id)
            ).scalars()
        }
    assert row.reconciled_at is not None and row.reconcile_added == 1 and row.ended_at == session.ended_at
    assert intervals[dropped_peer].source == "api"
    assert {i.source for p, i in intervals.items() if p != dropped_peer} == {"both"}
    rows = attendance_report(engine, ReportFilter(session_id=session.id))
    expected = {k: v for k, v in expected_attendance(world).items() if k[0] == session.id}
    assert compare_attendance(rows, expected) == []


def test_a_session_the_api_still_reports_live_is_checked_again_later(engine):
    """GET /sessions/{id} without ended_at: not marked reconciled, task re-armed for later."""

    def handler(request: httpx.Request) -> httpx.Response:
        session = {
            "id": "live-1",
            "associated_id": "m-1",
            "status": "LIVE",
            "started_at": "2026-11-01T09:00:00.000Z",
            "ended_at": None,
        }
        return httpx.Response(200, json={"success": True, "data": {"session": session}})

    with OrmSession(engine) as db, db.begin():
        apply_event(
            db,
            parse_event({"event": "meeting.started", "meeting": {"id": "m-1", "sessionId": "live-1"}}),
            event_id=1,
            received_at=NOW - timedelta(hours=3),
        )
    client = DyteClient("http://x/v2", "org", "key", transport=httpx.MockTransport(handler))
    reconciler = Reconciler(engine, client, worker_id="t", stale_session_seconds=7200)
    asyncio.run(reconciler.run_due())  # the sweep arms it: no event for 3 h
    with OrmSession(engine) as db:
        session = db.get(Session, "live-1")
        task = db.execute(select(ReconcileTask).where(ReconcileTask.object_id == "live-1")).scalar_one()
    assert session.reconciled_at is None and session.started_at is not None
    assert task.status == "pending" and task.due_at > datetime.now(UTC) + timedelta(hours=1)


def test_expired_download_url_is_refreshed_when_a_report_asks(engine, db_url):
    """A recording whose download URL expired gets a fresh one from GET /recordings/{id}."""
    world = demo_world()
    state, transport = sandbox(world)
    apply_all(engine, [d for d in events_for(world) if d.event == "recording.statusUpdate"])
    run_reconciler(engine, state, transport)
    with OrmSession(engine) as db, db.begin():
        db.execute(
            update(Recording).values(
                download_url="https://stale.invalid/x.mp4", download_url_expires_at=NOW - timedelta(days=1)
            )
        )
    settings = Settings(
        database_url=db_url, dyte_org_id=state.org_id, dyte_api_key=state.api_key, dyte_api_base_url="http://sandbox/v2"
    )
    assert asyncio.run(refresh_expired_recordings(settings, engine, transport=transport)) == 1
    [row] = recordings_report(engine)
    assert row["download_url"] == world.recordings[0].download_url
    assert row["download_url_expires_at"] > NOW


def test_livestream_is_linked_to_its_meeting_and_the_stream_key_is_not_stored(engine):
    """A bare streamId event gets its meeting from GET /livestreams/{id}; no table holds the stream key."""
    world = demo_world()
    state, transport = sandbox(world)
    apply_all(engine, [d for d in events_for(world) if d.event == "livestreaming.statusUpdate"])
    run_reconciler(engine, state, transport)
    stream = world.livestreams[0]
    with OrmSession(engine) as db:
        row = db.get(Livestream, stream.id)
        assert row.meeting_id == stream.meeting_id and row.linked_at is not None
        dump = " ".join(
            str(value)
            for table in ("livestreams", "livestream_status_history", "meetings", "reconcile_tasks")
            for record in db.execute(text(f"SELECT * FROM {table}")).all()
            for value in record
        )
    assert stream.stream_key not in dump


def test_missing_meeting_title_is_fetched_once(engine):
    """A meeting first seen without a title gets it from GET /meetings/{id}, and is asked only once."""
    world = demo_world()
    state, transport = sandbox(world)
    apply_all(engine, [d for d in events_for(world) if d.event == "livestreaming.statusUpdate"][:1])
    with OrmSession(engine) as db, db.begin():
        apply_event(
            db,
            parse_event({"event": "meeting.chatSynced", "sessionId": "s-x", "meetingId": world.meetings[0].id}),
            event_id=99,
            received_at=NOW,
        )
    run_reconciler(engine, state, transport)
    with OrmSession(engine) as db:
        meeting = db.get(Meeting, world.meetings[0].id)
    assert meeting.title == world.meetings[0].title and meeting.title_fetched_at is not None
    calls = [c for c in state.calls if c[1].startswith("/v2/meetings/")]
    run_reconciler(engine, state, transport)
    assert [c for c in state.calls if c[1].startswith("/v2/meetings/")] == calls


def test_backfill_reconciles_every_session_and_is_idempotent(engine, db_url):
    """With no webhooks at all, backfill rebuilds attendance equal to the truth; a second run changes nothing."""
    world = build_scenario(seed=21, sessions=5, participants=30)
    state, transport = sandbox(world)
    settings = Settings(
        database_url=db_url, dyte_org_id=state.org_id, dyte_api_key=state.api_key, dyte_api_base_url="http://sandbox/v2"
    )
    since = min(s.started_at for s in world.sessions) - timedelta(hours=1)
    until = max(s.started_at for s in world.sessions) + timedelta(hours=1)
    first = asyncio.run(run_backfill(settings, engine, since, until, transport=transport))
    assert (first.sessions, first.reconciled, first.failed) == (5, 5, 0) and first.added > 0
    report = attendance_report(engine)
    assert compare_attendance(report, expected_attendance(world)) == []
    second = asyncio.run(run_backfill(settings, engine, since, until, transport=transport))
    assert (second.added, second.changed) == (0, 0)
    assert attendance_report(engine) == report
