"""``receiver bench worker``: how fast the worker drains a full inbox, and the lag it leaves.

1. A sandbox world (:func:`receiver.sandbox.build_scenario`: ~120 events per
   session - joins, leaves with rejoins and second devices, starts, ends,
   recordings, livestreams, chat/transcript/summary) is rendered into
   ``--events`` deliveries (:func:`receiver.sandbox.events_for`) and stored
   with :func:`receiver.ingest.inbox.store_deliveries` in batches of 500, exactly
   as the receive path would have stored them (same parse fields), all
   with ``received_at`` = preload time.
2. ``--workers`` :class:`receiver.processing.worker.Worker` instances (threads, no
   reconciler) loop on :meth:`~receiver.processing.worker.Worker.process_batch` until
   nothing is claimed.
3. Printed: events/s over the drain (stopped after ``--time-limit`` seconds
   if not drained by then), the time of each ``process_batch`` call (one
   claim) and events per claim, end-to-end lag
   ``processed_at - received_at`` p50/p99, and the outcome counts.

Because everything is preloaded at once, the lag of the i-th event is
about ``i / throughput``: p50 is about half the drain time. It shows how
long a burst of ``--events`` takes to become visible in reports.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table
from sqlalchemy import func, select

from receiver.devtools.bench.common import fmt_ms, fmt_rate, machine_summary
from receiver.devtools.bench.scratch import describe_url, scratch_database
from receiver.devtools.bench.stats import summarize_latencies

__all__ = ["WorkerOptions", "run_worker_bench", "realistic_deliveries", "WORKER_GOAL_EVENTS_PER_SECOND"]

WORKER_GOAL_EVENTS_PER_SECOND = 2000.0


@dataclass
class WorkerOptions:
    """Options of ``receiver bench worker``."""

    events: int = 20_000
    database_url: str | None = None
    batch_size: int | None = None
    events_per_transaction: int | None = None
    workers: int = 1
    log_level: str = "INFO"
    time_limit: float = 60.0
    keep: bool = False


def realistic_deliveries(count: int, *, seed: int = 8, received_at: datetime | None = None) -> list:
    """``count`` inbox deliveries (:class:`receiver.ingest.inbox.Delivery`) rendered from a sandbox world."""
    from receiver.db.models import PARSE_INVALID
    from receiver.ingest.endpoint import _describe  # the receive path's own parse -> row fields
    from receiver.ingest.inbox import Delivery
    from receiver.sandbox import build_scenario, events_for

    sessions = max(1, count // 120)
    participants = max(sessions, (count - 9 * sessions) // 2 + 1)
    world = build_scenario(seed, sessions=sessions, participants=participants)
    rendered = events_for(world)[:count]
    received_at = received_at or datetime.now(UTC)
    deliveries = []
    for item in rendered:
        body = item.body()
        try:
            fields = _describe(json.loads(body))
        except ValueError as exc:  # not expected: sandbox bodies are valid JSON
            fields = {"event_name": None, "parse_status": PARSE_INVALID, "parse_error": str(exc)}
        deliveries.append(
            Delivery(
                delivery_id=item.uuid,
                webhook_id="bench",
                raw_body=body,
                signature_scheme="raw",
                received_at=received_at,
                **fields,
            )
        )
    return deliveries


def _log_to_file(level: str, path: Path) -> None:
    """JSON logs at ``level`` into ``path`` (the worker logs one line per event; its cost is part of the bench)."""
    from receiver.logging_setup import configure_logging

    # structlog's own loggers write straight to the stream given here (not through
    # the root handler), so the file must be passed in, not swapped in afterwards.
    configure_logging("json", level, stream=open(path, "a", encoding="utf-8"))  # noqa: SIM115 - lives for the run


def run_worker_bench(opts: WorkerOptions, console: Console) -> None:
    """Preload, drain, print."""
    from receiver.db.engine import make_engine
    from receiver.db.models import ParticipantInterval, Session, WebhookEvent
    from receiver.ingest.inbox import store_deliveries
    from receiver.processing.worker import ProcessResult, Worker
    from receiver.settings import Settings

    console.print(f"[bold]receiver bench worker[/bold] - {machine_summary()}")
    started = time.perf_counter()
    deliveries = realistic_deliveries(opts.events)
    kinds = Counter(d.event_name for d in deliveries)
    console.print(
        f"rendered {len(deliveries):,} deliveries from a sandbox world in {time.perf_counter() - started:.1f} s: "
        + ", ".join(f"{name} {count:,}" for name, count in kinds.most_common())
    )
    with scratch_database(opts.database_url, keep=opts.keep) as url:
        console.print(f"database: {describe_url(url)} (scratch, migrated)")
        engine = make_engine(url, pool_size=max(10, opts.workers + 2))
        try:
            started = time.perf_counter()
            for start in range(0, len(deliveries), 500):
                store_deliveries(engine, deliveries[start : start + 500])
            preload = time.perf_counter() - started
            console.print(
                f"preloaded with store_deliveries (batches of 500) in {preload:.1f} s ({fmt_rate(len(deliveries) / preload)} rows/s)"
            )

            log_dir = Path(tempfile.mkdtemp(prefix="receiver-bench-worker-"))
            log_path = log_dir / "worker.log"
            _log_to_file(opts.log_level, log_path)
            overrides: dict[str, Any] = {"worker_batch_size": opts.batch_size} if opts.batch_size else {}
            if opts.events_per_transaction:
                if "worker_events_per_transaction" not in Settings.model_fields:
                    raise ValueError("--events-per-transaction: this version of the worker has no such setting")
                overrides["worker_events_per_transaction"] = opts.events_per_transaction
            settings = Settings(database_url=url, reconcile_enabled=False, log_level=opts.log_level, **overrides)
            batches: list[tuple[float, int]] = []  # (seconds, events claimed) per process_batch call
            results = [ProcessResult() for _ in range(opts.workers)]

            def drain(index: int) -> None:
                worker = Worker(settings, engine, reconciler=None)
                workers.append(worker)
                while not worker.stopping:
                    t0 = time.perf_counter()
                    try:
                        claimed = worker.process_batch(results[index])
                    except Exception as exc:  # reported below: a drain cut short must not pass for a result
                        crashes.append(f"worker thread {index}: {type(exc).__name__}: {exc}"[:500])
                        raise
                    if not claimed:
                        break
                    batches.append((time.perf_counter() - t0, claimed))

            workers: list[Worker] = []
            crashes: list[str] = []
            threads = [threading.Thread(target=drain, args=(i,), name=f"bench-worker-{i}") for i in range(opts.workers)]
            started = time.perf_counter()
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(opts.time_limit)
                if thread.is_alive():  # time is up: finish the current event, give the rest back
                    for worker in workers:
                        worker.request_stop()
                    thread.join()
            elapsed = time.perf_counter() - started
            timed_out = elapsed > opts.time_limit

            with engine.connect() as connection:
                rows = connection.execute(
                    select(WebhookEvent.received_at, WebhookEvent.processed_at, WebhookEvent.status)
                ).all()
                sessions = connection.execute(select(func.count()).select_from(Session)).scalar_one()
                intervals = connection.execute(select(func.count()).select_from(ParticipantInterval)).scalar_one()
        finally:
            engine.dispose()
    statuses = Counter(status for _, _, status in rows)
    lags = [(processed - received).total_seconds() for received, processed, _ in rows if processed is not None]
    lag = summarize_latencies(lags)
    per_batch = summarize_latencies(seconds for seconds, _ in batches)
    events_per_batch = sum(n for _, n in batches) / len(batches) if batches else 0.0
    processed = sum(r.done + r.ignored + r.failed for r in results)
    throughput = processed / elapsed if elapsed > 0 else 0.0

    per_txn = getattr(settings, "worker_events_per_transaction", None)
    title = f"Worker drain: {len(deliveries):,} events, {opts.workers} worker thread(s), claim batch {settings.worker_batch_size}"
    if per_txn is not None:
        title += f", {per_txn} events per transaction"
    table = Table(title=title)
    for column in (
        "events/s",
        "drain s",
        "batch p50 ms",
        "batch p99 ms",
        "events/batch",
        "lag p50 s",
        "lag p99 s",
        "outcomes",
    ):
        table.add_column(column, justify="right")
    table.add_row(
        fmt_rate(throughput),
        f"{elapsed:.1f}",
        fmt_ms(per_batch.p50_ms),
        fmt_ms(per_batch.p99_ms),
        f"{events_per_batch:.0f}",
        f"{lag.p50_ms / 1000:.1f}",
        f"{lag.p99_ms / 1000:.1f}",
        ", ".join(f"{s}: {n:,}" for s, n in sorted(statuses.items())),
    )
    console.print(table)
    met = "met" if throughput >= WORKER_GOAL_EVENTS_PER_SECOND and not crashes else "NOT met"
    for crash in crashes:
        console.print(f"[bold red]drain cut short[/bold red] by an exception in {crash}")
    if timed_out:
        pending = statuses.get("pending", 0) + statuses.get("processing", 0)
        console.print(
            f"stopped after --time-limit {opts.time_limit:g} s with {pending:,} events not processed; "
            "events/s and lag are over the processed ones"
        )
    console.print(
        f"goal >= {WORKER_GOAL_EVENTS_PER_SECOND:,.0f} events/s: {met}; produced {sessions:,} sessions and "
        f"{intervals:,} participant intervals; worker JSON logs ({opts.log_level}) "
        + (f"kept in {log_path}" if opts.keep else "written to a temporary file (removed; --keep keeps it)")
    )
    if not opts.keep:
        shutil.rmtree(log_dir, ignore_errors=True)
