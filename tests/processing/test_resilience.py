"""Resilience: database outages on the receive path, worker crashes, graceful shutdown, several workers on one queue.

Services run as real subprocesses (``python -m receiver.cli serve|worker``)
where the behaviour under test is about processes and signals; the
database outage on PostgreSQL goes through :class:`receiver.devtools.tcpproxy.TcpProxy`.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import signal
import socket
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from helpers import signed_headers
from sqlalchemy import delete, select, text
from sqlalchemy.engine import Engine

from receiver.db.engine import make_engine
from receiver.db.models import PARSE_OK, Base, WebhookEvent
from receiver.devtools.chaos import (
    ChildProcess,
    free_port,
    http_get,
    serve_argv,
    service_env,
    wait_until_ready,
    worker_argv,
)
from receiver.devtools.tcpproxy import TcpProxy, proxied_url
from receiver.ingest.inbox import Delivery, store_deliveries
from receiver.processing.queue import requeue_events
from receiver.processing.worker import Worker
from receiver.providers.dyte.events import parse_event
from receiver.providers.dyte.signature import public_key_pem
from receiver.sandbox import build_scenario, events_for
from receiver.sandbox.localserver import serve_in_thread
from receiver.service import build_service_app
from receiver.settings import Settings

pytestmark = pytest.mark.slow

#: Fixed receipt time of preloaded events, so two runs give identical rows.
RECEIVED_AT = datetime(2026, 11, 5, 12, 0, tzinfo=UTC)
#: Columns that hold wall-clock bookkeeping, not results.
VOLATILE = {
    "id",
    "updated_at",
    "reconciled_at",
    "due_at",
    "attempts",
    "last_error",
    "locked_by",
    "locked_until",
    "done_at",
    "title_fetched_at",
    "linked_at",
    "processed_at",
}


# ---------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------


def preload(engine: Engine, world) -> int:
    """Store every webhook of ``world`` in the inbox as pending events (as the receiver would); returns how many."""
    items = []
    for delivery in events_for(world):
        raw = delivery.body()
        event = parse_event(json.loads(raw))
        items.append(
            Delivery(
                delivery_id=delivery.uuid,
                webhook_id=None,
                event_name=event.event,
                raw_body=raw,
                signature_scheme="compact",
                received_at=RECEIVED_AT,
                parse_status=PARSE_OK,
                meeting_id=event.meeting_id,
                session_id=event.session_id,
                occurred_at=event.occurred_at,
            )
        )
    store_deliveries(engine, items)
    return len(items)


def snapshot(engine: Engine) -> dict[str, list[tuple]]:
    """Every derived table's rows without bookkeeping columns, sorted: what processing produced."""
    result: dict[str, list[tuple]] = {}
    with engine.connect() as connection:
        for table in Base.metadata.sorted_tables:
            if table.name in ("webhook_events", "managed_subscriptions"):
                continue
            columns = [c for c in table.columns if c.name not in VOLATILE]
            rows = connection.execute(select(*columns)).all()
            result[table.name] = sorted((tuple(row) for row in rows), key=repr)
    return result


def clean_rerun_snapshot(engine: Engine, settings: Settings) -> dict[str, list[tuple]]:
    """Throw away everything derived, requeue every event and drain with one in-process worker: the clean-run result."""
    with engine.begin() as connection:
        for table in reversed(Base.metadata.sorted_tables):
            if table.name not in ("webhook_events", "managed_subscriptions"):
                connection.execute(delete(table))
    requeue_events(engine, statuses=("done",))
    asyncio.run(Worker(settings, engine).run(once=True))
    assert status_counts(engine) == {"done": event_count(engine)}
    return snapshot(engine)


def status_counts(engine: Engine) -> dict[str, int]:
    """``{status: count}`` of the inbox."""
    with engine.connect() as connection:
        return dict(connection.execute(text("SELECT status, count(*) FROM webhook_events GROUP BY status")).all())


def event_count(engine: Engine) -> int:
    """Rows in the inbox."""
    with engine.connect() as connection:
        return int(connection.execute(text("SELECT count(*) FROM webhook_events")).scalar_one())


def wait_for(predicate, timeout: float, what: str, interval: float = 0.02):
    """Poll ``predicate`` until it returns something truthy; fail the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}")


def worker_env(db_url: str, **extra) -> dict[str, str]:
    """Environment of a worker subprocess on ``db_url`` without reconciliation."""
    settings = {
        "database_url": db_url,
        "reconcile_enabled": "false",
        "worker_poll_seconds": 0.1,
        "log_format": "json",
        # The preloaded events carry a fixed past receipt time (RECEIVED_AT): the daily retention
        # purge (tested in test_retention.py) would empty their bodies and log its run mid-test.
        "raw_retention_days": 0,
        **extra,
    }
    return service_env(**settings)


def offline_settings(db_url: str, **extra) -> Settings:
    """In-process settings on ``db_url`` without reconciliation."""
    return Settings(database_url=db_url, reconcile_enabled=False, worker_poll_seconds=0.05, **extra)


@pytest.fixture
def children(tmp_path: Path):
    """Subprocesses started by a test; whatever still runs is stopped (by pid) at the end."""
    started: list[ChildProcess] = []

    def start(name: str, argv: list[str], env: dict[str, str]) -> ChildProcess:
        child = ChildProcess(name, argv, env, tmp_path / f"{name}.log").start()
        started.append(child)
        return child

    yield start
    for child in started:
        child.stop(10)


def a_delivery(world_seed: int = 1) -> tuple[bytes, str]:
    """One real-shaped webhook body and its dyte-uuid."""
    delivery = events_for(build_scenario(seed=world_seed, sessions=1, participants=3))[1]
    return delivery.body(), delivery.uuid


# ---------------------------------------------------------------------------
# (a) the receive path while the database is down
# ---------------------------------------------------------------------------


def _post(base_url: str, body: bytes, key, delivery_id: str) -> httpx.Response:
    return httpx.post(
        f"{base_url}/webhooks/dyte",
        content=body,
        headers=signed_headers(body, key, delivery_id=delivery_id),
        timeout=10,
    )


@pytest.mark.postgres
def test_database_outage_postgres_answers_503_then_recovers_without_restart(pg_url: str, signing_key) -> None:
    """PostgreSQL unreachable (TCP proxy cut): 503 database_unavailable and /readyz 503; once back, the same delivery is stored (200)."""
    parsed_host_port = make_host_port(pg_url)
    with TcpProxy(*parsed_host_port) as proxy:
        settings = Settings(
            database_url=proxied_url(pg_url, proxy.port),
            dyte_webhook_public_key=public_key_pem(signing_key),
            reconcile_enabled=False,
            subscription_ensure_on_start=False,
        )
        base_url, stop = serve_in_thread(build_service_app(settings, run_worker=False), name="receiver-under-test")
        try:
            warm_body, warm_id = a_delivery(1)
            assert _post(base_url, warm_body, signing_key, warm_id).status_code == 200
            body, delivery_id = a_delivery(2)

            proxy.cut()
            response = _post(base_url, body, signing_key, delivery_id)
            assert response.status_code == 503
            assert response.json()["error"] == "database_unavailable"
            status, detail = http_get(base_url, "/readyz")
            assert status == 503
            assert detail["status"] == "not_ready" and detail["database"]["reachable"] is False
            assert detail["database"]["error"]

            proxy.restore()
            again = _post(base_url, body, signing_key, delivery_id)
            assert again.status_code == 200 and again.json()["status"] == "stored"
            assert http_get(base_url, "/readyz")[0] == 200
        finally:
            stop()
    engine = make_engine(pg_url)
    try:
        with engine.connect() as connection:
            ids = list(connection.execute(select(WebhookEvent.delivery_id)).scalars())
        assert sorted(ids) == sorted([warm_id, delivery_id])
    finally:
        engine.dispose()


def make_host_port(url: str) -> tuple[str, int]:
    """(host, port) of a database URL."""
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    return parsed.host or "127.0.0.1", parsed.port or 5432


def test_database_outage_sqlite_answers_503_then_recovers_without_restart(sqlite_url: str, signing_key) -> None:
    """SQLite file replaced by a non-database (an unusable disk): 503 database_unavailable, /readyz 503; file back: 200, no restart."""
    path = Path(sqlite_url.removeprefix("sqlite:///"))
    settings = Settings(
        database_url=sqlite_url,
        dyte_webhook_public_key=public_key_pem(signing_key),
        reconcile_enabled=False,
        subscription_ensure_on_start=False,
    )
    app = build_service_app(settings, run_worker=False)
    base_url, stop = serve_in_thread(app, name="receiver-under-test")
    try:
        warm_body, warm_id = a_delivery(1)
        assert _post(base_url, warm_body, signing_key, warm_id).status_code == 200
        body, delivery_id = a_delivery(2)

        # The outage: close pooled connections (the WAL is checkpointed), then the file becomes garbage.
        app.state.engine.dispose()
        shutil.move(path, path.with_suffix(".real"))
        path.write_bytes(b"this is not a SQLite database" * 200)
        response = _post(base_url, body, signing_key, delivery_id)
        assert response.status_code == 503
        assert response.json()["error"] == "database_unavailable"
        status, detail = http_get(base_url, "/readyz")
        assert status == 503 and detail["database"]["reachable"] is False

        path.unlink()
        shutil.move(path.with_suffix(".real"), path)
        again = _post(base_url, body, signing_key, delivery_id)
        assert again.status_code == 200 and again.json()["status"] == "stored"
        assert http_get(base_url, "/readyz")[0] == 200
    finally:
        stop()
    engine = make_engine(sqlite_url)
    try:
        with engine.connect() as connection:
            ids = list(connection.execute(select(WebhookEvent.delivery_id)).scalars())
        assert sorted(ids) == sorted([warm_id, delivery_id])
    finally:
        engine.dispose()


# ---------------------------------------------------------------------------
# (b) worker crash safety, idempotent processing
# ---------------------------------------------------------------------------


def test_sigkilled_worker_claims_are_taken_over_after_the_lease(db_url: str, children) -> None:
    """A worker SIGKILLed while holding claims: another worker processes them once the lease passes; result equals a clean run."""
    engine = make_engine(db_url)
    world = build_scenario(seed=21, sessions=3, participants=80)
    total = preload(engine, world)
    lease = 3.0
    env = worker_env(db_url, worker_batch_size=total, worker_lease_seconds=lease, worker_events_per_transaction=1)
    victim = children("victim", worker_argv(), env)

    def victim_midway():
        counts = status_counts(engine)
        return counts if counts.get("done", 0) >= 3 and counts.get("processing", 0) >= 10 else None

    wait_for(victim_midway, 60, "the victim to be midway through its batch")
    victim.signal(signal.SIGKILL)
    assert victim.wait(10) == -signal.SIGKILL
    killed_at = time.monotonic()
    with engine.connect() as connection:
        orphaned = connection.execute(
            text("SELECT count(*) FROM webhook_events WHERE status = 'processing' AND locked_by LIKE :p"),
            {"p": victim.worker_id_prefix + "%"},
        ).scalar_one()
    assert orphaned > 0

    rescuer = children("rescuer", worker_argv(), env)
    wait_for(lambda: status_counts(engine) == {"done": total}, 90, "the rescuer to finish the orphaned events", 0.1)
    assert time.monotonic() - killed_at >= lease * 0.9, "claims were taken over before the lease expired"
    rescuer.signal(signal.SIGTERM)
    assert rescuer.wait(30) == 0
    with engine.connect() as connection:
        retried = connection.execute(text("SELECT count(*) FROM webhook_events WHERE attempts = 2")).scalar_one()
        failed = connection.execute(
            text("SELECT count(*) FROM webhook_events WHERE last_error IS NOT NULL")
        ).scalar_one()
    assert retried == orphaned, "exactly the orphaned events were claimed a second time"
    assert failed == 0

    after_crash = snapshot(engine)
    assert after_crash["participant_intervals"], "nothing was processed"
    assert after_crash == clean_rerun_snapshot(engine, offline_settings(db_url))
    engine.dispose()


def test_processing_every_event_twice_changes_nothing(db_url: str) -> None:
    """Requeue every processed event and run the worker again: every derived row stays exactly the same."""
    engine = make_engine(db_url)
    total = preload(engine, build_scenario(seed=5, sessions=3, participants=30))
    settings = offline_settings(db_url)
    asyncio.run(Worker(settings, engine).run(once=True))
    first = snapshot(engine)
    assert requeue_events(engine, statuses=("done",)) == total
    asyncio.run(Worker(settings, engine).run(once=True))
    assert status_counts(engine) == {"done": total}
    assert snapshot(engine) == first
    engine.dispose()


# ---------------------------------------------------------------------------
# (c) graceful shutdown
# ---------------------------------------------------------------------------


def _open_partial_request(port: int, body: bytes, headers: dict[str, str]) -> socket.socket:
    """Send the headers and the first half of the body, keeping the request in flight."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=15)
    head = "POST /webhooks/dyte HTTP/1.1\r\nhost: 127.0.0.1\r\n"
    head += "".join(f"{name}: {value}\r\n" for name, value in headers.items())
    head += f"content-length: {len(body)}\r\n\r\n"
    sock.sendall(head.encode() + body[: len(body) // 2])
    return sock


def _finish_request(sock: socket.socket, body: bytes) -> int:
    """Send the rest of the body; returns the response status."""
    sock.sendall(body[len(body) // 2 :])
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    sock.close()
    return int(data.split(b" ", 2)[1])


def test_sigterm_to_serve_completes_in_flight_requests_then_exits(db_url: str, signing_key, children) -> None:
    """SIGTERM to `receiver serve` with requests half-sent: new connections are refused, the in-flight ones get 200, then it exits."""
    port = free_port()
    env = service_env(
        database_url=db_url,
        dyte_webhook_public_key=public_key_pem(signing_key),
        reconcile_enabled="false",
        subscription_ensure_on_start="false",
        log_format="json",
        # The bodies are held half-sent for ~1.3 s on purpose: allow the longest body deadline.
        body_read_timeout_seconds="2.5",
    )
    server = children("serve", serve_argv(port), env)
    wait_until_ready(server, f"http://127.0.0.1:{port}")
    deliveries = events_for(build_scenario(seed=9, sessions=1, participants=5))[:5]
    in_flight = [
        (_open_partial_request(port, d.body(), signed_headers(d.body(), signing_key, delivery_id=d.uuid)), d)
        for d in deliveries
    ]
    time.sleep(0.3)  # the server has read the headers: the requests are in flight
    server.signal(signal.SIGTERM)
    time.sleep(1.0)
    assert server.alive(), "the server exited with requests in flight"
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
    statuses = [_finish_request(sock, d.body()) for sock, d in in_flight]
    assert statuses == [200] * len(deliveries)
    code = server.wait(30)
    assert code in (0, -signal.SIGTERM)  # uvicorn re-raises the handled SIGTERM after its graceful shutdown
    engine = make_engine(db_url)
    with engine.connect() as connection:
        stored = set(connection.execute(select(WebhookEvent.delivery_id)).scalars())
    assert stored == {d.uuid for d in deliveries}
    engine.dispose()


def test_sigterm_to_worker_finishes_current_event_and_releases_the_rest(db_url: str, children) -> None:
    """SIGTERM to `receiver worker` mid-batch: nothing is left claimed or failed, the unprocessed rest is pending again, exit 0."""
    engine = make_engine(db_url)
    total = preload(engine, build_scenario(seed=22, sessions=3, participants=80))
    # Small transactions, so a SIGTERM can land between two of them inside one claimed batch.
    worker = children(
        "worker", worker_argv(), worker_env(db_url, worker_batch_size=total, worker_events_per_transaction=1)
    )

    def midway():
        counts = status_counts(engine)
        return counts if counts.get("done", 0) >= 3 and counts.get("processing", 0) >= 10 else None

    at_signal = wait_for(midway, 60, "the worker to be midway through its batch")
    worker.signal(signal.SIGTERM)
    assert worker.wait(30) == 0
    counts = status_counts(engine)
    assert set(counts) == {"done", "pending"}, counts
    assert counts["done"] >= at_signal["done"] and counts["pending"] > 0
    with engine.connect() as connection:
        released = connection.execute(
            text("SELECT count(*) FROM webhook_events WHERE status = 'pending' AND attempts = 0 AND locked_by IS NULL")
        ).scalar_one()
    assert released == counts["pending"], "released events keep no claim and no counted attempt"
    assert '"event":"worker_stopped"' in worker.log_path.read_text()

    asyncio.run(Worker(offline_settings(db_url), engine).run(once=True))
    assert status_counts(engine) == {"done": total}
    interrupted = snapshot(engine)
    assert interrupted == clean_rerun_snapshot(engine, offline_settings(db_url))
    engine.dispose()


# ---------------------------------------------------------------------------
# (d) several workers, one queue
# ---------------------------------------------------------------------------


def test_several_worker_processes_drain_one_queue_without_duplicate_effects(db_url: str, children) -> None:
    """Three worker processes on PostgreSQL (two on SQLite), small batches: each event claimed once, result equals one worker's."""
    engine = make_engine(db_url)
    count = 3 if db_url.startswith("postgresql") else 2
    # Idle workers poll every 5 ms: one worker drains these 150 events in well under 0.1 s.
    env = worker_env(db_url, worker_batch_size=5, worker_poll_seconds=0.005)
    workers = [children(f"worker-{i}", worker_argv(), env) for i in range(count)]
    # Fill the queue only once every worker polls it, so none finds it already drained.
    wait_for(lambda: all("worker_started" in w.log_path.read_text() for w in workers), 60, "the workers to start", 0.1)
    total = preload(engine, build_scenario(seed=23, sessions=3, participants=60))
    wait_for(lambda: status_counts(engine) == {"done": total}, 120, "the workers to drain the queue", 0.1)
    for worker in workers:
        worker.signal(signal.SIGTERM)
    assert [worker.wait(30) for worker in workers] == [0] * count
    done_by_worker = []
    for worker in workers:
        lines = [json.loads(l) for l in worker.log_path.read_text().splitlines() if l.startswith("{")]  # noqa: E741
        done_by_worker.append([line for line in lines if line["event"] == "worker_stopped"][-1]["done"])
    assert sum(done_by_worker) == total, done_by_worker
    if db_url.startswith("postgresql"):
        # SQLite serialises writers and its busy handler backs off, so a fast
        # worker can drain 150 events alone there; PostgreSQL workers skip
        # each other's locked rows and always share.
        assert sum(1 for n in done_by_worker if n) >= 2, f"the work was not shared: {done_by_worker}"
    with engine.connect() as connection:
        claimed_twice = connection.execute(text("SELECT count(*) FROM webhook_events WHERE attempts <> 1")).scalar_one()
    assert claimed_twice == 0, "an event was claimed by two workers"
    shared = snapshot(engine)
    assert shared == clean_rerun_snapshot(engine, offline_settings(db_url))
    engine.dispose()
