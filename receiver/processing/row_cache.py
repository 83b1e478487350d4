"""The worker's per-transaction row cache and the multi-row writes it flushes (part of the write layer).

:class:`RowCache` holds the rows a batch of events (or one reconciliation)
loaded and locked, so each is read once per transaction, and collects the
writes nothing reads back (intervals as :class:`IntervalRow`, reconcile
tasks, status history) until :meth:`RowCache.flush` sends one multi-row
``INSERT ... ON CONFLICT`` per table. The functions that decide what to
write are in :mod:`receiver.processing.writes`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, String, Table, Text, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session as OrmSession

from receiver.db.models import (
    TASK_PENDING,
    Livestream,
    LivestreamSession,
    LivestreamStatusChange,
    Meeting,
    ParticipantInterval,
    ReconcileTask,
    Recording,
    RecordingStatusChange,
    Session,
    SessionArtifact,
)
from receiver.processing.columns import fit_row, fit_values
from receiver.processing.suppression import ErasedSubjects

__all__ = ["IntervalRow", "RowCache", "UpsertInsert"]

# A dialect's INSERT with ON CONFLICT support (PostgreSQL or SQLite).
UpsertInsert = postgresql.Insert | sqlite.Insert

_INTERVALS = ParticipantInterval.__table__
# The columns a webhook event or the REST API (source: webhook -> both;
# meeting_id: filled when missing) may change on an existing interval; the keys
# are written only when the row is inserted. Every interval write happens under
# its session's row lock, so the values written are the ones read under it.
_INTERVAL_UPDATED = (
    "meeting_id",
    "source",
    "participant_key",
    "custom_participant_id",
    "user_id",
    "display_name",
    "preset_name",
    "joined_at",
    "left_at",
    "closed_at_session_end",
    "updated_at",
    "invalid_fields",
    "truncated_fields",
)
_INTERVAL_COLUMNS = ("session_id", "peer_id", *_INTERVAL_UPDATED)


class _BulkWrite:
    """A multi-row ``INSERT ... ON CONFLICT`` :meth:`RowCache.flush` runs.

    ``columns``: the row tuples' column order; ``keys``: the conflict target
    (a unique constraint); ``updated``: the columns set from the new row on
    conflict (none: ``DO NOTHING``).
    """

    def __init__(self, table: Table, columns: tuple[str, ...], keys: tuple[str, ...], updated: tuple[str, ...]) -> None:
        self.table = table
        self.columns = columns
        self.keys = keys
        self.updated = updated
        self.unnest_sql = self._unnest_sql()
        self._upserts: dict[str, UpsertInsert] = {}
        limits = {c.name: c.type.length for c in table.columns if isinstance(c.type, String)}
        self._limits = [(i, limits[name]) for i, name in enumerate(columns) if name in limits]

    def execute(self, connection: Connection, rows: list[tuple[Any, ...]]) -> None:
        """Write ``rows`` (tuples in :attr:`columns` order, no two with the same keys); raises on database errors.

        PostgreSQL: ONE statement whose text never changes (so it is prepared
        once): ``INSERT ... SELECT * FROM unnest(<one array per column>)``.
        SQLite: an executemany of the one-row upsert (in-process: no round
        trips to save). Strings are fitted to their columns
        (:func:`receiver.processing.columns.fit_text`) first.
        """
        rows = [self._fitted(row) for row in rows]
        if connection.dialect.name == "postgresql":
            connection.exec_driver_sql(self.unnest_sql, tuple(list(column) for column in zip(*rows, strict=False)))
            return
        upsert = self._upserts.get(connection.dialect.name)
        if upsert is None:
            upsert = self._upserts[connection.dialect.name] = self._one_row_upsert(connection.dialect.name)
        connection.execute(upsert, [dict(zip(self.columns, row, strict=False)) for row in rows])

    def _fitted(self, row: tuple[Any, ...]) -> tuple[Any, ...]:
        cells: list[Any] | None = None
        for index, limit in self._limits:
            value = row[index]
            if isinstance(value, str) and (
                (limit is not None and len(value) > limit) or "\x00" in value or not value.isascii()
            ):
                cells = cells or list(row)
                cells[index] = fit_values(self.table, {self.columns[index]: value})[0][self.columns[index]]
        return row if cells is None else tuple(cells)

    def _unnest_sql(self) -> str:
        def array_type(name: str) -> str:
            column_type = self.table.c[name].type
            if isinstance(column_type, (String, Text)):
                return "text[]"  # not VARCHAR(n)[]: an explicit cast would truncate; the INSERT checks the length
            # SQLAlchemy's dialect classes have unannotated constructors.
            pg_dialect = postgresql.dialect()  # type: ignore[no-untyped-call]
            return f"{column_type.compile(dialect=pg_dialect)}[]"

        names = ", ".join(self.columns)
        arrays = ", ".join(f"%s::{array_type(name)}" for name in self.columns)
        action = (
            "DO UPDATE SET " + ", ".join(f"{name} = EXCLUDED.{name}" for name in self.updated)
            if self.updated
            else "DO NOTHING"
        )
        return (
            f"INSERT INTO {self.table.name} ({names}) SELECT * FROM unnest({arrays}) "
            f"ON CONFLICT ({', '.join(self.keys)}) {action}"
        )

    def _one_row_upsert(self, dialect_name: str) -> UpsertInsert:
        insert = postgresql.insert(self.table) if dialect_name == "postgresql" else sqlite.insert(self.table)
        if self.updated:
            return insert.on_conflict_do_update(
                index_elements=list(self.keys), set_={name: insert.excluded[name] for name in self.updated}
            )
        return insert.on_conflict_do_nothing(index_elements=list(self.keys))


_TASK_COLUMNS = ("kind", "object_id", "status", "due_at", "attempts", "updated_at")
_BULK_WRITES = {
    "intervals": _BulkWrite(_INTERVALS, _INTERVAL_COLUMNS, ("session_id", "peer_id"), _INTERVAL_UPDATED),
    # schedule_task's upsert: re-arms the task (pending, due_at, attempts 0).
    "tasks": _BulkWrite(ReconcileTask.__table__, _TASK_COLUMNS, ("kind", "object_id"), _TASK_COLUMNS[2:]),
    "recording_changes": _BulkWrite(
        RecordingStatusChange.__table__,
        ("recording_id", "status", "observed_at", "source"),
        ("recording_id", "status", "source"),
        (),
    ),
    "livestream_changes": _BulkWrite(
        LivestreamStatusChange.__table__,
        ("livestream_id", "status", "observed_at", "source"),
        ("livestream_id", "status", "source"),
        (),
    ),
}


class IntervalRow:
    """One ``participant_intervals`` row as a plain object, read and written by :class:`RowCache`.

    Same attribute names (and types: UTC datetimes, bool) as
    :class:`~receiver.db.models.ParticipantInterval`, without the ORM's
    per-object bookkeeping; :meth:`RowCache.flush` writes the changed ones
    in one statement. ``_loaded`` holds the values last read or written
    (None: not in the database yet).
    """

    __slots__ = (*_INTERVAL_COLUMNS, "_loaded")

    # The slots' types, for the type checker (annotations only: no class attributes).
    session_id: str
    peer_id: str
    meeting_id: str | None
    source: str
    participant_key: str
    custom_participant_id: str | None
    user_id: str | None
    display_name: str | None
    preset_name: str | None
    joined_at: datetime | None
    left_at: datetime | None
    closed_at_session_end: bool
    updated_at: datetime
    invalid_fields: str | None
    truncated_fields: str | None

    def __init__(self, **values: Any) -> None:
        for name in _INTERVAL_COLUMNS:
            setattr(self, name, values.get(name))
        self._loaded: tuple[Any, ...] | None = None

    def values(self) -> tuple[Any, ...]:
        """The column values in ``_INTERVAL_COLUMNS`` order."""
        return tuple(getattr(self, name) for name in _INTERVAL_COLUMNS)


@dataclass
class RowCache:
    """Rows loaded (and locked) in the current transaction, so a batch of events touches each once.

    ``meetings``, ``sessions``, ``recordings`` and ``livestreams`` by id
    (ORM rows, locked, flushed by the session); ``intervals`` per session
    id, each a map peer id -> :class:`IntervalRow`, and ``artifacts`` per
    session id (kind -> ORM row), each loaded whole on first use while the
    session row is locked (every interval and artifact write happens under
    its session's lock). :meth:`prefetch` loads all of these for a batch
    in a few statements. Writes that nothing reads back in the transaction
    wait in the cache too: ``tasks`` (reconcile tasks to arm, by (kind,
    object id); the last arming wins, as with one upsert each) and the
    status history rows. All of these are written only by :meth:`flush`:
    whoever fills a cache must call it before the transaction commits
    (:func:`apply_event` does when it made the cache).
    """

    meetings: dict[str, Meeting] = field(default_factory=dict)
    sessions: dict[str, Session] = field(default_factory=dict)
    recordings: dict[str, Recording] = field(default_factory=dict)
    livestreams: dict[str, Livestream] = field(default_factory=dict)
    livestream_sessions: dict[str, LivestreamSession] = field(default_factory=dict)
    intervals: dict[str, dict[str, IntervalRow]] = field(default_factory=dict)
    artifacts: dict[str, dict[str, SessionArtifact]] = field(default_factory=dict)
    tasks: dict[tuple[str, str], tuple[Any, ...]] = field(default_factory=dict)
    recording_changes: list[tuple[Any, ...]] = field(default_factory=list)
    livestream_changes: list[tuple[Any, ...]] = field(default_factory=list)
    #: Erased people (loaded on first use) and the events dropped because of them (ids).
    erased: ErasedSubjects | None = None
    suppressed: list[int] = field(default_factory=list)

    def erased_subjects(self, db: OrmSession) -> ErasedSubjects:
        """The erasure log's digests (:mod:`receiver.processing.suppression`), read once per transaction."""
        if self.erased is None:
            self.erased = ErasedSubjects.load(db.connection())
        return self.erased

    def session_intervals(self, db: OrmSession, session_id: str) -> dict[str, IntervalRow]:
        """The session's intervals by peer id (one SELECT per session per transaction)."""
        found = self.intervals.get(session_id)
        if found is None:
            columns = [_INTERVALS.c[name] for name in _INTERVAL_COLUMNS]
            found = self.intervals[session_id] = {}
            for values in db.connection().execute(select(*columns).where(_INTERVALS.c.session_id == session_id)):
                row = IntervalRow(**values._mapping)
                row._loaded = tuple(values)
                found[row.peer_id] = row
        return found

    def session_artifacts(self, db: OrmSession, session_id: str) -> dict[str, SessionArtifact]:
        """The session's artifacts by kind (one SELECT per session per transaction)."""
        found = self.artifacts.get(session_id)
        if found is None:
            rows = db.execute(select(SessionArtifact).where(SessionArtifact.session_id == session_id)).scalars()
            found = self.artifacts[session_id] = {row.kind: row for row in rows}
        return found

    def prefetch(self, db: OrmSession, meeting_ids: set[str], session_ids: set[str]) -> None:
        """Load and lock, in a few statements, the rows a batch of events will touch.

        Existing meetings, then sessions (each locked in id order), then the
        intervals and artifacts of those sessions. Ids that do not exist yet
        are left to :func:`ensure_meeting` / :func:`ensure_session`. Only a
        warm-up: what is loaded is exactly what the events would load one by
        one. Raises on database errors.
        """
        meeting_ids = {m for m in meeting_ids if m not in self.meetings}
        if meeting_ids:
            statement = select(Meeting).where(Meeting.meeting_id.in_(sorted(meeting_ids))).order_by(Meeting.meeting_id)
            for meeting in db.execute(statement.with_for_update()).scalars():
                self.meetings[meeting.meeting_id] = meeting
        session_ids = {s for s in session_ids if s not in self.sessions}
        if not session_ids:
            return
        sessions = select(Session).where(Session.session_id.in_(sorted(session_ids))).order_by(Session.session_id)
        locked = []
        for row in db.execute(sessions.with_for_update()).scalars():
            self.sessions[row.session_id] = row
            locked.append(row.session_id)
        locked = [session_id for session_id in locked if session_id not in self.intervals]
        if not locked:
            return
        for session_id in locked:
            self.intervals[session_id] = {}
            self.artifacts.setdefault(session_id, {})
        columns = [_INTERVALS.c[name] for name in _INTERVAL_COLUMNS]
        for values in db.connection().execute(select(*columns).where(_INTERVALS.c.session_id.in_(locked))):
            interval = IntervalRow(**values._mapping)
            interval._loaded = tuple(values)
            self.intervals[interval.session_id][interval.peer_id] = interval
        for artifact in db.execute(select(SessionArtifact).where(SessionArtifact.session_id.in_(locked))).scalars():
            self.artifacts[artifact.session_id][artifact.kind] = artifact

    def schedule_task(self, kind: str, object_id: str, due_at: datetime, now: datetime) -> None:
        """Like :func:`schedule_task`, written by :meth:`flush` (a later call for the same task replaces an earlier one)."""
        self.tasks[(kind, object_id)] = (kind, object_id, TASK_PENDING, due_at, 0, now)

    def flush(self, db: OrmSession) -> int:
        """Write what waits in the cache: new and changed intervals, reconcile tasks, status history rows.

        One multi-row ``INSERT ... ON CONFLICT`` per table (none when there
        is nothing to write); returns the number of rows sent. The cache can
        go on being used and flushed again. Every cached row (the ORM rows
        too, which the session flushes at commit) is first fitted to its
        columns (:func:`receiver.processing.columns.fit_row`). Raises on
        database errors.
        """
        connection = db.connection()
        for group in (self.meetings, self.sessions, self.recordings, self.livestreams, self.livestream_sessions):
            for orm_row in group.values():
                fit_row(orm_row)
        for artifacts in self.artifacts.values():
            for artifact in artifacts.values():
                fit_row(artifact)
        changed: list[tuple[IntervalRow, tuple[Any, ...]]] = []
        for by_peer in self.intervals.values():
            for row in by_peer.values():
                values = row.values()
                if values != row._loaded:
                    if fit_row(row, _INTERVALS, key=f"{row.session_id},{row.peer_id}"):
                        values = row.values()
                    changed.append((row, values))
        sent = 0
        if changed:
            _BULK_WRITES["intervals"].execute(connection, [values for _, values in changed])
            for row, values in changed:
                row._loaded = values
            sent += len(changed)
        for what in ("tasks", "recording_changes", "livestream_changes"):
            pending: Any = getattr(self, what)
            if pending:
                rows = list(pending.values()) if isinstance(pending, dict) else list(pending)
                _BULK_WRITES[what].execute(connection, rows)
                pending.clear()
                sent += len(rows)
        return sent
