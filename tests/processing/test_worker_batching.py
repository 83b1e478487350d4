"""Batched processing (many events per transaction, bulk writes) gives exactly the rows of one event at a time."""

from __future__ import annotations

import dataclasses
import random
from datetime import UTC, datetime

from sqlalchemy import delete, select

from receiver.db.models import (
    Livestream,
    LivestreamStatusChange,
    Meeting,
    ParticipantInterval,
    ReconcileTask,
    Recording,
    RecordingStatusChange,
    Session,
    SessionArtifact,
    WebhookEvent,
)
from receiver.devtools.bench.worker_bench import realistic_deliveries
from receiver.ingest.inbox import store_deliveries
from receiver.processing import worker as worker_module
from receiver.processing.queue import queue_stats, requeue_events
from receiver.processing.worker import ProcessResult, Worker
from receiver.retry import RetryPolicy

# What the worker writes; compared without ids and write times (updated_at, due_at of tasks armed "now").
WRITTEN = (
    Meeting,
    Session,
    ParticipantInterval,
    SessionArtifact,
    Recording,
    RecordingStatusChange,
    Livestream,
    LivestreamStatusChange,
    ReconcileTask,
)
NOT_COMPARED = {"id", "updated_at", "due_at"}


def _snapshot(engine) -> dict[str, list[tuple]]:
    tables = {}
    with engine.connect() as connection:
        for model in WRITTEN:
            columns = [c for c in model.__table__.c if c.name not in NOT_COMPARED]
            tables[model.__tablename__] = sorted(tuple(map(repr, row)) for row in connection.execute(select(*columns)))
    return tables


def _drain(engine, settings, per_transaction: int) -> ProcessResult:
    worker = Worker(settings.model_copy(update={"worker_events_per_transaction": per_transaction}), engine)
    result = ProcessResult()
    while worker.process_batch(result):
        pass
    return result


def _shuffled_with_repeats(count: int) -> list:
    """Sandbox deliveries in a random order, a quarter of them delivered a second time (new delivery ids).

    A second delivery carries one more key, so its body differs: the inbox stores an identical body once.
    """
    deliveries = realistic_deliveries(count, received_at=datetime(2026, 1, 1, tzinfo=UTC))
    rng = random.Random(3)
    again = [
        dataclasses.replace(d, delivery_id=f"{d.delivery_id}-again", raw_body=d.raw_body[:-1] + b',"again":true}')
        for d in rng.sample(deliveries, count // 4)
    ]
    deliveries += again
    rng.shuffle(deliveries)
    return deliveries


def test_batched_transactions_write_the_rows_of_single_event_transactions(engine, settings):
    """Out of order, repeated events: 40 per transaction (shared caches, bulk upserts) == 1 per transaction."""
    deliveries = _shuffled_with_repeats(400)
    store_deliveries(engine, deliveries)
    single = _drain(engine, settings, 1)
    assert single.done == len(deliveries) and single.failed == 0
    expected = _snapshot(engine)
    assert expected["participant_intervals"] and expected["recording_status_history"] and expected["reconcile_tasks"]

    with engine.begin() as connection:
        for model in WRITTEN:
            connection.execute(delete(model))
    assert requeue_events(engine, statuses=("done",)) == len(deliveries)
    batched = _drain(engine, settings, 40)
    assert batched.done == len(deliveries) and batched.failed == 0
    assert _snapshot(engine) == expected

    # Everything again, batched, on top: idempotent.
    requeue_events(engine, statuses=("done",))
    _drain(engine, settings, 40)
    assert _snapshot(engine) == expected


def test_a_failing_event_in_a_batch_fails_alone(engine, settings, monkeypatch):
    """One event that cannot be applied makes its chunk be redone one by one: it alone fails, the rest are done."""
    deliveries = realistic_deliveries(60)
    store_deliveries(engine, deliveries)
    with engine.connect() as connection:
        bad_id = connection.execute(select(WebhookEvent.id).order_by(WebhookEvent.id).offset(17).limit(1)).scalar_one()
    real_apply = worker_module.apply_event

    def apply_or_fail(db, event, **kwargs):
        if kwargs["event_id"] == bad_id:
            raise RuntimeError("simulated bad event")
        real_apply(db, event, **kwargs)

    monkeypatch.setattr(worker_module, "apply_event", apply_or_fail)
    # The failed event's retry must not come due during this drain (a slow
    # machine can take longer than the default 1 s back-off to drain 60 events).
    worker = Worker(
        settings.model_copy(update={"worker_events_per_transaction": 25}),
        engine,
        retry_policy=RetryPolicy(base_seconds=3600, max_seconds=3600),
    )
    result = ProcessResult()
    while worker.process_batch(result):
        pass
    assert (result.done, result.failed) == (len(deliveries) - 1, 1)
    stats = queue_stats(engine)
    assert stats.by_status["done"] == len(deliveries) - 1 and stats.by_status["failed"] == 1
    with engine.connect() as connection:
        status, error = connection.execute(
            select(WebhookEvent.status, WebhookEvent.last_error).where(WebhookEvent.id == bad_id)
        ).one()
    assert status == "failed" and "simulated bad event" in error
