"""The inbox: persisting verified deliveries, one transaction per batch (group commit).

``store_deliveries`` is the only write on the receive path. It inserts a
batch with ``INSERT ... ON CONFLICT (delivery_id) DO NOTHING``: the unique
constraint on ``delivery_id`` (Dyte's ``dyte-uuid``) is the idempotency
check. A retry with the same body counts as a duplicate; the same id with a
different body is a *conflict*: the first body is kept and the row's
``conflict_count`` is raised so ops can see it.

``GroupCommitter`` funnels concurrent requests into one database thread:
each request awaits the commit of the batch that holds it, so nothing is
acknowledged before it is durable, and one commit serves many requests.
"""

from __future__ import annotations

import asyncio
import hashlib
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from enum import Enum

from sqlalchemy import select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Engine

from .models import EVENT_IGNORED, EVENT_PENDING, PARSE_OK, WebhookEvent

__all__ = [
    "Delivery",
    "StoreOutcome",
    "InboxUnavailable",
    "BatchResult",
    "first_occurrences",
    "classify_batch",
    "store_deliveries",
    "GroupCommitter",
    "body_digest",
]


def body_digest(raw_body: bytes) -> str:
    """Hex SHA-256 of the raw body (used to tell a retry from a conflicting reuse of an id)."""
    return hashlib.sha256(raw_body).hexdigest()


@dataclass(frozen=True)
class Delivery:
    """A verified delivery ready to be stored. Times are aware UTC."""

    delivery_id: str
    webhook_id: str | None
    event_name: str | None
    raw_body: bytes
    signature_scheme: str
    received_at: datetime
    parse_status: str
    parse_error: str | None = None
    meeting_id: str | None = None
    session_id: str | None = None
    occurred_at: datetime | None = None

    def row(self) -> dict[str, object]:
        """Column values for ``webhook_events``."""
        return {
            "delivery_id": self.delivery_id,
            "webhook_id": self.webhook_id,
            "event_name": self.event_name,
            "raw_body": self.raw_body,
            "body_sha256": body_digest(self.raw_body),
            "signature_scheme": self.signature_scheme,
            "received_at": self.received_at,
            "parse_status": self.parse_status,
            "parse_error": self.parse_error,
            "meeting_id": self.meeting_id,
            "session_id": self.session_id,
            "occurred_at": self.occurred_at,
            "status": EVENT_PENDING if self.parse_status == PARSE_OK else EVENT_IGNORED,
            "attempts": 0,
            "duplicate_count": 0,
            "conflict_count": 0,
        }


class InboxUnavailable(Exception):
    """The batch holding a delivery could not be committed (the database failed); nothing of it is stored.

    ``__cause__`` is the driver's error.
    """


class StoreOutcome(str, Enum):
    """What storing one delivery did."""

    STORED = "stored"  # a new row
    DUPLICATE = "duplicate"  # same delivery id, same body: a retry; nothing added
    CONFLICT = "conflict"  # same delivery id, different body: first kept, flagged


def _insert_ignore(engine: Engine):
    dialect = engine.dialect.name
    if dialect == "postgresql":
        return postgresql.insert(WebhookEvent).on_conflict_do_nothing(index_elements=["delivery_id"])
    if dialect == "sqlite":
        return sqlite.insert(WebhookEvent).on_conflict_do_nothing(index_elements=["delivery_id"])
    raise RuntimeError(f"unsupported database dialect: {dialect}")


@dataclass
class BatchResult:
    """What one batch did: an outcome per delivery (in order) and the counters to raise.

    ``duplicates``/``conflicts`` map a delivery id to how many deliveries of
    the batch were retries / conflicting reuses of it.
    """

    outcomes: list[StoreOutcome]
    duplicates: dict[str, int]
    conflicts: dict[str, int]


def first_occurrences(deliveries: list[Delivery]) -> dict[str, int]:
    """Delivery id -> index of its first delivery in the batch (the one offered for insert), in batch order."""
    first_index: dict[str, int] = {}
    for index, delivery in enumerate(deliveries):
        first_index.setdefault(delivery.delivery_id, index)
    return first_index


def classify_batch(
    deliveries: list[Delivery],
    first_index: dict[str, int],
    inserted: set[str],
    stored_digests: dict[str, str],
) -> BatchResult:
    """Pure: decide each delivery's :class:`StoreOutcome` once the insert has run.

    Args:
        deliveries: the batch, in arrival order.
        first_index: :func:`first_occurrences` of the batch.
        inserted: delivery ids the ``INSERT ... ON CONFLICT DO NOTHING`` added.
        stored_digests: delivery id -> ``body_sha256`` of rows that were
            already stored (ids of the batch not in ``inserted``).
    """
    outcomes: list[StoreOutcome] = []
    duplicates: dict[str, int] = {}
    conflicts: dict[str, int] = {}
    for index, delivery in enumerate(deliveries):
        delivery_id = delivery.delivery_id
        if delivery_id in inserted and first_index[delivery_id] == index:
            outcomes.append(StoreOutcome.STORED)
            continue
        stored_digest = stored_digests.get(delivery_id)
        if stored_digest is None:  # inserted earlier in this very batch
            stored_digest = body_digest(deliveries[first_index[delivery_id]].raw_body)
        if stored_digest == body_digest(delivery.raw_body):
            outcomes.append(StoreOutcome.DUPLICATE)
            duplicates[delivery_id] = duplicates.get(delivery_id, 0) + 1
        else:
            outcomes.append(StoreOutcome.CONFLICT)
            conflicts[delivery_id] = conflicts.get(delivery_id, 0) + 1
    return BatchResult(outcomes, duplicates, conflicts)


def store_deliveries(engine: Engine, deliveries: list[Delivery]) -> list[StoreOutcome]:
    """Store a batch in one transaction; returns one outcome per delivery, in order.

    Raises:
        sqlalchemy.exc.SQLAlchemyError: the database failed; nothing of the
            batch is committed (the caller answers 503 so Dyte retries).
    """
    if not deliveries:
        return []
    first_index = first_occurrences(deliveries)
    unique_rows = [deliveries[i].row() for i in first_index.values()]
    with engine.begin() as connection:
        inserted = set(
            connection.execute(_insert_ignore(engine).returning(WebhookEvent.delivery_id), unique_rows).scalars()
        )
        existing_ids = [d for d in first_index if d not in inserted]
        digests: dict[str, str] = {}
        if existing_ids:
            digests = dict(
                connection.execute(
                    select(WebhookEvent.delivery_id, WebhookEvent.body_sha256).where(
                        WebhookEvent.delivery_id.in_(existing_ids)
                    )
                ).all()
            )
        result = classify_batch(deliveries, first_index, inserted, digests)
        for counters, column in ((result.duplicates, WebhookEvent.duplicate_count), (result.conflicts, WebhookEvent.conflict_count)):
            for delivery_id, count in counters.items():
                connection.execute(
                    update(WebhookEvent).where(WebhookEvent.delivery_id == delivery_id).values({column: column + count})
                )
    return result.outcomes


@dataclass
class _Pending:
    delivery: Delivery
    future: asyncio.Future[StoreOutcome]
    loop: asyncio.AbstractEventLoop


StoreBatch = Callable[[list[Delivery]], list[StoreOutcome]]


class GroupCommitter:
    """One database thread that commits queued deliveries in batches.

    ``await committer.submit(delivery)`` returns the :class:`StoreOutcome`
    once the batch holding it is committed, or raises the database error.
    ``store`` writes one batch (default: :func:`store_deliveries` on
    ``engine``; SQLite uses :class:`receiver.inbox_sqlite.SqliteInboxStore`).
    ``max_batch`` caps rows
    per transaction. ``await start()``, ``await stop()`` (drains what is
    queued first). PostgreSQL has :class:`receiver.inbox_postgres.PostgresGroupCommitter`.
    """

    def __init__(
        self,
        engine: Engine,
        *,
        max_batch: int = 256,
        store: StoreBatch | None = None,
    ) -> None:
        self._store: StoreBatch = store or (lambda batch: store_deliveries(engine, batch))
        self._max_batch = max_batch
        self._queue: queue.Queue[_Pending | None] = queue.Queue()
        self._thread: threading.Thread | None = None
        self.batches = 0
        self.rows = 0

    async def start(self) -> None:
        """Start the commit thread (idempotent)."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="inbox-group-commit", daemon=True)
            self._thread.start()

    async def stop(self, timeout: float = 10.0) -> None:
        """Commit what is queued, then stop the thread."""
        thread, self._thread = self._thread, None
        if thread is not None:
            self._queue.put(None)
            await asyncio.to_thread(thread.join, timeout)

    async def submit(self, delivery: Delivery) -> StoreOutcome:
        """Queue ``delivery`` and wait for its batch to commit."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[StoreOutcome] = loop.create_future()
        self._queue.put(_Pending(delivery, future, loop))
        return await future

    def _run(self) -> None:
        stopping = False
        while not stopping:
            item = self._queue.get()
            if item is None:
                break
            batch = [item]
            while len(batch) < self._max_batch:
                try:
                    nxt = self._queue.get_nowait()
                except queue.Empty:
                    break
                if nxt is None:
                    stopping = True
                    break
                batch.append(nxt)
            self._commit(batch)

    def _commit(self, batch: list[_Pending]) -> None:
        try:
            outcomes: list[StoreOutcome | BaseException] = list(self._store([p.delivery for p in batch]))
        except Exception as exc:  # database down: every waiter gets the error (-> 503)
            outcomes = [exc] * len(batch)
        else:
            self.batches += 1
            self.rows += len(batch)
        # One wake-up per event loop for the whole batch, not one per request.
        by_loop: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future[StoreOutcome], StoreOutcome | BaseException]]] = {}
        for pending, outcome in zip(batch, outcomes):
            by_loop.setdefault(pending.loop, []).append((pending.future, outcome))
        for loop, settled in by_loop.items():
            try:
                loop.call_soon_threadsafe(_settle, settled)
            except RuntimeError:  # that loop is closed: nobody is waiting any more
                pass


def _settle(settled: list[tuple[asyncio.Future[StoreOutcome], StoreOutcome | BaseException]]) -> None:
    for future, outcome in settled:
        if future.done():  # the request was cancelled (client gone)
            continue
        if isinstance(outcome, BaseException):
            future.set_exception(outcome)
        else:
            future.set_result(outcome)
