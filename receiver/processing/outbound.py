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
* The delivery state (claims, attempts, listings, requeues) is
  :mod:`receiver.processing.outbound_queue`'s; sending is
  :mod:`receiver.processing.outbound_sender`'s.

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
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session as OrmSession

from receiver.db.models import OUTBOUND_DEAD, OUTBOUND_PENDING, Meeting, OutboundDelivery, Session
from receiver.reports.queries import session_attendance_rows

__all__ = ["OUTBOUND_EVENT_TYPE", "attendance_digest", "build_payload", "enqueue_session_attendance"]

#: The ``type`` of the outbound body.
OUTBOUND_EVENT_TYPE = "session.attendance"


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
