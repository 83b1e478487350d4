"""Attendance with breakout rooms folded into their main session (``receiver report attendance --include-breakouts``).

Reconciliation links each breakout room's session to the session it was
opened from (``sessions.parent_session_id``, from the REST API's
``breakout_rooms``). By default every session, breakout rooms included, is
reported on its own. With breakouts included, a main session's people are
measured over the intervals of the main session **and** of its breakout
rooms (the union, clipped to the main session's bounds, so time in a
breakout room counts as time in the meeting, and a person is never counted
twice for the same instant); the breakout rooms' own rows are then left
out when their main session is in the report. ``breakout_seconds`` is the
time that was added that way.

A person is matched across rooms by ``participant_key``: the custom
participant id matches; a person keyed by peer id (no custom id) joins a
breakout room as another peer and so appears as another person.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session as OrmSession

from receiver.db.models import Session
from receiver.reports.attendance import person_attendance
from receiver.reports.queries import (
    ATTENDANCE_COLUMNS,
    ReportFilter,
    _report_row,
    attendance_report,
    intervals_by_session,
)

__all__ = ["BREAKOUT_ATTENDANCE_COLUMNS", "attendance_with_breakouts"]

#: The attendance columns plus ``breakout_seconds`` (seconds added by the session's breakout rooms).
BREAKOUT_ATTENDANCE_COLUMNS = (*ATTENDANCE_COLUMNS, "breakout_seconds")


def attendance_with_breakouts(
    engine: Engine, flt: ReportFilter | None = None, *, as_of: datetime | None = None
) -> list[dict[str, Any]]:
    """:func:`receiver.reports.queries.attendance_report` rows with breakout time folded into main sessions.

    Rows have ``BREAKOUT_ATTENDANCE_COLUMNS`` (plus ``display_names``), in
    the report's order. ``breakout_seconds`` is 0.0 for sessions without
    breakout rooms. Rows of a breakout room whose main session is also in
    the report are left out. Live main sessions are measured up to
    ``as_of`` (default now, UTC).

    Raises:
        sqlalchemy.exc.SQLAlchemyError: the database could not be read.
    """
    flt = flt or ReportFilter()
    as_of = as_of or datetime.now(UTC)
    rows = attendance_report(engine, flt, as_of=as_of)
    by_session: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        by_session.setdefault(row["session_id"], []).append(row)
    with OrmSession(engine) as db:
        ordered = list(
            db.execute(
                select(Session.session_id)
                .where(*flt.session_conditions())
                .order_by(Session.started_at, Session.session_id)
            ).scalars()
        )
        parent_of: dict[str, str] = {}
        for chunk_start in range(0, len(ordered), 500):
            chunk = ordered[chunk_start : chunk_start + 500]
            for child_id, parent_id in db.execute(
                select(Session.session_id, Session.parent_session_id)
                .where(Session.parent_session_id.in_(chunk))
                .order_by(Session.started_at, Session.session_id)
            ).all():
                if parent_id is not None:
                    parent_of[child_id] = parent_id
        parents = {
            s.session_id: s
            for s in db.execute(
                select(Session).where(Session.session_id.in_(sorted(set(parent_of.values()))))
            ).scalars()
        }
        intervals = intervals_by_session(db, [*parents, *parent_of]) if parents else {}
    recomputed: dict[str, list[dict[str, Any]]] = {}
    for parent_id, parent in parents.items():
        own = {row["participant_key"]: row["attended_seconds"] for row in by_session.get(parent_id, [])}
        merged = list(intervals[parent_id])
        for child_id, child_parent in parent_of.items():
            if child_parent == parent_id:
                merged += intervals.get(child_id, [])
        end = parent.ended_at or (as_of if parent.started_at is not None else None)
        people = person_attendance(parent.started_at, end, merged)
        if flt.participant:
            people = [p for p in people if p.participant_key == flt.participant]
        recomputed[parent_id] = [
            {
                **_report_row(parent_id, parent.meeting_id, parent.reconciled_at is not None, p),
                "breakout_seconds": round(max(p.attended_seconds - own.get(p.participant_key, 0.0), 0.0), 3),
            }
            for p in people
        ]
    result: list[dict[str, Any]] = []
    for session_id in ordered:
        if parent_of.get(session_id) in recomputed:
            continue  # folded into its main session
        if session_id in recomputed:
            result += recomputed[session_id]
        else:
            result += [{**row, "breakout_seconds": 0.0} for row in by_session.get(session_id, [])]
    return result
