"""Inferred ends: a session nobody is in, and which sent nothing for SESSION_IDLE_END_SECONDS, has ended (issue #18, point 7).

When meeting.ended is lost, the session used to stay live for up to 2 hours
(STALE_SESSION_SECONDS): 0 % ratios for everyone and a timeline stretched
to "now". Dyte ends a meeting about 60 s after the last leave, so the
worker infers the end at the last leave, flags it, and reconciliation
confirms (or undoes) it at once. SQLite and PostgreSQL.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from fake_dyte import FakeDyte
from sqlalchemy import select
from sqlalchemy.orm import Session as OrmSession
from test_reconcile_unfriendly import reconcile

from receiver.db.models import ReconcileTask, Session
from receiver.processing.apply import apply_event
from receiver.processing.sweeps import infer_idle_session_ends
from receiver.processing.worker import Worker
from receiver.providers.dyte.events import parse_event
from receiver.reports.queries import ReportFilter, attendance_report, sessions_report

NOW = datetime.now(UTC).replace(microsecond=0)
START = NOW - timedelta(minutes=40)
MEETING = {"id": "m-1", "sessionId": "s-1", "startedAt": START.isoformat()}


def at(minutes: float) -> datetime:
    return START + timedelta(minutes=minutes)


def iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def deliver(engine, payload: dict, received_at: datetime, number: int = 1) -> None:
    with OrmSession(engine) as db, db.begin():
        apply_event(db, parse_event(payload), event_id=number, received_at=received_at)


def joined(peer: str, minute: float) -> dict:
    participant = {"peerId": peer, "customParticipantId": peer, "joinedAt": iso(at(minute))}
    return {"event": "meeting.participantJoined", "meeting": MEETING, "participant": participant}


def left(peer: str, joined_minute: float, minute: float) -> dict:
    event = joined(peer, joined_minute)
    event["event"] = "meeting.participantLeft"
    event["participant"]["leftAt"] = iso(at(minute))
    return event


def idle_meeting(engine) -> None:
    """alice 0-20, bob 5-30 min; the last event (bob's leave) came 10 minutes ago; meeting.ended never came."""
    for number, (payload, minute) in enumerate(
        [(joined("alice", 0), 0), (joined("bob", 5), 5), (left("alice", 0, 20), 20), (left("bob", 5, 30), 30)],
        start=1,
    ):
        deliver(engine, payload, at(minute), number)


def session(engine) -> Session:
    with OrmSession(engine) as db:
        return db.get(Session, "s-1")


def session_task(engine) -> ReconcileTask | None:
    with OrmSession(engine) as db:
        return db.execute(
            select(ReconcileTask).where(ReconcileTask.kind == "session", ReconcileTask.object_id == "s-1")
        ).scalar_one_or_none()


def test_an_idle_session_gets_an_inferred_end_at_its_last_leave(engine, settings):
    """The worker's sweep (no REST API configured) ends it at bob's leave; ratios are real, not 0 %."""
    idle_meeting(engine)
    asyncio.run(Worker(settings, engine).run(once=True))
    row = session(engine)
    assert (row.status, row.end_inferred, row.ended_at) == ("ended", True, at(30))
    assert session_task(engine).status == "pending"
    ratios = {r["participant_key"]: r["attendance_ratio"] for r in attendance_report(engine, ReportFilter())}
    assert ratios == {"alice": round(20 / 30, 4), "bob": round(25 / 30, 4)}
    [summary] = sessions_report(engine)
    assert summary["status"] == "ended" and summary["end_inferred"] is True and summary["duration_seconds"] == 1800


def test_nobody_is_ended_while_someone_is_present_or_events_are_recent(engine):
    """An open interval, or an event within SESSION_IDLE_END_SECONDS, keeps the session live."""
    deliver(engine, joined("alice", 0), at(0), 1)
    deliver(engine, joined("bob", 1), at(1), 2)
    deliver(engine, left("alice", 0, 20), at(20), 3)
    assert infer_idle_session_ends(engine, idle_seconds=300, now=NOW) == []  # bob is still in
    deliver(engine, left("bob", 1, 38), at(38), 4)
    assert infer_idle_session_ends(engine, idle_seconds=300, now=NOW) == []  # 2 minutes ago
    assert infer_idle_session_ends(engine, idle_seconds=300, now=NOW + timedelta(minutes=4)) == ["s-1"]
    assert infer_idle_session_ends(engine, idle_seconds=0, now=NOW + timedelta(hours=1)) == []  # 0 disables


def test_the_rest_api_confirms_the_inferred_end(engine):
    """Reconciliation replaces the inferred end by the API's and clears the flag."""
    idle_meeting(engine)
    infer_idle_session_ends(engine, idle_seconds=300, now=NOW)
    fake = FakeDyte(
        sessions={
            "s-1": {
                "id": "s-1",
                "associated_id": "m-1",
                "status": "ENDED",
                "started_at": iso(at(0)),
                "ended_at": iso(at(31)),
            }
        }
    )
    fake.participants["s-1"] = [
        {"id": "alice", "custom_participant_id": "alice", "joined_at": iso(at(0)), "left_at": iso(at(20))},
        {"id": "bob", "custom_participant_id": "bob", "joined_at": iso(at(5)), "left_at": iso(at(30))},
    ]
    reconcile(engine, fake)
    row = session(engine)
    assert (row.status, row.end_inferred, row.ended_at) == ("ended", False, at(31))
    assert row.reconciled_at is not None


def test_the_rest_api_saying_live_undoes_the_inferred_end_without_flapping(engine):
    """The API still reports the session live: it is reopened, checked again later, and not re-inferred meanwhile."""
    idle_meeting(engine)
    infer_idle_session_ends(engine, idle_seconds=300, now=NOW)
    fake = FakeDyte(sessions={"s-1": {"id": "s-1", "associated_id": "m-1", "status": "LIVE", "ended_at": None}})
    reconcile(engine, fake)
    row = session(engine)
    assert (row.status, row.end_inferred, row.ended_at) == ("live", False, None)
    task = session_task(engine)
    assert task.status == "pending" and task.due_at > datetime.now(UTC) + timedelta(hours=1)
    assert infer_idle_session_ends(engine, idle_seconds=300, now=NOW) == []


def test_a_join_after_the_inferred_end_reopens_the_session(engine):
    """Somebody joins (no leave known): the session is live again, and the new peer stays open."""
    idle_meeting(engine)
    infer_idle_session_ends(engine, idle_seconds=300, now=NOW)
    deliver(engine, joined("carol", 39), NOW, 9)
    row = session(engine)
    assert (row.status, row.end_inferred, row.ended_at) == ("live", False, None)
    [summary] = sessions_report(engine, as_of=NOW)
    assert summary["status"] == "live" and summary["end_inferred"] is False


def test_meeting_ended_replaces_the_inferred_end(engine):
    """The lost meeting.ended finally arrives: its end wins (even when later than the inferred one) and the flag goes."""
    idle_meeting(engine)
    infer_idle_session_ends(engine, idle_seconds=300, now=NOW)
    ended = {
        "event": "meeting.ended",
        "meeting": {**MEETING, "endedAt": iso(at(31))},
        "reason": "ALL_PARTICIPANTS_LEFT",
    }
    deliver(engine, ended, NOW, 10)
    row = session(engine)
    assert (row.status, row.end_inferred, row.ended_at, row.end_reason) == (
        "ended",
        False,
        at(31),
        "ALL_PARTICIPANTS_LEFT",
    )


def test_the_pages_show_ended_inferred_until_the_api_confirms(engine, settings):
    """The session page and the sessions list say "ended (inferred)"; after confirmation just "ended"."""
    from pydantic import SecretStr
    from test_api import AUTH, TOKEN, analyst_client

    idle_meeting(engine)
    infer_idle_session_ends(engine, idle_seconds=300, now=NOW)
    with analyst_client(settings.model_copy(update={"api_tokens": SecretStr(TOKEN)})) as client:
        page = client.get("/ui/sessions/s-1", headers=AUTH)
        listing = client.get("/ui/sessions", headers=AUTH)
        api = client.get("/api/sessions/s-1", headers=AUTH).json()
        assert page.status_code == listing.status_code == 200
        assert "ended (inferred)" in page.text and "ended (inferred)" in listing.text
        assert api["end_inferred"] is True and api["status"] == "ended"
        deliver(engine, {"event": "meeting.ended", "meeting": {**MEETING, "endedAt": iso(at(31))}}, NOW, 10)
        assert "(inferred)" not in client.get("/ui/sessions/s-1", headers=AUTH).text
