"""The SQLite inbox store: one batch of deliveries per ``BEGIN IMMEDIATE`` transaction, via sqlite3 directly.

Used by :class:`receiver.inbox.GroupCommitter` (its commit thread calls
:meth:`SqliteInboxStore.store`). Same outcomes as
:func:`receiver.inbox.store_deliveries`, with less Python per row: the
transaction takes SQLite's write lock first, so the ids already stored can
be read before inserting (nobody else can insert in between), and the new
rows go in with one ``executemany`` - the sqlite3 module loops in C.
Values are converted by the columns' own SQLAlchemy bind processors, so
rows read back exactly as if the ORM had written them.
"""

from __future__ import annotations

import sqlite3
from typing import Any

from sqlalchemy.engine import Engine

from .inbox import (
    BatchResult,
    Delivery,
    InboxUnavailable,
    StoreOutcome,
    classify_batch,
    first_occurrences,
)
from .models import WebhookEvent

__all__ = ["SqliteInboxStore"]

# SQLite allows 32,766 bound variables per statement (since 3.32); stay far below.
_IDS_PER_SELECT = 500


class SqliteInboxStore:
    """Stores delivery batches through raw sqlite3 connections of ``engine``'s pool (one per batch).

    Not thread-safe: one commit thread calls :meth:`store`.
    """

    def __init__(self, engine: Engine) -> None:
        if engine.dialect.name != "sqlite":
            raise ValueError(f"SqliteInboxStore needs a SQLite engine, not {engine.dialect.name}")
        self._engine = engine
        self._keys: list[str] = []
        self._processors: list[Any] = []
        self._insert = ""

    def _row(self, delivery: Delivery) -> tuple[object, ...]:
        row = delivery.row()
        if not self._keys:  # first batch: the columns Delivery.row() fills, and their converters
            columns = WebhookEvent.__table__.c
            dialect = self._engine.dialect
            self._keys = list(row)
            self._processors = [columns[key].type.dialect_impl(dialect).bind_processor(dialect) for key in self._keys]
            self._insert = f"INSERT INTO webhook_events ({', '.join(self._keys)}) VALUES ({', '.join('?' for _ in self._keys)})"
        return tuple(
            value if process is None or value is None else process(value)
            for process, value in zip(self._processors, (row[key] for key in self._keys))
        )

    def _stored_digests(self, cursor: sqlite3.Cursor, delivery_ids: list[str]) -> dict[str, str]:
        found: dict[str, str] = {}
        for start in range(0, len(delivery_ids), _IDS_PER_SELECT):
            chunk = delivery_ids[start : start + _IDS_PER_SELECT]
            marks = ", ".join("?" for _ in chunk)
            cursor.execute(f"SELECT delivery_id, body_sha256 FROM webhook_events WHERE delivery_id IN ({marks})", chunk)
            found.update(cursor.fetchall())
        return found

    def store(self, deliveries: list[Delivery]) -> list[StoreOutcome]:
        """Store one batch in one transaction; one outcome per delivery, in order.

        Raises:
            InboxUnavailable: SQLite failed (locked past the busy timeout,
                disk full, not a database); nothing of the batch is stored.
        """
        if not deliveries:
            return []
        try:
            connection = self._engine.raw_connection()  # checked out per batch: a disposed pool is honoured
            try:
                cursor = connection.driver_connection.cursor()
                result = self._store(cursor, deliveries)
            finally:
                connection.close()
        except sqlite3.Error as exc:
            raise InboxUnavailable(f"inbox commit failed: {type(exc).__name__}") from exc
        return result.outcomes

    def _store(self, cursor: sqlite3.Cursor, deliveries: list[Delivery]) -> BatchResult:
        cursor.execute("BEGIN IMMEDIATE")
        try:
            first_index = first_occurrences(deliveries)
            digests = self._stored_digests(cursor, list(first_index))
            new_ids = [delivery_id for delivery_id in first_index if delivery_id not in digests]
            rows = [self._row(deliveries[first_index[delivery_id]]) for delivery_id in new_ids]
            if rows:
                cursor.executemany(self._insert, rows)
            result = classify_batch(deliveries, first_index, set(new_ids), digests)
            for counters, column in ((result.duplicates, "duplicate_count"), (result.conflicts, "conflict_count")):
                if counters:
                    cursor.executemany(
                        f"UPDATE webhook_events SET {column} = {column} + ? WHERE delivery_id = ?",
                        [(count, delivery_id) for delivery_id, count in counters.items()],
                    )
            cursor.execute("COMMIT")
        except BaseException:
            if cursor.connection.in_transaction:
                cursor.execute("ROLLBACK")
            raise
        return result
