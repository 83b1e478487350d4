"""The write layer: every row the worker writes, whether from a webhook event or the REST API.

Webhook processing (:mod:`receiver.processing.apply`) and REST
reconciliation (:mod:`receiver.processing.reconcile`) both go through these
functions, so each rule is written once:

* rows are created with :func:`insert_and_lock` (insert if missing, then
  ``SELECT ... FOR UPDATE``), in one order - meeting, session, then
  interval, recording or livestream - so concurrent workers cannot deadlock;
* recording status never moves backwards (:data:`RECORDING_STATUS_RANK`,
  :func:`write_recording`), livestream status likewise
  (:data:`LIVESTREAM_STATUS_RANK`, :func:`write_livestream`);
* reconciliation work is scheduled with :func:`schedule_task` (one row per
  kind and object; new information re-arms a done task);
* no value the database cannot hold is sent: strings are fitted to their
  column and the row flagged in ``truncated_fields``
  (:mod:`receiver.processing.columns`; :func:`insert_and_lock`,
  :func:`ensure_meeting` and :meth:`RowCache.flush` apply it), so an event
  never goes dead for a long field;
* inferred ends are set and undone by :func:`infer_session_end` and
  :func:`reopen_session`.

The REST half of the write layer (sessions, participants, recordings and
livestream runs as the API reports them) is
:mod:`receiver.processing.writes_api`, built on these functions.
* within a worker batch, loaded rows are shared through a :class:`RowCache`
  and intervals, tasks and status history rows are written by one
  multi-row statement each (:meth:`RowCache.flush`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import Connection, String, Table, Text, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session as OrmSession

from receiver.db.models import (
    TASK_PENDING,
    Base,
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
from receiver.enums import LivestreamStatus, RecordingStatus
from receiver.processing.columns import fit_row, fit_values, merge_flags
from receiver.processing.suppression import ErasedSubjects
from receiver.providers.dyte.events import (
    MeetingInfo,
)

__all__ = [
    "RECORDING_STATUS_RANK",
    "LIVESTREAM_STATUS_RANK",
    "recording_status_advances",
    "livestream_status_advances",
    "upsert_insert",
    "schedule_task",
    "insert_and_lock",
    "ensure_meeting",
    "ensure_session",
    "close_open_intervals",
    "write_recording",
    "mark_recording_missing",
    "write_livestream",
    "RowCache",
    "IntervalRow",
    "earliest",
    "infer_session_end",
    "reopen_session",
]

# A dialect's INSERT with ON CONFLICT support (PostgreSQL or SQLite).
UpsertInsert = postgresql.Insert | sqlite.Insert
_Row = TypeVar("_Row", bound=Base)

# Recording lifecycle (Dyte: INVOKED -> RECORDING <-> PAUSED -> UPLOADING -> UPLOADED | ERRORED).
# Keyed by str: statuses arrive as plain strings (unknown ones rank as newest).
RECORDING_STATUS_RANK: dict[str, int] = {
    RecordingStatus.INVOKED: 0,
    RecordingStatus.RECORDING: 1,
    RecordingStatus.PAUSED: 1,
    RecordingStatus.UPLOADING: 2,
    RecordingStatus.UPLOADED: 3,
    RecordingStatus.ERRORED: 3,
}
# Livestream statuses (webhook: LIVE, OFFLINE, IDLE; REST adds INVOKED, ERRORED; FACTS.md).
LIVESTREAM_STATUS_RANK: dict[str, int] = {
    LivestreamStatus.IDLE: 0,
    LivestreamStatus.INVOKED: 0,
    LivestreamStatus.LIVE: 1,
    LivestreamStatus.OFFLINE: 2,
    LivestreamStatus.STOPPED: 2,
    LivestreamStatus.ERRORED: 2,
}


def upsert_insert(session: OrmSession, model: type[Base] | Table) -> UpsertInsert:
    """A dialect-specific ``INSERT`` supporting ``on_conflict_do_nothing/update``."""
    name = session.get_bind().dialect.name
    if name == "postgresql":
        return postgresql.insert(model)
    return sqlite.insert(model)


def schedule_task(db: OrmSession, kind: str, object_id: str, due_at: datetime, now: datetime) -> None:
    """Arm (or re-arm) the reconciliation task (kind, object_id) to run at ``due_at`` (UTC)."""
    object_id = fit_values(ReconcileTask.__table__, {"object_id": object_id})[0]["object_id"]
    statement = upsert_insert(db, ReconcileTask).values(
        kind=kind, object_id=object_id, status=TASK_PENDING, due_at=due_at, attempts=0, updated_at=now
    )
    statement = statement.on_conflict_do_update(
        index_elements=["kind", "object_id"],
        set_={"status": TASK_PENDING, "due_at": statement.excluded.due_at, "attempts": 0, "updated_at": now},
    )
    db.execute(statement)


def recording_status_advances(current: str | None, new: str) -> bool:
    """True when ``new`` may replace ``current`` (same or later stage; unknown statuses always may)."""
    if current is None:
        return True
    return RECORDING_STATUS_RANK.get(new, 99) >= RECORDING_STATUS_RANK.get(current, -1)


def livestream_status_advances(current: str | None, new: str) -> bool:
    """True when ``new`` may replace ``current`` (:data:`LIVESTREAM_STATUS_RANK`; unknown statuses always may)."""
    if current is None:
        return True
    return LIVESTREAM_STATUS_RANK.get(new, 99) >= LIVESTREAM_STATUS_RANK.get(current, -1)


def earliest(a: datetime | None, b: datetime | None) -> datetime | None:
    """The earlier of two UTC datetimes, ignoring a missing one (None when both are)."""
    if a is None:
        return b
    if b is None:
        return a
    return min(a, b)


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


def insert_and_lock(db: OrmSession, model: type[_Row], key: str, values: dict[str, Any]) -> tuple[_Row, bool]:
    """Insert ``model``'s row unless its ``key`` column (unique) already holds ``values[key]``, then load it ``FOR UPDATE``.

    Returns ``(row, inserted)``; ``inserted`` is True when this call created
    the row. Concurrent writers of the same key serialise on the row lock.
    String values are fitted to their columns first (the key too: a key
    longer than its column is stored, and found again, cut to it), and the
    row flagged in ``truncated_fields``.
    """
    values, truncated = fit_values(model.__table__, values)
    column = getattr(model, key)
    # RETURNING, not rowcount: psycopg can report -1 for a prepared statement.
    inserted = (
        db.execute(
            upsert_insert(db, model).values(**values).on_conflict_do_nothing(index_elements=[key]).returning(column)
        ).first()
        is not None
    )
    row = db.execute(select(model).where(column == values[key]).with_for_update()).scalar_one()
    if truncated and hasattr(row, "truncated_fields"):
        flags = merge_flags(row.truncated_fields, truncated)
        if row.truncated_fields != flags:
            row.truncated_fields = flags
    return row, inserted


def ensure_meeting(
    db: OrmSession, meeting_id: str, now: datetime, info: MeetingInfo | None = None, cache: RowCache | None = None
) -> Meeting:
    """Create or update the meeting row (title, room, organizer) and return it, locked."""
    values: dict[str, Any] = {"meeting_id": meeting_id, "updated_at": now}
    cut: list[str] = []
    if info is not None:
        values.update(
            title=info.title,
            room_name=info.room_name,
            created_at=info.created_at,
            organized_by_id=info.organized_by.id if info.organized_by else None,
            organized_by_name=info.organized_by.name if info.organized_by else None,
        )
    values, cut = fit_values(Meeting.__table__, values)
    meeting = cache.meetings.get(meeting_id) if cache is not None else None
    if meeting is None:
        meeting, inserted = insert_and_lock(db, Meeting, "meeting_id", values)
        if inserted and not values.get("title"):  # fetch the missing title once
            if cache is not None:
                cache.schedule_task("meeting", meeting_id, now, now)
            else:
                schedule_task(db, "meeting", meeting_id, now, now)
        if cache is not None:
            cache.meetings[meeting_id] = meeting
    if cut:
        flags = merge_flags(meeting.truncated_fields, cut)
        if meeting.truncated_fields != flags:
            meeting.truncated_fields = flags
    if info is not None:
        # Only what differs is set: most events repeat the meeting's fields, and
        # an ORM attribute set costs more than the comparison.
        for attr in ("title", "room_name", "organized_by_id", "organized_by_name"):
            value = values.get(attr)
            if value is not None and getattr(meeting, attr) != value:
                setattr(meeting, attr, value)
        # The earliest creation time seen wins, whatever order events are processed in.
        created_at = values.get("created_at")
        if created_at is not None and (meeting.created_at is None or created_at < meeting.created_at):
            meeting.created_at = created_at
        if meeting.updated_at != now:
            meeting.updated_at = now
    return meeting


def ensure_session(
    db: OrmSession, session_id: str, meeting_id: str | None, now: datetime, cache: RowCache | None = None
) -> Session:
    """Create the session row if missing and return it, locked for this transaction."""
    row = cache.sessions.get(session_id) if cache is not None else None
    if row is None:
        row, _ = insert_and_lock(
            db,
            Session,
            "session_id",
            {"session_id": session_id, "meeting_id": meeting_id, "status": "live", "updated_at": now},
        )
        if cache is not None:
            cache.sessions[session_id] = row
    if row.meeting_id is None and meeting_id:
        row.meeting_id = meeting_id
    return row


def close_open_intervals(db: OrmSession, session_row: Session, cache: RowCache | None = None) -> int:
    """Close intervals with no leave at the session end; returns how many were closed.

    Without ``cache`` the ORM rows of the session are changed (flushed with
    ``db``); with it, the cache's rows (written by :meth:`RowCache.flush`).
    """
    if session_row.ended_at is None:
        return 0
    closed = 0
    intervals: Any
    if cache is None:
        intervals = db.execute(
            select(ParticipantInterval).where(ParticipantInterval.session_id == session_row.session_id)
        ).scalars()
    else:
        intervals = cache.session_intervals(db, session_row.session_id).values()
    for interval in intervals:
        if interval.left_at is not None:
            continue
        interval.left_at = max(session_row.ended_at, interval.joined_at or session_row.ended_at)
        interval.closed_at_session_end = True
        closed += 1
    return closed


def write_recording(
    db: OrmSession,
    recording_id: str,
    status: str,
    values: dict[str, Any],
    *,
    now: datetime,
    overwrite: frozenset[str] = frozenset(),
    cache: RowCache | None = None,
) -> tuple[Recording, bool]:
    """Merge what is known of one recording into the index; returns ``(row, status_changed)``.

    The rule (webhook and REST alike): a status at least as far along the
    lifecycle as the stored one (:func:`recording_status_advances`) replaces
    it and its non-null ``values`` overwrite; an older status only fills
    columns that are still empty. Columns named in ``overwrite`` (fresh
    download links from the REST API) are always replaced by non-null
    values. The row is stored under ``recording_id`` (the id asked for).
    """
    row = cache.recordings.get(recording_id) if cache is not None else None
    if row is None:
        row, _ = insert_and_lock(
            db, Recording, "recording_id", {"recording_id": recording_id, "status": status, "updated_at": now}
        )
        if cache is not None:
            cache.recordings[recording_id] = row
    advances = recording_status_advances(row.status, status)
    for attr, value in values.items():
        # A later stage overwrites; an older event only fills what is missing.
        if value is not None and (advances or attr in overwrite or getattr(row, attr) is None):
            setattr(row, attr, value)
    changed = advances and row.status != status
    if advances:
        row.status = status
    row.updated_at = now
    return row, changed


def mark_recording_missing(db: OrmSession, recording_id: str, now: datetime) -> None:
    """Remember that the REST API answered 404 for ``recording_id`` (``api_missing_at``, UTC).

    Expired links of such a recording are not queued for refresh again
    (:func:`receiver.processing.links.queue_link_refresh`); a later successful
    fetch clears the mark (:func:`receiver.processing.reconcile.apply_api_recording`).
    Only an existing row is marked: a 404 for an id we never indexed adds nothing.
    """
    db.execute(update(Recording).where(Recording.recording_id == recording_id).values(api_missing_at=now))


def write_livestream(
    db: OrmSession,
    livestream_id: str,
    status: str | None,
    *,
    now: datetime,
    meeting_id: str | None = None,
    session_id: str | None = None,
    name: str | None = None,
    status_at: datetime | None = None,
    from_api: bool = False,
    cache: RowCache | None = None,
) -> tuple[Livestream, bool]:
    """Merge what is known of one livestream into the index; returns ``(row, status_changed)``.

    Status never moves backwards (:func:`livestream_status_advances`).
    A webhook (``from_api=False``) only fills a missing meeting/session link;
    the REST API's link (``from_api=True``) is authoritative and sets
    ``linked_at``. Stream keys are never passed here (never stored).
    """
    row = cache.livestreams.get(livestream_id) if cache is not None else None
    if row is None:
        row, _ = insert_and_lock(
            db,
            Livestream,
            "livestream_id",
            {"livestream_id": livestream_id, "status": status or LivestreamStatus.INVOKED, "updated_at": now},
        )
        if cache is not None:
            cache.livestreams[livestream_id] = row
    if meeting_id and (from_api or not row.meeting_id):
        row.meeting_id = meeting_id
    if session_id and (from_api or not row.session_id):
        row.session_id = session_id
    if name:
        row.name = name
    changed = False
    if status and livestream_status_advances(row.status, status):
        changed = row.status != status
        row.status = status
        if status_at is not None:
            row.status_at = status_at
    if from_api:
        row.linked_at = now
    row.updated_at = now
    return row, changed


# --------------------------------------------------------------------------
# Inferred ends
# --------------------------------------------------------------------------


def infer_session_end(row: Session, ended_at: datetime, now: datetime) -> None:
    """Mark a live session ended at ``ended_at`` (its last leave), flagged ``end_inferred``.

    Used when nobody is present and no event came for
    ``SESSION_IDLE_END_SECONDS`` (Dyte ends a meeting about 60 s after the
    last participant leaves); meeting.ended or the REST API replace it.
    """
    row.ended_at = ended_at
    row.status = "ended"
    row.end_inferred = True
    row.updated_at = now


def reopen_session(row: Session, now: datetime) -> None:
    """Undo an inferred end: somebody joined again, or the REST API reports the session live."""
    row.ended_at = None
    row.status = "live"
    row.end_inferred = False
    row.updated_at = now
