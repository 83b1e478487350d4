"""Values the database cannot hold never send an event to the dead letters (issue #18, point 8).

Authentic events with a 300-character ``roomName``, a 150-character
``reason`` or a 150-character ``organizedBy.id`` (which the webhook parser
accepts; ids and custom participant ids over their column length are
rejected there as invalid events) are processed on SQLite and PostgreSQL:
the value is cut to its column and the row says so in
``truncated_fields``. (REST values, which have no parser limits, are tested
in ``test_reconcile_unfriendly``.) Errors recorded on events and
reconciliation tasks are one line; the traceback goes to the log only.
"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime

from helpers import stored_events
from sqlalchemy import select
from sqlalchemy.orm import Session as OrmSession

from receiver.db.models import PARSE_OK, Meeting, ParticipantInterval, ReconcileTask, Recording, Session
from receiver.ingest.inbox import Delivery, store_deliveries
from receiver.processing import worker as worker_module
from receiver.processing.reconcile import Reconciler
from receiver.processing.worker import Worker
from receiver.processing.writes import schedule_task

ROOM = "r" * 300
REASON = "HOST_ENDED_MEETING_" + "x" * 131
ORGANIZER = "o" * 150

MEETING = {
    "id": "m-long",
    "sessionId": "s-long",
    "title": "Long fields",
    "roomName": ROOM,
    "startedAt": "2026-03-01T10:00:00.000Z",
    "organizedBy": {"id": ORGANIZER, "name": "Org"},
}
EVENTS = [
    {
        "event": "meeting.participantJoined",
        "meeting": MEETING,
        "participant": {"peerId": "p-1", "customParticipantId": "alice", "joinedAt": "2026-03-01T10:01:00.000Z"},
    },
    {
        "event": "recording.statusUpdate",
        "meeting": MEETING,
        "recording": {"id": "rec-1", "status": "UPLOADED", "outputFileName": "a.mp4"},
    },
    {"event": "meeting.ended", "meeting": {**MEETING, "endedAt": "2026-03-01T11:00:00.000Z"}, "reason": REASON},
]


def _store(engine, payloads) -> None:
    now = datetime.now(UTC)
    store_deliveries(
        engine,
        [
            Delivery(
                delivery_id=f"d-{n}",
                webhook_id=None,
                event_name=payload["event"],
                raw_body=json.dumps(payload).encode(),
                signature_scheme="raw",
                received_at=now,
                parse_status=PARSE_OK,
                meeting_id=payload["meeting"]["id"],
                session_id=payload["meeting"]["sessionId"],
            )
            for n, payload in enumerate(payloads)
        ],
    )


def test_long_fields_are_cut_to_their_column_and_flagged(engine, settings):
    """Every event is done (PostgreSQL used to fail them with StringDataRightTruncation until dead);
    the session has its end; each cut column is named on its row, other rows are not flagged."""
    _store(engine, EVENTS)
    result = asyncio.run(Worker(settings, engine).run(once=True))
    assert (result.done, result.failed) == (3, 0)
    assert {e.status for e in stored_events(engine)} == {"done"}
    with OrmSession(engine) as db:
        session = db.get(Session, "s-long")
        meeting = db.get(Meeting, "m-long")
        interval = db.execute(select(ParticipantInterval)).scalar_one()
        recording = db.execute(select(Recording)).scalar_one()
    assert session.status == "ended" and session.ended_at == datetime(2026, 3, 1, 11, tzinfo=UTC)
    assert session.end_reason == REASON[:100] and session.truncated_fields == "end_reason"
    assert meeting.room_name == ROOM[:200] and meeting.organized_by_id == ORGANIZER[:100]
    assert meeting.truncated_fields == "organized_by_id,room_name"
    assert interval.participant_key == "alice" and interval.truncated_fields is None
    assert recording.status == "UPLOADED" and recording.truncated_fields is None


def test_processing_again_changes_nothing_and_keeps_the_flags(engine, settings):
    """Replaying the same long-field events is idempotent: one row each, same values and flags."""
    _store(engine, EVENTS)
    asyncio.run(Worker(settings, engine).run(once=True))
    _store(engine, [{**EVENTS[2], "reason": REASON + "-again"}])  # a new delivery id: d-0 again is a duplicate
    with OrmSession(engine) as db:
        before = db.get(Session, "s-long").truncated_fields
    asyncio.run(Worker(settings, engine).run(once=True))
    with OrmSession(engine) as db:
        assert db.get(Session, "s-long").truncated_fields == before == "end_reason"
        assert len(db.execute(select(Recording)).all()) == 1


def test_event_errors_are_one_line_without_traceback(engine, settings, monkeypatch):
    """A multi-line database-style error is stored as "Type: first line"; no file paths in the event log."""

    def boom(*args, **kwargs):
        raise RuntimeError(
            'value too long for type character varying(100)\n[SQL: INSERT INTO sessions ...]\n  File "/x.py"'
        )

    monkeypatch.setattr(worker_module, "apply_event", boom)
    _store(engine, EVENTS[:1])
    asyncio.run(Worker(settings.model_copy(update={"worker_max_attempts": 1}), engine).run(once=True))
    [event] = stored_events(engine)
    assert event.status == "dead"
    assert event.last_error == "RuntimeError: value too long for type character varying(100)"


def test_reconcile_task_errors_are_one_line(engine, monkeypatch):
    """A task failing with a multi-line error records one line on the task."""

    async def boom(self, session_id):
        raise RuntimeError('database said no\nTraceback (most recent call last):\n  File "/srv/x.py", line 1')

    monkeypatch.setattr(Reconciler, "reconcile_session", boom)
    now = datetime.now(UTC)
    with OrmSession(engine) as db, db.begin():
        schedule_task(db, "session", "s-1", now, now)

    class NoClient:
        async def aclose(self) -> None:
            pass

    reconciler = Reconciler(engine, NoClient(), worker_id="w")  # type: ignore[arg-type]
    asyncio.run(reconciler.run_due())
    with OrmSession(engine) as db:
        task = db.execute(select(ReconcileTask)).scalar_one()
    assert task.last_error == "RuntimeError: database said no"
