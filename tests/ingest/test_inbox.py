"""The inbox writers (group commit) on both databases: outcomes and counters when a batch mixes
new deliveries, retries and conflicting reuses of an id, and 503-worthy failures.

Concurrent submits land in one batch, which the HTTP tests (one request at a
time) never produce.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest
from sqlalchemy import select
from sqlalchemy.engine import Engine, make_url

from receiver.db.models import PARSE_OK, WebhookEvent
from receiver.ingest.inbox import (
    Delivery,
    InboxUnavailable,
    StoreOutcome,
    classify_batch,
    first_occurrences,
)
from receiver.web.app import make_committer

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def delivery(delivery_id: str, body: bytes) -> Delivery:
    return Delivery(
        delivery_id,
        "hook",
        "meeting.started",
        body,
        "raw",
        NOW,
        PARSE_OK,
        meeting_id="m",
        session_id="s",
        occurred_at=NOW,
    )


async def submit_together(committer, deliveries: list[Delivery]) -> list[StoreOutcome]:
    await committer.start()
    try:
        return list(await asyncio.gather(*(committer.submit(d) for d in deliveries)))
    finally:
        await committer.stop()


def counters(engine: Engine) -> dict[str, tuple[int, int, bytes]]:
    with engine.connect() as connection:
        rows = connection.execute(
            select(
                WebhookEvent.delivery_id,
                WebhookEvent.duplicate_count,
                WebhookEvent.conflict_count,
                WebhookEvent.raw_body,
            )
        ).all()
    return {row[0]: (row[1], row[2], bytes(row[3])) for row in rows}


def test_one_batch_of_new_retried_and_conflicting_deliveries(engine: Engine) -> None:
    """Stored once each; a retry counts as duplicate, a different body under the same id as conflict; first body kept."""
    asyncio.run(submit_together(make_committer(engine), [delivery("old", b'{"a":1}')]))
    batch = [
        delivery("new", b'{"n":1}'),
        delivery("new", b'{"n":1}'),  # retry inside the batch
        delivery("new", b'{"n":2}'),  # conflict inside the batch
        delivery("old", b'{"a":1}'),  # retry of a stored one
        delivery("old", b'{"a":2}'),  # conflict with a stored one
        delivery("other", b'{"o":1}'),
    ]
    outcomes = asyncio.run(submit_together(make_committer(engine), batch))
    assert outcomes == [
        StoreOutcome.STORED,
        StoreOutcome.DUPLICATE,
        StoreOutcome.CONFLICT,
        StoreOutcome.DUPLICATE,
        StoreOutcome.CONFLICT,
        StoreOutcome.STORED,
    ]
    assert counters(engine) == {
        "old": (1, 1, b'{"a":1}'),
        "new": (1, 1, b'{"n":1}'),
        "other": (0, 0, b'{"o":1}'),
    }


def test_one_batch_of_replays_under_new_ids(engine: Engine) -> None:
    """A stored body under a new id, and one body twice under two new ids in one batch: stored once, the rest replays."""
    asyncio.run(submit_together(make_committer(engine), [delivery("old", b'{"a":1}')]))
    batch = [
        delivery("fresh-1", b'{"a":1}'),  # the stored body, new id
        delivery("fresh-2", b'{"b":1}'),
        delivery("fresh-3", b'{"b":1}'),  # same body as fresh-2 in this batch
        delivery("fresh-2", b'{"b":1}'),  # a plain retry of fresh-2
    ]
    outcomes = asyncio.run(submit_together(make_committer(engine), batch))
    assert outcomes == [StoreOutcome.REPLAY, StoreOutcome.STORED, StoreOutcome.REPLAY, StoreOutcome.DUPLICATE]
    assert counters(engine) == {"old": (1, 0, b'{"a":1}'), "fresh-2": (2, 0, b'{"b":1}')}


def test_many_concurrent_submits_are_committed_in_few_batches(engine: Engine) -> None:
    """500 concurrent deliveries: all stored, in far fewer transactions than deliveries."""
    committer = make_committer(engine)
    outcomes = asyncio.run(submit_together(committer, [delivery(f"d{i}", b'{"n":%d}' % i) for i in range(500)]))
    assert outcomes == [StoreOutcome.STORED] * 500
    assert len(counters(engine)) == 500
    assert committer.rows == 500 and committer.batches < 50


@pytest.mark.postgres
def test_postgres_writer_fails_the_batch_when_the_server_is_unreachable(pg_url: str) -> None:
    """Nothing listening: every waiter gets InboxUnavailable (-> 503) instead of hanging."""
    from receiver.ingest.postgres import PostgresGroupCommitter

    url = make_url(pg_url).set(port=1)  # nothing listens on port 1
    committer = PostgresGroupCommitter(url, connect_timeout=2)
    with pytest.raises(InboxUnavailable):
        asyncio.run(submit_together(committer, [delivery("x", b"{}"), delivery("y", b"{}")]))


def test_classify_batch_is_pure() -> None:
    """Outcomes depend only on what was inserted and the stored digests."""
    from receiver.ingest.inbox import body_digest

    batch = [delivery("a", b"1"), delivery("a", b"1"), delivery("b", b"2"), delivery("b", b"3")]
    result = classify_batch(batch, first_occurrences(batch), inserted={"a"}, stored_digests={"b": body_digest(b"3")})
    assert result.outcomes == [
        StoreOutcome.STORED,
        StoreOutcome.DUPLICATE,
        StoreOutcome.CONFLICT,
        StoreOutcome.DUPLICATE,
    ]
    assert result.duplicates == {"a": 1, "b": 1} and result.conflicts == {"b": 1}
    replays = [delivery("x", b"1"), delivery("y", b"1"), delivery("z", b"9")]
    result = classify_batch(
        replays, first_occurrences(replays), inserted={"x"}, stored_digests={}, body_owners={body_digest(b"9"): "old"}
    )
    assert result.outcomes == [StoreOutcome.STORED, StoreOutcome.REPLAY, StoreOutcome.REPLAY]
    assert result.duplicates == {"x": 1, "old": 1} and result.conflicts == {}


def test_asyncpg_arguments_follow_the_database_url() -> None:
    """Host, port, credentials, database, sslmode and libpq's unix-socket form carry over; an unknown sslmode is refused."""
    from receiver.ingest.postgres import asyncpg_connect_kwargs

    url = make_url("postgresql+psycopg://app:s3cret@db.internal:6543/receiver?sslmode=require")
    kwargs = asyncpg_connect_kwargs(url, connect_timeout=5, command_timeout=10)
    assert (kwargs["host"], kwargs["port"], kwargs["user"], kwargs["password"], kwargs["database"]) == (
        "db.internal",
        6543,
        "app",
        "s3cret",
        "receiver",
    )
    assert kwargs["ssl"] == "require" and kwargs["server_settings"]["timezone"] == "UTC"
    socket = asyncpg_connect_kwargs(
        make_url("postgresql://app@/receiver?host=/run/postgresql"), connect_timeout=5, command_timeout=10
    )
    assert socket["host"] == "/run/postgresql" and "ssl" not in socket
    with pytest.raises(ValueError, match="sslmode"):
        asyncpg_connect_kwargs(make_url("postgresql://db/x?sslmode=bogus"), connect_timeout=5, command_timeout=10)


def test_sqlite_writer_waits_for_a_held_write_lock_without_blocking_the_loop(sqlite_url: str) -> None:
    """A worker holding SQLite's write lock: the batch waits in a thread (the loop keeps running), then commits."""
    import sqlite3
    import time

    from receiver.db.engine import make_engine

    engine = make_engine(sqlite_url)
    holder = sqlite3.connect(make_url(sqlite_url).database, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # what a worker transaction does

    async def scenario() -> tuple[StoreOutcome, float]:
        committer = make_committer(engine)
        await committer.start()
        try:
            pending = asyncio.ensure_future(committer.submit(delivery("while-locked", b"{}")))
            started = time.perf_counter()
            for _ in range(20):  # the loop is free while the batch waits for the lock
                await asyncio.sleep(0.01)
            loop_ran_for = time.perf_counter() - started
            assert not pending.done()
            holder.execute("COMMIT")
            return await asyncio.wait_for(pending, 10), loop_ran_for
        finally:
            await committer.stop()

    try:
        outcome, loop_ran_for = asyncio.run(scenario())
    finally:
        holder.close()
    assert outcome is StoreOutcome.STORED and loop_ran_for < 1.0
    assert "while-locked" in counters(engine)
    engine.dispose()


def test_batches_in_flight_at_once_never_exceed_the_limit_and_stop_waits_for_them() -> None:
    """With max_in_flight=3, up to three batches are written at once (never more); stop() returns after the
    last of them, every delivery answered."""
    from receiver.ingest.inbox import GroupCommitter

    class SlowWriter(GroupCommitter):
        def __init__(self) -> None:
            super().__init__(max_batch=5, max_in_flight=3)
            self.writing = self.most = 0

        async def store_batch(self, deliveries: list[Delivery]) -> list[StoreOutcome]:
            self.writing += 1
            self.most = max(self.most, self.writing)
            await asyncio.sleep(0.02)
            self.writing -= 1
            return [StoreOutcome.STORED] * len(deliveries)

    writer = SlowWriter()
    outcomes = asyncio.run(submit_together(writer, [delivery(f"d{i}", b"%d" % i) for i in range(60)]))
    assert outcomes == [StoreOutcome.STORED] * 60 and writer.rows == 60
    assert writer.most == 3 and writer.writing == 0


def test_a_writer_bug_in_a_concurrent_batch_fails_its_requests_instead_of_hanging() -> None:
    """An unexpected error in one of several in-flight batches reaches that batch's waiters."""
    from receiver.ingest.inbox import GroupCommitter

    class Broken(GroupCommitter):
        async def store_batch(self, deliveries: list[Delivery]) -> list[StoreOutcome]:
            raise KeyError("bug")

    with pytest.raises(KeyError):
        asyncio.run(submit_together(Broken(max_in_flight=2), [delivery("a", b"1")]))


@pytest.mark.postgres
def test_postgres_concurrent_batches_store_each_id_once(pg_url: str) -> None:
    """Four batches in flight on four connections: the same delivery id offered in several of them is stored
    once; the others are told duplicate, and the stored row counts them."""
    from receiver.db.engine import make_engine
    from receiver.ingest.postgres import PostgresGroupCommitter

    engine = make_engine(pg_url)
    try:
        committer = PostgresGroupCommitter(make_url(pg_url), max_batch=4, max_in_flight=4)
        deliveries = [delivery(f"id{i % 10}", b'{"n":%d}' % (i % 10)) for i in range(80)]
        outcomes = asyncio.run(submit_together(committer, deliveries))
        assert outcomes.count(StoreOutcome.STORED) == 10
        assert outcomes.count(StoreOutcome.DUPLICATE) == 70
        stored = counters(engine)
        assert sorted(stored) == sorted(f"id{i}" for i in range(10))
        assert sum(duplicates for duplicates, _, _ in stored.values()) == 70
    finally:
        engine.dispose()
