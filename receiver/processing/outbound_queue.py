"""The outbound webhook's delivery state: claims, attempts, listings and requeues of ``outbound_deliveries``.

The rows are written by :mod:`receiver.processing.outbound` (in the
reconciliation's transaction) and sent by
:mod:`receiver.processing.outbound_sender`. States: ``pending`` (not tried
yet) → ``delivered`` (2xx) | ``failed`` (retried at ``next_attempt_at``) →
... → ``dead`` (attempt limit). A claim is a lease (``locked_by``,
``locked_until``) taken with the service's one claim statement
(:func:`receiver.processing.queue.claim`), so several workers never send
the same row at once and a dead worker's claim passes to another.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.engine import Engine

from receiver.db.engine import writer
from receiver.db.models import (
    OUTBOUND_DEAD,
    OUTBOUND_DELIVERED,
    OUTBOUND_FAILED,
    OUTBOUND_PENDING,
    OUTBOUND_STATUSES,
    OutboundDelivery,
)
from receiver.processing.queue import MAX_ERROR_CHARS, claim

__all__ = [
    "OUTBOUND_COLUMNS",
    "AttemptOutcome",
    "claim_deliveries",
    "delivery_rows",
    "outbound_counts",
    "record_attempt",
    "requeue_deliveries",
    "requeue_delivery",
]

#: Columns of the outbound delivery list (``/api/outbound``, ``/ui/outbound``): never the body.
OUTBOUND_COLUMNS: tuple[str, ...] = (
    "id",
    "webhook_id",
    "event_type",
    "session_id",
    "status",
    "attempts",
    "next_attempt_at",
    "last_status_code",
    "last_error",
    "created_at",
    "updated_at",
    "delivered_at",
    "payload_sha256",
)


def claim_deliveries(engine: Engine, worker_id: str, *, limit: int, lease_seconds: float, now: datetime) -> list[int]:
    """Claim due deliveries (pending, or failed with ``next_attempt_at`` passed; lease free or expired); their ids.

    Each claim counts an attempt and sets a lease of ``lease_seconds``
    (a worker that dies mid-POST leaves the delivery to be claimed again
    when the lease has passed). Earliest due first.
    """
    due = and_(
        OutboundDelivery.status.in_([OUTBOUND_PENDING, OUTBOUND_FAILED]),
        OutboundDelivery.next_attempt_at <= now,
        or_(OutboundDelivery.locked_until.is_(None), OutboundDelivery.locked_until < now),
    )
    values = {
        "locked_by": worker_id,
        "locked_until": now + timedelta(seconds=lease_seconds),
        "attempts": OutboundDelivery.attempts + 1,
    }
    order = [OutboundDelivery.next_attempt_at, OutboundDelivery.id]
    return claim(engine, OutboundDelivery, due, order, values, limit=limit)


class AttemptOutcome:
    """What one POST gave: ``status_code`` (None: no answer) and ``error`` (None when delivered)."""

    def __init__(self, status_code: int | None, error: str | None) -> None:
        self.status_code = status_code
        self.error = error

    @property
    def delivered(self) -> bool:
        """True on a 2xx answer."""
        return self.error is None


def record_attempt(
    engine: Engine,
    delivery_id: int,
    worker_id: str,
    outcome: AttemptOutcome,
    *,
    dead: bool,
    retry_after_seconds: float,
    now: datetime,
) -> str:
    """Store an attempt's outcome on a delivery this worker holds; returns ``delivered``, ``failed``, ``dead`` or ``lost``.

    A failure is retried ``retry_after_seconds`` later unless ``dead`` (the
    attempt limit is reached). ``lost``: the lease had passed and another
    worker took the delivery (nothing is written).
    """
    if outcome.delivered:
        status = OUTBOUND_DELIVERED
    else:
        status = OUTBOUND_DEAD if dead else OUTBOUND_FAILED
    values: dict[str, Any] = {
        "status": status,
        "locked_by": None,
        "locked_until": None,
        "last_status_code": outcome.status_code,
        "last_error": (outcome.error or "")[:MAX_ERROR_CHARS] or None,
        "updated_at": now,
    }
    if status == OUTBOUND_DELIVERED:
        values["delivered_at"] = now
    elif status == OUTBOUND_FAILED:
        values["next_attempt_at"] = now + timedelta(seconds=retry_after_seconds)
    with writer(engine).begin() as connection:
        result = connection.execute(
            update(OutboundDelivery)
            .where(OutboundDelivery.id == delivery_id, OutboundDelivery.locked_by == worker_id)
            .values(**values)
        )
    return status if result.rowcount else "lost"


def delivery_rows(
    engine: Engine, *, status: str | None = None, session_id: str | None = None, limit: int = 100, offset: int = 0
) -> tuple[list[dict[str, Any]], int]:
    """Outbound deliveries (dicts of ``OUTBOUND_COLUMNS``, newest first) and the total matching the filters.

    The body is not read (its digest is there). Raises ``ValueError`` for a
    status outside ``OUTBOUND_STATUSES``.
    """
    if status is not None and status not in OUTBOUND_STATUSES:
        raise ValueError(f"status: use one of {', '.join(OUTBOUND_STATUSES)}")
    conditions: list[Any] = []
    if status:
        conditions.append(OutboundDelivery.status == status)
    if session_id:
        conditions.append(OutboundDelivery.session_id == session_id)
    columns = [getattr(OutboundDelivery, name) for name in OUTBOUND_COLUMNS]
    with engine.connect() as connection:
        total = connection.execute(select(func.count()).select_from(OutboundDelivery).where(*conditions)).scalar_one()
        rows = connection.execute(
            select(*columns).where(*conditions).order_by(OutboundDelivery.id.desc()).limit(limit).offset(offset)
        ).all()
    return [dict(zip(OUTBOUND_COLUMNS, row, strict=True)) for row in rows], int(total)


def outbound_counts(engine: Engine) -> dict[str, int]:
    """Outbound deliveries by status (every status of ``OUTBOUND_STATUSES``, 0 when none)."""
    with engine.connect() as connection:
        counts = dict(
            connection.execute(select(OutboundDelivery.status, func.count()).group_by(OutboundDelivery.status)).all()
        )
    return {status: int(counts.get(status, 0)) for status in OUTBOUND_STATUSES}


def requeue_delivery(engine: Engine, delivery_id: int, *, now: datetime) -> str:
    """Send a failed or dead delivery again now (attempts reset, same body and ``webhook-id``); returns the outcome.

    Returns ``requeued``, ``missing`` (no such delivery) or the status that
    forbids it (``pending``, ``delivered``: nothing to do; or a claimed
    delivery, whose lease has not passed: ``in_flight``).
    """
    with writer(engine).begin() as connection:
        row = connection.execute(
            select(OutboundDelivery.status, OutboundDelivery.locked_until).where(OutboundDelivery.id == delivery_id)
        ).first()
        if row is None:
            return "missing"
        if row.locked_until is not None and row.locked_until > now:
            return "in_flight"
        if row.status not in (OUTBOUND_FAILED, OUTBOUND_DEAD):
            return str(row.status)
        connection.execute(update(OutboundDelivery).where(OutboundDelivery.id == delivery_id).values(**_requeued(now)))
    return "requeued"


def _requeued(now: datetime) -> dict[str, object]:
    """The columns of a delivery sent again now: pending, attempts reset, unclaimed."""
    return {
        "status": OUTBOUND_PENDING,
        "attempts": 0,
        "next_attempt_at": now,
        "locked_by": None,
        "locked_until": None,
        "updated_at": now,
    }


def requeue_deliveries(engine: Engine, statuses: tuple[str, ...], *, now: datetime) -> int:
    """Send every delivery in ``statuses`` (``failed`` and/or ``dead``) again now, attempts reset; returns how many.

    Claimed ones (lease not passed) are left alone. Raises ``ValueError``
    for a status other than failed or dead, or none.
    """
    if not statuses or set(statuses) - {OUTBOUND_FAILED, OUTBOUND_DEAD}:
        raise ValueError("requeue takes failed and/or dead deliveries")
    with writer(engine).begin() as connection:
        result = connection.execute(
            update(OutboundDelivery)
            .where(
                OutboundDelivery.status.in_(statuses),
                or_(OutboundDelivery.locked_until.is_(None), OutboundDelivery.locked_until <= now),
            )
            .values(**_requeued(now))
        )
    return int(result.rowcount or 0)
