"""The write layer's REST half: the provider API's view of sessions, participants, recordings and livestreams.

Reconciliation (:mod:`receiver.processing.reconcile`) and backfill write
only through these functions and those of :mod:`receiver.processing.writes`
they build on (the same rows, locks, cache and column fitting as webhook
processing):

* :func:`apply_api_session` - a session's bounds, the meeting id
  disagreement flag, the breakout link, inferred ends confirmed or undone;
* :func:`merge_api_interval` - one REST participant interval (rules in
  :mod:`receiver.processing.merge`);
* :func:`apply_api_recording` - a recording (status never backwards, fresh
  download links, start/stop reason codes);
* :func:`apply_api_livestream` and :func:`write_livestream_session` - a
  livestream (linked to its meeting) and its runs with viewer data.

Each takes the caller's transaction and a :class:`RowCache`, which the
caller flushes before committing.
"""

from __future__ import annotations

from datetime import datetime

import structlog
from sqlalchemy.orm import Session as OrmSession

from receiver.db.models import LivestreamSession, Session
from receiver.enums import RecordingStatus
from receiver.processing.merge import ApiPeerInterval, merge_api_participant
from receiver.processing.writes import (
    IntervalRow,
    RowCache,
    ensure_meeting,
    ensure_session,
    insert_and_lock,
    reopen_session,
    write_livestream,
    write_recording,
)
from receiver.providers.dyte.rest_models import ApiLivestream, ApiLivestreamSession, ApiRecording, ApiSession

__all__ = [
    "apply_api_session",
    "merge_api_interval",
    "apply_api_recording",
    "apply_api_livestream",
    "write_livestream_session",
]

log = structlog.get_logger("receiver.processing.writes_api")


def apply_api_session(
    db: OrmSession,
    api: ApiSession,
    now: datetime,
    cache: RowCache,
    *,
    parent_session_id: str | None = None,
    ended_at: datetime | None = None,
) -> Session:
    """Merge the REST API's view of a session into its row (not its participants) and return the row, locked.

    * meeting id: the webhooks' ``meeting_id`` is kept; when the API names
      another one it is stored in ``api_meeting_id`` (and logged), never
      silently overwritten; a session without one takes the API's;
    * ``started_at`` from the API when it has one;
    * ``ended_at`` (the API's, else the given fallback): the session is
      ``ended``, an inferred end is replaced (``end_inferred`` cleared).
      Without an end (the API still reports it live) an inferred end is
      undone (:func:`reopen_session`);
    * ``parent_session_id``: the main session of a breakout room.

    The title of a meeting first seen here comes from
    ``meeting_display_name``. Call within the caller's transaction; the
    cache must be flushed before commit.
    """
    meeting_id = api.associated_id
    row = cache.sessions.get(api.id)
    known_meeting = row.meeting_id if row is not None else None
    if meeting_id and (known_meeting is None or known_meeting == meeting_id):
        meeting = ensure_meeting(db, meeting_id, now, cache=cache)
        if not meeting.title and api.meeting_display_name:
            meeting.title = api.meeting_display_name
            cache.tasks.pop(("meeting", meeting_id), None)  # the title is known: nothing to fetch
    row = ensure_session(db, api.id, meeting_id, now, cache)
    if meeting_id and row.meeting_id and row.meeting_id != meeting_id:
        if row.api_meeting_id != meeting_id:
            log.warning(
                "meeting_id_disagrees", session_id=api.id, webhook_meeting_id=row.meeting_id, api_meeting_id=meeting_id
            )
            row.api_meeting_id = meeting_id
    elif row.api_meeting_id is not None:
        row.api_meeting_id = None
    if api.started_at is not None and row.started_at != api.started_at:
        row.started_at = api.started_at
    if parent_session_id and row.parent_session_id != parent_session_id and parent_session_id != api.id:
        row.parent_session_id = parent_session_id
    end = api.ended_at or ended_at
    if end is not None:
        row.ended_at = end
        row.status = "ended"
        row.end_inferred = False
    elif row.end_inferred:
        reopen_session(row, now)
    row.updated_at = now
    return row


def merge_api_interval(
    intervals: dict[str, IntervalRow], session_row: Session, api: ApiPeerInterval, now: datetime
) -> str:
    """Merge one REST interval into the session's intervals (by peer id); returns ``added``, ``changed`` or ``confirmed``.

    The API's times win where both sides know the peer (``source`` becomes
    ``both``); a peer only the API knows is added (``api``). Identity and
    names fill what is missing; ``invalid_fields`` records the REST fields
    that could not be read (:func:`receiver.processing.merge.api_intervals`).
    ``intervals`` is :meth:`RowCache.session_intervals` of the session
    (written by :meth:`RowCache.flush`).
    """
    interval = intervals.get(api.peer_id)
    decision = merge_api_participant(interval, api)
    if interval is None:
        interval = IntervalRow(
            session_id=session_row.session_id,
            meeting_id=session_row.meeting_id,
            peer_id=api.peer_id,
            participant_key=api.participant_key,
            source="api",
            closed_at_session_end=False,
            updated_at=now,
        )
        intervals[api.peer_id] = interval
    elif interval.source == "webhook":
        interval.source = "both"
    interval.participant_key = api.participant_key
    interval.custom_participant_id = api.custom_participant_id or interval.custom_participant_id
    interval.user_id = api.user_id or interval.user_id
    interval.display_name = api.display_name or interval.display_name
    interval.preset_name = api.preset_name or interval.preset_name
    interval.meeting_id = interval.meeting_id or session_row.meeting_id
    interval.invalid_fields = ",".join(api.invalid_fields) or None
    if api.joined_at is not None:
        interval.joined_at = api.joined_at
    if api.left_at is not None:
        interval.left_at = api.left_at
        interval.closed_at_session_end = False
    interval.updated_at = now
    return decision


def write_livestream_session(
    db: OrmSession,
    api: ApiLivestreamSession,
    now: datetime,
    cache: RowCache,
    *,
    meeting_id: str | None = None,
) -> LivestreamSession:
    """Merge one livestream run (REST) into ``livestream_sessions``; returns the row, locked.

    Non-null API values overwrite (the API is the only source of these
    rows); a known meeting session or meeting is never cleared by a listing
    that does not name it. ``ingest_seconds`` / ``viewer_seconds`` are seconds.
    """
    row = cache.livestream_sessions.get(api.id)
    if row is None:
        row, _ = insert_and_lock(
            db, LivestreamSession, "livestream_session_id", {"livestream_session_id": api.id, "updated_at": now}
        )
        cache.livestream_sessions[api.id] = row
    values = {
        "livestream_id": api.livestream_id,
        "session_id": api.session_id,
        "meeting_id": meeting_id,
        "invoked_at": api.invoked_time,
        "started_at": api.started_time,
        "stopped_at": api.stopped_time,
        "ingest_seconds": api.ingest_seconds,
        "viewer_seconds": api.viewer_seconds,
        "err_message": api.err_message,
    }
    for attr, value in values.items():
        if value is not None and getattr(row, attr) != value:
            setattr(row, attr, value)
    row.updated_at = now
    return row


# Columns the REST API always refreshes (download links expire; the API issues fresh ones).
_API_REFRESHED = frozenset({"download_url", "download_url_expires_at", "audio_download_url"})


def apply_api_recording(
    db: OrmSession,
    api: ApiRecording,
    now: datetime,
    recording_id: str | None = None,
    *,
    cache: RowCache | None = None,
) -> bool:
    """Merge a REST recording into the index through :func:`receiver.processing.writes.write_recording`.

    API values win when the status advances; download links are always
    refreshed; the status never moves backwards; the start and stop reason
    codes (``GET /recordings/{id}``) are stored. Stored under
    ``recording_id`` when given (the id asked for), else the API's id.
    Without ``cache`` everything is written before this returns. Returns
    True when the row still lacks a start reason (a listing does not carry
    it: the caller may fetch the recording itself).
    """
    own = cache is None
    cache = cache if cache is not None else RowCache()
    if api.meeting_id:
        ensure_meeting(db, api.meeting_id, now, cache=cache)
    if api.session_id:
        ensure_session(db, api.session_id, api.meeting_id, now, cache)
    recording_id = recording_id or api.id
    status = api.status or RecordingStatus.INVOKED
    values = {
        "meeting_id": api.meeting_id,
        "session_id": api.session_id,
        "started_at": api.started_time,
        "stopped_at": api.stopped_time,
        "duration_seconds": api.recording_duration,
        "file_size_bytes": api.file_size,
        "output_file_name": api.output_file_name,
        "download_url": api.download_url,
        "download_url_expires_at": api.download_url_expiry,
        "audio_download_url": api.audio_download_url,
        "start_reason": api.start_reason,
        "stop_reason": api.stop_reason,
    }
    row, changed = write_recording(db, recording_id, status, values, now=now, overwrite=_API_REFRESHED, cache=cache)
    row.api_missing_at = None  # the API knows it (again)
    if changed:
        cache.recording_changes.append((recording_id, status, now, "api"))
    row.reconciled_at = now
    if own:
        cache.flush(db)
    return row.start_reason is None


def apply_api_livestream(
    db: OrmSession,
    api: ApiLivestream,
    now: datetime,
    cache: RowCache,
    *,
    livestream_id: str | None = None,
    meeting_id: str | None = None,
    session_id: str | None = None,
) -> None:
    """Merge a REST livestream (linked to its meeting; the API's link is authoritative) and its status history.

    Stored under ``livestream_id`` when given (the id asked for), else the
    API's id; ``meeting_id`` / ``session_id`` fill what the object does not
    say. The stream key is never passed on.
    """
    livestream_id = livestream_id or api.id
    meeting_id = api.meeting_id or meeting_id
    if meeting_id:
        ensure_meeting(db, meeting_id, now, cache=cache)
    _, changed = write_livestream(
        db,
        livestream_id,
        api.status,
        now=now,
        meeting_id=meeting_id,
        session_id=api.session_id or session_id,
        name=api.name,
        from_api=True,
        cache=cache,
    )
    if changed and api.status:
        cache.livestream_changes.append((livestream_id, api.status, now, "api"))
