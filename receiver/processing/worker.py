"""The worker: claims stored events, applies them, then runs due reconciliations.

One cycle: claim a batch (lease ``WORKER_LEASE_SECONDS``), apply its events
``WORKER_EVENTS_PER_TRANSACTION`` at a time in transactions that also mark
them ``done`` (effects and state commit together; a failed chunk is redone
one event per transaction), record failures with a backoff from
:class:`RetryPolicy`, then let the reconciler (REST API) do what is due, then send due
outbound attendance webhooks (:mod:`receiver.processing.outbound_sender`).
``receiver worker --once`` repeats cycles until nothing is due and exits.
Cycles follow each other without a pause while a claim or the reconciler
finds work; an idle worker waits on its :class:`~receiver.processing.wakeup.Wakeup`:
on PostgreSQL a ``NOTIFY receiver_events`` from the inbox writer wakes it at
once (``WORKER_POLL_SECONDS`` is then only the fallback poll), on SQLite it
polls every ``WORKER_SQLITE_POLL_SECONDS`` (see :mod:`receiver.processing.wakeup`).
Every ``IDLE_SWEEP_INTERVAL_SECONDS`` a cycle also infers the end of live
sessions idle for ``SESSION_IDLE_END_SECONDS``
(:func:`receiver.processing.sweeps.infer_idle_session_ends`; no REST API
needed, so it runs without a reconciler too).

Shutdown: :meth:`Worker.request_stop` (SIGTERM) lets the current event
finish and gives the rest of the claimed batch back to the queue.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import threading
import time
import traceback
import uuid
from collections import Counter
from datetime import UTC, datetime
from typing import Any, Protocol

import structlog
from sqlalchemy import Row, bindparam, select, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session as OrmSession

from receiver import metrics
from receiver.db.engine import database_error_reason, writer
from receiver.db.models import (
    EVENT_DONE,
    EVENT_IGNORED,
    EVENT_PROCESSING,
    PARSE_INVALID,
    PARSE_UNKNOWN_EVENT,
    WebhookEvent,
)
from receiver.processing.apply import apply_event
from receiver.processing.inbox_upkeep import InboxUpkeep
from receiver.processing.outbound_sender import OutboundSender
from receiver.processing.queue import (
    TRACEBACK_FRAMES,
    claim_events,
    error_line,
    record_failure,
    release_events,
    skip_commit_flush,
)
from receiver.processing.retention import RetentionSchedule
from receiver.processing.sweeps import infer_idle_session_ends
from receiver.processing.wakeup import Wakeup, make_wakeup
from receiver.processing.writes import RowCache
from receiver.providers.dyte.events import EventParseError, UnknownEventError, parse_event
from receiver.retry import RetryPolicy
from receiver.settings import Settings

__all__ = ["Worker", "BackgroundWorker", "Reconciler", "ProcessResult"]

log = structlog.get_logger("receiver.processing.worker")

_EVENTS = WebhookEvent.__table__
# What applying a claimed event reads of its row (core rows: no ORM objects for the queue).
_EVENT_COLUMNS = tuple(
    _EVENTS.c[name]
    for name in (
        "id",
        "raw_body",
        "received_at",
        "delivery_id",
        "event_name",
        "meeting_id",
        "session_id",
        "occurred_at",
        "parse_status",
        "parse_error",
    )
)
# The fields the receive path indexes without validating (receiver.providers.dyte.indexed); the
# worker corrects them from the validated model when they differ.
_INDEXED = ("meeting_id", "session_id", "occurred_at")


#: Seconds between two idle-session sweeps of one worker.
IDLE_SWEEP_INTERVAL_SECONDS = 30.0


class Reconciler(Protocol):
    """What the worker calls after each batch (see :mod:`receiver.processing.reconcile`)."""

    async def run_due(self, *, now: datetime | None = None) -> int:  # pragma: no cover - protocol
        """Do the reconciliation work that is due; returns how many items were handled."""
        ...

    async def aclose(self) -> None:  # pragma: no cover - protocol
        ...


class ProcessResult:
    """Counts of one drain: processed (done), failed, ignored, reconciled; outbound webhook attempts."""

    def __init__(self) -> None:
        self.done = 0
        self.failed = 0
        self.ignored = 0
        self.reconciled = 0
        self.outbound = 0

    def __repr__(self) -> str:
        return (
            f"ProcessResult(done={self.done}, failed={self.failed}, ignored={self.ignored}, "
            f"reconciled={self.reconciled}, outbound={self.outbound})"
        )


def default_worker_id() -> str:
    """``host:pid:random`` - unique per worker process."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


class Worker:
    """Drains the event queue of one database.

    Args:
        settings: lease, batch size, attempts, reconcile delay.
        engine: the database.
        reconciler: optional REST reconciliation run after each batch.
        retry_policy: backoff between processing attempts (defaults: 1 s
            doubling to 5 min, ``WORKER_MAX_ATTEMPTS`` attempts).
        outbound: optional sender of the outbound attendance webhook
            (OUTBOUND_WEBHOOK_URL), run after the reconciler in each cycle.
        wakeup: what an idle :meth:`run` waits on (default:
            :func:`receiver.processing.wakeup.make_wakeup` for the engine;
            listening starts with :meth:`run` and stops when it returns).
    """

    def __init__(
        self,
        settings: Settings,
        engine: Engine,
        *,
        reconciler: Reconciler | None = None,
        worker_id: str | None = None,
        retry_policy: RetryPolicy | None = None,
        outbound: OutboundSender | None = None,
        wakeup: Wakeup | None = None,
    ) -> None:
        self.settings = settings
        self.engine = engine
        self.reconciler = reconciler
        self.outbound = outbound
        self.worker_id = worker_id or default_worker_id()
        self.retry_policy = retry_policy or RetryPolicy(
            base_seconds=1.0, max_seconds=300.0, max_attempts=settings.worker_max_attempts
        )
        self._stop = threading.Event()
        self.wakeup = wakeup or make_wakeup(engine, settings)
        #: Events applied per transaction (one commit each); 1 = one event at a time.
        self.events_per_transaction = settings.worker_events_per_transaction
        #: The daily raw-body purge (RAW_RETENTION_DAYS; none when 0), run between batches by run().
        self.retention = (
            RetentionSchedule(engine, settings.raw_retention_days, self.worker_id)
            if settings.raw_retention_days > 0
            else None
        )
        #: Creates the coming month partitions of the inbox (PostgreSQL) and prunes old idempotency keys.
        self.inbox_upkeep = InboxUpkeep(engine)
        self.idle_end_seconds = settings.session_idle_end_seconds
        self.idle_sweep_interval_seconds = IDLE_SWEEP_INTERVAL_SECONDS
        self._last_idle_sweep: float | None = None

    def request_stop(self) -> None:
        """Finish the current event, release the rest of the batch, then stop (an idle worker stops at once)."""
        self._stop.set()
        self.wakeup.set()

    @property
    def stopping(self) -> bool:
        """True once a stop was requested."""
        return self._stop.is_set()

    def process_event(self, event_id: int) -> str:
        """Apply one claimed event; returns ``done``, ``ignored``, ``failed``, ``dead`` or ``lost``."""
        started = time.perf_counter()
        name = None
        try:
            with OrmSession(writer(self.engine)) as db, db.begin():
                lines, lags = self._apply_claimed(db, [event_id])
                if not lines:
                    return "lost"  # another worker took it over after our lease expired
                line = lines[0]
                name = line["event_name"]
        except Exception as exc:  # any failure is recorded on the event (one line) and retried
            error = error_line(exc)
            attempts_so_far = self._attempts(event_id)
            status = record_failure(
                self.engine,
                event_id,
                self.worker_id,
                error,
                max_attempts=self.retry_policy.max_attempts,
                retry_delay_seconds=self.retry_policy.delay_seconds(max(attempts_so_far, 1)),
            )
            metrics.PROCESSED.labels(event=name or "unknown", result=status).inc()
            # The traceback goes to the log only, never to the event log.
            log.warning(
                "event_failed",
                event_id=event_id,
                event_name=name,
                status=status,
                error=error,
                traceback=traceback.format_exc(limit=TRACEBACK_FRAMES),
            )
            return status
        elapsed = time.perf_counter() - started
        for lag in lags:
            metrics.EVENT_LAG.observe(lag)
        outcome = str(line["outcome"])
        metrics.PROCESSED.labels(event=name or "unknown", result=outcome).inc()
        metrics.PROCESSING_LATENCY.labels(event=name or "unknown").observe(elapsed)
        log.info("event_processed", ms=round(elapsed * 1000, 2), **line)
        return outcome

    def sweep_idle_sessions(self, *, now: datetime | None = None, force: bool = False) -> int:
        """Infer the end of idle sessions (at most once per ``idle_sweep_interval_seconds`` unless ``force``); returns how many.

        Raises ``OperationalError`` when the database is unreachable (the run
        loop waits and retries); other errors are logged and the sweep skipped.
        """
        if self.idle_end_seconds <= 0:
            return 0
        clock = time.monotonic()
        last = self._last_idle_sweep
        if not force and last is not None and clock - last < self.idle_sweep_interval_seconds:
            return 0
        self._last_idle_sweep = clock
        try:
            ended = infer_idle_session_ends(
                self.engine, idle_seconds=self.idle_end_seconds, now=now or datetime.now(UTC)
            )
        except OperationalError:
            raise
        except Exception as exc:
            log.warning(
                "idle_sweep_failed", error=error_line(exc), traceback=traceback.format_exc(limit=TRACEBACK_FRAMES)
            )
            return 0
        return len(ended)

    def _attempts(self, event_id: int) -> int:
        try:
            with self.engine.connect() as connection:
                return int(
                    connection.execute(
                        select(WebhookEvent.attempts).where(WebhookEvent.id == event_id)
                    ).scalar_one_or_none()
                    or 1
                )
        except Exception:
            return 1

    def process_batch(self, result: ProcessResult | None = None) -> int:
        """Claim one batch and process it, ``events_per_transaction`` events per transaction.

        A chunk whose transaction fails is redone one event per transaction,
        so a single bad event is retried alone and cannot hold the others
        back. A stop request is honoured between chunks: the rest of the
        claim is released. Returns how many events were claimed.
        """
        result = result or ProcessResult()
        ids = claim_events(
            self.engine,
            self.worker_id,
            limit=self.settings.worker_batch_size,
            lease_seconds=self.settings.worker_lease_seconds,
        )
        step = max(1, self.events_per_transaction)
        for start in range(0, len(ids), step):
            if self._stop.is_set():
                released = release_events(self.engine, ids[start:], self.worker_id)
                log.info("worker_released_events", count=released)
                break
            chunk = ids[start : start + step]
            outcomes = self._process_chunk(chunk) if len(chunk) > 1 else None
            if outcomes is None:
                outcomes = [self.process_event(event_id) for event_id in chunk]
            for outcome in outcomes:
                if outcome == "done":
                    result.done += 1
                elif outcome == "ignored":
                    result.ignored += 1
                elif outcome in ("failed", "dead"):
                    result.failed += 1
        return len(ids)

    def _process_chunk(self, ids: list[int]) -> list[str] | None:
        """Apply claimed events in ONE transaction sharing a :class:`RowCache`; None if it failed (caller redoes them singly)."""
        started = time.perf_counter()
        try:
            with OrmSession(writer(self.engine)) as db, db.begin():
                lines, lags = self._apply_claimed(db, ids)
        except Exception as exc:  # redone one by one: the failing event gets its own error and backoff
            log.warning("batch_transaction_failed", events=len(ids), error=error_line(exc))
            return None
        elapsed = time.perf_counter() - started
        for lag in lags:
            metrics.EVENT_LAG.observe(lag)
        per_event = elapsed / max(len(lines), 1)
        processed: dict[object, str] = {}
        counts: Counter[tuple[str, str]] = Counter()
        for line in lines:
            name = str(line["event_name"] or "unknown")
            outcome = str(line["outcome"])
            counts[(name, outcome)] += 1
            log.info("event_processed", **line)
            processed[line["event_id"]] = outcome
        # Metric children are looked up once per (event, outcome), not once per event.
        for (name, outcome), count in counts.items():
            metrics.PROCESSED.labels(event=name, result=outcome).inc(count)
            latency = metrics.PROCESSING_LATENCY.labels(event=name)
            for _ in range(count):
                latency.observe(per_event)
        return [processed.get(event_id, "lost") for event_id in ids]

    def _apply_claimed(self, db: OrmSession, ids: list[int]) -> tuple[list[dict[str, object]], list[float]]:
        """Lock the events of ``ids`` this worker still holds, apply them in ``db``'s transaction and mark them.

        Returns one log line (dict: outcome, event_id, delivery_id,
        event_name, meeting_id, session_id) per applied event, in id order,
        and the lag (seconds since received) of each ``done`` one. Events no
        longer held (lease lost) are skipped. The effects share one
        :class:`RowCache`; intervals are written by one statement and the
        events marked ``done`` by one UPDATE. On PostgreSQL the commit does
        not wait for the disk (:func:`~receiver.processing.queue.skip_commit_flush`:
        a chunk lost in a crash is claimed and applied again). Raises on
        database errors.
        """
        skip_commit_flush(db.connection())
        rows = db.execute(
            select(*_EVENT_COLUMNS)
            .where(
                _EVENTS.c.id.in_(ids),
                _EVENTS.c.status == EVENT_PROCESSING,
                _EVENTS.c.locked_by == self.worker_id,
            )
            .order_by(_EVENTS.c.id)
            .with_for_update()
        ).all()
        cache = RowCache()
        if len(rows) > 1:  # load the meetings, sessions, intervals and artifacts of the chunk at once
            cache.prefetch(
                db,
                {row.meeting_id for row in rows if row.meeting_id},
                {row.session_id for row in rows if row.session_id},
            )
        now = datetime.now(UTC)
        lines: list[dict[str, object]] = []
        lags: list[float] = []
        done: list[int] = []
        ignored: list[dict[str, object]] = []
        corrected: list[dict[str, object]] = []
        # No autoflush: the ORM changes of the chunk (meetings, sessions, ...) go out in one
        # flush at commit; RowCache and the identity map make reads see them.
        with db.no_autoflush:
            for row in rows:
                error, flag = self._apply_stored(db, row, now, cache)
                if error is None:
                    if flag:
                        corrected.append({"event_id": row.id, **flag})
                    outcome = "done"
                    done.append(row.id)
                    lags.append(max((now - row.received_at).total_seconds(), 0.0))
                else:
                    outcome = "ignored"
                    flag = flag or {"parse_status": row.parse_status, "parse_error": row.parse_error}
                    ignored.append({"event_id": row.id, "error": error, **flag})
                lines.append(
                    dict(
                        outcome=outcome,
                        event_id=row.id,
                        delivery_id=row.delivery_id,
                        event_name=row.event_name,
                        meeting_id=row.meeting_id,
                        session_id=row.session_id,
                    )
                )
            cache.flush(db)
        finished = {"processed_at": now, "locked_by": None, "locked_until": None}
        if done:
            db.connection().execute(
                update(_EVENTS)
                .where(_EVENTS.c.id.in_(done))
                .values(status=EVENT_DONE, last_error=None, next_attempt_at=None, **finished)
            )
        if ignored:
            db.connection().execute(
                update(_EVENTS)
                .where(_EVENTS.c.id == bindparam("event_id"))
                .values(
                    status=EVENT_IGNORED,
                    last_error=bindparam("error"),
                    parse_status=bindparam("parse_status"),
                    parse_error=bindparam("parse_error"),
                    **finished,
                ),
                ignored,
            )
        if corrected:
            db.connection().execute(
                update(_EVENTS)
                .where(_EVENTS.c.id == bindparam("event_id"))
                .values({name: bindparam(name) for name in _INDEXED}),
                corrected,
            )
        if cache.suppressed:  # about an erased person's past: the raw body goes too (receiver.processing.erasure)
            db.connection().execute(
                update(_EVENTS).where(_EVENTS.c.id.in_(cache.suppressed)).values(raw_body=b"", erased_at=now)
            )
        return lines, lags

    def _apply_stored(
        self, db: OrmSession, row: Row[Any], now: datetime, cache: RowCache
    ) -> tuple[str | None, dict[str, object] | None]:
        """Validate and apply one stored event inside ``db``'s transaction.

        Returns ``(None, corrections)`` when applied, ``corrections`` being the indexed columns
        (:data:`_INDEXED`) whose stored value differs from the model's (None when none does);
        or ``(why ignored, flag)`` where ``flag`` sets ``parse_status``/``parse_error`` when the
        body fails validation here (the receive path stores bodies without validating them:
        issue #23, item 1). None of it raises for a bad body.
        """
        raw = row.raw_body if isinstance(row.raw_body, bytes) else bytes(row.raw_body)
        if not raw:
            return "raw body removed (retention purge or erasure): nothing to apply", None
        try:
            event = parse_event(json.loads(raw), raw_body=raw)
        except (EventParseError, ValueError, RecursionError) as exc:
            status = PARSE_UNKNOWN_EVENT if isinstance(exc, UnknownEventError) else PARSE_INVALID
            reason = exc.reason if isinstance(exc, EventParseError) else f"malformed JSON: {exc}"
            return f"unparseable: {exc}"[:2000], {"parse_status": status, "parse_error": reason[:2000]}
        apply_event(
            db,
            event,
            event_id=row.id,
            received_at=row.received_at,
            reconcile_delay_seconds=self.settings.reconcile_delay_seconds,
            now=now,
            cache=cache,
        )
        model = {name: getattr(event, name) for name in _INDEXED}
        if all(model[name] == getattr(row, name) for name in _INDEXED):
            return None, None
        return None, model

    async def run(self, *, once: bool = False) -> ProcessResult:
        """Process until stopped (or, with ``once``, until nothing is due). Returns the counts.

        A cycle follows the previous one at once when it claimed events or
        the reconciler handled something; otherwise the worker waits on
        :attr:`wakeup` (a notification, or the poll interval). ``once``
        does not listen: it stops at the first cycle that finds nothing.
        """
        result = ProcessResult()
        log.info("worker_started", worker_id=self.worker_id, once=once, wakeup="poll" if once else self.wakeup.mode)
        if not once:
            self.wakeup.start()
        try:
            await self._loop(result, once=once)
        finally:
            self.wakeup.close()
        if self.reconciler is not None:
            await self.reconciler.aclose()
        if self.outbound is not None:
            await self.outbound.aclose()
        log.info(
            "worker_stopped",
            worker_id=self.worker_id,
            done=result.done,
            failed=result.failed,
            ignored=result.ignored,
            reconciled=result.reconciled,
        )
        return result

    async def _loop(self, result: ProcessResult, *, once: bool) -> None:
        db_down_since: float | None = None
        while not self._stop.is_set():
            try:
                claimed = self.process_batch(result)
                self.sweep_idle_sessions()
                handled = 0
                if self.reconciler is not None and not self._stop.is_set():
                    handled = await self.reconciler.run_due()
                    result.reconciled += handled
                if self.outbound is not None and not self._stop.is_set():
                    sent = await self.outbound.run_due()
                    result.outbound += sent
                    handled += sent
                if not once and not self._stop.is_set():
                    self.inbox_upkeep.tick()
                if self.retention is not None and not once and not self._stop.is_set():
                    handled += self.retention.tick()  # `--once` drains events only: cron runs `receiver purge`
                if db_down_since is not None:
                    log.info("database_reachable_again", down_seconds=round(time.monotonic() - db_down_since, 1))
                    db_down_since = None
            except OperationalError as exc:  # database unreachable: wait and retry, never crash
                if db_down_since is None:
                    db_down_since = time.monotonic()
                    log.error("database_unreachable", error=database_error_reason(exc), action="retrying")
                await self._sleep(min(self.settings.worker_poll_seconds * 4, 5.0))
                continue
            if claimed or handled:
                continue  # drain without a pause while work remains
            if once:
                break
            await self._sleep(None)

    async def _sleep(self, seconds: float | None) -> None:
        """Wait for a wake-up, a stop request or ``seconds`` (None: the wake-up's poll interval).

        The wait blocks the worker's event loop, as a cycle's database work
        does: nothing else runs on that loop between cycles, and waking the
        loop's own thread directly saves a thread hand-off (which costs
        milliseconds on a busy machine) on the path from a delivery's commit
        to its claim.
        """
        if not self._stop.is_set():
            self.wakeup.wait(seconds)


class BackgroundWorker:
    """Runs a :class:`Worker` on its own thread and event loop (``receiver serve`` on SQLite)."""

    def __init__(self, worker: Worker) -> None:
        self.worker = worker
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Start the worker thread."""
        self._thread = threading.Thread(
            target=lambda: asyncio.run(self.worker.run()), name="in-process-worker", daemon=True
        )
        self._thread.start()

    def stop(self, timeout: float = 15.0) -> None:
        """Ask the worker to stop and wait for it (its claimed events are released)."""
        self.worker.request_stop()
        if self._thread is not None:
            self._thread.join(timeout)
