"""The event queue: claiming stored events, recording outcomes, requeueing.

The queue *is* the ``webhook_events`` table; ``status`` is the state:

    pending --claim--> processing --ok--> done
                           |  \\--error--> failed --(next_attempt_at)--> processing ...
                           |                  \\--(attempts >= max)--> dead
                           \\--lease expired (worker died)--> claimable again

Claims are atomic: one ``UPDATE ... WHERE id IN (SELECT ... LIMIT n)``; on
PostgreSQL the subquery uses ``FOR UPDATE SKIP LOCKED`` so several workers
never take the same event; on SQLite the statement runs under the database
write lock (``BEGIN IMMEDIATE``), which gives the same guarantee. A claim
carries a lease (``locked_until``); an event whose worker died is claimed
again once the lease has passed. Processing is idempotent, so doing an
event twice changes nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import and_, func, or_, select, text, update
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.sql.elements import ColumnElement

from receiver import metrics
from receiver.db.engine import writer
from receiver.db.models import (
    EVENT_DEAD,
    EVENT_FAILED,
    EVENT_IGNORED,
    EVENT_PENDING,
    EVENT_PROCESSING,
    EVENT_STATUSES,
    WebhookEvent,
)
from receiver.processing.wakeup import notify_workers

__all__ = [
    "claim",
    "skip_commit_flush",
    "claim_events",
    "record_failure",
    "release_events",
    "requeue_events",
    "queue_stats",
    "refresh_queue_metrics",
    "QueueStats",
    "error_line",
    "MAX_ERROR_CHARS",
    "TRACEBACK_FRAMES",
]

#: Frames of the traceback logged (not stored) with a processing or reconciliation error.
TRACEBACK_FRAMES = 8
#: Longest error text stored on an event or task (one line; the traceback goes to the logs only).
MAX_ERROR_CHARS = 500


def error_line(exc: BaseException) -> str:
    """The one line stored in ``last_error``: ``"<ExceptionType>: <first line of the message>"``.

    Database errors carry the SQL and a documentation link on later lines;
    tracebacks carry file paths: neither belongs in the event log (the
    worker logs the traceback). At most :data:`MAX_ERROR_CHARS` characters.
    """
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    text = f"{type(exc).__name__}: {lines[0]}" if lines else type(exc).__name__
    return text[:MAX_ERROR_CHARS]


def _now() -> datetime:
    return datetime.now(UTC)


def skip_commit_flush(connection: Connection) -> None:
    """On PostgreSQL, let the current transaction's commit return before its WAL reaches the disk (no-op on SQLite).

    ``SET LOCAL synchronous_commit = off``: saves a disk flush (~2.5 ms on
    the bench VM) per claim and per applied chunk, for the worker's own
    transactions only. Safe because nothing they write is lost for good:
    the stored delivery (committed durably by the inbox writer) is the
    source of truth, and a server crash can only undo the last few hundred
    milliseconds of worker commits, all at once and in commit order (a
    claim without its chunk, or both): those events are claimed again when
    their lease has passed and applied again, which processing tolerates
    (it is idempotent). SQLite's WAL with ``synchronous=NORMAL`` already
    commits without a flush.
    """
    if connection.dialect.name == "postgresql":
        connection.execute(text("SET LOCAL synchronous_commit = off"))


def claim(
    engine: Engine,
    model: Any,
    due: ColumnElement[bool],
    order_by: Sequence[Any],
    values: dict[str, Any],
    *,
    limit: int,
) -> list[int]:
    """Atomically claim up to ``limit`` rows of ``model`` matching ``due``; returns their ids, ascending.

    The one claim/lease statement of the service, used for stored events
    (:func:`claim_events`) and reconciliation tasks
    (:func:`receiver.processing.reconcile.claim_tasks`): one
    ``UPDATE ... SET values WHERE id IN (SELECT id ... ORDER BY order_by
    LIMIT n)``, the subquery ``FOR UPDATE SKIP LOCKED`` on PostgreSQL so
    concurrent workers never take the same row; on SQLite the statement
    runs under the database write lock. ``values`` sets the lease
    (``locked_by``, ``locked_until``) and counts the attempt.
    """
    candidates = select(model.id).where(due).order_by(*order_by).limit(limit)
    if engine.dialect.name == "postgresql":
        candidates = candidates.with_for_update(skip_locked=True)
    statement = (
        update(model)
        .where(model.id.in_(candidates.scalar_subquery()))
        .values(**values)
        .returning(model.id)
        .execution_options(synchronize_session=False)
    )
    with engine.begin() as connection:
        skip_commit_flush(connection)  # a lost claim leaves the rows claimable again
        return sorted(connection.execute(statement).scalars())


def claim_events(
    engine: Engine, worker_id: str, *, limit: int, lease_seconds: float, now: datetime | None = None
) -> list[int]:
    """Claim up to ``limit`` due events for ``worker_id``; returns their ids in id order.

    Due: pending; failed with ``next_attempt_at`` passed; processing with
    an expired lease. Each claim raises ``attempts`` by one and sets the
    status to processing with a lease of ``lease_seconds``.
    """
    now = now or _now()
    due = or_(
        and_(
            WebhookEvent.status.in_([EVENT_PENDING, EVENT_FAILED]),
            or_(WebhookEvent.next_attempt_at.is_(None), WebhookEvent.next_attempt_at <= now),
        ),
        and_(WebhookEvent.status == EVENT_PROCESSING, WebhookEvent.locked_until < now),
    )
    values = {
        "status": EVENT_PROCESSING,
        "locked_by": worker_id,
        "locked_until": now + timedelta(seconds=lease_seconds),
        "attempts": WebhookEvent.attempts + 1,
    }
    return claim(engine, WebhookEvent, due, [WebhookEvent.id], values, limit=limit)


def record_failure(
    engine: Engine,
    event_id: int,
    worker_id: str,
    error: str,
    *,
    max_attempts: int,
    retry_delay_seconds: float,
    now: datetime | None = None,
) -> str:
    """Record a processing error; returns the new status (``failed`` or ``dead``).

    The event is retried after ``retry_delay_seconds`` unless it has already
    been attempted ``max_attempts`` times. Only the worker holding the claim
    may record (a worker that lost its lease changes nothing). ``error`` is
    stored as its first line (see :func:`error_line`).
    """
    error = (error.strip().splitlines() or [""])[0][:MAX_ERROR_CHARS]
    now = now or _now()
    with writer(engine).begin() as connection:
        attempts = connection.execute(
            select(WebhookEvent.attempts).where(WebhookEvent.id == event_id, WebhookEvent.locked_by == worker_id)
        ).scalar_one_or_none()
        if attempts is None:
            return "lost"
        status = EVENT_DEAD if attempts >= max_attempts else EVENT_FAILED
        connection.execute(
            update(WebhookEvent)
            .where(WebhookEvent.id == event_id)
            .values(
                status=status,
                last_error=error,
                next_attempt_at=None if status == EVENT_DEAD else now + timedelta(seconds=retry_delay_seconds),
                locked_by=None,
                locked_until=None,
            )
        )
    return status


def release_events(engine: Engine, event_ids: list[int], worker_id: str) -> int:
    """Give claimed but unprocessed events back (graceful shutdown); the claim's attempt is not counted."""
    if not event_ids:
        return 0
    with engine.begin() as connection:
        result = connection.execute(
            update(WebhookEvent)
            .where(
                WebhookEvent.id.in_(event_ids),
                WebhookEvent.locked_by == worker_id,
                WebhookEvent.status == EVENT_PROCESSING,
            )
            .values(status=EVENT_PENDING, locked_by=None, locked_until=None, attempts=WebhookEvent.attempts - 1)
        )
        return result.rowcount or 0


def requeue_events(engine: Engine, *, event_ids: list[int] | None = None, statuses: tuple[str, ...] = ()) -> int:
    """Put events back to ``pending`` with a fresh attempt count; returns how many.

    ``event_ids`` selects events by id (any status but ``processing``:
    ``receiver events retry ID`` and ``replay ID``); ``statuses`` selects
    all events in those states (``retry --dead``). Ignored events (unknown
    or invalid payloads) are never requeued: there is nothing to apply.
    Listening workers are woken when something was requeued (PostgreSQL).
    """
    conditions = [WebhookEvent.status.notin_([EVENT_PROCESSING, EVENT_IGNORED])]
    if event_ids is not None:
        conditions.append(WebhookEvent.id.in_(event_ids))
    if statuses:
        conditions.append(WebhookEvent.status.in_(statuses))
    if event_ids is None and not statuses:
        raise ValueError("name event ids or statuses to requeue")
    with engine.begin() as connection:
        result = connection.execute(
            update(WebhookEvent)
            .where(*conditions)
            .values(
                status=EVENT_PENDING,
                attempts=0,
                next_attempt_at=None,
                last_error=None,
                locked_by=None,
                locked_until=None,
            )
        )
        if result.rowcount:
            notify_workers(connection)
        return result.rowcount or 0


@dataclass(frozen=True)
class QueueStats:
    """Counts of stored events by status, and the age of the oldest due one (seconds)."""

    by_status: dict[str, int]
    oldest_pending_age_seconds: float | None


def queue_stats(engine: Engine, now: datetime | None = None) -> QueueStats:
    """Read the queue's state (one grouped count and one min)."""
    now = now or _now()
    with engine.connect() as connection:
        counts = dict(connection.execute(select(WebhookEvent.status, func.count()).group_by(WebhookEvent.status)).all())
        oldest = connection.execute(
            select(func.min(WebhookEvent.received_at)).where(WebhookEvent.status.in_([EVENT_PENDING, EVENT_FAILED]))
        ).scalar_one_or_none()
    if isinstance(oldest, str):  # SQLite aggregate results bypass the column type
        oldest = datetime.fromisoformat(oldest)
    if oldest is not None and oldest.tzinfo is None:
        oldest = oldest.replace(tzinfo=UTC)
    by_status = {status: int(counts.get(status, 0)) for status in EVENT_STATUSES}
    age = (now - oldest).total_seconds() if oldest is not None else None
    return QueueStats(by_status, age)


def refresh_queue_metrics(engine: Engine) -> QueueStats:
    """Update the queue gauges of :mod:`receiver.metrics` and return the stats."""
    stats = queue_stats(engine)
    for status, count in stats.by_status.items():
        metrics.QUEUE_DEPTH.labels(status=status).set(count)
    metrics.OLDEST_PENDING_AGE.set(stats.oldest_pending_age_seconds or 0.0)
    return stats
