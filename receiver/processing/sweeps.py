"""Periodic sweeps over live sessions: the ones whose end never came.

* :func:`infer_idle_session_ends` - a live session in which nobody is
  present (every known peer has left) and no event arrived for
  ``SESSION_IDLE_END_SECONDS`` (default 300 s) gets an **inferred end** at
  its last leave (``end_inferred``), and a ``session`` reconciliation task
  is armed right away. Dyte ends a meeting about 60 s after the last
  participant leaves (FACTS.md: meeting.ended comes about a minute after the
  last leave), so a session idle for minutes has ended even when its
  meeting.ended was lost: reports no longer show 0 % ratios and a timeline
  stretched to "now" for two hours. meeting.ended or the REST API replace
  the inferred end; a join whose leave is unknown undoes it.
  Sessions without any interval, or with a ``session`` task still pending
  (e.g. the API said "live, look again later"), are left alone.
* :func:`arm_stale_sessions` - live, never-reconciled sessions with no
  event for ``STALE_SESSION_SECONDS`` (default 2 h) get a ``session`` task.

The worker runs the first (it needs no REST API), the reconciler the second.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import structlog
from sqlalchemy import exists, func, select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session as OrmSession

from receiver.db.engine import writer
from receiver.db.models import TASK_PENDING, ParticipantInterval, ReconcileTask, Session
from receiver.processing.writes import infer_session_end, schedule_task

__all__ = ["arm_stale_sessions", "infer_idle_session_ends"]

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


def _idle_sessions(idle_seconds: float, now: datetime) -> Any:  # Select[(str, datetime | None)]
    """SELECT of (session id, last leave) of the live sessions whose end can be inferred."""
    cutoff = now - timedelta(seconds=idle_seconds)
    intervals = ParticipantInterval
    someone_present = exists().where(intervals.session_id == Session.session_id, intervals.left_at.is_(None))
    pending_task = exists().where(
        ReconcileTask.kind == "session",
        ReconcileTask.object_id == Session.session_id,
        ReconcileTask.status == TASK_PENDING,
    )
    last_leave = select(func.max(intervals.left_at)).where(intervals.session_id == Session.session_id).scalar_subquery()
    return select(Session.session_id, last_leave.label("last_leave")).where(
        Session.status == "live",
        Session.ended_at.is_(None),
        Session.last_event_at <= cutoff,
        exists().where(intervals.session_id == Session.session_id),
        ~someone_present,
        ~pending_task,
    )


def infer_idle_session_ends(engine: Engine, *, idle_seconds: float, now: datetime) -> list[str]:
    """End live sessions in which nobody is present and nothing happened for ``idle_seconds``; returns their ids.

    Each gets ``ended_at`` = its last leave, ``status`` ``ended``,
    ``end_inferred`` true and a ``session`` reconciliation task due now (the
    REST API confirms or corrects the end). Sessions are locked and checked
    again before they are changed, so an event applied meanwhile wins.
    ``idle_seconds`` <= 0 disables the sweep. Raises on database errors.
    """
    if idle_seconds <= 0:
        return []
    with engine.connect() as connection:
        candidates = [row.session_id for row in connection.execute(_idle_sessions(idle_seconds, now))]
    ended: list[str] = []
    for start in range(0, len(candidates), _SWEEP_BATCH):
        chunk = sorted(candidates[start : start + _SWEEP_BATCH])
        with OrmSession(writer(engine)) as db, db.begin():
            # Lock in id order (as the worker does), then re-check under the lock.
            db.execute(
                select(Session).where(Session.session_id.in_(chunk)).order_by(Session.session_id).with_for_update()
            )
            still = {
                row.session_id: row.last_leave
                for row in db.execute(_idle_sessions(idle_seconds, now).where(Session.session_id.in_(chunk)))
            }
            for session_id in chunk:
                last_leave = still.get(session_id)
                if last_leave is None:
                    continue
                row = db.get(Session, session_id)
                if row is None:
                    continue
                infer_session_end(row, _aware(last_leave), now)
                schedule_task(db, "session", session_id, now, now)
                ended.append(session_id)
    if ended:
        log.info("session_ends_inferred", count=len(ended), idle_seconds=idle_seconds)
    return ended


def _aware(value: datetime | str) -> datetime:
    """An aggregate's datetime (SQLite may return text for MAX over a timestamp column), aware UTC."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
