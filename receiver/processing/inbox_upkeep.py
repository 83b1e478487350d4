"""Upkeep of the partitioned inbox (PostgreSQL): the coming months' partitions and the idempotency keys' window.

Creating next month's partition never waits for a person: every worker
calls :meth:`InboxUpkeep.tick` once per loop; at most every
``check_every_seconds`` (and at start) it creates the month partitions
from the current month to :data:`receiver.db.partitions.MONTHS_AHEAD`
months on that are missing, and deletes idempotency keys older than
:data:`receiver.db.partitions.DEDUPE_WINDOW`. Both are idempotent, so
several workers may run them; a month that cannot be created is logged
(``inbox_partition_failed``), counted
(``receiver_inbox_partition_failures_total``, alert
``ReceiverInboxPartitionFailing``) and retried at the next check, and meanwhile
the DEFAULT partition takes its rows. On SQLite (one plain table) a tick
costs one catalog look-up per check and changes nothing.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime

import structlog
from sqlalchemy.engine import Engine

from receiver import metrics
from receiver.db import partitions

__all__ = ["InboxUpkeep"]

log = structlog.get_logger("receiver.processing.inbox_upkeep")


class InboxUpkeep:
    """The worker's hook for the partitioned inbox: call :meth:`tick` once per loop (cheap when not due)."""

    def __init__(
        self,
        engine: Engine,
        *,
        check_every_seconds: float = 600.0,
        months_ahead: int = partitions.MONTHS_AHEAD,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.engine = engine
        self.check_every_seconds = check_every_seconds
        self.months_ahead = months_ahead
        self._clock = clock
        self._next_check = clock()  # the first tick checks at once

    def tick(self, now: datetime | None = None) -> list[str]:
        """When due: create the missing month partitions and prune old keys; returns the partitions created.

        Never raises: a failure is logged and retried at the next check.
        """
        if self._clock() < self._next_check:
            return []
        self._next_check = self._clock() + self.check_every_seconds
        now = now or datetime.now(UTC)
        try:
            created = partitions.ensure_months(self.engine, now, self.months_ahead, on_error=self._failed)
            pruned = partitions.prune_keys(self.engine, now - partitions.DEDUPE_WINDOW)
        except Exception as exc:  # never take the worker down
            log.error("inbox_upkeep_failed", error=f"{type(exc).__name__}: {exc}"[:300])
            return []
        if created or pruned:
            log.info("inbox_upkeep", partitions_created=created, keys_pruned=pruned)
        return created

    @staticmethod
    def _failed(name: str, error: str) -> None:
        metrics.INBOX_PARTITION_FAILURES.inc()
        log.error("inbox_partition_failed", partition=name, error=error[:300])
