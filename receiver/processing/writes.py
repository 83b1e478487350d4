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
  :func:`reopen_session`;
* within a worker batch, loaded rows are shared through a
  :class:`~receiver.processing.row_cache.RowCache` and intervals, tasks and
  status history rows are written by one multi-row statement each
  (:meth:`~receiver.processing.row_cache.RowCache.flush`).

The REST half of the write layer (sessions, participants, recordings and
livestream runs as the API reports them) is
:mod:`receiver.processing.writes_api`, built on these functions.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import Table, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session as OrmSession

from receiver.db.models import (
    TASK_PENDING,
    Base,
    Livestream,
    Meeting,
    ParticipantInterval,
    ReconcileTask,
    Recording,
    Session,
)
from receiver.enums import LivestreamStatus, RecordingStatus
from receiver.processing.columns import fit_values, merge_flags
from receiver.processing.row_cache import IntervalRow, RowCache, UpsertInsert
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
