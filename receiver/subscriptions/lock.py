"""The cross-replica lock around a subscription ensure.

PostgreSQL: a session-level advisory lock (``pg_try_advisory_lock``) polled
on a dedicated connection; SQLite (always one host): an exclusive ``flock``
on ``<database file>.subscriptions.lock``. Replicas starting together thus
run their ensures one after the other.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import structlog
from sqlalchemy.engine import Engine

from receiver.subscriptions.spec import SubscriptionLockTimeout

__all__ = ["LOCK_POLL_SECONDS", "LOCK_TIMEOUT_SECONDS", "PG_LOCK_KEY", "subscription_lock"]

log = structlog.get_logger(__name__)

#: Seconds to wait for another replica's ensure before giving up (the attempt then fails and is retried).
LOCK_TIMEOUT_SECONDS = 60.0
#: Seconds between two tries of a busy lock.
LOCK_POLL_SECONDS = 0.1
#: Key of the PostgreSQL session-level advisory lock (64-bit, derived from a fixed name: the module that
#: first held the lock; never change it, or replicas of two versions would ensure at the same time).
PG_LOCK_KEY = int.from_bytes(hashlib.sha256(b"receiver.subscriptions.ensure").digest()[:8], "big", signed=True)


@asynccontextmanager
async def subscription_lock(
    engine: Engine, *, timeout_seconds: float = LOCK_TIMEOUT_SECONDS, poll_seconds: float = LOCK_POLL_SECONDS
) -> AsyncIterator[None]:
    """Hold the cross-replica subscription lock for the ``async with`` body.

    PostgreSQL: session-level ``pg_try_advisory_lock(PG_LOCK_KEY)`` on a
    dedicated connection, polled every ``poll_seconds``; unlocked at the end
    (the connection is discarded if that fails, which ends the session and
    the lock). SQLite: exclusive ``flock`` on ``<database file>.subscriptions.lock``
    (released by the OS if the process dies). In-memory SQLite, other
    databases or systems without ``fcntl``: no lock (create-then-dedupe still
    leaves one webhook).

    Raises:
        SubscriptionLockTimeout: not acquired within ``timeout_seconds``.
        sqlalchemy.exc.SQLAlchemyError: the database is unreachable.
    """
    dialect = engine.dialect.name
    if dialect == "postgresql":
        async with _pg_lock(engine, timeout_seconds, poll_seconds):
            yield
        return
    database = engine.url.database if dialect == "sqlite" else None
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        fcntl = None  # type: ignore[assignment]
    if not database or database == ":memory:" or database.startswith("file:") or fcntl is None:
        yield
        return
    fd = os.open(f"{database}.subscriptions.lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        deadline = time.monotonic() + timeout_seconds
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise SubscriptionLockTimeout(
                        f"another replica held the subscription lock for more than {timeout_seconds:g} s"
                    ) from None
                await asyncio.sleep(poll_seconds)
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


@asynccontextmanager
async def _pg_lock(engine: Engine, timeout_seconds: float, poll_seconds: float) -> AsyncIterator[None]:
    from sqlalchemy import text

    def try_lock(connection: Any) -> bool:
        got = bool(connection.execute(text("SELECT pg_try_advisory_lock(:key)"), {"key": PG_LOCK_KEY}).scalar())
        connection.commit()  # session-level lock: survives the end of the transaction
        return got

    def unlock(connection: Any) -> bool:
        released = bool(connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": PG_LOCK_KEY}).scalar())
        connection.commit()
        return released

    connection = await asyncio.to_thread(engine.connect)
    clean = False
    try:
        deadline = time.monotonic() + timeout_seconds
        while not await asyncio.to_thread(try_lock, connection):
            if time.monotonic() >= deadline:
                clean = True
                raise SubscriptionLockTimeout(
                    f"another replica held the subscription lock for more than {timeout_seconds:g} s"
                )
            await asyncio.sleep(poll_seconds)
        try:
            yield
        finally:
            try:
                clean = await asyncio.to_thread(unlock, connection)
            except Exception:
                log.warning("subscription_unlock_failed")
    finally:
        if not clean:
            # Never hand a connection that may still hold the lock back to the pool.
            connection.invalidate()
        await asyncio.to_thread(connection.close)
