"""Keyset pages of the attendance report: a page after a cursor, and the total (exact, or estimated when large).

Owns :class:`PageKey` (where a page ends: session start, session id,
``session_attendance.position``), :func:`attendance_after` (the rows after
a key, in the report's order) and :func:`attendance_total`. ``GET
/api/attendance`` pages with them (:mod:`receiver.web.api`): a page deep in a
listing of 10,000,000 intervals costs what the first one costs, since
nothing before the cursor is read or counted (``receiver bench reports``,
README "Performance").

Order: sessions by start, then session id (index
``ix_sessions_started_at_session_id``, migration 0012), sessions without a
start last (on both databases); inside a session, people in report order
(first join, then key: ``position``). The same rows and order as
:func:`receiver.reports.attendance_queries.attendance_report` on
PostgreSQL; on SQLite that report puts sessions without a start first.

Current sessions are read from ``session_attendance`` (one query joining
``sessions``, the refresh marker and the stored rows, ``LIMIT`` page size +
1); the stale and live sessions between the cursor and the last stored row
read are computed (and stored when ended), as the report does.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import and_, func, literal, or_, select, text, tuple_
from sqlalchemy.engine import Connection, Engine

from receiver.db.models import ParticipantInterval, Session, SessionAttendance, SessionAttendanceRefresh
from receiver.reports.attendance_queries import report_row
from receiver.reports.intervals import SESSION_ROW_COLUMNS
from receiver.reports.precomputed import SUMMARY_COLUMNS, compute_stale
from receiver.reports.rows import ReportFilter, gc_paused

__all__ = ["ESTIMATE_ABOVE", "PageKey", "attendance_after", "attendance_total"]

#: Totals whose PostgreSQL planner estimate exceeds this many rows are returned estimated, not counted.
ESTIMATE_ABOVE = 50_000


@dataclass(frozen=True)
class PageKey:
    """The place of one attendance row in the listing: what a cursor carries.

    ``started_at``: the session's start (aware UTC; None for a session
    without a known start, listed last); ``session_id``; ``position``: the
    person's place in the session's report order, from 0.
    """

    started_at: datetime | None
    session_id: str
    position: int


def _stored_select(flt: ReportFilter) -> Any:
    """Stored rows of current sessions matching ``flt``: session columns, then ``SUMMARY_COLUMNS``, then position."""
    query = (
        select(
            Session.started_at, Session.meeting_id, Session.reconciled_at, *SUMMARY_COLUMNS, SessionAttendance.position
        )
        .select_from(Session)
        .join(SessionAttendanceRefresh, SessionAttendanceRefresh.session_id == Session.session_id)
        .join(SessionAttendance, SessionAttendance.session_id == Session.session_id)
        .where(Session.ended_at.is_not(None), *flt.session_conditions())
    )
    if flt.participant:
        query = query.where(SessionAttendance.participant_key == flt.participant)
    return query


def _after(started: bool, after: PageKey | None) -> list[Any]:
    """Conditions on ``sessions`` for the sessions at or after ``after``'s session, in the segment ``started``
    (sessions with a start) or not; empty when the whole segment is wanted."""
    if after is None:
        return []
    if started:
        return [_key_column() >= _key_value(after)]
    return [Session.session_id >= after.session_id]


def _key_column() -> Any:
    """``(sessions.started_at, sessions.session_id)``: the listing's session order (a row value)."""
    return tuple_(Session.started_at, Session.session_id)


def _key_value(key: PageKey) -> Any:
    """``key``'s session as a row value bound with the columns' types (UTC text on SQLite, timestamptz on PostgreSQL)."""
    return tuple_(literal(key.started_at, Session.started_at.type), literal(key.session_id, Session.session_id.type))


def _segment_key(started: bool) -> list[Any]:
    return [Session.started_at, Session.session_id] if started else [Session.session_id]


def _stored_rows(
    connection: Connection, flt: ReportFilter, started: bool, after: PageKey | None, limit: int
) -> list[Any]:
    """Up to ``limit`` stored rows of one segment after ``after`` (exclusive), in listing order."""
    query = _stored_select(flt).where(
        Session.started_at.is_not(None) if started else Session.started_at.is_(None), *_after(started, after)
    )
    if after is not None:
        same = (
            and_(Session.started_at == after.started_at, Session.session_id == after.session_id)
            if started
            else Session.session_id == after.session_id
        )
        query = query.where(or_(~same, SessionAttendance.position > after.position))
    return list(connection.execute(query.order_by(*_segment_key(started), SessionAttendance.position).limit(limit)))


def _stale_sessions(
    connection: Connection, flt: ReportFilter, started: bool, after: PageKey | None, until: Any | None
) -> list[Any]:
    """Sessions of one segment from ``after``'s session to ``until`` (last stored row read; None: segment end)
    whose rows are not current (live, or changed since stored): session rows in listing order."""
    query = (
        select(*SESSION_ROW_COLUMNS)
        .select_from(Session)
        .outerjoin(SessionAttendanceRefresh, SessionAttendanceRefresh.session_id == Session.session_id)
        .where(
            or_(SessionAttendanceRefresh.session_id.is_(None), Session.ended_at.is_(None)),
            Session.started_at.is_not(None) if started else Session.started_at.is_(None),
            *flt.session_conditions(),
            *_after(started, after),
        )
    )
    if until is not None:
        query = query.where(_key_column() <= _key_value(until) if started else Session.session_id <= until.session_id)
    return list(connection.execute(query.order_by(*_segment_key(started))))


def _stored_item(row: Any) -> tuple[PageKey, dict[str, Any]]:
    """(key, report row) of a row of :func:`_stored_select`."""
    started_at, meeting_id, reconciled_at = row[0], row[1], row[2]
    values = dict(zip((c.key for c in SUMMARY_COLUMNS), row[3:-1], strict=True))
    position = row[-1]
    names = values["display_names"]
    report = {
        **values,
        "meeting_id": meeting_id,
        "closed_at_session_end": bool(values["closed_at_session_end"]),
        "session_reconciled": reconciled_at is not None,
        "display_names": None if names is None else json.loads(names),
    }
    return PageKey(_utc(started_at), values["session_id"], position), report


def _utc(value: datetime | None) -> datetime | None:
    """Aware UTC (SQLite gives the column's stored value back aware already; PostgreSQL in the session zone)."""
    return None if value is None else value.astimezone(UTC)


def _segment(
    engine: Engine,
    connection: Connection,
    flt: ReportFilter,
    started: bool,
    after: PageKey | None,
    want: int,
    as_of: datetime,
    store: bool,
) -> list[tuple[PageKey, dict[str, Any]]]:
    """Up to ``want`` rows of one segment after ``after``, stored and computed merged in listing order."""
    stored = [_stored_item(row) for row in _stored_rows(connection, flt, started, after, want)]
    until = stored[-1][0] if len(stored) == want else None
    stale = _stale_sessions(connection, flt, started, after, until)
    if not stale:
        return stored
    recomputed, computed = compute_stale(
        engine, [s.session_id for s in stale], {s.session_id for s in stale if s.ended_at is not None}, as_of, store
    )
    items = list(stored)
    for session in stale:
        sid = session.session_id
        if sid not in computed:  # deleted meanwhile
            continue
        row = recomputed[sid]
        for position, person in enumerate(computed[sid]):
            if flt.participant and person.participant_key != flt.participant:
                continue
            key = PageKey(_utc(session.started_at), sid, position)
            if after is not None and key.session_id == after.session_id and position <= after.position:
                continue
            items.append((key, report_row(sid, row.meeting_id, row.reconciled_at is not None, person)))
    if started:
        items.sort(key=lambda item: (item[0].started_at, item[0].session_id, item[0].position))
    else:
        items.sort(key=lambda item: (item[0].session_id, item[0].position))
    return items[:want]


def attendance_after(
    engine: Engine,
    flt: ReportFilter | None = None,
    *,
    limit: int,
    after: PageKey | None = None,
    as_of: datetime | None = None,
    store: bool = True,
) -> tuple[list[dict[str, Any]], PageKey | None]:
    """Up to ``limit`` attendance rows after ``after`` (None: from the start), and the key of the next page.

    Rows are those of :func:`receiver.reports.attendance_queries.attendance_report`
    (``ATTENDANCE_COLUMNS`` plus ``display_names``), in the listing order of
    this module. The returned key is the last row's when more rows follow,
    else None (the last page). A key whose row no longer exists still works:
    the page starts at the first row after where it was. Stored rows come
    from one snapshot (PostgreSQL ``REPEATABLE READ``); live sessions are
    measured up to ``as_of`` (default: now, UTC).

    Raises:
        ValueError: ``limit`` < 1.
        sqlalchemy.exc.SQLAlchemyError: the database could not be read.
    """
    if limit < 1:
        raise ValueError("limit must be at least 1")
    flt = flt or ReportFilter()
    as_of = as_of or datetime.now(UTC)
    postgres = engine.dialect.name == "postgresql"
    reader = engine.execution_options(isolation_level="REPEATABLE READ") if postgres else engine
    want = limit + 1
    items: list[tuple[PageKey, dict[str, Any]]] = []
    with gc_paused(), reader.connect() as connection, connection.begin():
        if postgres:
            connection.execute(text("SET LOCAL timezone = 'UTC'"))
        segments = [True, False] if after is None or after.started_at is not None else [False]
        for started in segments:
            start = after if after is not None and (after.started_at is not None) == started else None
            items += _segment(engine, connection, flt, started, start, want - len(items), as_of, store)
            if len(items) >= want:
                break
    rows = [row for _, row in items[:limit]]
    return rows, (items[limit - 1][0] if len(items) > limit else None)


def _count_select(flt: ReportFilter) -> tuple[Any, Any]:
    """(stored rows of current sessions, distinct people of the other sessions) matching ``flt``, as counts."""
    stored = _stored_select(flt).with_only_columns(func.count())
    people = (
        select(ParticipantInterval.session_id, ParticipantInterval.participant_key)
        .join(Session, Session.session_id == ParticipantInterval.session_id)
        .outerjoin(SessionAttendanceRefresh, SessionAttendanceRefresh.session_id == Session.session_id)
        .where(
            or_(SessionAttendanceRefresh.session_id.is_(None), Session.ended_at.is_(None)), *flt.session_conditions()
        )
        .distinct()
    )
    if flt.participant:
        people = people.where(ParticipantInterval.participant_key == flt.participant)
    return stored, select(func.count()).select_from(people.subquery())


def _estimate(connection: Connection, query: Any) -> int:
    """The PostgreSQL planner's estimate of the rows ``query`` (a Select) returns (``EXPLAIN (FORMAT JSON)``; not run)."""
    compiled = query.compile(dialect=connection.dialect)
    plan = connection.exec_driver_sql("EXPLAIN (FORMAT JSON) " + str(compiled), compiled.params).scalar_one()
    if isinstance(plan, str):
        plan = json.loads(plan)
    return int(plan[0]["Plan"]["Plan Rows"])


def attendance_total(engine: Engine, flt: ReportFilter | None = None, *, estimate: bool = True) -> tuple[int, bool]:
    """The number of attendance rows matching ``flt`` and whether it is exact: ``(total, exact)``.

    Exact: stored rows of current sessions plus the distinct people of the
    others (what :func:`attendance_after` would compute). On PostgreSQL,
    when the planner estimates more than :data:`ESTIMATE_ABOVE` (50,000) stored rows,
    that estimate is returned instead (``exact`` False; from the table
    statistics, so typically within a few percent after ``ANALYZE``, but
    not guaranteed): counting 8,500,000 rows took 2.3 s, the estimate takes
    about a millisecond (``receiver bench reports``). SQLite always counts,
    and so does ``estimate=False``.

    Raises:
        sqlalchemy.exc.SQLAlchemyError: the database could not be read.
    """
    flt = flt or ReportFilter()
    stored, people = _count_select(flt)
    with engine.connect() as connection:
        if estimate and engine.dialect.name == "postgresql":
            planned = _estimate(connection, _stored_select(flt))
            if planned > ESTIMATE_ABOVE:
                return planned, False
        return int(connection.execute(stored).scalar_one()) + int(connection.execute(people).scalar_one()), True
