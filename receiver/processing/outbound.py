"""The outbox of the outbound webhook: a reconciled session's attendance, enqueued in the reconciliation's transaction.

Issue #21 item 5: after each reconciled session, an optional signed webhook
(Standard Webhooks, sent by :mod:`receiver.processing.outbound_sender`)
carries the session's attendance to ``OUTBOUND_WEBHOOK_URL``, so a "sheet
after every meeting" can be built on it.

* :func:`enqueue_session_attendance` runs inside the transaction that marks
  the session reconciled (:meth:`receiver.processing.reconcile.Reconciler.reconcile_session_counts`):
  the delivery exists exactly when the reconciliation committed. Its body is
  built then and frozen (every attempt sends the same bytes under the same
  ``webhook-id``).
* The rule for a re-reconciliation: a new delivery is enqueued only when the
  attendance differs from the session's latest delivery that is not
  ``dead`` (compared by :func:`attendance_digest`, which leaves out the
  times of reconciliation and enqueueing). An unchanged session sends
  nothing; a session whose last delivery died is sent again.
* :func:`claim_deliveries` uses the service's one claim/lease statement
  (:func:`receiver.processing.queue.claim`); :func:`record_attempt` stores
  an attempt's outcome.

The body (``OUTBOUND_EVENT_TYPE``, JSON, UTF-8)::

    {"type": "session.attendance", "timestamp": "<enqueued, ISO 8601 UTC>",
     "data": {"session": {"session_id", "meeting_id", "meeting_title",
                          "started_at", "ended_at", "duration_seconds",
                          "parent_session_id", "reconciled_at"},
              "attendance": [<one attendance report row per person>]}}

An attendance row has the keys of the attendance report
(:data:`receiver.reports.queries.ATTENDANCE_COLUMNS` plus
``display_names``); times are ISO 8601 UTC strings, durations seconds.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session as OrmSession

from receiver.db.engine import writer
from receiver.db.models import (
    OUTBOUND_DEAD,
    OUTBOUND_DELIVERED,
    OUTBOUND_FAILED,
    OUTBOUND_PENDING,
    OUTBOUND_STATUSES,
    Meeting,
    OutboundDelivery,
    Session,
)
from receiver.processing.queue import MAX_ERROR_CHARS, claim
from receiver.reports.queries import session_attendance_rows

__all__ = [
    "OUTBOUND_COLUMNS",
    "OUTBOUND_EVENT_TYPE",
    "delivery_rows",
    "outbound_counts",
    "requeue_delivery",
    "requeue_deliveries",
    "AttemptOutcome",
    "attendance_digest",
    "build_payload",
    "claim_deliveries",
    "enqueue_session_attendance",
    "record_attempt",
]

#: The ``type`` of the outbound body.
OUTBOUND_EVENT_TYPE = "session.attendance"

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


def _iso(value: Any) -> Any:
    """Datetimes as ISO 8601 UTC strings (``...Z``); everything else unchanged."""
    if isinstance(value, datetime):
        return value.isoformat().replace("+00:00", "Z")
    return value


def build_payload(
    session: Any, meeting_title: str | None, rows: list[dict[str, Any]], *, parent_session_id: str | None, now: datetime
) -> dict[str, Any]:
    """The outbound body (see the module docstring) for one session.

    Args:
        session: a row with ``session_id, meeting_id, started_at, ended_at,
            reconciled_at`` (aware UTC datetimes or None).
        meeting_title: the meeting's title, or None when unknown.
        rows: the session's attendance report rows
            (:func:`receiver.reports.queries.session_attendance_rows`).
        parent_session_id: the main session of a breakout room, else None.
        now: the enqueue time (aware UTC): the body's ``timestamp``.

    Returns:
        A JSON-ready dict (datetimes as ISO 8601 UTC strings).
    """
    started, ended = session.started_at, session.ended_at
    duration = round((ended - started).total_seconds(), 3) if started is not None and ended is not None else None
    return {
        "type": OUTBOUND_EVENT_TYPE,
        "timestamp": _iso(now),
        "data": {
            "session": {
                "session_id": session.session_id,
                "meeting_id": session.meeting_id,
                "meeting_title": meeting_title,
                "started_at": _iso(started),
                "ended_at": _iso(ended),
                "duration_seconds": duration,
                "parent_session_id": parent_session_id,
                "reconciled_at": _iso(session.reconciled_at),
            },
            "attendance": [{key: _iso(value) for key, value in row.items()} for row in rows],
        },
    }


def attendance_digest(payload: dict[str, Any]) -> str:
    """SHA-256 (hex) of what a delivery says about the session: the body without ``timestamp`` and ``reconciled_at``.

    Two reconciliations that found the same session bounds, title and
    attendance rows give the same digest (keys sorted, compact JSON).
    """
    data = payload["data"]
    session = {key: value for key, value in data["session"].items() if key != "reconciled_at"}
    canonical = json.dumps(
        {"type": payload["type"], "session": session, "attendance": data["attendance"]},
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
    )
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def enqueue_session_attendance(db: OrmSession, session_id: str, now: datetime) -> OutboundDelivery | None:
    """Add a pending delivery of ``session_id``'s attendance in ``db``'s transaction; None when nothing is to send.

    Call after the session's reconciled writes are flushed (the attendance is
    computed from the transaction's own view). Nothing is enqueued for an
    unknown session, or when the attendance equals that of the session's
    latest delivery that is not dead (see the module docstring). The new
    row is due at once (``next_attempt_at = now``).

    Raises:
        sqlalchemy.exc.SQLAlchemyError: database errors (the caller's transaction then fails as a whole).
    """
    session, rows = session_attendance_rows(db, session_id, as_of=now)
    if session is None:
        return None
    title = db.execute(select(Meeting.title).where(Meeting.meeting_id == session.meeting_id)).scalar_one_or_none()
    parent = db.execute(select(Session.parent_session_id).where(Session.session_id == session_id)).scalar_one_or_none()
    payload = build_payload(session, title, rows, parent_session_id=parent, now=now)
    digest = attendance_digest(payload)
    latest = db.execute(
        select(OutboundDelivery.payload_sha256, OutboundDelivery.status)
        .where(OutboundDelivery.session_id == session_id)
        .order_by(OutboundDelivery.id.desc())
        .limit(1)
    ).first()
    if latest is not None and latest.payload_sha256 == digest and latest.status != OUTBOUND_DEAD:
        return None
    delivery = OutboundDelivery(
        webhook_id=f"msg_{uuid.uuid4().hex}",
        event_type=OUTBOUND_EVENT_TYPE,
        session_id=session_id,
        payload=json.dumps(payload, separators=(",", ":"), ensure_ascii=False),
        payload_sha256=digest,
        status=OUTBOUND_PENDING,
        attempts=0,
        next_attempt_at=now,
        created_at=now,
        updated_at=now,
    )
    db.add(delivery)
    return delivery


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
        connection.execute(
            update(OutboundDelivery)
            .where(OutboundDelivery.id == delivery_id)
            .values(
                status=OUTBOUND_PENDING,
                attempts=0,
                next_attempt_at=now,
                locked_by=None,
                locked_until=None,
                updated_at=now,
            )
        )
    return "requeued"


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
            .values(
                status=OUTBOUND_PENDING,
                attempts=0,
                next_attempt_at=now,
                locked_by=None,
                locked_until=None,
                updated_at=now,
            )
        )
    return int(result.rowcount or 0)
