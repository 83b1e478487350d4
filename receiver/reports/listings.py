"""Session, recording and livestream listings: one row per session (bounds, people, peak concurrency), the
recording index, the livestreams.

Owns :func:`sessions_report` (``SESSION_COLUMNS``),
:func:`recordings_report` (``RECORDING_COLUMNS``) and what reconciliation
learns from the REST API (issue #18):

* :func:`recordings_detail_report` - the recording index plus the REST
  start and stop reason codes (spec ``startReason`` / ``stopReason``, e.g.
  ``API_CALL``, ``ALL_PEERS_LEFT``; a webhook-only recording keeps the
  ``stopReason`` text the webhook sent) and when the API confirmed it
  (``RECORDING_DETAIL_COLUMNS``).
* :func:`livestreams_report` - one row per livestream
  (``LIVESTREAM_COLUMNS``): its meeting and session, status, and the totals
  of its runs (``livestream_sessions``): ``ingest_seconds`` (input
  streamed) and ``viewer_seconds`` (watch time of all viewers), in seconds,
  first start and last stop (UTC). Stream keys are never stored, so never
  shown.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import and_, func, or_, select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session as OrmSession

from receiver.db.models import Livestream, LivestreamSession, Meeting, Recording, Session
from receiver.reports.attendance import Interval, peak_concurrency
from receiver.reports.intervals import CHUNK, intervals_by_session
from receiver.reports.rows import (
    LIVESTREAM_COLUMNS,
    RECORDING_COLUMNS,
    ReportFilter,
    session_end,
)

__all__ = [
    "iter_recordings",
    "iter_sessions",
    "livestreams_report",
    "recording_conditions",
    "recordings_detail_report",
    "recordings_report",
    "session_rows",
    "sessions_report",
]


def recording_conditions(flt: ReportFilter) -> list[Any]:
    """SQL conditions on :class:`Recording` of ``flt``: meeting, session, and ``since``/``until`` on the start.

    A recording without a start time matches ``since`` by its last update.
    """
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
    return conditions


def recordings_report(engine: Engine, flt: ReportFilter | None = None) -> list[dict[str, Any]]:
    """The recording index (``RECORDING_COLUMNS``), newest first."""
    return list(iter_recordings(engine, flt))


def iter_recordings(engine: Engine, flt: ReportFilter | None = None) -> Iterator[dict[str, Any]]:
    """The rows of :func:`recordings_report`, fetched from the database 1,000 at a time (exports).

    Raises:
        sqlalchemy.exc.SQLAlchemyError: the database could not be read.
    """
    conditions = recording_conditions(flt or ReportFilter())
    with OrmSession(engine) as db:
        rows = db.execute(
            select(Recording).where(*conditions).order_by(Recording.started_at.desc(), Recording.recording_id),
            execution_options={"yield_per": 1000},
        ).scalars()
        for row in rows:
            yield {column: getattr(row, column) for column in RECORDING_COLUMNS}


def sessions_report(
    engine: Engine, flt: ReportFilter | None = None, *, as_of: datetime | None = None
) -> list[dict[str, Any]]:
    """One row per session (``SESSION_COLUMNS``): bounds, people, peers, peak concurrency, reconciled.

    ``end_inferred``: the end was inferred from inactivity and not confirmed
    yet (``status`` is ``ended``; pages show "ended (inferred)").
    ``parent_session_id``: the main session of a breakout room's session.
    ``api_meeting_id``: the REST API's meeting id when it disagrees with
    ``meeting_id`` (the webhooks'), else None.
    """
    return list(iter_sessions(engine, flt, as_of=as_of))


def iter_sessions(
    engine: Engine, flt: ReportFilter | None = None, *, as_of: datetime | None = None
) -> Iterator[dict[str, Any]]:
    """The rows of :func:`sessions_report`, computed 500 sessions at a time (their intervals loaded per chunk).

    Raises:
        sqlalchemy.exc.SQLAlchemyError: the database could not be read.
    """
    flt = flt or ReportFilter()
    as_of = as_of or datetime.now(UTC)
    with OrmSession(engine) as db:
        found = db.execute(
            select(Session, Meeting.title)
            .join(Meeting, Meeting.meeting_id == Session.meeting_id, isouter=True)
            .where(*flt.session_conditions())
            .order_by(Session.started_at, Session.session_id)
        ).all()
        db.expunge_all()
        for start in range(0, len(found), CHUNK):
            chunk = found[start : start + CHUNK]
            intervals = intervals_by_session(db, [s.session_id for s, _ in chunk])
            yield from session_rows(chunk, intervals, as_of)


def session_rows(found: Sequence[Any], intervals: dict[str, list[Interval]], as_of: datetime) -> list[dict[str, Any]]:
    """``SESSION_COLUMNS`` rows of ``(session, meeting title)`` pairs, in the given order.

    ``intervals`` maps each session id to its intervals
    (:func:`receiver.reports.intervals.intervals_by_session`); a live session
    is measured up to ``as_of`` (UTC). Pure: no database access.
    """
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
                "end_inferred": bool(session.end_inferred),
                "parent_session_id": session.parent_session_id,
                "api_meeting_id": session.api_meeting_id,
            }
        )
    return result


def recordings_detail_report(engine: Engine, flt: ReportFilter | None = None) -> list[dict[str, Any]]:
    """The recording index (same rows and order as ``recordings_report``) with ``RECORDING_DETAIL_COLUMNS``."""
    rows = recordings_report(engine, flt)
    ids = [row["recording_id"] for row in rows]
    extra: dict[str, tuple[Any, ...]] = {}
    with OrmSession(engine) as db:
        for start in range(0, len(ids), CHUNK):
            chunk = ids[start : start + CHUNK]
            for recording_id, start_reason, stop_reason, reconciled_at in db.execute(
                select(
                    Recording.recording_id, Recording.start_reason, Recording.stop_reason, Recording.reconciled_at
                ).where(Recording.recording_id.in_(chunk))
            ).all():
                extra[recording_id] = (start_reason, stop_reason, reconciled_at)
    return [
        {
            **row,
            **dict(
                zip(
                    ("start_reason", "stop_reason", "reconciled_at"),
                    extra.get(row["recording_id"], (None,) * 3),
                    strict=True,
                )
            ),
        }
        for row in rows
    ]


def livestreams_report(engine: Engine, flt: ReportFilter | None = None) -> list[dict[str, Any]]:
    """One row per livestream (``LIVESTREAM_COLUMNS``), newest first run first (livestreams without runs last).

    Filters: ``meeting_id``, ``session_id`` (the meeting session it
    streamed), and ``since``/``until`` on the first run's start (else the
    status time). ``runs`` counts the livestream's known runs;
    ``ingest_seconds`` / ``viewer_seconds`` are their sums (None when no
    run reported them).
    """
    flt = flt or ReportFilter()
    runs = (
        select(
            LivestreamSession.livestream_id.label("livestream_id"),
            func.count().label("runs"),
            func.min(LivestreamSession.started_at).label("first_started_at"),
            func.max(LivestreamSession.stopped_at).label("last_stopped_at"),
            func.sum(LivestreamSession.ingest_seconds).label("ingest_seconds"),
            func.sum(LivestreamSession.viewer_seconds).label("viewer_seconds"),
        )
        .group_by(LivestreamSession.livestream_id)
        .subquery()
    )
    started = func.coalesce(runs.c.first_started_at, Livestream.status_at)
    conditions: list[Any] = []
    if flt.meeting_id:
        conditions.append(Livestream.meeting_id == flt.meeting_id)
    if flt.session_id:
        conditions.append(Livestream.session_id == flt.session_id)
    if flt.since:
        conditions.append(or_(started >= flt.since, and_(started.is_(None), Livestream.updated_at >= flt.since)))
    if flt.until:
        conditions.append(started < flt.until)
    statement = (
        select(
            Livestream.livestream_id,
            Livestream.meeting_id,
            Livestream.session_id,
            Livestream.name,
            Livestream.status,
            Livestream.status_at,
            runs.c.runs,
            runs.c.first_started_at,
            runs.c.last_stopped_at,
            runs.c.ingest_seconds,
            runs.c.viewer_seconds,
            Livestream.linked_at,
        )
        .outerjoin(runs, runs.c.livestream_id == Livestream.livestream_id)
        .where(*conditions)
        .order_by(runs.c.first_started_at.is_(None), runs.c.first_started_at.desc(), Livestream.livestream_id)
    )
    with engine.connect() as connection:
        found = connection.execute(statement).all()
    result = []
    for row in found:
        item = dict(zip(LIVESTREAM_COLUMNS, row, strict=True))
        item["runs"] = int(item["runs"] or 0)
        for name in ("ingest_seconds", "viewer_seconds"):
            if item[name] is not None:
                item[name] = round(float(item[name]), 3)
        result.append(item)
    return result
