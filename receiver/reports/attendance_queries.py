"""The attendance report and its pages: stored rows where current, computed (and stored) otherwise.

Owns :func:`attendance_report` (every row of the matching sessions) and
:func:`attendance_page` (one ``limit``/``offset`` slice of the same rows,
with the total), both read in one snapshot; the store they read and fill is
:mod:`receiver.reports.precomputed`; and :func:`attendance_with_breakouts`
(``receiver report attendance --include-breakouts``, issue #18).

Breakout rooms: reconciliation links each breakout room's session to the
session it was opened from (``sessions.parent_session_id``, from the REST
API's ``breakout_rooms``). By default every session, breakout rooms
included, is reported on its own. With breakouts included, a main session's
people are measured over the intervals of the main session **and** of its
breakout rooms (the union, clipped to the main session's bounds, so time in
a breakout room counts as time in the meeting, and a person is never
counted twice for the same instant); the breakout rooms' own rows are then
left out when their main session is in the report. ``breakout_seconds`` is
the time that was added that way. A person is matched across rooms by
``participant_key``: the custom participant id matches; a person keyed by
peer id (no custom id) joins a breakout room as another peer and so appears
as another person.
"""

from __future__ import annotations

from contextlib import ExitStack
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.orm import Session as OrmSession

from receiver.db.models import Session, SessionAttendanceRefresh
from receiver.reports.attendance import PersonAttendance, person_attendance
from receiver.reports.intervals import CHUNK, SESSION_ROW_COLUMNS, interval_rows, intervals_by_session
from receiver.reports.precomputed import compute_stale, read_stored, stored_counts
from receiver.reports.rows import ReportFilter, gc_paused, session_end

__all__ = ["attendance_page", "attendance_report", "attendance_with_breakouts", "report_row", "session_attendance_rows"]


def attendance_report(
    engine: Engine, flt: ReportFilter | None = None, *, as_of: datetime | None = None, store: bool = True
) -> list[dict[str, Any]]:
    """Attendance rows (``ATTENDANCE_COLUMNS`` plus ``display_names``) for the sessions matching ``flt``.

    ``display_names`` is the list of the person's distinct names in join
    order when there are several, else None (the name is ``display_name``);
    :func:`display_names_of` gives the full list either way.

    Sessions still live are measured up to ``as_of`` (default: now, UTC).
    Rows are ordered by session start, then first join (then key).

    Ended sessions whose precomputed rows (``session_attendance``) are
    current are read from there, in one snapshot (PostgreSQL ``REPEATABLE
    READ``); the others are computed from ``participant_intervals``. With
    ``store`` (default) that computation runs in a write transaction that
    also stores the ended ones (as :func:`refresh_session_attendance`), so
    the next report reads them; if that transaction fails (e.g. a read-only
    database user, a lock timeout) it is logged and they are computed
    without storing.

    Raises:
        sqlalchemy.exc.SQLAlchemyError: the database could not be read.
    """
    flt = flt or ReportFilter()
    as_of = as_of or datetime.now(UTC)
    with gc_paused():
        return _attendance(engine, flt, as_of, store, None)[0]


def attendance_page(
    engine: Engine,
    flt: ReportFilter | None = None,
    *,
    limit: int,
    offset: int = 0,
    as_of: datetime | None = None,
    store: bool = True,
) -> tuple[list[dict[str, Any]], int]:
    """Rows ``[offset, offset + limit)`` of :func:`attendance_report` (same rows, same order) and the total count.

    Only the sessions on the page have their stored rows read; the others
    are counted (one ``GROUP BY session_id`` over ``pk_session_attendance``),
    so a page of an org-wide report costs a count, not 850,000 rows in
    memory (``receiver bench reports``). Stale and live sessions are
    computed (and stored) as by :func:`attendance_report`. Counts and rows
    come from one snapshot (PostgreSQL ``REPEATABLE READ``).

    Raises:
        ValueError: ``limit`` < 1 or ``offset`` < 0.
        sqlalchemy.exc.SQLAlchemyError: the database could not be read.
    """
    if limit < 1 or offset < 0:
        raise ValueError("limit must be at least 1 and offset at least 0")
    flt = flt or ReportFilter()
    as_of = as_of or datetime.now(UTC)
    with gc_paused():
        return _attendance(engine, flt, as_of, store, (offset, limit))


def _attendance(
    engine: Engine, flt: ReportFilter, as_of: datetime, store: bool, page: tuple[int, int] | None
) -> tuple[list[dict[str, Any]], int]:
    """:func:`attendance_report` (``page`` None) or :func:`attendance_page` (``page`` = (offset, limit)): (rows, total)."""
    postgres = engine.dialect.name == "postgresql"
    reader = engine.execution_options(isolation_level="REPEATABLE READ") if postgres else engine
    with ExitStack() as reading:
        connection = reading.enter_context(reader.connect())
        reading.enter_context(connection.begin())
        if postgres:
            connection.execute(text("SET LOCAL timezone = 'UTC'"))  # see _pg_stream
        sessions = connection.execute(
            select(*SESSION_ROW_COLUMNS, SessionAttendanceRefresh.session_id.label("refreshed"))
            .select_from(Session)
            .outerjoin(SessionAttendanceRefresh, SessionAttendanceRefresh.session_id == Session.session_id)
            .where(*flt.session_conditions())
            .order_by(Session.started_at, Session.session_id)
        ).all()
        current = {s.session_id: s for s in sessions if s.ended_at is not None and s.refreshed is not None}
        if page is None:
            stored = read_stored(connection, flt, current)
            reading.close()  # the snapshot is not needed while computing
        else:
            counts = stored_counts(connection, flt, list(current))
        stale = [s.session_id for s in sessions if s.session_id not in current]
        recomputed, computed = compute_stale(
            engine, stale, {s.session_id for s in sessions if s.ended_at is not None}, as_of, store
        )
        if flt.participant:
            computed = {
                sid: [p for p in people if p.participant_key == flt.participant] for sid, people in computed.items()
            }
        skip = 0
        if page is not None:  # the sessions on the page, then their stored rows from the same snapshot as the counts
            offset, limit = page
            counts.update((sid, len(people)) for sid, people in computed.items())
            on_page: list[Any] = []
            position = 0
            for session in sessions:
                count = counts.get(session.session_id, 0)
                if position < offset + limit and position + count > offset:
                    if not on_page:
                        skip = offset - position
                    on_page.append(session)
                position += count
            sessions = on_page
            stored = read_stored(connection, flt, {s.session_id: s for s in on_page if s.session_id in current})
            total = sum(counts.values())
    result: list[dict[str, Any]] = []
    for session in sessions:
        sid = session.session_id
        if sid in current:
            result += stored.get(sid, ())
            continue
        if sid not in computed:  # deleted meanwhile
            continue
        row = recomputed[sid]
        reconciled = row.reconciled_at is not None
        result += [report_row(sid, row.meeting_id, reconciled, p) for p in computed[sid]]
    if page is None:
        return result, len(result)
    return result[skip : skip + page[1]], total


def attendance_with_breakouts(
    engine: Engine, flt: ReportFilter | None = None, *, as_of: datetime | None = None
) -> list[dict[str, Any]]:
    """:func:`attendance_report` rows with breakout time folded into main sessions (``--include-breakouts``).

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
        for chunk_start in range(0, len(ordered), CHUNK):
            chunk = ordered[chunk_start : chunk_start + CHUNK]
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
                **report_row(parent_id, parent.meeting_id, parent.reconciled_at is not None, p),
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


def session_attendance_rows(
    db: OrmSession | Connection, session_id: str, *, as_of: datetime
) -> tuple[Any | None, list[dict[str, Any]]]:
    """One session's attendance rows, computed inside the caller's transaction (it sees its unflushed-then-flushed writes).

    The rows of :func:`attendance_report` for that session (same keys, same
    arithmetic, same order), computed from ``participant_intervals`` as they
    stand in ``db``'s transaction, without reading or filling the
    ``session_attendance`` store: the outbound webhook
    (:mod:`receiver.processing.outbound`) builds its body in the
    transaction that marks the session reconciled. A live session is
    measured up to ``as_of`` (aware UTC).

    Returns:
        (the session's row: ``session_id, meeting_id, started_at, ended_at,
        reconciled_at``; or None when there is no such session, with no
        rows), and the attendance rows.

    Raises:
        sqlalchemy.exc.SQLAlchemyError: the database could not be read.
    """
    session = db.execute(select(*SESSION_ROW_COLUMNS).where(Session.session_id == session_id)).first()
    if session is None:
        return None, []
    people = person_attendance(
        session.started_at, session_end(session, as_of), interval_rows(db, [session_id])[session_id]
    )
    reconciled = session.reconciled_at is not None
    return session, [report_row(session_id, session.meeting_id, reconciled, p) for p in people]


def report_row(session_id: str, meeting_id: str | None, reconciled: bool, p: PersonAttendance) -> dict[str, Any]:
    """One attendance report row (``ATTENDANCE_COLUMNS`` plus ``display_names``) of a computed person."""
    return {
        "session_id": session_id,
        "meeting_id": meeting_id,
        "participant_key": p.participant_key,
        "display_name": p.display_name,
        "first_joined_at": p.first_joined_at,
        "last_left_at": p.last_left_at,
        "attended_seconds": p.attended_seconds,
        "join_count": p.join_count,
        "attendance_ratio": p.attendance_ratio,
        "closed_at_session_end": bool(p.closed_at_session_end),
        "provenance": p.provenance,
        "session_reconciled": reconciled,
        "display_names": list(p.display_names) if len(p.display_names) > 1 else None,
    }
