"""Periodic sweeps over live sessions: the ones whose end never came.

* :func:`arm_stale_sessions` - live, never-reconciled sessions with no
  event for ``STALE_SESSION_SECONDS`` (default 2 h) get a ``session`` task.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import structlog
from sqlalchemy import exists, select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session as OrmSession

from receiver.db.engine import writer
from receiver.db.models import ReconcileTask, Session
from receiver.processing.writes import schedule_task

__all__ = ["arm_stale_sessions"]

log = structlog.get_logger("receiver.processing.sweeps")

#: Sessions ended per transaction by one sweep.
_SWEEP_BATCH = 200


def arm_stale_sessions(engine: Engine, *, stale_seconds: float, now: datetime) -> int:
    """Arm a ``session`` task for live, never-reconciled sessions with no event for ``stale_seconds``; returns how many."""
    cutoff = now - timedelta(seconds=stale_seconds)
    has_task = exists().where(ReconcileTask.kind == "session", ReconcileTask.object_id == Session.session_id)
    with OrmSession(writer(engine)) as db, db.begin():
        stale = list(
            db.execute(
                select(Session.session_id).where(
                    Session.status == "live",
                    Session.reconciled_at.is_(None),
                    Session.last_event_at <= cutoff,
                    ~has_task,
                )
            ).scalars()
        )
        for session_id in stale:
            schedule_task(db, "session", session_id, now, now)
    return len(stale)
