"""Session and recording listings: one row per session (bounds, people, peak concurrency), the recording index.

Owns :func:`sessions_report` (``SESSION_COLUMNS``) and
:func:`recordings_report` (``RECORDING_COLUMNS``).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import and_, or_, select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session as OrmSession

from receiver.db.models import Meeting, Recording, Session
from receiver.reports.attendance import peak_concurrency
from receiver.reports.intervals import intervals_by_session
from receiver.reports.rows import RECORDING_COLUMNS, ReportFilter, session_end

__all__ = ["recordings_report", "sessions_report"]


def recordings_report(engine: Engine, flt: ReportFilter | None = None) -> list[dict[str, Any]]:
    """The recording index (``RECORDING_COLUMNS``), newest first."""
    flt = flt or ReportFilter()
    conditions: list[Any] = []
    if flt.meeting_id:
        conditions.append(Recording.meeting_id == flt.meeting_id)
    if flt.session_id:
        conditions.append(Recording.session_id == flt.session_id)
    if flt.since:
        conditions.append(
            or_(
                Recording.started_at >= flt.since,
                and_(Recording.started_at.is_(None), Recording.updated_at >= flt.since),
            )
        )
    if flt.until:
        conditions.append(Recording.started_at < flt.until)
    with OrmSession(engine) as db:
        rows = db.execute(
            select(Recording).where(*conditions).order_by(Recording.started_at.desc(), Recording.recording_id)
        ).scalars()
        return [{column: getattr(row, column) for column in RECORDING_COLUMNS} for row in rows]


def sessions_report(
    engine: Engine, flt: ReportFilter | None = None, *, as_of: datetime | None = None
) -> list[dict[str, Any]]:
    """One row per session (``SESSION_COLUMNS``): bounds, people, peers, peak concurrency, reconciled."""
    flt = flt or ReportFilter()
    as_of = as_of or datetime.now(UTC)
    with OrmSession(engine) as db:
        found = db.execute(
            select(Session, Meeting.title)
            .join(Meeting, Meeting.meeting_id == Session.meeting_id, isouter=True)
            .where(*flt.session_conditions())
            .order_by(Session.started_at, Session.session_id)
        ).all()
        intervals = intervals_by_session(db, [s.session_id for s, _ in found])
    result = []
    for session, title in found:
        end = session_end(session, as_of)
        spans = []
        for interval in intervals[session.session_id]:
            if interval.joined_at is None:
                continue
            stop = interval.left_at or end
            if stop is not None:
                spans.append((interval.joined_at, stop))
        duration = (
            (session.ended_at - session.started_at).total_seconds() if session.ended_at and session.started_at else None
        )
        result.append(
            {
                "session_id": session.session_id,
                "meeting_id": session.meeting_id,
                "meeting_title": title,
                "started_at": session.started_at,
                "ended_at": session.ended_at,
                "duration_seconds": duration,
                "end_reason": session.end_reason,
                "status": session.status,
                "participants": len({i.participant_key for i in intervals[session.session_id]}),
                "peers": len(intervals[session.session_id]),
                "peak_concurrency": peak_concurrency(spans),
                "reconciled": session.reconciled_at is not None,
            }
        )
    return result
