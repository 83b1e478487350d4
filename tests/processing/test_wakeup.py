"""An idle worker wakes on new deliveries: NOTIFY from the inbox writer on PostgreSQL, a short poll on SQLite.

The waits below are generous upper bounds for something that happens at once
(the poll intervals are set to a minute, so only a wake-up explains an event
applied sooner); none asserts a speed.
"""

from __future__ import annotations

import asyncio
import io
import json
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime

import pytest
from sqlalchemy import select, text
from sqlalchemy.engine import Engine, make_url

from receiver.db.models import PARSE_OK, WebhookEvent
from receiver.ingest.inbox import Delivery
from receiver.logging_setup import configure_logging
from receiver.processing.wakeup import LISTENER_APPLICATION_NAME, PostgresWakeup, Wakeup, make_wakeup
from receiver.processing.worker import Worker
from receiver.settings import Settings

MINUTE = 60.0


def _delivery(n: int) -> Delivery:
    body = b'{"event":"meeting.started","meeting":{"id":"m1","sessionId":"s%d","startedAt":"2026-01-01T10:00:00Z"}}' % n
    return Delivery(
        f"wake-{n}",
        "hook",
        "meeting.started",
        body,
        "raw",
        datetime.now(UTC),
        PARSE_OK,
        meeting_id="m1",
        session_id=f"s{n}",
    )


def _store_through_the_postgres_writer(url: str, deliveries: list[Delivery]) -> None:
    from receiver.ingest.postgres import PostgresGroupCommitter

    async def store() -> None:
        committer = PostgresGroupCommitter(make_url(url))
        await committer.start()
        try:
            await asyncio.gather(*(committer.submit(d) for d in deliveries))
        finally:
            await committer.stop()

    asyncio.run(store())


def _eventually(check: Callable[[], object], what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.02)
    pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}")


def _status(engine: Engine, delivery_id: str) -> str | None:
    with engine.connect() as connection:
        return connection.execute(
            select(WebhookEvent.status).where(WebhookEvent.delivery_id == delivery_id)
        ).scalar_one_or_none()


class CountingWakeup(PostgresWakeup):
    """Counts the worker's waits, to know when it has gone idle."""

    waits = 0

    def wait(self, timeout: float | None = None) -> bool:
        self.waits += 1
        return super().wait(timeout)


@pytest.fixture
def pg_engine(pg_url: str) -> Iterator[Engine]:
    from receiver.db.engine import make_engine

    engine = make_engine(pg_url)
    yield engine
    engine.dispose()


@pytest.fixture
def listener(pg_engine: Engine) -> Iterator[PostgresWakeup]:
    wakeup = PostgresWakeup(pg_engine, MINUTE)
    wakeup.start()
    yield wakeup
    wakeup.close()


@pytest.mark.postgres
def test_a_committed_batch_of_new_deliveries_wakes_the_listener(pg_url: str, listener: PostgresWakeup) -> None:
    """The PostgreSQL inbox writer sends NOTIFY receiver_events with each batch that stored something."""
    _eventually(lambda: listener.listening, "the listener to LISTEN")
    listener.wait(0)  # the wake-up every (re)connection gives
    _store_through_the_postgres_writer(pg_url, [_delivery(1), _delivery(2)])
    assert listener.wait(MINUTE) is True


@pytest.mark.postgres
def test_requeued_events_wake_the_listener(pg_url: str, pg_engine: Engine, listener: PostgresWakeup) -> None:
    """`receiver events retry` makes events due again: it wakes the workers too; a requeue of nothing does not."""
    from receiver.ingest.inbox import store_deliveries
    from receiver.processing.queue import requeue_events

    store_deliveries(pg_engine, [_delivery(4)])
    with pg_engine.begin() as connection:
        connection.execute(text("UPDATE webhook_events SET status = 'dead'"))
    _eventually(lambda: listener.listening, "the listener to LISTEN")
    listener.wait(0)
    assert requeue_events(pg_engine, statuses=("failed",)) == 0
    assert requeue_events(pg_engine, statuses=("dead",)) == 1
    assert listener.wait(MINUTE) is True


@pytest.mark.postgres
def test_the_listener_reconnects_after_its_connection_is_killed(pg_engine: Engine, listener: PostgresWakeup) -> None:
    """A dropped listening connection is logged once, re-established, and notifications wake the worker again."""
    _eventually(lambda: listener.listening, "the listener to LISTEN")
    stream = io.StringIO()
    configure_logging("json", "INFO", stream)
    try:
        with pg_engine.begin() as connection:
            killed = connection.execute(
                text(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                    "WHERE application_name = :name AND datname = current_database()"
                ),
                {"name": LISTENER_APPLICATION_NAME},
            ).scalar_one()
        assert killed == 1

        def events() -> list[str]:
            lines = [json.loads(line) for line in stream.getvalue().splitlines() if line.strip()]
            return [line["event"] for line in lines if line["event"].startswith("notify_listener")]

        _eventually(lambda: "notify_listener_restored" in events(), "the reconnection")
    finally:
        configure_logging("json", "INFO")  # back to stderr
    assert events() == ["notify_listener_lost", "notify_listener_restored"]
    listener.wait(0)
    with pg_engine.begin() as connection:
        connection.execute(text("NOTIFY receiver_events"))
    assert listener.wait(MINUTE) is True


@pytest.mark.postgres
def test_an_idle_worker_applies_a_new_delivery_without_waiting_for_its_poll(pg_url: str, pg_engine: Engine) -> None:
    """With a one-minute poll, a delivery stored while the worker is idle is applied at once (woken by NOTIFY)."""
    settings = Settings(database_url=pg_url, reconcile_enabled=False, worker_poll_seconds=MINUTE)
    wakeup = CountingWakeup(pg_engine, MINUTE)
    worker = Worker(settings, pg_engine, wakeup=wakeup)
    thread = threading.Thread(target=lambda: asyncio.run(worker.run()), daemon=True)
    thread.start()
    try:
        _eventually(lambda: wakeup.listening, "the worker to LISTEN")
        idle_from = wakeup.waits
        _eventually(lambda: wakeup.waits > idle_from, "the worker to go idle")
        _store_through_the_postgres_writer(pg_url, [_delivery(3)])
        _eventually(lambda: _status(pg_engine, "wake-3") == "done", "the delivery to be applied")
    finally:
        worker.request_stop()
        thread.join(MINUTE)
    assert not thread.is_alive()


def test_a_stop_request_ends_an_idle_worker_at_once(db_url: str, engine: Engine) -> None:
    """An idle worker stops on request without sitting out its poll interval."""
    settings = Settings(
        database_url=db_url, reconcile_enabled=False, worker_poll_seconds=MINUTE, worker_sqlite_poll_seconds=MINUTE
    )
    worker = Worker(settings, engine)
    waits: list[float | None] = []
    real_wait = worker.wakeup.wait

    def counting_wait(timeout: float | None = None) -> bool:
        waits.append(timeout)
        return real_wait(timeout)

    worker.wakeup.wait = counting_wait  # type: ignore[method-assign]
    thread = threading.Thread(target=lambda: asyncio.run(worker.run()), daemon=True)
    thread.start()
    _eventually(lambda: waits, "the worker to go idle")
    worker.request_stop()
    thread.join(MINUTE / 2)
    assert not thread.is_alive()


def test_the_wakeup_follows_the_database_and_settings(tmp_path) -> None:
    """PostgreSQL listens unless WORKER_LISTEN=false; SQLite polls every WORKER_SQLITE_POLL_SECONDS."""
    from sqlalchemy import create_engine

    sqlite = create_engine(f"sqlite:///{tmp_path / 'x.db'}")
    postgres = create_engine("postgresql+psycopg://u@127.0.0.1:1/x")  # never connected
    base = Settings(reconcile_enabled=False, worker_poll_seconds=2.0, worker_sqlite_poll_seconds=0.07)
    on_sqlite = make_wakeup(sqlite, base)
    assert (on_sqlite.mode, on_sqlite.poll_seconds) == ("poll", 0.07)
    listening = make_wakeup(postgres, base)
    assert isinstance(listening, PostgresWakeup) and listening.poll_seconds == 2.0
    polling = make_wakeup(postgres, base.model_copy(update={"worker_listen": False}))
    assert type(polling) is Wakeup and polling.poll_seconds == 2.0
    sqlite.dispose()
    postgres.dispose()


def test_a_wakeup_set_while_the_worker_is_busy_is_not_lost() -> None:
    """set() before wait() makes the next wait return at once; the signal is then cleared."""
    wakeup = Wakeup(MINUTE)
    wakeup.set()
    assert wakeup.wait() is True
    assert wakeup.wait(0) is False
