"""Report queries: plain rows (dicts with documented keys) from the attendance database.

Formatting (table, CSV, JSON, HTML) is elsewhere (:mod:`receiver.reports.formatting`).
Attendance arithmetic is :mod:`receiver.reports.attendance`; this module only loads
rows and hands them over. Attendance of ended sessions is precomputed in
``session_attendance`` (migration 0004) and read from there while current
(database triggers invalidate it on any change); see
:func:`attendance_report` and :func:`refresh_session_attendance`.

Keys of an attendance row (``ATTENDANCE_COLUMNS``):
    session_id, meeting_id, participant_key (custom participant id, else peer
    id), display_name (latest), first_joined_at, last_left_at (UTC),
    attended_seconds (union of the person's intervals), join_count (peers),
    attendance_ratio (attended_seconds / session duration), closed_at_session_end
    (an interval had no leave and was closed at the session end),
    provenance (webhook, api or both), session_reconciled (the REST API
    confirmed the session); and ``display_names``: the person's distinct
    names in join order when there are several, else None.
"""

from __future__ import annotations

import gc
import json
from collections.abc import Iterable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from datetime import UTC, datetime
from typing import Any

import structlog
from sqlalchemy import and_, delete, func, insert, or_, select, text
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session as OrmSession

from receiver.db.engine import writer
from receiver.db.models import (
    Meeting,
    ParticipantInterval,
    Recording,
    Session,
    SessionAttendance,
    SessionAttendanceRefresh,
)
from receiver.db.views import ADVISORY_LOCK_CLASS
from receiver.reports.attendance import Interval, PersonAttendance, peak_concurrency, person_attendance

__all__ = [
    "ATTENDANCE_COLUMNS",
    "RECORDING_COLUMNS",
    "SESSION_COLUMNS",
    "attendance_report",
    "attendance_page",
    "recordings_report",
    "sessions_report",
    "ReportFilter",
    "display_names_of",
    "intervals_by_session",
    "refresh_session_attendance",
]

log = structlog.get_logger(__name__)

ATTENDANCE_COLUMNS = (
    "session_id",
    "meeting_id",
    "participant_key",
    "display_name",
    "first_joined_at",
    "last_left_at",
    "attended_seconds",
    "join_count",
    "attendance_ratio",
    "closed_at_session_end",
    "provenance",
    "session_reconciled",
)
RECORDING_COLUMNS = (
    "recording_id",
    "meeting_id",
    "session_id",
    "status",
    "started_at",
    "stopped_at",
    "duration_seconds",
    "file_size_bytes",
    "output_file_name",
    "download_url",
    "download_url_expires_at",
    "audio_download_url",
)
SESSION_COLUMNS = (
    "session_id",
    "meeting_id",
    "meeting_title",
    "started_at",
    "ended_at",
    "duration_seconds",
    "end_reason",
    "status",
    "participants",
    "peers",
    "peak_concurrency",
    "reconciled",
    "end_inferred",
    "parent_session_id",
    "api_meeting_id",
)


class ReportFilter:
    """Common filters: session, meeting, participant key, and a UTC time window on session start."""

    def __init__(
        self,
        *,
        session_id: str | None = None,
        meeting_id: str | None = None,
        participant: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> None:
        self.session_id = session_id
        self.meeting_id = meeting_id
        self.participant = participant
        self.since = since
        self.until = until

    def session_conditions(self) -> list[Any]:
        """SQL conditions on :class:`Session`."""
        conditions: list[Any] = []
        if self.session_id:
            conditions.append(Session.session_id == self.session_id)
        if self.meeting_id:
            conditions.append(Session.meeting_id == self.meeting_id)
        if self.since:
            conditions.append(Session.started_at >= self.since)
        if self.until:
            conditions.append(Session.started_at < self.until)
        return conditions


@contextmanager
def _gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector while building many acyclic objects (rows, tuples, dicts).

    Allocating ~10^4-10^6 objects triggers repeated full collections that
    cost more than the work itself (measured: 2x on a 10,000-person session).
    Reference counting still frees everything; the collector is re-enabled
    afterwards if it was enabled before (threads doing the same never leave
    it disabled).
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _session_end(row: Any, as_of: datetime) -> datetime | None:
    """End used for arithmetic: the real end, else ``as_of`` for a session still live."""
    if row.ended_at is not None:
        return row.ended_at
    return as_of if row.started_at is not None else None


# Columns read for arithmetic, in Interval's field order (plain rows, not ORM objects: 2x faster).
_INTERVAL_COLUMNS = (
    ParticipantInterval.peer_id,
    ParticipantInterval.participant_key,
    ParticipantInterval.joined_at,
    ParticipantInterval.left_at,
    ParticipantInterval.display_name,
    ParticipantInterval.custom_participant_id,
    ParticipantInterval.source,
    ParticipantInterval.closed_at_session_end,
)
_SESSION_COLUMNS = (Session.session_id, Session.meeting_id, Session.started_at, Session.ended_at, Session.reconciled_at)
_CHUNK = 500  # session ids per IN (...) list
_FEW_SESSIONS = 2000  # more current sessions than this: read session_attendance in one scan


def _interval_rows(db: OrmSession | Connection, session_ids: Sequence[str]) -> dict[str, list[Any]]:
    """Interval rows (``_INTERVAL_COLUMNS`` order, tuple-like) of the sessions, grouped by session id, in row-id order."""
    grouped: dict[str, list[Any]] = {sid: [] for sid in session_ids}
    for chunk_start in range(0, len(session_ids), _CHUNK):
        chunk = list(session_ids[chunk_start : chunk_start + _CHUNK])
        rows = db.execute(
            select(ParticipantInterval.session_id, *_INTERVAL_COLUMNS)
            .where(ParticipantInterval.session_id.in_(chunk))
            .order_by(ParticipantInterval.session_id, ParticipantInterval.id)
        ).all()  # fetchall: iterating the result would fetch row by row (psycopg), 2x slower
        for row in rows:
            grouped[row[0]].append(row[1:])
    return grouped


def intervals_by_session(db: OrmSession | Connection, session_ids: Sequence[str]) -> dict[str, list[Interval]]:
    """Every stored interval of the given sessions, as :class:`Interval` values, grouped by session id.

    Within a session, intervals are in row-id (insertion) order: the tie-break
    of equal join times, as in the ``attendance`` view.
    """
    return {sid: [Interval(*row) for row in rows] for sid, rows in _interval_rows(db, session_ids).items()}


# --------------------------------------------------------------------------
# Precomputed attendance (session_attendance, migration 0004)
# --------------------------------------------------------------------------

_SUMMARY_COLUMNS = (
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


def _store(connection: Connection, computed: Sequence[tuple[str, Sequence[PersonAttendance]]], now: datetime) -> None:
    """Replace the stored rows of ``computed`` ((session id, people)) and mark them current.

    The caller holds the sessions' refresh locks (:func:`_lock_sessions`) and
    computed ``people`` from intervals read after taking them.
    """
    if not computed:
        return
    ids = [session_id for session_id, _ in computed]
    for chunk_start in range(0, len(ids), _CHUNK):
        chunk = ids[chunk_start : chunk_start + _CHUNK]
        connection.execute(delete(SessionAttendance).where(SessionAttendance.session_id.in_(chunk)))
        connection.execute(delete(SessionAttendanceRefresh).where(SessionAttendanceRefresh.session_id.in_(chunk)))
    rows = (row for session_id, people in computed for row in _stored_rows(session_id, people))
    if (
        connection.dialect.name == "postgresql"
    ):  # COPY: ~10x faster than INSERT for the first refresh of a large database
        columns = ", ".join(_STORED_COLUMNS)
        cursor = connection.connection.driver_connection.cursor()
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
    :data:`receiver.db.views.ADVISORY_LOCK_CLASS`), exclusive, until the
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


def _sessions_by_id(connection: Connection, session_ids: Sequence[str]) -> list[Any]:
    """Rows (session_id, meeting_id, started_at, ended_at, reconciled_at) of the given sessions that exist."""
    found: list[Any] = []
    for chunk_start in range(0, len(session_ids), _CHUNK):
        chunk = list(session_ids[chunk_start : chunk_start + _CHUNK])
        found += connection.execute(select(*_SESSION_COLUMNS).where(Session.session_id.in_(chunk))).all()
    return found


def _compute(
    connection: Connection, session_ids: Sequence[str], as_of: datetime, *, store: bool, now: datetime
) -> tuple[dict[str, Any], dict[str, list[PersonAttendance]], int]:
    """Compute the given sessions from their intervals; with ``store``, store the ended ones that could be locked.

    Returns (session rows by id, people by session id, sessions stored).
    Session bounds and intervals are read after the locks are taken.
    """
    locked = _lock_sessions(connection, session_ids) if store else set()
    sessions = {row.session_id: row for row in _sessions_by_id(connection, session_ids)}
    intervals = _interval_rows(connection, list(sessions))
    people = {
        sid: person_attendance(row.started_at, _session_end(row, as_of), intervals[sid])
        for sid, row in sessions.items()
    }
    to_store = [(sid, people[sid]) for sid, row in sessions.items() if sid in locked and row.ended_at is not None]
    if to_store:
        _store(connection, to_store, now)
    return sessions, people, len(to_store)


def refresh_session_attendance(engine: Engine, session_ids: Sequence[str] | None = None) -> int:
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
    for chunk_start in range(0, len(wanted), _CHUNK):
        chunk = wanted[chunk_start : chunk_start + _CHUNK]
        with _gc_paused(), writer(engine).begin() as connection:
            now = datetime.now(UTC)
            stored += _compute(connection, chunk, now, store=True, now=now)[2]
    return stored


def _report_row(session_id: str, meeting_id: str | None, reconciled: bool, p: PersonAttendance) -> dict[str, Any]:
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


def display_names_of(row: dict[str, Any]) -> list[str]:
    """Every distinct display name of an attendance row's person, in join order (``[]`` when none was seen).

    Rows carry ``display_names`` only when there are several (else None: the
    one name is ``display_name``), as ``session_attendance`` stores them:
    a list per row would make every row a container that Python's garbage
    collector traverses, about 0.7 s per 850,000 rows.
    """
    names = row.get("display_names")
    if names:
        return list(names)
    return [row["display_name"]] if row.get("display_name") else []


# PostgreSQL text of the stored-rows query (psycopg parameters), run on the driver's own cursor.
_PG_STORED_SQL = "SELECT " + ", ".join(c.key for c in _SUMMARY_COLUMNS) + ", position FROM session_attendance"
_STREAM_ROWS = 10_000  # rows per chunk when streaming a large read (psycopg stream, libpq >= 17)


def pg_stored_rows_sql(*, by_session: bool, participant: bool) -> str:
    """The PostgreSQL query :func:`attendance_report` reads ``session_attendance`` with (psycopg ``%(name)s`` parameters).

    ``by_session``: only the sessions in ``%(ids)s`` (a text array), read
    through ``pk_session_attendance``; else every row, one sequential scan.
    ``participant``: only ``participant_key = %(participant)s``. Columns: the
    stored columns in ``_SUMMARY_COLUMNS`` order, then ``position``.
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

    cursor = connection.connection.driver_connection.cursor(binary=True)
    try:
        if psycopg.pq.version() >= 170000:
            yield from cursor.stream(sql, params, size=_STREAM_ROWS)
        else:  # pragma: no cover - older libpq: no chunked rows
            cursor.execute(sql, params)
            yield from cursor.fetchall()
    finally:
        cursor.close()


def _session_chunks(ids: list[str]) -> list[list[str] | None]:
    """How ``session_attendance`` is read for sessions ``ids``: ``IN (...)`` lists of ``_CHUNK`` ids through the
    primary key, or (more than ``_FEW_SESSIONS``) ``[None]``: one scan of the table, other sessions' rows skipped."""
    if len(ids) > _FEW_SESSIONS:
        return [None]
    return [ids[start : start + _CHUNK] for start in range(0, len(ids), _CHUNK)]


def _stored_row_sources(
    connection: Connection, flt: ReportFilter, ids: list[str]
) -> Iterator[Iterable[tuple[Any, ...]]]:
    """The stored rows of sessions ``ids`` (and maybe others), as one iterable of tuples per query.

    Tuples are ``_SUMMARY_COLUMNS`` then ``position``. Few sessions:
    ``session_id IN (...)`` in chunks of ``_CHUNK``, through the primary key;
    many (an org-wide report): one scan of ``session_attendance``, the caller
    skips other sessions' rows.
    """
    chunks = _session_chunks(ids)
    if connection.dialect.name == "postgresql":
        for chunk in chunks:
            sql = pg_stored_rows_sql(by_session=chunk is not None, participant=bool(flt.participant))
            yield _pg_stream(connection, sql, {"ids": chunk, "participant": flt.participant})
        return
    query = select(*_SUMMARY_COLUMNS, SessionAttendance.position)
    if flt.participant:
        query = query.where(SessionAttendance.participant_key == flt.participant)
    for chunk in chunks:
        yield connection.execute(query if chunk is None else query.where(SessionAttendance.session_id.in_(chunk))).all()


def _read_stored(connection: Connection, flt: ReportFilter, current: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
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
                skip = session is None
                if skip:
                    continue
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
    with _gc_paused():
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
    with _gc_paused():
        return _attendance(engine, flt, as_of, store, (offset, limit))


def _stored_counts(connection: Connection, flt: ReportFilter, ids: list[str]) -> dict[str, int]:
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


def _compute_stale(
    engine: Engine, stale: list[str], ended: set[str], as_of: datetime, store: bool
) -> tuple[dict[str, Any], dict[str, list[PersonAttendance]]]:
    """Compute sessions ``stale`` from their intervals, storing the ended ones when ``store``; (session rows, people) by id."""
    computed: dict[str, list[PersonAttendance]] = {}
    recomputed: dict[str, Any] = {}  # session rows as read when computing (bounds may have changed since)
    for chunk_start in range(0, len(stale), _CHUNK):
        chunk = stale[chunk_start : chunk_start + _CHUNK]
        done = False
        if store and not ended.isdisjoint(chunk):  # something to store: a write transaction (live ones never are)
            try:
                with writer(engine).begin() as connection:
                    rows, people, _ = _compute(connection, chunk, as_of, store=True, now=datetime.now(UTC))
                done = True
            except (SQLAlchemyError, engine.dialect.dbapi.Error) as exc:  # the DBAPI's own: COPY errors
                log.warning("attendance rows not stored", error=type(exc).__name__, sessions=len(chunk))
        if not done:
            with engine.connect() as connection, connection.begin():
                rows, people, _ = _compute(connection, chunk, as_of, store=False, now=as_of)
        recomputed.update(rows)
        computed.update(people)
    return recomputed, computed


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
            select(*_SESSION_COLUMNS, SessionAttendanceRefresh.session_id.label("refreshed"))
            .select_from(Session)
            .outerjoin(SessionAttendanceRefresh, SessionAttendanceRefresh.session_id == Session.session_id)
            .where(*flt.session_conditions())
            .order_by(Session.started_at, Session.session_id)
        ).all()
        current = {s.session_id: s for s in sessions if s.ended_at is not None and s.refreshed is not None}
        if page is None:
            stored = _read_stored(connection, flt, current)
            reading.close()  # the snapshot is not needed while computing
        else:
            counts = _stored_counts(connection, flt, list(current))
        stale = [s.session_id for s in sessions if s.session_id not in current]
        recomputed, computed = _compute_stale(
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
            stored = _read_stored(connection, flt, {s.session_id: s for s in on_page if s.session_id in current})
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
        result += [_report_row(sid, row.meeting_id, reconciled, p) for p in computed[sid]]
    if page is None:
        return result, len(result)
    return result[skip : skip + page[1]], total


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
    """One row per session (``SESSION_COLUMNS``): bounds, people, peers, peak concurrency, reconciled.

    ``end_inferred``: the end was inferred from inactivity and not confirmed
    yet (``status`` is ``ended``; pages show "ended (inferred)").
    ``parent_session_id``: the main session of a breakout room's session.
    ``api_meeting_id``: the REST API's meeting id when it disagrees with
    ``meeting_id`` (the webhooks'), else None.
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
        intervals = intervals_by_session(db, [s.session_id for s, _ in found])
    result = []
    for session, title in found:
        end = _session_end(session, as_of)
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
