"""Monthly partitions of the inbox (``webhook_events``) on PostgreSQL (migration 0014).

The inbox is partitioned by RANGE of ``received_at``: one partition per
calendar month in UTC, named ``webhook_events_YYYY_MM`` and covering
``[first of the month 00:00 UTC, first of the next month)``, plus
``webhook_events_default`` (rows no month partition takes: an insert never
fails) and, after converting a populated table, ``webhook_events_unpartitioned``
(every row older than the conversion, ``FROM (MINVALUE)``). SQLite keeps one
plain table: :func:`is_partitioned` is False there and nothing here runs.

Idempotency across partitions: a unique index of a partitioned table must
contain the partition key, so ``delivery_id`` and the body digest are made
unique in ``webhook_event_keys`` (unpartitioned; filled by the BEFORE INSERT
trigger ``webhook_events_claim_key``, pruned after :data:`DEDUPE_WINDOW`).

This module has the mechanics (list, create, detach and drop); when to drop
is the retention rule in :mod:`receiver.processing.retention`.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import text
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError

__all__ = [
    "INBOX",
    "KEYS_TABLE",
    "DEFAULT_PARTITION",
    "MONTHS_AHEAD",
    "DEDUPE_WINDOW",
    "LOCK_TIMEOUT_MS",
    "InboxPartition",
    "DroppedPartition",
    "month_start",
    "add_months",
    "partition_name",
    "parse_bound",
    "is_partitioned",
    "list_partitions",
    "missing_months",
    "ensure_months",
    "holds_status",
    "drop_partition",
    "prune_keys",
    "model_compare_filter",
]

INBOX = "webhook_events"
#: The unpartitioned table of idempotency keys (delivery id, body digest).
KEYS_TABLE = "webhook_event_keys"
DEFAULT_PARTITION = "webhook_events_default"
#: Months created ahead of the current one (the worker checks every few minutes).
MONTHS_AHEAD = 3
#: How long a delivery id and a body digest stay in ``webhook_event_keys``.
#: Dyte retries a failed delivery for at most a few days (shared/dyte/FACTS.md); 30 days is far past that.
DEDUPE_WINDOW = timedelta(days=30)
#: DDL on the inbox waits at most this long for its lock (then gives up and is retried later),
#: so ingest never queues behind a DDL statement that itself waits behind a long query.
LOCK_TIMEOUT_MS = 2000
ANALYST_ROLE = "receiver_analyst"

_NAME = re.compile(r"webhook_events_(\d{4})_(\d{2})")
_BOUND = re.compile(r"FOR VALUES FROM \((.+)\) TO \((.+)\)")


@dataclass(frozen=True)
class InboxPartition:
    """One partition: ``lower``/``upper`` are UTC bounds (``lower`` inclusive, ``upper`` exclusive).

    ``lower`` is None for ``MINVALUE``; both are None for the DEFAULT partition (``is_default``).
    """

    name: str
    lower: datetime | None
    upper: datetime | None
    is_default: bool = False


@dataclass(frozen=True)
class DroppedPartition:
    """A partition the purge dropped: its ``rows`` (``pg_class.reltuples``, exact as of its last ANALYZE; counted
    when never analysed) and ``bytes`` (``pg_total_relation_size``: table, TOAST, indexes); ``lock_seconds``:
    from the start of the DETACH to the end of the DROP (the inbox's ACCESS EXCLUSIVE lock, taken by the DETACH,
    is held that long and then to the end of the commit's bookkeeping); ``commit_seconds``: the COMMIT, mostly
    the removal of the partition's files, which PostgreSQL does after releasing the lock (measured: inserts
    into the inbox go on meanwhile)."""

    name: str
    rows: int
    bytes: int
    lock_seconds: float
    commit_seconds: float = 0.0


def month_start(moment: datetime) -> datetime:
    """The first instant (UTC) of the calendar month of ``moment`` (naive values are taken as UTC)."""
    moment = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    return moment.replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def add_months(month: datetime, months: int) -> datetime:
    """``month`` (a month start) moved by ``months`` calendar months (may be negative)."""
    index = month.year * 12 + month.month - 1 + months
    return month.replace(year=index // 12, month=index % 12 + 1)


def partition_name(month: datetime) -> str:
    """``webhook_events_YYYY_MM`` for the month holding ``month`` (UTC)."""
    start = month_start(month)
    return f"{INBOX}_{start.year:04d}_{start.month:02d}"


def _bound_value(literal: str) -> datetime | None:
    literal = literal.strip()
    if literal.upper() == "MINVALUE" or literal.upper() == "MAXVALUE":
        return None
    return datetime.fromisoformat(literal.strip("'")).astimezone(UTC)


def parse_bound(name: str, expression: str) -> InboxPartition:
    """An :class:`InboxPartition` from ``pg_get_expr(relpartbound)`` text.

    ``expression`` is ``DEFAULT`` or ``FOR VALUES FROM ('2026-12-01 00:00:00+00') TO (...)``
    (either side may be ``MINVALUE``/``MAXVALUE``, read as None).

    Raises:
        ValueError: any other form (not a range partition of ``received_at``).
    """
    if expression.strip().upper() == "DEFAULT":
        return InboxPartition(name, None, None, is_default=True)
    match = _BOUND.fullmatch(expression.strip())
    if match is None:
        raise ValueError(f"unexpected partition bound for {name}: {expression!r}")
    return InboxPartition(name, _bound_value(match.group(1)), _bound_value(match.group(2)))


def is_partitioned(connection: Connection) -> bool:
    """True when ``webhook_events`` is a partitioned table (PostgreSQL after migration 0014)."""
    if connection.dialect.name != "postgresql":
        return False
    kind = connection.execute(
        text("SELECT relkind FROM pg_class WHERE oid = to_regclass(:name)"), {"name": INBOX}
    ).scalar_one_or_none()
    return kind == "p"


def list_partitions(connection: Connection) -> list[InboxPartition]:
    """The inbox partitions, by lower bound (MINVALUE first, DEFAULT last); empty when not partitioned."""
    if not is_partitioned(connection):
        return []
    rows = connection.execute(
        text(
            "SELECT c.relname, pg_get_expr(c.relpartbound, c.oid) FROM pg_inherits i "
            "JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = to_regclass(:name)"
        ),
        {"name": INBOX},
    ).all()
    partitions = [parse_bound(name, bound) for name, bound in rows]
    floor = datetime.min.replace(tzinfo=UTC)
    return sorted(partitions, key=lambda p: (p.is_default, p.lower or floor))


def missing_months(partitions: list[InboxPartition], now: datetime, ahead: int = MONTHS_AHEAD) -> list[datetime]:
    """Month starts from ``now``'s month to ``ahead`` months later that no range partition covers (pure).

    A month that any existing range partition overlaps is not missing
    (the converted table's partition covers every month before its bound).
    """
    first = month_start(now)
    wanted = [add_months(first, step) for step in range(ahead + 1)]
    ranges = [p for p in partitions if not p.is_default]

    def covered(month: datetime) -> bool:
        end = add_months(month, 1)
        return any((p.lower is None or p.lower < end) and (p.upper is None or p.upper > month) for p in ranges)

    return [month for month in wanted if not covered(month)]


def _revoke_analyst(connection: Connection, table: str) -> None:
    connection.execute(
        text(
            f"DO $$ BEGIN IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{ANALYST_ROLE}') THEN "
            f'REVOKE ALL ON "{table}" FROM {ANALYST_ROLE}; END IF; END $$'
        )
    )


def ensure_months(
    engine: Engine, now: datetime | None = None, ahead: int = MONTHS_AHEAD, *, on_error: Callable[[str, str], None]
) -> list[str]:
    """Create the month partitions from ``now``'s month to ``ahead`` months on; returns the names created.

    One short transaction per partition, with ``lock_timeout``
    (:data:`LOCK_TIMEOUT_MS`). A month that cannot be created (its lock not
    granted in time, or rows of that month already in the DEFAULT partition)
    is reported to ``on_error(name, error)`` and skipped: the next call tries
    again, and meanwhile inserts land in the DEFAULT partition. Does nothing
    when the inbox is not partitioned (SQLite, or PostgreSQL before 0014).
    Analysts get no access to a new partition (raw bodies, migration 0006).
    """
    now = now or datetime.now(UTC)
    with engine.connect() as connection:
        partitions = list_partitions(connection)
    if not partitions:
        return []
    created: list[str] = []
    for month in missing_months(partitions, now, ahead):
        name = partition_name(month)
        try:
            with engine.begin() as connection:
                connection.execute(text(f"SET LOCAL lock_timeout = {LOCK_TIMEOUT_MS}"))
                # DDL takes no bind parameters: the bounds are ISO 8601 literals made here from datetimes.
                lower, upper = month.isoformat(), add_months(month, 1).isoformat()
                connection.execute(
                    text(f"CREATE TABLE \"{name}\" PARTITION OF {INBOX} FOR VALUES FROM ('{lower}') TO ('{upper}')")
                )
                _revoke_analyst(connection, name)
        except DBAPIError as exc:
            on_error(name, f"{type(exc.orig).__name__}: {str(exc.orig).splitlines()[0] if exc.orig else exc}")
            continue
        created.append(name)
    return created


def holds_status(connection: Connection, partition: InboxPartition, statuses: tuple[str, ...]) -> bool:
    """True when ``partition`` holds an event whose status is in ``statuses`` (one index probe)."""
    query = text(f'SELECT EXISTS (SELECT 1 FROM "{partition.name}" WHERE status = ANY(:statuses))')
    return bool(connection.execute(query, {"statuses": list(statuses)}).scalar_one())


def drop_partition(
    engine: Engine, partition: InboxPartition, unhandled_statuses: tuple[str, ...]
) -> DroppedPartition | None:
    """Detach and drop ``partition`` unless it holds an event whose status is in ``unhandled_statuses``.

    Rows and bytes are read first, without a lock on the inbox. Then one
    transaction with ``lock_timeout``: ``DETACH PARTITION`` (ACCESS EXCLUSIVE
    on the inbox: ``CONCURRENTLY`` is not allowed while a DEFAULT partition
    exists), a re-check of the statuses under that lock, ``DROP TABLE``,
    commit: the lock is held for milliseconds. Returns None (nothing
    changed) when an unhandled event is there.

    Raises:
        sqlalchemy.exc.DBAPIError: the lock was not granted in time, or the
            database failed (the transaction rolled back: nothing changed).
    """
    with engine.connect() as connection:
        if holds_status(connection, partition, unhandled_statuses):
            return None
        # The catalog's estimate (exact as of the last ANALYZE; a month this old is no longer written): a count(*)
        # would read the whole partition. Counted only when the table was never analysed.
        rows = int(
            connection.execute(
                text("SELECT reltuples FROM pg_class WHERE oid = to_regclass(:n)"), {"n": partition.name}
            ).scalar_one()
        )
        if rows < 0:
            rows = int(connection.execute(text(f'SELECT count(*) FROM "{partition.name}"')).scalar_one())
        size = int(
            connection.execute(
                text("SELECT pg_total_relation_size(to_regclass(:n))"), {"n": partition.name}
            ).scalar_one()
        )
    with engine.connect() as connection:
        transaction = connection.begin()
        try:
            connection.execute(text(f"SET LOCAL lock_timeout = {LOCK_TIMEOUT_MS}"))
            started = time.perf_counter()
            connection.execute(text(f'ALTER TABLE {INBOX} DETACH PARTITION "{partition.name}"'))
            if holds_status(connection, partition, unhandled_statuses):
                transaction.rollback()
                return None
            connection.execute(text(f'DROP TABLE "{partition.name}"'))
            locked = time.perf_counter() - started
        except BaseException:
            transaction.rollback()
            raise
        committing = time.perf_counter()
        transaction.commit()
    return DroppedPartition(partition.name, rows, size, locked, time.perf_counter() - committing)


def prune_keys(engine: Engine, before: datetime, batch_size: int = 10_000) -> int:
    """Delete idempotency keys received before ``before`` (UTC), ``batch_size`` per transaction; returns the count.

    After this a retry of such a delivery is stored again: ``before`` must
    lie past the provider's retry window (:data:`DEDUPE_WINDOW`). Does
    nothing when the inbox is not partitioned.
    """
    with engine.connect() as connection:
        if not is_partitioned(connection):
            return 0
    deleted = 0
    statement = text(
        f"DELETE FROM {KEYS_TABLE} WHERE delivery_id IN "
        f"(SELECT delivery_id FROM {KEYS_TABLE} WHERE received_at < :before LIMIT :limit)"
    )
    while True:
        with engine.begin() as connection:
            count = connection.execute(statement, {"before": before, "limit": batch_size}).rowcount
        deleted += count
        if count < batch_size:
            return deleted


# The schema objects the models cannot state on PostgreSQL (migration 0014): compared only on SQLite.
_MODEL_ONLY_ON_SQLITE = {"uq_webhook_events_delivery_id", "ux_webhook_events_unique_body_sha256"}
_PG_ONLY_INDEXES = {"ix_webhook_events_delivery_id", "ix_webhook_events_unique_body_sha256"}
_PG_ONLY_TABLE = re.compile(rf"{KEYS_TABLE}|{INBOX}_(\d{{4}}_\d{{2}}|default|unpartitioned)")


def model_compare_filter(dialect_name: str) -> Callable[[Any, str | None, str, bool, Any], bool]:
    """An Alembic ``include_object`` hook: leave out what differs by design between the models and 0014.

    On PostgreSQL: the partitions, ``webhook_event_keys``, and the unique
    ``delivery_id``/body constraints of the models (plain indexes there, the
    keys table enforces them). On SQLite everything is compared.
    """

    def include(obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any) -> bool:
        if dialect_name != "postgresql" or name is None:
            return True
        if type_ == "table":
            return not _PG_ONLY_TABLE.fullmatch(name)
        if type_ in ("index", "unique_constraint"):
            return name not in _MODEL_ONLY_ON_SQLITE and name not in _PG_ONLY_INDEXES
        return True

    return include
