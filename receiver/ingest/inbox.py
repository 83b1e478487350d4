"""The inbox: persisting verified deliveries, one transaction per batch (group commit).

``store_deliveries`` is the only write on the receive path. It inserts a
batch with ``INSERT ... ON CONFLICT DO NOTHING`` against two unique indexes:

* ``delivery_id`` (Dyte's ``dyte-uuid``, the idempotency key): a retry with
  the same body counts as a *duplicate*; the same id with a different body is
  a *conflict*: the first body is kept and the row's ``conflict_count`` is
  raised so ops can see it;
* ``unique_body_sha256``, the digest of the stored body (the signed bytes,
  see :mod:`receiver.ingest.endpoint`): the signature covers the body, not
  ``dyte-uuid``, so a captured delivery replayed under fresh uuids is a
  *replay*: no row is added, the row holding that body gets its
  ``duplicate_count`` raised. Two distinct events never have byte-equal
  bodies (each carries its own ids and times), so nothing real is lost.

What one captured delivery can still cost (measured, ``tests/ingest/test_replay.py``
and the numbers in the README's security notes): every replay is verified
(one RSA check over at most ``MAX_BODY_BYTES``, plus one JSON parse of at
most ``COMPACT_FALLBACK_MAX_BYTES`` when the raw bytes do not verify), then
costs one indexed lookup and one ``UPDATE`` of the counter: no stored byte,
whatever the number of replays or the padding sent with them.

``GroupCommitter`` funnels concurrent requests into batches written by one
task of the event loop: each request awaits the commit of the batch that
holds it, so nothing is acknowledged before it is durable, and one commit
serves many requests.
"""

from __future__ import annotations

import asyncio
import hashlib
from dataclasses import dataclass
from datetime import datetime
from enum import Enum

from sqlalchemy import select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Engine

from receiver.db.models import EVENT_IGNORED, EVENT_PENDING, PARSE_OK, WebhookEvent
from receiver.errors import StorageUnavailable

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
    """Hex SHA-256 of a stored body: tells a retry from a conflicting reuse of an id, and dedupes replays."""
    return hashlib.sha256(raw_body).hexdigest()


@dataclass(slots=True)
class Delivery:
    """A verified delivery ready to be stored. Times are aware UTC.

    Treat it as read-only. (Not ``frozen``: a frozen dataclass sets each
    field through ``object.__setattr__``, ~1 µs more per delivery.)
    """

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

    @property
    def initial_status(self) -> str:
        """Processing status of the new row: ``pending`` when parsed, else ``ignored`` (kept, flagged)."""
        return EVENT_PENDING if self.parse_status == PARSE_OK else EVENT_IGNORED

    def row(self, digest: str | None = None) -> dict[str, object]:
        """Column values for ``webhook_events`` (``digest``: the body's, when the caller has it)."""
        digest = digest or body_digest(self.raw_body)
        return {
            "delivery_id": self.delivery_id,
            "webhook_id": self.webhook_id,
            "event_name": self.event_name,
            "raw_body": self.raw_body,
            "body_sha256": digest,
            "unique_body_sha256": digest,
            "signature_scheme": self.signature_scheme,
            "received_at": self.received_at,
            "parse_status": self.parse_status,
            "parse_error": self.parse_error,
            "meeting_id": self.meeting_id,
            "session_id": self.session_id,
            "occurred_at": self.occurred_at,
            "status": self.initial_status,
            "attempts": 0,
            "duplicate_count": 0,
            "conflict_count": 0,
        }


class InboxUnavailable(StorageUnavailable):
    """The batch holding a delivery could not be committed (the database failed); nothing of it is stored.

    ``__cause__`` is the driver's error.
    """


class StoreOutcome(str, Enum):
    """What storing one delivery did."""

    STORED = "stored"  # a new row
    DUPLICATE = "duplicate"  # same delivery id, same body: a retry; nothing added
    CONFLICT = "conflict"  # same delivery id, different body: first kept, flagged
    REPLAY = "replay"  # new delivery id, a body already stored: nothing added (counted as a duplicate of it)


def _insert_ignore(engine: Engine) -> postgresql.Insert | sqlite.Insert:
    """``INSERT INTO webhook_events ... ON CONFLICT DO NOTHING`` in ``engine``'s dialect (any unique
    index: delivery id or body digest).

    Raises:
        RuntimeError: a database other than PostgreSQL or SQLite.
    """
    dialect = engine.dialect.name
    if dialect == "postgresql":
        return postgresql.insert(WebhookEvent).on_conflict_do_nothing()
    if dialect == "sqlite":
        return sqlite.insert(WebhookEvent).on_conflict_do_nothing()
    raise RuntimeError(f"unsupported database dialect: {dialect}")


@dataclass
class BatchResult:
    """What one batch did: an outcome per delivery (in order) and the counters to raise.

    ``duplicates``/``conflicts`` map a stored delivery id to how many deliveries of
    the batch were retries or replays of it / conflicting reuses of its id.
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
    body_owners: dict[str, str] | None = None,
) -> BatchResult:
    """Pure: decide each delivery's :class:`StoreOutcome` once the insert has run.

    Args:
        deliveries: the batch, in arrival order.
        first_index: :func:`first_occurrences` of the batch.
        inserted: delivery ids the ``INSERT ... ON CONFLICT DO NOTHING`` added.
        stored_digests: delivery id -> ``body_sha256`` of rows that were
            already stored (ids of the batch not in ``inserted``).
        body_owners: body digest -> delivery id of the stored row holding that
            body, for the deliveries whose id is stored nowhere (their body was:
            a replay). Bodies inserted earlier in this batch need not be listed.
    """
    outcomes: list[StoreOutcome] = []
    duplicates: dict[str, int] = {}
    conflicts: dict[str, int] = {}
    owners = dict(body_owners or {})
    for delivery_id in inserted:
        first = deliveries[first_index[delivery_id]]
        owners.setdefault(body_digest(first.raw_body), delivery_id)
    for index, delivery in enumerate(deliveries):
        delivery_id = delivery.delivery_id
        if delivery_id in inserted and first_index[delivery_id] == index:
            outcomes.append(StoreOutcome.STORED)
            continue
        stored_digest = stored_digests.get(delivery_id)
        if stored_digest is None and delivery_id in inserted:  # inserted earlier in this very batch
            stored_digest = body_digest(deliveries[first_index[delivery_id]].raw_body)
        digest = body_digest(delivery.raw_body)
        if stored_digest is None:  # the id is stored nowhere: its body is (a replay under a new id)
            outcomes.append(StoreOutcome.REPLAY)
            owner = owners.get(digest)
            if owner is not None:
                duplicates[owner] = duplicates.get(owner, 0) + 1
        elif stored_digest == digest:
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
        owners: dict[str, str] = {}
        if existing_ids:
            digests = dict(
                connection.execute(
                    select(WebhookEvent.delivery_id, WebhookEvent.body_sha256).where(
                        WebhookEvent.delivery_id.in_(existing_ids)
                    )
                ).all()
            )
            replayed = [body_digest(deliveries[first_index[d]].raw_body) for d in existing_ids if d not in digests]
            if replayed:
                owners = {
                    digest: owner
                    for owner, digest in connection.execute(
                        select(WebhookEvent.delivery_id, WebhookEvent.unique_body_sha256).where(
                            WebhookEvent.unique_body_sha256.in_(replayed)
                        )
                    ).all()
                    if digest is not None
                }
        result = classify_batch(deliveries, first_index, inserted, digests, owners)
        for counters, column in (
            (result.duplicates, WebhookEvent.duplicate_count),
            (result.conflicts, WebhookEvent.conflict_count),
        ):
            for delivery_id, count in counters.items():
                connection.execute(
                    update(WebhookEvent).where(WebhookEvent.delivery_id == delivery_id).values({column: column + count})
                )
    return result.outcomes


class GroupCommitter:
    """Group commit inside the event loop: requests queue, one task commits them in batches.

    ``await committer.submit(delivery)`` returns the :class:`StoreOutcome`
    once the batch holding it is committed, or raises
    :class:`InboxUnavailable` (the handler answers 503). Whatever queues
    while a batch is being written becomes the next batch (at most
    ``max_batch`` rows), so one commit serves many requests and nothing is
    acknowledged before it is durable. ``await start()`` in the loop that
    will call :meth:`submit`; ``await stop()`` commits what is queued first.
    ``batches``/``rows`` count what was committed.

    Subclasses write a batch: :class:`receiver.ingest.postgres.PostgresGroupCommitter`
    (asyncpg) and :class:`receiver.ingest.sqlite.SqliteGroupCommitter`.
    """

    def __init__(self, *, max_batch: int = 256, max_in_flight: int = 1) -> None:
        self._max_batch = max_batch
        self._max_in_flight = max_in_flight
        self._in_flight: set[asyncio.Task[None]] = set()
        self._slots: asyncio.Semaphore | None = None
        self._queue: list[tuple[Delivery, asyncio.Future[StoreOutcome]]] = []
        self._wakeup: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping = False
        self.batches = 0
        self.rows = 0

    async def store_batch(self, deliveries: list[Delivery]) -> list[StoreOutcome]:
        """Write one batch; one outcome per delivery, in order.

        Raises:
            InboxUnavailable: the database failed; nothing of the batch is stored.
        """
        raise NotImplementedError

    async def close(self) -> None:
        """Release connections (after the last batch)."""

    async def start(self) -> None:
        """Start the commit task (idempotent)."""
        if self._task is None:
            self._wakeup = asyncio.Event()
            self._slots = asyncio.Semaphore(self._max_in_flight)
            self._stopping = False
            self._loop = asyncio.get_running_loop()
            self._task = self._loop.create_task(self._run(), name="inbox-group-commit")

    async def stop(self) -> None:
        """Commit what is queued, then :meth:`close`."""
        if self._task is None:
            return
        if asyncio.get_running_loop() is not self._loop:  # a test client's other event loop
            assert self._loop is not None
            await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(self.stop(), self._loop))
            return
        self._stopping = True
        assert self._wakeup is not None
        self._wakeup.set()
        await self._task
        self._task = None
        await self.close()

    async def submit(self, delivery: Delivery) -> StoreOutcome:
        """Queue ``delivery`` and wait for its batch to commit.

        Raises:
            InboxUnavailable: the batch failed (the caller answers 503).
            RuntimeError: the committer is not running.
        """
        if self._task is None or self._stopping:
            raise RuntimeError("the inbox committer is not running")
        loop = asyncio.get_running_loop()
        if loop is not self._loop:  # called from another event loop (test clients): hand over to ours
            assert self._loop is not None
            return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(self.submit(delivery), self._loop))
        future: asyncio.Future[StoreOutcome] = loop.create_future()
        self._queue.append((delivery, future))
        assert self._wakeup is not None
        self._wakeup.set()
        return await future

    async def _run(self) -> None:
        assert self._wakeup is not None and self._slots is not None
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            while self._queue:
                if self._max_in_flight == 1:
                    batch = self._queue[: self._max_batch]
                    del self._queue[: self._max_batch]
                    await self._commit(batch)
                    continue
                await self._slots.acquire()  # what queues meanwhile joins the next batch
                batch = self._queue[: self._max_batch]
                del self._queue[: self._max_batch]
                task = asyncio.get_running_loop().create_task(self._commit_in_slot(batch))
                self._in_flight.add(task)
                task.add_done_callback(self._in_flight.discard)
            if self._stopping:
                if self._in_flight:
                    await asyncio.gather(*self._in_flight)
                return

    async def _commit_in_slot(self, batch: list[tuple[Delivery, asyncio.Future[StoreOutcome]]]) -> None:
        assert self._slots is not None
        try:
            await self._commit(batch)
        except Exception as error:  # a writer bug: fail the batch's requests (500) rather than leave them waiting
            for _, future in batch:
                if not future.done():
                    future.set_exception(error)
        finally:
            self._slots.release()

    async def _commit(self, batch: list[tuple[Delivery, asyncio.Future[StoreOutcome]]]) -> None:
        try:
            outcomes = await self.store_batch([delivery for delivery, _ in batch])
        except InboxUnavailable as error:
            for _, future in batch:
                if not future.done():
                    future.set_exception(error)
            return
        self.batches += 1
        self.rows += len(batch)
        for (_, future), outcome in zip(batch, outcomes, strict=False):
            if not future.done():  # the request may have been cancelled (client gone)
                future.set_result(outcome)
