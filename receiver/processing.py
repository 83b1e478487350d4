"""Applying one parsed event to the attendance tables.

Every handler is idempotent and order-independent: applying an event twice,
or events in any order, gives the same rows. The rules that make it so:

* intervals are keyed by (session_id, peer_id); ``joined_at`` keeps the
  earliest value seen, ``left_at`` the value from a participantLeft event;
* once the REST API has confirmed an interval (``source`` api/both), webhook
  events no longer move its times (API times win, issue #3);
* a session's end comes only from meeting.ended (or reconciliation); open
  intervals are closed at it and flagged ``closed_at_session_end``; a later
  participantLeft replaces such a closing with the real leave;
* recording status never moves backwards (:data:`RECORDING_STATUS_RANK`);
* status histories hold one row per (object, status, source event).

Rows are locked in one order (meeting, session, then interval, recording or
livestream) so concurrent workers on PostgreSQL cannot deadlock; a batch
(:meth:`RowCache.prefetch`) locks its existing meetings, then its sessions,
each in id order. Within a batch, loaded rows are shared through a
:class:`RowCache`, and intervals, reconcile tasks and status history rows
are written by one multi-row statement each (:meth:`RowCache.flush`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import String, Text, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session as OrmSession
from sqlalchemy.sql.dml import Insert

from .events import (
    ChatSynced,
    DyteEvent,
    LivestreamStatusUpdate,
    MeetingEnded,
    MeetingInfo,
    MeetingStarted,
    ParticipantJoined,
    ParticipantLeft,
    RecordingStatusUpdate,
    SummaryReady,
    TranscriptReady,
)
from .models import (
    TASK_PENDING,
    Livestream,
    LivestreamStatusChange,
    Meeting,
    ParticipantInterval,
    ReconcileTask,
    Recording,
    RecordingStatusChange,
    Session,
    SessionArtifact,
)

__all__ = [
    "apply_event",
    "RECORDING_STATUS_RANK",
    "LIVESTREAM_STATUS_RANK",
    "recording_status_advances",
    "livestream_status_advances",
    "ensure_session",
    "ensure_meeting",
    "close_open_intervals",
    "upsert_insert",
    "schedule_task",
    "RowCache",
    "IntervalRow",
]

# Recording lifecycle (Dyte: INVOKED -> RECORDING <-> PAUSED -> UPLOADING -> UPLOADED | ERRORED).
RECORDING_STATUS_RANK = {"INVOKED": 0, "RECORDING": 1, "PAUSED": 1, "UPLOADING": 2, "UPLOADED": 3, "ERRORED": 3}
# Livestream statuses (webhook: LIVE, OFFLINE, IDLE; REST adds INVOKED, ERRORED; FACTS.md).
LIVESTREAM_STATUS_RANK = {"IDLE": 0, "INVOKED": 0, "LIVE": 1, "OFFLINE": 2, "STOPPED": 2, "ERRORED": 2}


def upsert_insert(session: OrmSession, model: Any):
    """A dialect-specific ``INSERT`` supporting ``on_conflict_do_nothing/update``."""
    name = session.get_bind().dialect.name
    if name == "postgresql":
        return postgresql.insert(model)
    return sqlite.insert(model)


def schedule_task(db: OrmSession, kind: str, object_id: str, due_at: datetime, now: datetime) -> None:
    """Arm (or re-arm) the reconciliation task (kind, object_id) to run at ``due_at`` (UTC)."""
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


def _earliest(a: datetime | None, b: datetime | None) -> datetime | None:
    if a is None:
        return b
    if b is None:
        return a
    return min(a, b)


_INTERVALS = ParticipantInterval.__table__
# The columns a webhook event may change on an existing interval; the others
# (id, keys, meeting_id, source) are written only when the row is inserted.
_INTERVAL_UPDATED = (
    "participant_key",
    "custom_participant_id",
    "user_id",
    "display_name",
    "preset_name",
    "joined_at",
    "left_at",
    "closed_at_session_end",
    "updated_at",
)
_INTERVAL_COLUMNS = ("session_id", "peer_id", "meeting_id", "source", *_INTERVAL_UPDATED)


class _BulkWrite:
    """A multi-row ``INSERT ... ON CONFLICT`` :meth:`RowCache.flush` runs.

    ``columns``: the row tuples' column order; ``keys``: the conflict target
    (a unique constraint); ``updated``: the columns set from the new row on
    conflict (none: ``DO NOTHING``).
    """

    def __init__(self, table: Any, columns: tuple[str, ...], keys: tuple[str, ...], updated: tuple[str, ...]) -> None:
        self.table = table
        self.columns = columns
        self.keys = keys
        self.updated = updated
        self.unnest_sql = self._unnest_sql()
        self._upserts: dict[str, Insert] = {}

    def execute(self, connection: Any, rows: list[tuple[Any, ...]]) -> None:
        """Write ``rows`` (tuples in :attr:`columns` order, no two with the same keys); raises on database errors.

        PostgreSQL: ONE statement whose text never changes (so it is prepared
        once): ``INSERT ... SELECT * FROM unnest(<one array per column>)``.
        SQLite: an executemany of the one-row upsert (in-process: no round
        trips to save).
        """
        if connection.dialect.name == "postgresql":
            connection.exec_driver_sql(self.unnest_sql, tuple(list(column) for column in zip(*rows)))
            return
        upsert = self._upserts.get(connection.dialect.name)
        if upsert is None:
            upsert = self._upserts[connection.dialect.name] = self._one_row_upsert(connection.dialect.name)
        connection.execute(upsert, [dict(zip(self.columns, row)) for row in rows])

    def _unnest_sql(self) -> str:
        def array_type(name: str) -> str:
            column_type = self.table.c[name].type
            if isinstance(column_type, (String, Text)):
                return "text[]"  # not VARCHAR(n)[]: an explicit cast would truncate; the INSERT checks the length
            return f"{column_type.compile(dialect=postgresql.dialect())}[]"

        names = ", ".join(self.columns)
        arrays = ", ".join(f"%s::{array_type(name)}" for name in self.columns)
        action = (
            "DO UPDATE SET " + ", ".join(f"{name} = EXCLUDED.{name}" for name in self.updated) if self.updated else "DO NOTHING"
        )
        return (
            f"INSERT INTO {self.table.name} ({names}) SELECT * FROM unnest({arrays}) "
            f"ON CONFLICT ({', '.join(self.keys)}) {action}"
        )

    def _one_row_upsert(self, dialect_name: str) -> Insert:
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
    :class:`~receiver.models.ParticipantInterval`, without the ORM's
    per-object bookkeeping; :meth:`RowCache.flush` writes the changed ones
    in one statement. ``_loaded`` holds the values last read or written
    (None: not in the database yet).
    """

    __slots__ = (*_INTERVAL_COLUMNS, "_loaded")

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
    intervals: dict[str, dict[str, IntervalRow]] = field(default_factory=dict)
    artifacts: dict[str, dict[str, SessionArtifact]] = field(default_factory=dict)
    tasks: dict[tuple[str, str], tuple[Any, ...]] = field(default_factory=dict)
    recording_changes: list[tuple[Any, ...]] = field(default_factory=list)
    livestream_changes: list[tuple[Any, ...]] = field(default_factory=list)

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
        statement = select(Session).where(Session.session_id.in_(sorted(session_ids))).order_by(Session.session_id)
        locked = []
        for row in db.execute(statement.with_for_update()).scalars():
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
        go on being used and flushed again. Raises on database errors.
        """
        connection = db.connection()
        changed: list[tuple[IntervalRow, tuple[Any, ...]]] = []
        for rows in self.intervals.values():
            for row in rows.values():
                values = row.values()
                if values != row._loaded:
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


def insert_and_lock(db: OrmSession, model: Any, key: str, values: dict[str, Any]) -> tuple[Any, bool]:
    """Insert ``model``'s row unless its ``key`` column (unique) already holds ``values[key]``, then load it ``FOR UPDATE``.

    Returns ``(row, inserted)``; ``inserted`` is True when this call created
    the row. Concurrent writers of the same key serialise on the row lock.
    """
    column = getattr(model, key)
    # RETURNING, not rowcount: psycopg can report -1 for a prepared statement.
    inserted = (
        db.execute(
            upsert_insert(db, model).values(**values).on_conflict_do_nothing(index_elements=[key]).returning(column)
        ).first()
        is not None
    )
    row = db.execute(select(model).where(column == values[key]).with_for_update()).scalar_one()
    return row, inserted


def ensure_meeting(
    db: OrmSession, meeting_id: str, now: datetime, info: MeetingInfo | None = None, cache: RowCache | None = None
) -> Meeting:
    """Create or update the meeting row (title, room, organizer) and return it, locked."""
    values: dict[str, Any] = {"meeting_id": meeting_id, "updated_at": now}
    if info is not None:
        values.update(
            title=info.title,
            room_name=info.room_name,
            created_at=info.created_at,
            organized_by_id=info.organized_by.id if info.organized_by else None,
            organized_by_name=info.organized_by.name if info.organized_by else None,
        )
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
            db, Session, "session_id", {"session_id": session_id, "meeting_id": meeting_id, "status": "live", "updated_at": now}
        )
        if cache is not None:
            cache.sessions[session_id] = row
    if row.meeting_id is None and meeting_id:
        row.meeting_id = meeting_id
    return row


def _touch_session(row: Session, meeting: MeetingInfo | None, received_at: datetime, now: datetime) -> None:
    if meeting is not None and meeting.started_at is not None:
        started_at = _earliest(row.started_at, meeting.started_at)
        if started_at != row.started_at:
            row.started_at = started_at
    if row.last_event_at is None or received_at > row.last_event_at:
        row.last_event_at = received_at
    if row.updated_at != now:
        row.updated_at = now


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


def _session_context(
    db: OrmSession, event: DyteEvent, received_at: datetime, now: datetime, cache: RowCache
) -> Session | None:
    meeting_info = getattr(event, "meeting", None)
    meeting_id = event.meeting_id
    if meeting_id:
        ensure_meeting(db, meeting_id, now, meeting_info, cache)
    if not event.session_id:
        return None
    row = ensure_session(db, event.session_id, meeting_id, now, cache)
    _touch_session(row, meeting_info, received_at, now)
    return row


def _apply_participant(
    db: OrmSession,
    event: ParticipantJoined | ParticipantLeft,
    row: Session,
    now: datetime,
    event_time: datetime,
    cache: RowCache,
) -> None:
    participant = event.participant
    intervals = cache.session_intervals(db, row.session_id)  # the session row is locked: no concurrent insert
    interval = intervals.get(participant.peer_id)
    if interval is None:
        interval = IntervalRow(
            session_id=row.session_id,
            meeting_id=row.meeting_id,
            peer_id=participant.peer_id,
            participant_key=participant.participant_key,
            source="webhook",
            closed_at_session_end=False,
            updated_at=now,
        )
        intervals[participant.peer_id] = interval  # inserted by RowCache.flush
    interval.participant_key = participant.participant_key
    interval.custom_participant_id = participant.custom_participant_id or interval.custom_participant_id
    interval.user_id = participant.user_id or interval.user_id
    interval.preset_name = participant.preset_name or interval.preset_name
    if participant.user_display_name:
        interval.display_name = participant.user_display_name
    interval.updated_at = now
    if interval.source != "webhook":
        return  # the REST API confirmed this interval: its times win
    joined = participant.joined_at or (event_time if isinstance(event, ParticipantJoined) else None)
    interval.joined_at = _earliest(interval.joined_at, joined)
    if isinstance(event, ParticipantLeft):
        left = participant.left_at or event_time
        if interval.left_at is None or interval.closed_at_session_end:
            interval.left_at = left
            interval.closed_at_session_end = False
    elif interval.left_at is None and row.ended_at is not None:
        # Joined event processed after the session ended and no leave seen: close at the end.
        interval.left_at = max(row.ended_at, interval.joined_at or row.ended_at)
        interval.closed_at_session_end = True


def _apply_ended(db: OrmSession, event: MeetingEnded, row: Session, event_time: datetime, cache: RowCache) -> None:
    ended_at = event.meeting.ended_at or event_time
    row.ended_at = ended_at if row.ended_at is None else max(row.ended_at, ended_at)
    row.end_reason = event.reason or row.end_reason
    row.status = "ended"
    close_open_intervals(db, row, cache)


def _apply_artifact(
    db: OrmSession,
    kind: str,
    session_id: str,
    meeting_id: str | None,
    url: str | None,
    expiry: datetime | None,
    now: datetime,
    cache: RowCache,
) -> None:
    artifacts = cache.session_artifacts(db, session_id)  # the session row is locked: no concurrent insert
    artifact = artifacts.get(kind)
    if artifact is None:
        artifact = artifacts[kind] = SessionArtifact(session_id=session_id, meeting_id=meeting_id, kind=kind, updated_at=now)
        db.add(artifact)
    if expiry is None or artifact.download_url_expires_at is None or expiry >= artifact.download_url_expires_at:
        artifact.download_url = url
        artifact.download_url_expires_at = expiry
    artifact.meeting_id = artifact.meeting_id or meeting_id
    artifact.updated_at = now


def _apply_recording(
    db: OrmSession, event: RecordingStatusUpdate, event_id: int, now: datetime, event_time: datetime, cache: RowCache
) -> None:
    rec = event.recording
    row = cache.recordings.get(rec.id)
    if row is None:
        row, _ = insert_and_lock(db, Recording, "recording_id", {"recording_id": rec.id, "status": rec.status, "updated_at": now})
        cache.recordings[rec.id] = row
    advances = recording_status_advances(row.status, rec.status) or row.status == rec.status
    fields = {
        "meeting_id": event.meeting_id,
        "session_id": event.session_id,
        "started_at": rec.started_time,
        "stopped_at": rec.stopped_time,
        "duration_seconds": rec.recording_duration,
        "file_size_bytes": rec.file_size,
        "output_file_name": rec.output_file_name,
        "download_url": rec.download_url,
        "download_url_expires_at": rec.download_url_expiry,
        "audio_download_url": rec.audio_download_url,
        "stop_reason": rec.stop_reason,
    }
    for attr, value in fields.items():
        if value is None:
            continue
        # A later stage overwrites; an older event only fills what is missing.
        if advances or getattr(row, attr) is None:
            setattr(row, attr, value)
    if advances:
        row.status = rec.status
    row.updated_at = now
    cache.recording_changes.append((rec.id, rec.status, event_time, f"event:{event_id}"))


def _apply_livestream(
    db: OrmSession, event: LivestreamStatusUpdate, event_id: int, now: datetime, event_time: datetime, cache: RowCache
) -> bool:
    """Update the livestream index; returns True when the stream is not linked to a meeting yet."""
    row = cache.livestreams.get(event.stream_id)
    if row is None:
        row, _ = insert_and_lock(
            db, Livestream, "livestream_id", {"livestream_id": event.stream_id, "status": event.status, "updated_at": now}
        )
        cache.livestreams[event.stream_id] = row
    if event.meeting_id and not row.meeting_id:
        row.meeting_id = event.meeting_id
    if event.session_id and not row.session_id:
        row.session_id = event.session_id
    if livestream_status_advances(row.status, event.status) or row.status == event.status:
        row.status = event.status
        row.status_at = event_time
    row.updated_at = now
    cache.livestream_changes.append((event.stream_id, event.status, event_time, f"event:{event_id}"))
    return row.linked_at is None


def apply_event(
    db: OrmSession,
    event: DyteEvent,
    *,
    event_id: int,
    received_at: datetime,
    reconcile_delay_seconds: float = 60.0,
    now: datetime | None = None,
    cache: RowCache | None = None,
) -> None:
    """Apply ``event`` (stored as ``event_id``, received at ``received_at`` UTC) inside ``db``'s transaction.

    ``reconcile_delay_seconds`` schedules the session's REST reconciliation
    after meeting.ended (issue #3: meeting.ended comes ~1 minute after the
    last leave). ``cache`` shares loaded rows between the events of one
    transaction (the worker applies a batch per transaction); a caller that
    passes one must call ``cache.flush(db)`` after its last event and before
    committing (interval changes are written only then). Without ``cache``
    everything is written before this returns. Raises only on database
    errors (the worker retries those).
    """
    if cache is None:
        cache = RowCache()
        _apply(db, event, event_id, received_at, reconcile_delay_seconds, now or datetime.now(timezone.utc), cache)
        cache.flush(db)
    else:
        _apply(db, event, event_id, received_at, reconcile_delay_seconds, now or datetime.now(timezone.utc), cache)


def _apply(
    db: OrmSession,
    event: DyteEvent,
    event_id: int,
    received_at: datetime,
    reconcile_delay_seconds: float,
    now: datetime,
    cache: RowCache,
) -> None:
    event_time = event.occurred_at or received_at
    if isinstance(event, RecordingStatusUpdate):
        if event.meeting_id:
            ensure_meeting(db, event.meeting_id, now, event.meeting, cache)
        if event.session_id:
            ensure_session(db, event.session_id, event.meeting_id, now, cache)
        _apply_recording(db, event, event_id, now, event_time, cache)
        cache.schedule_task("recording", event.recording.id, now, now)
        return
    if isinstance(event, LivestreamStatusUpdate):
        if event.meeting_id:
            ensure_meeting(db, event.meeting_id, now, event.meeting, cache)
        if _apply_livestream(db, event, event_id, now, event_time, cache):
            cache.schedule_task("livestream", event.stream_id, now, now)
        return
    row = _session_context(db, event, received_at, now, cache)
    if row is None:
        return
    if isinstance(event, (ParticipantJoined, ParticipantLeft)):
        _apply_participant(db, event, row, now, event_time, cache)
    elif isinstance(event, MeetingEnded):
        _apply_ended(db, event, row, event_time, cache)
        due = datetime.fromtimestamp(received_at.timestamp() + reconcile_delay_seconds, tz=timezone.utc)
        cache.schedule_task("session", row.session_id, due, now)
    elif isinstance(event, MeetingStarted):
        pass  # meeting and session rows were written by _session_context
    elif isinstance(event, ChatSynced):
        _apply_artifact(db, "chat", row.session_id, event.meeting_id, event.chat_download_url, event.chat_download_url_expiry, now, cache)
    elif isinstance(event, TranscriptReady):
        _apply_artifact(db, "transcript", row.session_id, event.meeting_id, event.transcript_download_url, event.transcript_download_url_expiry, now, cache)
    elif isinstance(event, SummaryReady):
        _apply_artifact(db, "summary", row.session_id, event.meeting_id, event.summary_download_url, event.summary_download_url_expiry, now, cache)

