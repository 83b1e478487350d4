"""Applying one parsed event to the attendance tables.

Every handler is idempotent and order-independent: applying an event twice,
or events in any order, gives the same rows. The rules that make it so:

* intervals are keyed by (session_id, peer_id); ``joined_at`` keeps the
  earliest value seen, ``left_at`` the value from a participantLeft event;
* once the REST API has confirmed an interval (``source`` api/both), webhook
  events no longer move its times (API times win, issue #3);
* a session's end comes from meeting.ended or reconciliation, or is
  inferred after ``SESSION_IDLE_END_SECONDS`` with nobody present
  (:mod:`receiver.processing.sweeps`); open intervals are closed at it and
  flagged ``closed_at_session_end``; a later participantLeft replaces such a
  closing with the real leave; meeting.ended replaces an inferred end, and a
  join whose leave is not known reopens the session (somebody is present);
* recording status never moves backwards (:data:`RECORDING_STATUS_RANK`);
* status histories hold one row per (object, status, source event);
* presence of an erased person from before the erasure is not written again
  (:mod:`receiver.processing.suppression`); such events are listed in
  ``cache.suppressed`` so the worker can drop their raw bodies.

Rows are locked in one order (meeting, session, then interval, recording or
livestream) so concurrent workers on PostgreSQL cannot deadlock; a batch
(:meth:`RowCache.prefetch`) locks its existing meetings, then its sessions,
each in id order. Within a batch, loaded rows are shared through a
:class:`RowCache`, and intervals, reconcile tasks and status history rows
are written by one multi-row statement each (:meth:`RowCache.flush`).
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy.orm import Session as OrmSession

from receiver.db.models import (
    Session,
    SessionArtifact,
)
from receiver.processing.writes import (
    IntervalRow,
    RowCache,
    close_open_intervals,
    earliest,
    ensure_meeting,
    ensure_session,
    reopen_session,
    write_livestream,
    write_recording,
)
from receiver.providers.dyte.events import (
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

__all__ = ["apply_event"]


def _touch_session(row: Session, meeting: MeetingInfo | None, received_at: datetime, now: datetime) -> None:
    if meeting is not None and meeting.started_at is not None:
        started_at = earliest(row.started_at, meeting.started_at)
        if started_at != row.started_at:
            row.started_at = started_at
    if row.last_event_at is None or received_at > row.last_event_at:
        row.last_event_at = received_at
    if row.updated_at != now:
        row.updated_at = now


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
    event_id: int,
    row: Session,
    now: datetime,
    event_time: datetime,
    cache: RowCache,
) -> None:
    participant = event.participant
    identifiers = (
        participant.participant_key,
        participant.custom_participant_id,
        participant.user_id,
        participant.peer_id,
    )
    if cache.erased_subjects(db).covers(identifiers, participant.joined_at or participant.left_at or event_time):
        cache.suppressed.append(event_id)  # presence of an erased person from before the erasure: not written
        return
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
    interval.joined_at = earliest(interval.joined_at, joined)
    if isinstance(event, ParticipantLeft):
        left = participant.left_at or event_time
        if interval.left_at is None or interval.closed_at_session_end:
            interval.left_at = left
            interval.closed_at_session_end = False
    elif interval.left_at is None and row.end_inferred:
        # Somebody is present after all: the inferred end was wrong.
        reopen_session(row, now)
    elif interval.left_at is None and row.ended_at is not None:
        # Joined event processed after the session ended and no leave seen: close at the end.
        interval.left_at = max(row.ended_at, interval.joined_at or row.ended_at)
        interval.closed_at_session_end = True


def _apply_ended(db: OrmSession, event: MeetingEnded, row: Session, event_time: datetime, cache: RowCache) -> None:
    ended_at = event.meeting.ended_at or event_time
    if row.end_inferred:  # Dyte's own end replaces the inferred one
        row.ended_at = ended_at
        row.end_inferred = False
    else:
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
        artifact = artifacts[kind] = SessionArtifact(
            session_id=session_id, meeting_id=meeting_id, kind=kind, updated_at=now
        )
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
    values = {
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
    write_recording(db, rec.id, rec.status, values, now=now, cache=cache)
    cache.recording_changes.append((rec.id, rec.status, event_time, f"event:{event_id}"))


def _apply_livestream(
    db: OrmSession, event: LivestreamStatusUpdate, event_id: int, now: datetime, event_time: datetime, cache: RowCache
) -> bool:
    """Update the livestream index; returns True when the stream is not linked to a meeting yet."""
    row, _ = write_livestream(
        db,
        event.stream_id,
        event.status,
        now=now,
        meeting_id=event.meeting_id,
        session_id=event.session_id,
        status_at=event_time,
        cache=cache,
    )
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
        _apply(db, event, event_id, received_at, reconcile_delay_seconds, now or datetime.now(UTC), cache)
        cache.flush(db)
    else:
        _apply(db, event, event_id, received_at, reconcile_delay_seconds, now or datetime.now(UTC), cache)


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
        _apply_participant(db, event, event_id, row, now, event_time, cache)
    elif isinstance(event, MeetingEnded):
        _apply_ended(db, event, row, event_time, cache)
        due = datetime.fromtimestamp(received_at.timestamp() + reconcile_delay_seconds, tz=UTC)
        cache.schedule_task("session", row.session_id, due, now)
    elif isinstance(event, MeetingStarted):
        pass  # meeting and session rows were written by _session_context
    elif isinstance(event, ChatSynced):
        _apply_artifact(
            db,
            "chat",
            row.session_id,
            event.meeting_id,
            event.chat_download_url,
            event.chat_download_url_expiry,
            now,
            cache,
        )
    elif isinstance(event, TranscriptReady):
        _apply_artifact(
            db,
            "transcript",
            row.session_id,
            event.meeting_id,
            event.transcript_download_url,
            event.transcript_download_url_expiry,
            now,
            cache,
        )
    elif isinstance(event, SummaryReady):
        _apply_artifact(
            db,
            "summary",
            row.session_id,
            event.meeting_id,
            event.summary_download_url,
            event.summary_download_url_expiry,
            now,
            cache,
        )
