"""Retention of raw webhook bodies: receiver purge and the worker's daily run.

The inbox holds the dataset of test_erasure (two meetings, processed) received
40 days ago, a dead and a pending event from then, and one meeting received
today. With RAW_RETENTION_DAYS=30 the purge empties the old handled bodies,
keeps the rows (dedupe), the unhandled bodies and today's, and every report.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from datetime import UTC, datetime, timedelta

import pytest
from click.testing import CliRunner
from prometheus_client import REGISTRY
from sqlalchemy import func, select, update
from sqlalchemy.engine import Engine
from test_erasure import DEAD, PENDING, dataset, delivery, drain

from receiver import metrics
from receiver.cli.main import cli
from receiver.db.models import MaintenanceRun, OutboundDelivery, WebhookEvent
from receiver.enums import EventStatus
from receiver.ingest.inbox import StoreOutcome, store_deliveries
from receiver.processing.retention import (
    Purge,
    RetentionSchedule,
    claim_run,
    purge_plan,
    retention_cutoff,
)
from receiver.processing.worker import Worker
from receiver.reports.queries import ReportFilter, attendance_report, recordings_report, sessions_report

NOW = datetime.now(UTC)
OLD = NOW - timedelta(days=40)
TODAY = {
    "event": "meeting.started",
    "meeting": {"id": "M9", "sessionId": "S9", "title": "Today", "startedAt": NOW.isoformat()},
}


def load(settings, engine: Engine) -> None:
    """Old processed meetings, an old dead and an old pending event, and today's meeting (processed)."""
    store_deliveries(engine, [delivery(i, p, OLD) for i, p in dataset()])
    store_deliveries(engine, [delivery("today", TODAY, NOW)])
    drain(settings, engine)
    store_deliveries(engine, [delivery(*DEAD, received_at=OLD), delivery(*PENDING, received_at=OLD)])
    with engine.begin() as connection:
        connection.execute(
            update(WebhookEvent).where(WebhookEvent.delivery_id == "z-dead").values(status=EventStatus.DEAD)
        )


def reports(engine: Engine) -> tuple:
    flt = ReportFilter()
    return attendance_report(engine, flt), sessions_report(engine, flt), recordings_report(engine, flt)


def bodies(engine: Engine) -> dict[str, bytes]:
    with engine.connect() as connection:
        return {
            row.delivery_id: bytes(row.raw_body)
            for row in connection.execute(select(WebhookEvent.delivery_id, WebhookEvent.raw_body))
        }


def metric(name: str) -> float:
    return REGISTRY.get_sample_value(name) or 0.0


def test_purge_empties_old_handled_bodies_and_keeps_rows_unhandled_bodies_and_reports(engine, settings):
    """Done and ignored events older than the window lose raw_body (purged_at set); the rest and every report stay."""
    load(settings, engine)
    before_reports, before_bodies = reports(engine), bodies(engine)
    old_handled = [i for i, _ in dataset()]  # 17 done + 1 ignored (unknown event)
    expected_bytes = sum(len(before_bodies[i]) for i in old_handled)
    cutoff = retention_cutoff(NOW, 30)

    plan = purge_plan(engine, cutoff)
    assert (plan.bodies, plan.bytes, plan.kept_unhandled, plan.complete) == (18, expected_bytes, 2, False)
    assert bodies(engine) == before_bodies  # a plan changes nothing

    purged_before, bytes_before = (
        metric("receiver_retention_purged_bodies_total"),
        metric("receiver_retention_purged_bytes_total"),
    )
    run = Purge(engine, cutoff, batch_size=5)
    steps = []
    while not run.complete:
        steps.append(run.step())
    run.count_kept()
    assert steps == [5, 5, 5, 3]  # short transactions, resumed by key
    assert (run.summary.bodies, run.summary.bytes, run.summary.kept_unhandled) == (18, expected_bytes, 2)
    assert metric("receiver_retention_purged_bodies_total") - purged_before == 18
    assert metric("receiver_retention_purged_bytes_total") - bytes_before == expected_bytes

    after = bodies(engine)
    assert all(after[i] == b"" for i in old_handled)
    assert after["z-dead"] == before_bodies["z-dead"] and after["z-pending"] == before_bodies["z-pending"]
    assert after["today"] == before_bodies["today"]
    assert reports(engine) == before_reports
    with engine.connect() as connection:
        rows = connection.execute(select(func.count(), func.count(WebhookEvent.purged_at))).one()
    assert tuple(rows) == (21, 18)  # every row kept
    assert purge_plan(engine, cutoff).bodies == 0  # nothing left to purge: a second run is a no-op


def test_a_retry_of_a_purged_delivery_is_still_a_duplicate_and_a_requeued_one_is_ignored(engine, settings):
    """Dedupe keeps working on purged rows (same id and body hash); requeueing a purged event applies nothing."""
    load(settings, engine)
    Purge(engine, retention_cutoff(NOW, 30)).run()
    first_id, first_payload = dataset()[1]
    outcomes = store_deliveries(engine, [delivery(first_id, first_payload, NOW)])
    assert outcomes == [StoreOutcome.DUPLICATE]

    from receiver.processing.queue import requeue_events

    drain(settings, engine)  # the old pending event (kept with its body) is applied now
    before = reports(engine)
    with engine.connect() as connection:
        event_id = connection.execute(select(WebhookEvent.id).where(WebhookEvent.delivery_id == first_id)).scalar_one()
    requeue_events(engine, event_ids=[event_id])
    drain(settings, engine)
    with engine.connect() as connection:
        row = connection.execute(select(WebhookEvent).where(WebhookEvent.id == event_id)).one()
    assert row.status == EventStatus.IGNORED and "raw body removed" in row.last_error
    assert reports(engine) == before


def test_the_daily_run_is_claimed_by_one_worker_a_day(engine):
    """claim_run: the first claimant wins; others lose until a day after that start."""
    assert claim_run(engine, "w1", now=NOW)
    assert not claim_run(engine, "w2", now=NOW + timedelta(minutes=5))
    assert not claim_run(engine, "w2", now=NOW + timedelta(hours=23))
    assert claim_run(engine, "w2", now=NOW + timedelta(days=1))
    with engine.connect() as connection:
        row = connection.execute(select(MaintenanceRun)).one()
    assert (row.job, row.run_by, row.started_at) == ("purge", "w2", NOW + timedelta(days=1))


def test_concurrent_claims_give_the_run_to_exactly_one(engine):
    """Eight threads claiming at once: one wins."""
    wins: list[bool] = []
    barrier = threading.Barrier(8)

    def claim(name: str) -> None:
        barrier.wait()
        wins.append(claim_run(engine, name, now=NOW))

    threads = [threading.Thread(target=claim, args=(f"w{i}",)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(wins) == [False] * 7 + [True]


def test_schedule_checks_cheaply_and_purges_in_slices(engine, settings):
    """The worker hook: one claim per check interval; after a claim, slices until done, then the run is recorded."""
    load(settings, engine)
    clock = [0.0]
    schedule = RetentionSchedule(engine, 30, "w1", batch_size=4, slice_seconds=0, clock=lambda: clock[0])
    purged = [schedule.tick()]
    while schedule.running:
        purged.append(schedule.tick())
    assert sum(purged) == 18 and purged[0] == 4  # one batch per slice
    with engine.connect() as connection:
        row = connection.execute(select(MaintenanceRun)).one()
    summary = json.loads(row.summary)
    assert row.finished_at is not None and (summary["bodies"], summary["kept_unhandled"]) == (18, 2)
    other = RetentionSchedule(engine, 30, "w2", clock=lambda: clock[0])
    metrics.RETENTION_LAST_SUCCESS.set(0)
    assert other.tick() == 0 and not other.running  # claimed today by w1
    assert metric("receiver_retention_last_success_timestamp_seconds") == row.finished_at.timestamp()  # seen by w2
    clock[0] += 10
    assert schedule.tick() == 0  # within the check interval: not even a query


def test_the_worker_runs_the_purge_when_enabled_and_not_when_disabled(engine, settings):
    """A long-running worker purges old bodies on its own (RAW_RETENTION_DAYS=30) and leaves them alone at 0."""
    load(settings, engine)

    def run_worker(days: int) -> None:
        worker = Worker(settings.model_copy(update={"raw_retention_days": days}), engine)
        timer = threading.Timer(1.5, worker.request_stop)
        timer.start()
        asyncio.run(worker.run())
        timer.cancel()

    run_worker(0)
    assert bodies(engine)["z1-j"] != b""
    run_worker(30)
    assert bodies(engine)["z1-j"] == b""
    assert metric("receiver_retention_last_success_timestamp_seconds") >= time.time() - 60


def test_purge_command(db_url, settings):
    """`receiver purge --dry-run` counts, `receiver purge` purges with a summary, `--days` overrides, 0 refuses."""
    from receiver.db.engine import make_engine

    engine = make_engine(db_url)
    load(settings, engine)
    env = {"DATABASE_URL": db_url, "LOG_LEVEL": "WARNING"}
    runner = CliRunner()
    dry = runner.invoke(cli, ["purge", "--dry-run"], env=env)
    assert dry.exit_code == 0 and dry.output.startswith("would purge 18 raw bodies")
    assert "kept 2 older events that are not handled yet" in dry.output
    assert runner.invoke(cli, ["purge", "--days", "60"], env=env).output.startswith("purged 0 raw bodies")
    done = runner.invoke(cli, ["purge", "--format", "json"], env=env)
    assert done.exit_code == 0 and json.loads(done.output)["bodies"] == 18
    with engine.connect() as connection:
        run_by = connection.execute(select(MaintenanceRun.run_by)).scalar_one()
    assert run_by.startswith("cli:")  # the workers skip today's run
    shown = json.loads(runner.invoke(cli, ["events", "show", "z1-j"], env=env).output)
    assert shown["payload"].startswith("<raw body removed: purged at ")
    replay = runner.invoke(cli, ["events", "replay", "z1-j"], env=env)
    assert replay.exit_code == 1 and "raw body was removed" in replay.output
    disabled = runner.invoke(cli, ["purge"], env={**env, "RAW_RETENTION_DAYS": "0"})
    assert disabled.exit_code == 1 and "retention is disabled" in disabled.output
    engine.dispose()


def test_purge_empties_delivered_outbound_bodies_after_the_window_and_keeps_the_rest(db_url):
    """Outbound attendance bodies (people's names) go with the raw bodies: delivered before the cutoff only.

    The rows stay with their digest (the resend rule compares it); pending,
    failed and dead deliveries and recent ones keep their body.
    """
    from receiver.db.engine import make_engine, migrate

    migrate(db_url)
    engine = make_engine(db_url)
    body = json.dumps({"data": {"attendance": [{"display_name": "Ada Lovelace"}]}})

    def row(webhook_id: str, status: str, delivered_at: datetime | None) -> dict:
        return dict(
            webhook_id=webhook_id,
            event_type="session.attendance",
            session_id=f"S-{webhook_id}",
            payload=body,
            payload_sha256="d" * 64,
            status=status,
            attempts=1,
            next_attempt_at=OLD,
            created_at=OLD,
            updated_at=OLD,
            delivered_at=delivered_at,
        )

    with engine.begin() as connection:
        connection.execute(
            OutboundDelivery.__table__.insert(),
            [
                row("msg_old", "delivered", OLD),
                row("msg_new", "delivered", NOW),
                row("msg_dead", "dead", None),
                row("msg_failed", "failed", None),
            ],
        )
    cutoff = retention_cutoff(NOW, 30)
    assert purge_plan(engine, cutoff).outbound_bodies == 1
    dry = CliRunner().invoke(cli, ["purge", "--dry-run"], env={"DATABASE_URL": db_url, "LOG_LEVEL": "WARNING"})
    assert "would empty the bodies of 1 outbound attendance webhooks" in dry.output
    run = Purge(engine, cutoff)
    run.run()
    assert run.summary.outbound_bodies == 1
    with engine.connect() as connection:
        kept = dict(connection.execute(select(OutboundDelivery.webhook_id, OutboundDelivery.payload)).all())
        digests = set(connection.execute(select(OutboundDelivery.payload_sha256)).scalars())
    assert kept == {"msg_old": "", "msg_new": body, "msg_dead": body, "msg_failed": body}
    assert digests == {"d" * 64}  # every row kept with its digest
    assert purge_plan(engine, cutoff).outbound_bodies == 0
    engine.dispose()


@pytest.mark.parametrize("days", [0, -1])
def test_a_cutoff_needs_a_positive_window(days):
    with pytest.raises(ValueError, match="at least 1 day"):
        retention_cutoff(NOW, days)
