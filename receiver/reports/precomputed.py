"""The precomputed attendance store: ``session_attendance`` (migration 0004), written and read.

Attendance of ended sessions is computed once from ``participant_intervals``
and stored, one row per person (``position`` = report order), with a marker
in ``session_attendance_refresh``; database triggers delete the marker on any
change, so stored rows are read only while current. Owns the writes
(:func:`refresh_session_attendance`, :func:`compute_stale`, the per-session
refresh locks) and the reads (:func:`read_stored`, :func:`stored_counts`,
the PostgreSQL streaming read :func:`pg_stored_rows_sql`).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import UTC, datetime
from typing import Any

import structlog
from sqlalchemy import delete, func, insert, select, text
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import SQLAlchemyError

from receiver.db.engine import writer
from receiver.db.models import Session, SessionAttendance, SessionAttendanceRefresh
from receiver.db.triggers import ADVISORY_LOCK_CLASS
from receiver.reports.attendance import PersonAttendance, person_attendance
from receiver.reports.intervals import CHUNK, interval_rows, sessions_by_id
from receiver.reports.rows import ReportFilter, gc_paused, session_end

__all__ = [
    "SUMMARY_COLUMNS",
    "compute_stale",
    "pg_stored_rows_sql",
    "read_stored",
    "refresh_session_attendance",
    "stored_counts",
]

log = structlog.get_logger(__name__)

_FEW_SESSIONS = 2000  # more current sessions than this: read session_attendance in one scan

SUMMARY_COLUMNS = (
    SessionAttendance.session_id,
    SessionAttendance.participant_key,
    SessionAttendance.display_name,
    SessionAttendance.display_names,
    SessionAttendance.first_joined_at,
    SessionAttendance.last_left_at,
    SessionAttendance.attended_seconds,
    SessionAttendance.join_count,
    SessionAttendance.attendance_ratio,
    SessionAttendance.closed_at_session_end,
    SessionAttendance.provenance,
)
_STORED_COLUMNS = (
    "session_id",
    "position",
    "participant_key",
    "display_name",
    "display_names",
    "first_joined_at",
    "last_left_at",
    "attended_seconds",
    "join_count",
    "attendance_ratio",
    "closed_at_session_end",
    "provenance",
)


def _names_json(names: tuple[str, ...], display_name: str | None) -> str | None:
    """``display_names`` as stored: NULL when it is just ``[display_name]`` (or empty), else a JSON array."""
    if len(names) <= 1:
        return None
    return json.dumps(list(names), ensure_ascii=False)


def _stored_rows(session_id: str, people: Sequence[PersonAttendance]) -> Iterator[tuple[Any, ...]]:
    """``session_attendance`` rows (``_STORED_COLUMNS`` order) of one session."""
    for position, p in enumerate(people):
        yield (
            session_id,
            position,
            p.participant_key,
            p.display_name,
            _names_json(p.display_names, p.display_name),
            p.first_joined_at,
            p.last_left_at,
            p.attended_seconds,
            p.join_count,
            p.attendance_ratio,
            bool(p.closed_at_session_end),
            p.provenance,
        )


def _driver_connection(connection: Connection) -> Any:
    """The DBAPI driver's own connection under ``connection`` (psycopg's, for ``COPY`` and binary cursors)."""
    driver = connection.connection.driver_connection
    if driver is None:  # pragma: no cover - only after the pool invalidated the connection
        raise RuntimeError("the database connection is closed")
    return driver


def _store(connection: Connection, computed: Sequence[tuple[str, Sequence[PersonAttendance]]], now: datetime) -> None:
    """Replace the stored rows of ``computed`` ((session id, people)) and mark them current.

    The caller holds the sessions' refresh locks (:func:`_lock_sessions`) and
    computed ``people`` from intervals read after taking them.
    """
    if not computed:
        return
    ids = [session_id for session_id, _ in computed]
    for chunk_start in range(0, len(ids), CHUNK):
        chunk = ids[chunk_start : chunk_start + CHUNK]
        connection.execute(delete(SessionAttendance).where(SessionAttendance.session_id.in_(chunk)))
        connection.execute(delete(SessionAttendanceRefresh).where(SessionAttendanceRefresh.session_id.in_(chunk)))
    rows = (row for session_id, people in computed for row in _stored_rows(session_id, people))
    if (
        connection.dialect.name == "postgresql"
    ):  # COPY: ~10x faster than INSERT for the first refresh of a large database
        columns = ", ".join(_STORED_COLUMNS)
        cursor = _driver_connection(connection).cursor()
        with cursor.copy(f"COPY session_attendance ({columns}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
        cursor.close()
    else:
        batch: list[dict[str, Any]] = []
        for row in rows:
            batch.append(dict(zip(_STORED_COLUMNS, row, strict=False)))
            if len(batch) >= 10_000:
                connection.execute(insert(SessionAttendance), batch)
                batch = []
        if batch:
            connection.execute(insert(SessionAttendance), batch)
    connection.execute(insert(SessionAttendanceRefresh), [{"session_id": sid, "refreshed_at": now} for sid in ids])


def _lock_sessions(connection: Connection, session_ids: Sequence[str]) -> set[str]:
    """Take the refresh locks of the sessions that are free; returns their ids.

    PostgreSQL: each session's advisory lock (class
    :data:`receiver.db.triggers.ADVISORY_LOCK_CLASS`), exclusive, until the
    transaction ends, without waiting: a session whose intervals or bounds
    an uncommitted transaction changed (its trigger holds the lock shared)
    is skipped, and a change made after we took it waits until we commit and
    then invalidates what we stored. SQLite: every session, since the
    caller's write transaction (``BEGIN IMMEDIATE``) excludes other writers.
    """
    if connection.dialect.name != "postgresql" or not session_ids:
        return set(session_ids)
    ordered = sorted(set(session_ids))
    return set(
        connection.execute(
            text(
                "SELECT sid FROM unnest(CAST(:ids AS text[])) WITH ORDINALITY AS u(sid, n)"
                " WHERE pg_try_advisory_xact_lock(:lock_class, hashtext(sid)) ORDER BY n"
            ),
            {"ids": ordered, "lock_class": ADVISORY_LOCK_CLASS},
        ).scalars()
    )


def _compute(
    connection: Connection, session_ids: Sequence[str], as_of: datetime, *, store: bool, now: datetime
) -> tuple[dict[str, Any], dict[str, list[PersonAttendance]], int]:
    """Compute the given sessions from their intervals; with ``store``, store the ended ones that could be locked.

    Returns (session rows by id, people by session id, sessions stored).
    Session bounds and intervals are read after the locks are taken.
    """
    locked = _lock_sessions(connection, session_ids) if store else set()
    sessions = {row.session_id: row for row in sessions_by_id(connection, session_ids)}
    intervals = interval_rows(connection, list(sessions))
    people = {
        sid: person_attendance(row.started_at, session_end(row, as_of), intervals[sid]) for sid, row in sessions.items()
    }
    to_store = [(sid, people[sid]) for sid, row in sessions.items() if sid in locked and row.ended_at is not None]
    if to_store:
        _store(connection, to_store, now)
    return sessions, people, len(to_store)


def refresh_session_attendance(
    engine: Engine,
    session_ids: Sequence[str] | None = None,
    *,
    on_progress: Callable[[int, int], None] | None = None,
) -> int:
    """Compute and store the attendance (``session_attendance``) of ended sessions, so reports read it precomputed.

    Optional: reports store what they find stale themselves; calling this
    after a session ended or was reconciled (or after migrating a large
    database) only makes the next report faster. Safe at any time,
    concurrently with writers and other refreshes: see :func:`_lock_sessions`.
    Commits every 500 sessions (SQLite: ``BEGIN IMMEDIATE`` each time).

    Args:
        engine: the database.
        session_ids: sessions to recompute (live and unknown ones are
            skipped); None: every ended session whose rows are not current.
        on_progress: called with (sessions handled, sessions to handle)
            once before the first chunk and after each committed chunk.

    Returns:
        The number of sessions stored (a session being written right now is
        skipped: the next report or refresh stores it).

    Raises:
        sqlalchemy.exc.SQLAlchemyError: database errors (chunks committed
        before stay stored: they are correct on their own).
    """
    with engine.connect() as connection:
        query = select(Session.session_id).where(Session.ended_at.is_not(None))
        if session_ids is None:
            query = query.outerjoin(
                SessionAttendanceRefresh, SessionAttendanceRefresh.session_id == Session.session_id
            ).where(SessionAttendanceRefresh.session_id.is_(None))
            wanted = list(connection.execute(query.order_by(Session.session_id)).scalars())
        else:
            wanted = list(dict.fromkeys(session_ids))
    stored = 0
    if on_progress is not None:
        on_progress(0, len(wanted))
    for chunk_start in range(0, len(wanted), CHUNK):
        chunk = wanted[chunk_start : chunk_start + CHUNK]
        with gc_paused(), writer(engine).begin() as connection:
            now = datetime.now(UTC)
            stored += _compute(connection, chunk, now, store=True, now=now)[2]
        if on_progress is not None:
            on_progress(chunk_start + len(chunk), len(wanted))
    return stored


# PostgreSQL text of the stored-rows query (psycopg parameters), run on the driver's own cursor.
_PG_STORED_SQL = "SELECT " + ", ".join(c.key for c in SUMMARY_COLUMNS) + ", position FROM session_attendance"
_STREAM_ROWS = 10_000  # rows per chunk when streaming a large read (psycopg stream, libpq >= 17)


def pg_stored_rows_sql(*, by_session: bool, participant: bool) -> str:
    """The PostgreSQL query :func:`attendance_report` reads ``session_attendance`` with (psycopg ``%(name)s`` parameters).

    ``by_session``: only the sessions in ``%(ids)s`` (a text array), read
    through ``pk_session_attendance``; else every row, one sequential scan.
    ``participant``: only ``participant_key = %(participant)s``. Columns: the
    stored columns in ``SUMMARY_COLUMNS`` order, then ``position``.
    """
    conditions = (["session_id = ANY(%(ids)s)"] if by_session else []) + (
        ["participant_key = %(participant)s"] if participant else []
    )
    return _PG_STORED_SQL + (" WHERE " + " AND ".join(conditions) if conditions else "")


def _pg_stream(connection: Connection, sql: str, params: dict[str, Any]) -> Iterator[tuple[Any, ...]]:
    """Rows of ``sql`` as plain tuples from psycopg's binary protocol, in this connection's transaction.

    Streamed in chunks of ``_STREAM_ROWS`` where libpq allows it (17+), so
    PostgreSQL produces and sends rows while Python turns earlier ones into
    report rows (the two run on different cores); else fetched at once.
    SQLAlchemy's result layer is skipped: on 850,000 rows it cost ~1 s of
    the ~3 s org-wide report (``receiver bench reports``). Timestamps come
    back aware in the session time zone, which the report sets to UTC.
    """
    import psycopg

    cursor = _driver_connection(connection).cursor(binary=True)
    try:
        if psycopg.pq.version() >= 170000:
            yield from cursor.stream(sql, params, size=_STREAM_ROWS)
        else:  # pragma: no cover - older libpq: no chunked rows
            cursor.execute(sql, params)
            yield from cursor.fetchall()
    finally:
        cursor.close()


def _session_chunks(ids: list[str]) -> list[list[str] | None]:
    """How ``session_attendance`` is read for sessions ``ids``: ``IN (...)`` lists of ``CHUNK`` ids through the
    primary key, or (more than ``_FEW_SESSIONS``) ``[None]``: one scan of the table, other sessions' rows skipped."""
    if len(ids) > _FEW_SESSIONS:
        return [None]
    return [ids[start : start + CHUNK] for start in range(0, len(ids), CHUNK)]


def _stored_row_sources(
    connection: Connection, flt: ReportFilter, ids: list[str]
) -> Iterator[Iterable[tuple[Any, ...]]]:
    """The stored rows of sessions ``ids`` (and maybe others), as one iterable of tuples per query.

    Tuples are ``SUMMARY_COLUMNS`` then ``position``. Few sessions:
    ``session_id IN (...)`` in chunks of ``CHUNK``, through the primary key;
    many (an org-wide report): one scan of ``session_attendance``, the caller
    skips other sessions' rows.
    """
    chunks = _session_chunks(ids)
    if connection.dialect.name == "postgresql":
        for chunk in chunks:
            sql = pg_stored_rows_sql(by_session=chunk is not None, participant=bool(flt.participant))
            yield _pg_stream(connection, sql, {"ids": chunk, "participant": flt.participant})
        return
    query = select(*SUMMARY_COLUMNS, SessionAttendance.position)
    if flt.participant:
        query = query.where(SessionAttendance.participant_key == flt.participant)
    for chunk in chunks:
        yield connection.execute(query if chunk is None else query.where(SessionAttendance.session_id.in_(chunk))).all()


def read_stored(connection: Connection, flt: ReportFilter, current: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """Report rows of the ``current`` sessions (id -> session row, found current in this same snapshot), by session.

    Rows are placed by ``position`` rather than sorted by the database
    (sorting a million rows costs it more than the whole read); see
    :func:`_stored_row_sources` for the queries.
    """
    by_session: dict[str, list[Any]] = {}
    if not current:
        return by_session
    gaps: set[str] = set()  # sessions with rows out of position order (or filtered out): holes to drop
    loads = json.loads
    # Repeated strings are shared, not kept once per row (~140 bytes a row, memory the report must fault in).
    provenances: dict[str, str] = {}
    for source in _stored_row_sources(connection, flt, list(current)):
        rows: list[Any] = []
        current_id = None
        session_id = None
        meeting_id = None
        reconciled = False
        skip = False
        for sid, key, name, names, first, last, seconds, joins, ratio, closed, provenance, position in source:
            if sid != current_id:
                current_id = sid
                session = current.get(sid)
                if session is None:
                    skip = True
                    continue
                skip = False
                rows = by_session.setdefault(sid, [])
                session_id, meeting_id, reconciled = (
                    session.session_id,
                    session.meeting_id,
                    session.reconciled_at is not None,
                )
            elif skip:
                continue
            row = {
                "session_id": session_id,
                "meeting_id": meeting_id,
                "participant_key": key,
                "display_name": name,
                "first_joined_at": first,
                "last_left_at": last,
                "attended_seconds": seconds,
                "join_count": joins,
                "attendance_ratio": ratio,
                "closed_at_session_end": bool(closed),
                "provenance": provenances.setdefault(provenance, provenance),
                "session_reconciled": reconciled,
                "display_names": None if names is None else loads(names),
            }
            if position == len(rows):
                rows.append(row)
            else:
                gaps.add(sid)
                if position > len(rows):
                    rows.extend([None] * (position + 1 - len(rows)))
                rows[position] = row
    for sid in gaps:
        by_session[sid] = [row for row in by_session[sid] if row is not None]
    return by_session


def stored_counts(connection: Connection, flt: ReportFilter, ids: list[str]) -> dict[str, int]:
    """``session_attendance`` rows per session of ``ids`` (those of ``flt.participant`` only, when set); sessions without rows are absent."""
    query = select(SessionAttendance.session_id, func.count()).group_by(SessionAttendance.session_id)
    if flt.participant:
        query = query.where(SessionAttendance.participant_key == flt.participant)
    wanted = set(ids)
    counts: dict[str, int] = {}
    for chunk in _session_chunks(ids):
        for sid, n in connection.execute(
            query if chunk is None else query.where(SessionAttendance.session_id.in_(chunk))
        ):
            if sid in wanted:
                counts[sid] = n
    return counts


def compute_stale(
    engine: Engine, stale: list[str], ended: set[str], as_of: datetime, store: bool
) -> tuple[dict[str, Any], dict[str, list[PersonAttendance]]]:
    """Compute sessions ``stale`` from their intervals, storing the ended ones when ``store``; (session rows, people) by id."""
    dbapi = engine.dialect.dbapi
    # The DBAPI's own errors too: COPY raises them unwrapped.
    store_errors: tuple[type[Exception], ...] = (
        (SQLAlchemyError, dbapi.Error) if dbapi is not None else (SQLAlchemyError,)
    )
    computed: dict[str, list[PersonAttendance]] = {}
    recomputed: dict[str, Any] = {}  # session rows as read when computing (bounds may have changed since)
    for chunk_start in range(0, len(stale), CHUNK):
        chunk = stale[chunk_start : chunk_start + CHUNK]
        done = False
        if store and not ended.isdisjoint(chunk):  # something to store: a write transaction (live ones never are)
            try:
                with writer(engine).begin() as connection:
                    rows, people, _ = _compute(connection, chunk, as_of, store=True, now=datetime.now(UTC))
                done = True
            except store_errors as exc:
                log.warning("attendance rows not stored", error=type(exc).__name__, sessions=len(chunk))
        if not done:
            with engine.connect() as connection, connection.begin():
                rows, people, _ = _compute(connection, chunk, as_of, store=False, now=as_of)
        recomputed.update(rows)
        computed.update(people)
    return recomputed, computed
