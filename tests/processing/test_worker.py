"""The worker's queue discipline: leases, retries with backoff, dead events, release on stop."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from helpers import stored_events

from receiver.db.models import PARSE_OK
from receiver.ingest.inbox import Delivery, store_deliveries
from receiver.processing import worker as worker_module
from receiver.processing.queue import claim_events, queue_stats, requeue_events
from receiver.processing.worker import Worker

BODY = b'{"event":"meeting.started","meeting":{"id":"m1","sessionId":"s1","startedAt":"2026-01-01T10:00:00Z"}}'


def _store(engine, count: int = 1) -> None:
    now = datetime.now(UTC)
    store_deliveries(
        engine,
        [
            Delivery(
                delivery_id=f"d{i}",
                webhook_id=None,
                event_name="meeting.started",
                raw_body=BODY[:-1] + b',"n":%d}' % i,  # one body per delivery: the inbox stores a body once
                signature_scheme="raw",
                received_at=now,
                parse_status=PARSE_OK,
            )
            for i in range(count)
        ],
    )


def test_a_dead_workers_claim_is_taken_over_after_the_lease(engine, settings):
    """Events claimed by a worker that vanished are claimed again once the lease passes, not before."""
    _store(engine, 3)
    now = datetime.now(UTC)
    assert len(claim_events(engine, "dead-worker", limit=10, lease_seconds=60, now=now)) == 3
    assert claim_events(engine, "other", limit=10, lease_seconds=60, now=now + timedelta(seconds=30)) == []
    assert len(claim_events(engine, "other", limit=10, lease_seconds=60, now=now + timedelta(seconds=61))) == 3


def test_two_claims_never_share_an_event(engine):
    """Concurrent-style claims split the queue: no event is handed out twice."""
    _store(engine, 10)
    first = claim_events(engine, "w1", limit=6, lease_seconds=60)
    second = claim_events(engine, "w2", limit=6, lease_seconds=60)
    assert len(first) == 6 and len(second) == 4 and not set(first) & set(second)


def test_failures_back_off_then_the_event_is_dead_and_can_be_retried(engine, settings, monkeypatch):
    """A failing event is retried with backoff, marked dead after the attempt limit, and requeued by retry."""

    def boom(*args, **kwargs):
        raise RuntimeError("simulated processing bug")

    monkeypatch.setattr(worker_module, "apply_event", boom)
    _store(engine, 1)
    w = Worker(settings.model_copy(update={"worker_max_attempts": 2}), engine)
    asyncio.run(w.run(once=True))
    [row] = stored_events(engine)
    assert row.status == "failed" and row.attempts == 1 and "simulated processing bug" in row.last_error
    assert row.next_attempt_at > datetime.now(UTC)
    engine_now = row.next_attempt_at + timedelta(seconds=1)
    [event_id] = claim_events(engine, w.worker_id, limit=5, lease_seconds=60, now=engine_now)
    assert w.process_event(event_id) == "dead"
    assert stored_events(engine)[0].status == "dead"
    monkeypatch.undo()
    assert requeue_events(engine, statuses=("dead",)) == 1
    asyncio.run(Worker(settings, engine).run(once=True))
    assert stored_events(engine)[0].status == "done"


def test_stop_releases_the_rest_of_the_batch(engine, settings):
    """A stop requested mid-batch gives unprocessed events back as pending with their attempt uncounted."""
    _store(engine, 5)
    w = Worker(settings, engine)
    w.events_per_transaction = 1
    original = w.process_event

    def process_then_stop(event_id):
        outcome = original(event_id)
        w.request_stop()
        return outcome

    w.process_event = process_then_stop  # type: ignore[method-assign]
    w.process_batch()
    stats = queue_stats(engine)
    assert stats.by_status["done"] == 1 and stats.by_status["pending"] == 4
    assert {r.attempts for r in stored_events(engine) if r.status == "pending"} == {0}


def test_a_batch_is_applied_in_shared_transactions_with_the_same_result(engine, settings):
    """Many events per transaction give exactly the rows of one event per transaction."""
    from test_pipeline import SCRIPT

    from receiver.reports.queries import attendance_report

    now = datetime.now(UTC)
    from helpers import compact

    deliveries = [
        Delivery(f"{i}-{d}", None, e["event"], compact(e), "raw", now, PARSE_OK) for i, (d, e) in enumerate(SCRIPT)
    ]
    store_deliveries(engine, deliveries)
    stored = len({d.raw_body for d in deliveries})  # the SCRIPT's retry, here under another id, is a replay: not stored
    batched = Worker(settings, engine)
    assert batched.process_batch() == stored
    assert queue_stats(engine).by_status["done"] == stored
    report = attendance_report(engine)
    assert {r["participant_key"]: r["attended_seconds"] for r in report} == {
        "alice": 3000.0,
        "bob": 2700.0,
        "c1": 2700.0,
        "dave": 1200.0,
    }


@pytest.mark.parametrize("body", [b"not json", b'{"event":"meeting.started","meeting":{}}'])
def test_an_unparseable_stored_event_is_ignored_not_retried(engine, settings, body):
    """A stored body that no longer parses ends as ignored with the reason, and the worker carries on."""
    now = datetime.now(UTC)
    store_deliveries(engine, [Delivery("bad", None, "meeting.started", body, "raw", now, PARSE_OK)])
    _store(engine, 1)
    result = asyncio.run(Worker(settings, engine).run(once=True))
    statuses = {r.delivery_id: r.status for r in stored_events(engine)}
    assert statuses == {"bad": "ignored", "d0": "done"} and result.ignored == 1
