"""Recording and livestream reports with what reconciliation learns from the REST API.

* :func:`recordings_detail_report` - the recording index
  (:func:`receiver.reports.queries.recordings_report`) plus the REST start
  and stop reason codes (spec ``startReason`` / ``stopReason``, e.g.
  ``API_CALL``, ``ALL_PEERS_LEFT``; a webhook-only recording keeps the
  ``stopReason`` text the webhook sent) and when the API confirmed it.
* :func:`livestreams_report` - one row per livestream: its meeting and
  session, status, and the totals of its runs (``livestream_sessions``):
  ``ingest_seconds`` (input streamed) and ``viewer_seconds`` (watch time of
  all viewers), in seconds, first start and last stop (UTC).

Rows are plain dicts with the documented keys; rendering is
:mod:`receiver.reports.formatting`. Stream keys are never stored, so never
shown.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import and_, func, or_, select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session as OrmSession

from receiver.db.models import Livestream, LivestreamSession, Recording
from receiver.reports.queries import RECORDING_COLUMNS, ReportFilter, recordings_report

__all__ = ["RECORDING_DETAIL_COLUMNS", "LIVESTREAM_COLUMNS", "recordings_detail_report", "livestreams_report"]

#: ``RECORDING_COLUMNS`` plus the REST reasons and the API confirmation time.
RECORDING_DETAIL_COLUMNS = (*RECORDING_COLUMNS, "start_reason", "stop_reason", "reconciled_at")

LIVESTREAM_COLUMNS = (
    "livestream_id",
    "meeting_id",
    "session_id",
    "name",
    "status",
    "status_at",
    "runs",
    "first_started_at",
    "last_stopped_at",
    "ingest_seconds",
    "viewer_seconds",
    "linked_at",
)


def recordings_detail_report(engine: Engine, flt: ReportFilter | None = None) -> list[dict[str, Any]]:
    """The recording index (same rows and order as ``recordings_report``) with ``RECORDING_DETAIL_COLUMNS``."""
    rows = recordings_report(engine, flt)
    ids = [row["recording_id"] for row in rows]
    extra: dict[str, tuple[Any, ...]] = {}
    with OrmSession(engine) as db:
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
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
