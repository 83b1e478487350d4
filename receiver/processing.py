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
livestream) so concurrent workers on PostgreSQL cannot deadlock.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session as OrmSession

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


@dataclass
class RowCache:
    """Rows loaded (and locked) in the current transaction, so a batch of events touches each once.

    ``meetings`` and ``sessions`` by id; ``intervals`` per session id, each a
    map peer id -> row, loaded whole on first use while the session row is
    locked (every interval write happens under its session's lock).
    """

    meetings: dict[str, Meeting] = field(default_factory=dict)
    sessions: dict[str, Session] = field(default_factory=dict)
    intervals: dict[str, dict[str, ParticipantInterval]] = field(default_factory=dict)

    def session_intervals(self, db: OrmSession, session_id: str) -> dict[str, ParticipantInterval]:
        """The session's intervals by peer id (one SELECT per session per transaction)."""
        found = self.intervals.get(session_id)
        if found is None:
            rows = db.execute(select(ParticipantInterval).where(ParticipantInterval.session_id == session_id)).scalars()
            found = self.intervals[session_id] = {row.peer_id: row for row in rows}
        return found


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
        # RETURNING, not rowcount: psycopg can report -1 for a prepared statement.
        inserted = db.execute(
            upsert_insert(db, Meeting)
            .values(**values)
            .on_conflict_do_nothing(index_elements=["meeting_id"])
            .returning(Meeting.meeting_id)
        ).first() is not None
        meeting = db.execute(select(Meeting).where(Meeting.meeting_id == meeting_id).with_for_update()).scalar_one()
        if inserted and not values.get("title"):
            schedule_task(db, "meeting", meeting_id, now, now)  # fetch the missing title once
        if cache is not None:
            cache.meetings[meeting_id] = meeting
    if info is not None:
        for attr in ("title", "room_name", "created_at", "organized_by_id", "organized_by_name"):
            if values.get(attr) is not None:
                setattr(meeting, attr, values[attr])
        meeting.updated_at = now
    return meeting


def ensure_session(
    db: OrmSession, session_id: str, meeting_id: str | None, now: datetime, cache: RowCache | None = None
) -> Session:
    """Create the session row if missing and return it, locked for this transaction."""
    row = cache.sessions.get(session_id) if cache is not None else None
    if row is None:
        db.execute(
            upsert_insert(db, Session)
            .values(session_id=session_id, meeting_id=meeting_id, status="live", updated_at=now)
            .on_conflict_do_nothing(index_elements=["session_id"])
        )
        row = db.execute(select(Session).where(Session.session_id == session_id).with_for_update()).scalar_one()
        if cache is not None:
            cache.sessions[session_id] = row
    if row.meeting_id is None and meeting_id:
        row.meeting_id = meeting_id
    return row


def _touch_session(row: Session, meeting: MeetingInfo | None, received_at: datetime, now: datetime) -> None:
    if meeting is not None and meeting.started_at is not None:
        row.started_at = _earliest(row.started_at, meeting.started_at)
    if row.last_event_at is None or received_at > row.last_event_at:
        row.last_event_at = received_at
    row.updated_at = now


def close_open_intervals(db: OrmSession, session_row: Session, cache: RowCache | None = None) -> int:
    """Close intervals with no leave at the session end; returns how many were closed."""
    if session_row.ended_at is None:
        return 0
    closed = 0
    intervals = (cache or RowCache()).session_intervals(db, session_row.session_id).values()
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
        interval = ParticipantInterval(
            session_id=row.session_id,
            meeting_id=row.meeting_id,
            peer_id=participant.peer_id,
            participant_key=participant.participant_key,
            source="webhook",
            closed_at_session_end=False,
            updated_at=now,
        )
        db.add(interval)
        intervals[participant.peer_id] = interval
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


def _apply_artifact(db: OrmSession, kind: str, session_id: str, meeting_id: str | None, url: str | None, expiry: datetime | None, now: datetime) -> None:
    db.execute(
        upsert_insert(db, SessionArtifact)
        .values(session_id=session_id, meeting_id=meeting_id, kind=kind, updated_at=now)
        .on_conflict_do_nothing(index_elements=["session_id", "kind"])
    )
    artifact = db.execute(
        select(SessionArtifact).where(SessionArtifact.session_id == session_id, SessionArtifact.kind == kind)
    ).scalar_one()
    if expiry is None or artifact.download_url_expires_at is None or expiry >= artifact.download_url_expires_at:
        artifact.download_url = url
        artifact.download_url_expires_at = expiry
    artifact.meeting_id = artifact.meeting_id or meeting_id
    artifact.updated_at = now


def _apply_recording(db: OrmSession, event: RecordingStatusUpdate, event_id: int, now: datetime, event_time: datetime) -> None:
    rec = event.recording
    db.execute(
        upsert_insert(db, Recording)
        .values(recording_id=rec.id, status=rec.status, updated_at=now)
        .on_conflict_do_nothing(index_elements=["recording_id"])
    )
    row = db.execute(select(Recording).where(Recording.recording_id == rec.id).with_for_update()).scalar_one()
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
    db.execute(
        upsert_insert(db, RecordingStatusChange)
        .values(recording_id=rec.id, status=rec.status, observed_at=event_time, source=f"event:{event_id}")
        .on_conflict_do_nothing(index_elements=["recording_id", "status", "source"])
    )


def _apply_livestream(db: OrmSession, event: LivestreamStatusUpdate, event_id: int, now: datetime, event_time: datetime) -> bool:
    """Update the livestream index; returns True when the stream is not linked to a meeting yet."""
    db.execute(
        upsert_insert(db, Livestream)
        .values(livestream_id=event.stream_id, status=event.status, updated_at=now)
        .on_conflict_do_nothing(index_elements=["livestream_id"])
    )
    row = db.execute(select(Livestream).where(Livestream.livestream_id == event.stream_id).with_for_update()).scalar_one()
    if event.meeting_id and not row.meeting_id:
        row.meeting_id = event.meeting_id
    if event.session_id and not row.session_id:
        row.session_id = event.session_id
    if livestream_status_advances(row.status, event.status) or row.status == event.status:
        row.status = event.status
        row.status_at = event_time
    row.updated_at = now
    db.execute(
        upsert_insert(db, LivestreamStatusChange)
        .values(livestream_id=event.stream_id, status=event.status, observed_at=event_time, source=f"event:{event_id}")
        .on_conflict_do_nothing(index_elements=["livestream_id", "status", "source"])
    )
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
    transaction (the worker applies a batch per transaction). Raises only on
    database errors (the worker retries those).
    """
    now = now or datetime.now(timezone.utc)
    cache = cache if cache is not None else RowCache()
    event_time = event.occurred_at or received_at
    if isinstance(event, RecordingStatusUpdate):
        if event.meeting_id:
            ensure_meeting(db, event.meeting_id, now, event.meeting, cache)
        if event.session_id:
            ensure_session(db, event.session_id, event.meeting_id, now, cache)
        _apply_recording(db, event, event_id, now, event_time)
        schedule_task(db, "recording", event.recording.id, now, now)
        return
    if isinstance(event, LivestreamStatusUpdate):
        if event.meeting_id:
            ensure_meeting(db, event.meeting_id, now, event.meeting, cache)
        if _apply_livestream(db, event, event_id, now, event_time):
            schedule_task(db, "livestream", event.stream_id, now, now)
        return
    row = _session_context(db, event, received_at, now, cache)
    if row is None:
        return
    if isinstance(event, (ParticipantJoined, ParticipantLeft)):
        _apply_participant(db, event, row, now, event_time, cache)
    elif isinstance(event, MeetingEnded):
        _apply_ended(db, event, row, event_time, cache)
        due = datetime.fromtimestamp(received_at.timestamp() + reconcile_delay_seconds, tz=timezone.utc)
        schedule_task(db, "session", row.session_id, due, now)
    elif isinstance(event, MeetingStarted):
        pass  # meeting and session rows were written by _session_context
    elif isinstance(event, ChatSynced):
        _apply_artifact(db, "chat", row.session_id, event.meeting_id, event.chat_download_url, event.chat_download_url_expiry, now)
    elif isinstance(event, TranscriptReady):
        _apply_artifact(db, "transcript", row.session_id, event.meeting_id, event.transcript_download_url, event.transcript_download_url_expiry, now)
    elif isinstance(event, SummaryReady):
        _apply_artifact(db, "summary", row.session_id, event.meeting_id, event.summary_download_url, event.summary_download_url_expiry, now)

