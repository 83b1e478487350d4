"""Retention of raw webhook bodies: the purge (``receiver purge``, and daily in the worker).

The inbox keeps each delivery's raw body byte-exact so it can be replayed
(``receiver events replay``) and audited; after ``RAW_RETENTION_DAYS`` that
is no longer needed, while the derived data (sessions, intervals,
recordings, livestreams, reports) stays. The rule:

* an event whose status is ``done`` or ``ignored`` (handled) and that was
  received more than ``RAW_RETENTION_DAYS`` days ago loses its raw body:
  ``raw_body`` becomes empty and ``purged_at`` is set (UTC);
* ``pending``, ``processing``, ``failed`` and ``dead`` events keep their body
  until they are handled (a dead event must stay replayable);
* the row stays: ``delivery_id`` and ``body_sha256`` are what ingest
  deduplicates on, so a provider retry of a purged delivery is still a
  duplicate (Dyte retries within minutes; the row outlives that by weeks),
  and the event log (``receiver events list``, ``/api/events``) keeps its
  history. A purged row keeps ~200-300 bytes instead of ~1.3 KB.

The purge walks ``ix_webhook_events_unpurged_received_at`` (a partial index
of the rows whose body is still there) in keyset order, ``batch_size``
rows per short write transaction, so it never holds a long lock and a run
can stop and resume anywhere.

On PostgreSQL the inbox is partitioned by month of receipt (migration
0014, :mod:`receiver.db.partitions`). A run first drops whole partitions:
one whose upper bound is at or before the cutoff and that holds no
unhandled event (pending, processing, failed, dead) is detached and
dropped (:func:`receiver.db.partitions.drop_partition`: milliseconds of
ACCESS EXCLUSIVE on the inbox), rows and all: its delivery ids stay
known to ingest through ``webhook_event_keys`` for the dedupe window. A
month that still holds an unhandled event, and the current months, fall
back to the row-wise body removal above. SQLite only ever does the latter,
and the rows stay there.

The outbound attendance webhook's outbox (``outbound_deliveries``) holds
people's names in each delivery's body: a run also empties the body of
every delivery the receiver accepted (``delivered``) more than
``RAW_RETENTION_DAYS`` ago. The row stays with its ``payload_sha256``, so
a later reconciliation of the same session still sends only changed
attendance; ``pending``, ``failed`` and ``dead`` deliveries keep their body
(they may still be sent).

Scheduling: :class:`RetentionSchedule` is the worker's hook. Each loop it
makes an in-memory check; at most every ``check_every_seconds`` it tries to
claim the day's run in ``maintenance_runs`` (a conditional UPDATE: only
when the last start is at least a day old), so across all workers the
purge starts at most once a day; the claiming worker then purges in slices
of ``slice_seconds`` between its event batches. Docs: docs/operations.md.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog
from sqlalchemy import func, or_, select, tuple_, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError

from receiver import metrics
from receiver.db import partitions
from receiver.db.engine import writer
from receiver.db.models import OUTBOUND_DELIVERED, MaintenanceRun, OutboundDelivery, WebhookEvent
from receiver.enums import EventStatus

__all__ = [
    "PURGEABLE_STATUSES",
    "UNHANDLED_STATUSES",
    "PURGE_JOB",
    "DEFAULT_BATCH_SIZE",
    "RUN_INTERVAL",
    "PurgeSummary",
    "retention_cutoff",
    "purge_plan",
    "Purge",
    "claim_run",
    "start_run",
    "finish_run",
    "last_finished",
    "RetentionSchedule",
]

log = structlog.get_logger("receiver.processing.retention")

#: Statuses whose raw body the purge may remove: handled events only.
PURGEABLE_STATUSES: tuple[str, ...] = (EventStatus.DONE.value, EventStatus.IGNORED.value)
#: The ``maintenance_runs.job`` of the retention purge.
PURGE_JOB = "purge"
#: Statuses that keep a whole month partition from being dropped.
UNHANDLED_STATUSES: tuple[str, ...] = tuple(s.value for s in EventStatus if s.value not in PURGEABLE_STATUSES)
#: Rows per purge transaction.
DEFAULT_BATCH_SIZE = 1000
#: The worker starts the purge at most this often (across all workers).
RUN_INTERVAL = timedelta(days=1)

_EVENTS = WebhookEvent.__table__
_OUTBOX = OutboundDelivery.__table__
_RUNS = MaintenanceRun.__table__


def retention_cutoff(now: datetime, days: int) -> datetime:
    """The receipt time before which handled events lose their raw body: ``now - days`` (UTC).

    Raises:
        ValueError: ``days`` is less than 1 (0 means "retention disabled"; the
            caller must not purge at all).
    """
    if days < 1:
        raise ValueError("retention needs at least 1 day (RAW_RETENTION_DAYS=0 disables the purge)")
    return now.astimezone(UTC) - timedelta(days=days)


@dataclass
class PurgeSummary:
    """What a purge did (or, with ``dry_run``, would do).

    ``bodies``: rows whose raw body was emptied; ``bytes``: their raw body
    sizes added up (bytes; on-disk space is reused by the database, and
    returned to the file system only by ``VACUUM``); ``partitions``: the
    month partitions dropped whole (PostgreSQL), with their ``partition_rows``
    and ``partition_bytes`` (on-disk size, returned to the file system at
    once), ``lock_seconds``, the longest a drop held ACCESS EXCLUSIVE on
    the inbox (DETACH to DROP), and ``commit_seconds``, its commit (file
    removal, after the lock is released); ``outbound_bodies``: bodies of
    delivered outbound attendance webhooks emptied; ``kept_unhandled``:
    events older than the cutoff kept because they are not handled yet
    (pending, processing, failed, dead); ``complete``: nothing purgeable
    was left; ``seconds``: wall time. ``cutoff`` is UTC.
    """

    cutoff: datetime
    bodies: int = 0
    bytes: int = 0
    kept_unhandled: int = 0
    outbound_bodies: int = 0
    partitions: list[str] = field(default_factory=list)
    partition_rows: int = 0
    partition_bytes: int = 0
    lock_seconds: float = 0.0
    commit_seconds: float = 0.0
    dry_run: bool = False
    complete: bool = False
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form (ISO 8601 cutoff), as stored in ``maintenance_runs.summary``."""
        data = asdict(self)
        data["cutoff"] = self.cutoff.isoformat()
        data["seconds"] = round(self.seconds, 3)
        data["lock_seconds"] = round(self.lock_seconds, 4)
        data["commit_seconds"] = round(self.commit_seconds, 3)
        return data


def _older_than(cutoff: datetime) -> Any:
    return (_EVENTS.c.purged_at.is_(None), _EVENTS.c.received_at < cutoff)


def _delivered_before(cutoff: datetime) -> Any:
    """Outbound deliveries accepted before ``cutoff`` that still hold their body."""
    return (_OUTBOX.c.status == OUTBOUND_DELIVERED, _OUTBOX.c.delivered_at < cutoff, _OUTBOX.c.payload != "")


def purge_plan(engine: Engine, cutoff: datetime) -> PurgeSummary:
    """Count what a purge at ``cutoff`` would remove, without changing anything (``--dry-run``).

    One read: rows and raw body bytes of handled events received before
    ``cutoff`` that still have their body, and the unhandled ones that the
    purge keeps; on PostgreSQL also the month partitions it would drop
    whole (``partitions``; their bodies are among ``bodies``). ``complete``
    is False when anything would be purged.
    """
    started = time.perf_counter()
    handled = _EVENTS.c.status.in_(PURGEABLE_STATUSES)
    statement = select(
        func.count().filter(handled),
        func.coalesce(func.sum(func.length(_EVENTS.c.raw_body)).filter(handled), 0),
        func.count().filter(~handled),
    ).where(*_older_than(cutoff))
    with engine.connect() as connection:
        bodies, size, kept = connection.execute(statement).one()
        outbound = connection.execute(
            select(func.count()).select_from(_OUTBOX).where(*_delivered_before(cutoff))
        ).scalar_one()
        droppable = [
            p.name
            for p in _droppable(connection, cutoff)
            if not partitions.holds_status(connection, p, UNHANDLED_STATUSES)
        ]
    return PurgeSummary(
        cutoff=cutoff,
        bodies=int(bodies),
        bytes=int(size),
        kept_unhandled=int(kept),
        outbound_bodies=int(outbound),
        partitions=droppable,
        dry_run=True,
        complete=int(bodies) == 0 and not droppable and not outbound,
        seconds=time.perf_counter() - started,
    )


def _droppable(connection: Connection, cutoff: datetime) -> list[partitions.InboxPartition]:
    """Month partitions wholly before ``cutoff`` (none on SQLite or an unpartitioned inbox)."""
    return [
        p
        for p in partitions.list_partitions(connection)
        if not p.is_default and p.upper is not None and p.upper <= cutoff
    ]


@dataclass
class Purge:
    """One purge run at ``cutoff``, done ``batch_size`` rows per transaction.

    Call :meth:`step` (one batch) or :meth:`run` (batches until done or a
    time budget is spent); ``summary`` accumulates the counts. Safe to run
    beside workers and other purges: each batch locks only its own rows
    (``FOR UPDATE SKIP LOCKED`` on PostgreSQL; SQLite serialises writers)
    and re-checks the status in its UPDATE, so an event requeued meanwhile
    keeps its body.
    """

    engine: Engine
    cutoff: datetime
    batch_size: int = DEFAULT_BATCH_SIZE
    summary: PurgeSummary = field(init=False)
    _after: tuple[datetime, int] | None = field(default=None, init=False)
    _partitions_checked: bool = field(default=False, init=False)

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        self.summary = PurgeSummary(cutoff=self.cutoff)

    @property
    def complete(self) -> bool:
        """True once a batch found fewer rows than ``batch_size``: nothing purgeable is left."""
        return self.summary.complete

    def step(self, now: datetime | None = None) -> int:
        """Purge one batch in one write transaction; returns how many bodies it emptied.

        Raises on database errors (nothing of the batch is then changed).
        """
        if self.summary.complete:
            return 0
        if not self._partitions_checked:
            self.drop_partitions()
            self.empty_outbound_bodies()
        started = time.perf_counter()
        now = now or datetime.now(UTC)
        candidates = (
            select(_EVENTS.c.id, _EVENTS.c.received_at, func.length(_EVENTS.c.raw_body))
            .where(*_older_than(self.cutoff), _EVENTS.c.status.in_(PURGEABLE_STATUSES))
            .order_by(_EVENTS.c.received_at, _EVENTS.c.id)
            .limit(self.batch_size)
        )
        if self._after is not None:
            candidates = candidates.where(tuple_(_EVENTS.c.received_at, _EVENTS.c.id) > self._after)
        with writer(self.engine).begin() as connection:
            if connection.dialect.name == "postgresql":
                candidates = candidates.with_for_update(skip_locked=True)
            rows = connection.execute(candidates).all()
            sizes = {row[0]: int(row[2] or 0) for row in rows}
            purged: list[int] = []
            if rows:
                purged = list(
                    connection.execute(
                        update(_EVENTS)
                        .where(
                            _EVENTS.c.id.in_(list(sizes)),
                            _EVENTS.c.purged_at.is_(None),
                            _EVENTS.c.status.in_(PURGEABLE_STATUSES),
                        )
                        .values(raw_body=b"", purged_at=now)
                        .returning(_EVENTS.c.id)
                    ).scalars()
                )
        if rows:
            self._after = (rows[-1][1], rows[-1][0])
        freed = sum(sizes[event_id] for event_id in purged)
        self.summary.bodies += len(purged)
        self.summary.bytes += freed
        self.summary.seconds += time.perf_counter() - started
        if len(rows) < self.batch_size:
            self.summary.complete = True
        metrics.RETENTION_PURGED_BODIES.inc(len(purged))
        metrics.RETENTION_PURGED_BYTES.inc(freed)
        return len(purged)

    def drop_partitions(self) -> list[str]:
        """Drop the month partitions wholly before the cutoff that hold no unhandled event (PostgreSQL).

        Called once per run, by the first :meth:`step`; returns the names
        dropped (empty on SQLite or an unpartitioned inbox). A partition
        whose lock is not granted in time is left for the next run (logged).
        """
        self._partitions_checked = True
        started = time.perf_counter()
        with self.engine.connect() as connection:
            candidates = _droppable(connection, self.cutoff)
        dropped: list[str] = []
        for partition in candidates:
            try:
                result = partitions.drop_partition(self.engine, partition, UNHANDLED_STATUSES)
            except DBAPIError as exc:
                log.warning("retention_partition_kept", partition=partition.name, error=type(exc.orig).__name__)
                continue
            if result is None:
                log.info("retention_partition_kept", partition=partition.name, reason="unhandled events")
                continue
            dropped.append(result.name)
            self.summary.partitions.append(result.name)
            self.summary.partition_rows += result.rows
            self.summary.partition_bytes += result.bytes
            self.summary.lock_seconds = max(self.summary.lock_seconds, result.lock_seconds)
            self.summary.commit_seconds = max(self.summary.commit_seconds, result.commit_seconds)
            metrics.RETENTION_PURGED_BYTES.inc(result.bytes)
            log.info("retention_partition_dropped", **asdict(result))
        self.summary.seconds += time.perf_counter() - started
        return dropped

    def empty_outbound_bodies(self) -> int:
        """Empty the bodies of outbound deliveries delivered before the cutoff (one statement); returns how many.

        Called once per run, by the first :meth:`step`. Raises on database errors.
        """
        with writer(self.engine).begin() as connection:
            emptied = connection.execute(
                update(_OUTBOX).where(*_delivered_before(self.cutoff)).values(payload="")
            ).rowcount
        self.summary.outbound_bodies += emptied
        if emptied:
            log.info("retention_outbound_bodies_emptied", deliveries=emptied, cutoff=self.cutoff.isoformat())
        return emptied

    def run(
        self,
        *,
        max_seconds: float | None = None,
        on_batch: Callable[[PurgeSummary], None] | None = None,
        should_stop: Callable[[], bool] | None = None,
    ) -> PurgeSummary:
        """Run batches until complete, ``max_seconds`` (wall time) is spent or ``should_stop()``; returns the summary.

        ``on_batch`` is called after every batch (progress display).
        """
        deadline = None if max_seconds is None else time.monotonic() + max_seconds
        while not self.summary.complete:
            self.step()
            if on_batch is not None:
                on_batch(self.summary)
            if should_stop is not None and should_stop():
                break
            if deadline is not None and time.monotonic() >= deadline:
                break
        return self.summary

    def count_kept(self) -> int:
        """Unhandled events older than the cutoff that still have their body (kept until handled)."""
        with self.engine.connect() as connection:
            kept = connection.execute(
                select(func.count())
                .select_from(_EVENTS)
                .where(*_older_than(self.cutoff), _EVENTS.c.status.not_in(PURGEABLE_STATUSES))
            ).scalar_one()
        self.summary.kept_unhandled = int(kept)
        return self.summary.kept_unhandled


# --------------------------------------------------------------------------
# The daily run: maintenance_runs
# --------------------------------------------------------------------------


def _ensure_job_row(connection: Connection, job: str) -> None:
    insert = postgresql.insert if connection.dialect.name == "postgresql" else sqlite.insert
    connection.execute(insert(_RUNS).values(job=job).on_conflict_do_nothing(index_elements=["job"]))


def claim_run(
    engine: Engine, run_by: str, *, now: datetime | None = None, job: str = PURGE_JOB, every: timedelta = RUN_INTERVAL
) -> bool:
    """Claim today's run of ``job`` for ``run_by``; True when this caller got it.

    One conditional UPDATE: the run is claimed only when ``job`` never ran
    or last started at least ``every`` ago, and ``started_at`` moves to
    ``now`` in the same statement, so of several workers checking at once
    exactly one wins (row lock on PostgreSQL, the write lock on SQLite).
    """
    now = now or datetime.now(UTC)
    with writer(engine).begin() as connection:
        _ensure_job_row(connection, job)
        claimed = connection.execute(
            update(_RUNS)
            .where(_RUNS.c.job == job, or_(_RUNS.c.started_at.is_(None), _RUNS.c.started_at <= now - every))
            .values(started_at=now, finished_at=None, run_by=run_by)
            .returning(_RUNS.c.job)
        ).first()
    return claimed is not None


def start_run(engine: Engine, run_by: str, *, now: datetime | None = None, job: str = PURGE_JOB) -> None:
    """Record that ``run_by`` started ``job`` now, unconditionally (a manual ``receiver purge``).

    The workers then skip their daily run for a day.
    """
    now = now or datetime.now(UTC)
    with writer(engine).begin() as connection:
        _ensure_job_row(connection, job)
        connection.execute(
            update(_RUNS).where(_RUNS.c.job == job).values(started_at=now, finished_at=None, run_by=run_by)
        )


def finish_run(engine: Engine, summary: PurgeSummary, *, now: datetime | None = None, job: str = PURGE_JOB) -> None:
    """Record the end of ``job`` with ``summary`` (JSON in ``maintenance_runs.summary``)."""
    now = now or datetime.now(UTC)
    with writer(engine).begin() as connection:
        connection.execute(
            update(_RUNS)
            .where(_RUNS.c.job == job)
            .values(finished_at=now, summary=json.dumps(summary.as_dict(), sort_keys=True))
        )
    metrics.RETENTION_LAST_SUCCESS.set(now.timestamp())


def last_finished(engine: Engine, *, job: str = PURGE_JOB) -> datetime | None:
    """When ``job`` last finished (UTC), by any worker or ``receiver purge``; None if never."""
    with engine.connect() as connection:
        return connection.execute(select(_RUNS.c.finished_at).where(_RUNS.c.job == job)).scalar_one_or_none()


class RetentionSchedule:
    """The worker's retention hook: call :meth:`tick` once per loop.

    Cheap when idle: an in-memory clock check; at most every
    ``check_every_seconds`` one UPDATE to try to claim the day's run
    (:func:`claim_run`); when another worker has it, one SELECT sets the
    ``receiver_retention_last_success_timestamp_seconds`` gauge from
    ``maintenance_runs``, so every worker exports the cluster-wide time of
    the last finished purge. After a claim, each tick purges for at most
    ``slice_seconds`` so event processing goes on between slices; the run
    is recorded in ``maintenance_runs`` when complete. A failing purge is
    logged and retried at the next day's claim (the
    ``receiver_retention_last_success_timestamp_seconds`` gauge shows it).
    """

    def __init__(
        self,
        engine: Engine,
        days: int,
        run_by: str,
        *,
        batch_size: int = DEFAULT_BATCH_SIZE,
        check_every_seconds: float = 600.0,
        slice_seconds: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if days < 1:
            raise ValueError("RetentionSchedule needs RAW_RETENTION_DAYS >= 1")
        self.engine = engine
        self.days = days
        self.run_by = run_by
        self.batch_size = batch_size
        self.check_every_seconds = check_every_seconds
        self.slice_seconds = slice_seconds
        self._clock = clock
        self._next_check = clock()  # the first tick checks at once
        self._run: Purge | None = None

    @property
    def running(self) -> bool:
        """True while this worker holds an unfinished run."""
        return self._run is not None

    def tick(self, now: datetime | None = None) -> int:
        """Do the retention work that is due; returns the bodies purged in this tick (0 when idle)."""
        try:
            if self._run is None:
                if self._clock() < self._next_check:
                    return 0
                self._next_check = self._clock() + self.check_every_seconds
                now = now or datetime.now(UTC)
                if not claim_run(self.engine, self.run_by, now=now):
                    finished = last_finished(self.engine)
                    if finished is not None:
                        metrics.RETENTION_LAST_SUCCESS.set(finished.timestamp())
                    return 0
                self._run = Purge(self.engine, retention_cutoff(now, self.days), self.batch_size)
                log.info("retention_purge_started", cutoff=self._run.cutoff.isoformat(), days=self.days)
            before = self._run.summary.bodies
            summary = self._run.run(max_seconds=self.slice_seconds)
            purged = summary.bodies - before
            if summary.complete:
                self._run.count_kept()
                finish_run(self.engine, summary)
                log.info("retention_purge_finished", **summary.as_dict())
                self._run = None
            return purged
        except Exception as exc:  # never take the worker down; tomorrow's claim retries
            log.error("retention_purge_failed", error=f"{type(exc).__name__}: {exc}"[:300])
            self._run = None
            return 0
