"""The attendance report as a stream of rows, in constant memory (issue #23 item 4: exports of the org-wide report).

Owns :func:`iter_attendance`: the rows of
:func:`receiver.reports.attendance_queries.attendance_report` (same rows,
same order) with the analysts' columns of
:mod:`receiver.reports.analyst_columns`, produced a batch of sessions at a
time, so an export of 1,000,000 intervals holds one batch (at most
:data:`ROWS_PER_BATCH` rows, or one session's people) in memory instead of
every row (about 700 MB for 850,000 rows).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select, text
from sqlalchemy.engine import Connection, Engine

from receiver.db.models import ParticipantInterval, Session, SessionAttendanceRefresh
from receiver.reports.analyst_columns import add_analyst_columns
from receiver.reports.attendance_queries import report_row
from receiver.reports.intervals import CHUNK, SESSION_ROW_COLUMNS
from receiver.reports.precomputed import compute_stale, read_stored, stored_counts
from receiver.reports.rows import ReportFilter, gc_paused

__all__ = ["ROWS_PER_BATCH", "batches", "iter_attendance"]

#: Rows (people, or intervals of sessions still to compute) a batch of sessions aims at.
ROWS_PER_BATCH = 20_000


def batches(weights: Sequence[tuple[str, int]], rows_per_batch: int = ROWS_PER_BATCH) -> Iterator[list[str]]:
    """Session ids grouped in order: a batch closes once its weights reach ``rows_per_batch`` or it holds
    ``CHUNK`` (500) sessions; a session heavier than the limit is a batch of its own. Pure."""
    batch: list[str] = []
    weight = 0
    for session_id, rows in weights:
        if batch and (weight + rows > rows_per_batch or len(batch) >= CHUNK):
            yield batch
            batch, weight = [], 0
        batch.append(session_id)
        weight += rows
    if batch:
        yield batch


def _interval_counts(connection: Connection, session_ids: list[str]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for start in range(0, len(session_ids), CHUNK):
        chunk = session_ids[start : start + CHUNK]
        for session_id, count in connection.execute(
            select(ParticipantInterval.session_id, func.count())
            .where(ParticipantInterval.session_id.in_(chunk))
            .group_by(ParticipantInterval.session_id)
        ):
            counts[session_id] = count
    return counts


def iter_attendance(
    engine: Engine,
    flt: ReportFilter | None = None,
    *,
    as_of: datetime | None = None,
    store: bool = True,
    rows_per_batch: int = ROWS_PER_BATCH,
) -> Iterator[dict[str, Any]]:
    """Attendance rows (``ATTENDANCE_REPORT_COLUMNS`` plus ``display_names``) of the sessions matching ``flt``,
    yielded a batch of sessions at a time.

    The rows and their order are those of :func:`attendance_report`
    (session start, then first join, then key); live sessions are measured
    up to ``as_of`` (default now, UTC); stale ended sessions are computed
    and, with ``store``, stored as that function does. Batches: see
    :func:`batches` (weights are the stored rows of current sessions and the
    intervals of the others). Stored rows are read in one snapshot
    (PostgreSQL ``REPEATABLE READ``) held while the caller consumes the
    iterator: close it (or exhaust it) to release the connection.

    Raises:
        sqlalchemy.exc.SQLAlchemyError: the database could not be read.
    """
    flt = flt or ReportFilter()
    as_of = as_of or datetime.now(UTC)
    postgres = engine.dialect.name == "postgresql"
    reader = engine.execution_options(isolation_level="REPEATABLE READ") if postgres else engine
    with reader.connect() as connection, connection.begin():
        if postgres:
            connection.execute(text("SET LOCAL timezone = 'UTC'"))  # stored rows come back as UTC
        sessions = {
            s.session_id: s
            for s in connection.execute(
                select(*SESSION_ROW_COLUMNS, SessionAttendanceRefresh.session_id.label("refreshed"))
                .select_from(Session)
                .outerjoin(SessionAttendanceRefresh, SessionAttendanceRefresh.session_id == Session.session_id)
                .where(*flt.session_conditions())
                .order_by(Session.started_at, Session.session_id)
            )
        }
        current = {sid for sid, s in sessions.items() if s.ended_at is not None and s.refreshed is not None}
        ended = {sid for sid, s in sessions.items() if s.ended_at is not None}
        counts = stored_counts(connection, flt, sorted(current))
        counts.update(_interval_counts(connection, [sid for sid in sessions if sid not in current]))
        for batch in batches([(sid, counts.get(sid, 0)) for sid in sessions], rows_per_batch):
            with gc_paused():
                rows = _batch_rows(engine, connection, flt, batch, sessions, current, ended, as_of, store)
                add_analyst_columns(connection, rows)
            yield from rows


def _batch_rows(
    engine: Engine,
    connection: Connection,
    flt: ReportFilter,
    batch: list[str],
    sessions: dict[str, Any],
    current: set[str],
    ended: set[str],
    as_of: datetime,
    store: bool,
) -> list[dict[str, Any]]:
    """The report rows of one batch of sessions, in report order."""
    stored = read_stored(connection, flt, {sid: sessions[sid] for sid in batch if sid in current})
    stale = [sid for sid in batch if sid not in current]
    recomputed, computed = compute_stale(engine, stale, ended, as_of, store) if stale else ({}, {})
    rows: list[dict[str, Any]] = []
    for sid in batch:
        if sid in current:
            rows += stored.get(sid, ())
            continue
        if sid not in computed:  # deleted meanwhile
            continue
        session = recomputed[sid]
        reconciled = session.reconciled_at is not None
        people = computed[sid]
        if flt.participant:
            people = [p for p in people if p.participant_key == flt.participant]
        rows += [report_row(sid, session.meeting_id, reconciled, p) for p in people]
    return rows
