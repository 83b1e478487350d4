"""Reconciliation with the Dyte v2 REST API, so reports converge to what Dyte knows.

Webhooks get lost (Dyte gives up after 5 retries), arrive twice, late and out
of order. The reconciler runs due :class:`~receiver.db.models.ReconcileTask` rows:

* ``session``: ``GET /sessions/{id}`` and every page of
  ``GET /sessions/{id}/participants``. API times win where both sides know a
  peer (``source`` becomes ``both``); peers only the API knows are added
  (``api``); webhook-only peers are kept (``webhook``); open intervals are
  closed at the session end. The session is marked reconciled with counts of
  what was added and changed. A session the API still reports live is
  checked again after ``STALE_SESSION_SECONDS``.
* ``recording``: ``GET /recordings/{id}``: download URLs, expiry, size,
  duration, session id. Status never moves backwards. Also armed by pages
  and the API for expired links someone looked at
  (:mod:`receiver.processing.links`); a 404 is remembered in
  ``recordings.api_missing_at``.
* ``livestream``: ``GET /livestreams/{id}`` links a bare ``streamId`` to its
  meeting. Stream keys are never stored.
* ``meeting``: ``GET /meetings/{id}`` fetches a missing title, once.

Participants of an erased person whose presence began before the erasure
are skipped (:mod:`receiver.processing.suppression`): a reconciliation or
backfill never brings their old presence back.

A periodic sweep arms ``session`` tasks for sessions that never got
meeting.ended and had no event for ``STALE_SESSION_SECONDS`` (default 2 h).
Failures back off (:class:`~receiver.retry.RetryPolicy`) and are recorded on
the task; after ``WORKER_MAX_ATTEMPTS`` the task is ``dead``.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import structlog
from sqlalchemy import and_, exists, or_, select, update
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session as OrmSession

from receiver import metrics
from receiver.db.engine import writer
from receiver.db.models import (
    TASK_DEAD,
    TASK_DONE,
    TASK_PENDING,
    LivestreamStatusChange,
    ParticipantInterval,
    ReconcileTask,
    RecordingStatusChange,
    Session,
)
from receiver.enums import RecordingStatus
from receiver.processing.queue import claim
from receiver.processing.suppression import ErasedSubjects
from receiver.processing.writes import (
    close_open_intervals,
    ensure_meeting,
    ensure_session,
    mark_recording_missing,
    schedule_task,
    upsert_insert,
    write_livestream,
    write_recording,
)
from receiver.providers.base import ProviderClient
from receiver.providers.dyte.client import DyteAPIError, DyteNotFound
from receiver.providers.dyte.rest_models import ApiParticipant, ApiRecording
from receiver.retry import RetryPolicy

__all__ = ["Reconciler", "SessionMergeResult", "merge_api_participant", "claim_tasks", "arm_stale_sessions"]

log = structlog.get_logger("receiver.processing.reconcile")


class SessionMergeResult:
    """What one session reconciliation did: intervals added, changed, confirmed unchanged."""

    def __init__(self) -> None:
        self.added = 0
        self.changed = 0
        self.confirmed = 0


def merge_api_participant(interval: ParticipantInterval | None, participant: ApiParticipant) -> str:
    """Decide how an API participant changes the stored interval: ``added``, ``changed`` or ``confirmed``.

    Pure decision on values (the caller writes). ``changed`` when a known
    time differs by more than one second or the webhook never saw the leave.
    """
    if interval is None:
        return "added"
    for stored, api in ((interval.joined_at, participant.joined_at), (interval.left_at, participant.left_at)):
        if api is None:
            continue
        if stored is None or abs((stored - api).total_seconds()) > 1.0:
            return "changed"
    if participant.left_at is not None and interval.closed_at_session_end:
        return "changed"
    return "confirmed"


def claim_tasks(engine: Engine, worker_id: str, *, limit: int, lease_seconds: float, now: datetime) -> list[int]:
    """Claim due pending tasks (expired leases included), earliest due first; returns their ids.

    A claimed task stays ``pending`` with a lease (:func:`receiver.processing.queue.claim`).
    """
    due = and_(
        ReconcileTask.status == TASK_PENDING,
        ReconcileTask.due_at <= now,
        or_(ReconcileTask.locked_until.is_(None), ReconcileTask.locked_until < now),
    )
    values = {
        "locked_by": worker_id,
        "locked_until": now + timedelta(seconds=lease_seconds),
        "attempts": ReconcileTask.attempts + 1,
    }
    return claim(engine, ReconcileTask, due, [ReconcileTask.due_at, ReconcileTask.id], values, limit=limit)


def arm_stale_sessions(engine: Engine, *, stale_seconds: float, now: datetime) -> int:
    """Arm a ``session`` task for live, never-reconciled sessions with no event for ``stale_seconds``."""
    cutoff = now - timedelta(seconds=stale_seconds)
    has_task = exists().where(ReconcileTask.kind == "session", ReconcileTask.object_id == Session.session_id)
    with OrmSession(writer(engine)) as db, db.begin():
        stale = list(
            db.execute(
                select(Session.session_id).where(
                    Session.status == "live",
                    Session.reconciled_at.is_(None),
                    Session.last_event_at <= cutoff,
                    ~has_task,
                )
            ).scalars()
        )
        for session_id in stale:
            schedule_task(db, "session", session_id, now, now)
    return len(stale)


class Reconciler:
    """Runs due reconciliation tasks against the Dyte REST API.

    Args:
        engine: the database.
        client: the provider's REST client (:class:`~receiver.providers.base.ProviderClient`,
            rate-limited, retrying; :func:`receiver.providers.registry.build_client`).
        worker_id: identifies the claims of this process.
        stale_session_seconds: sweep threshold and re-check delay for live sessions.
        retry_policy: backoff between task attempts and the attempt limit.
        batch_size: tasks claimed per round.
    """

    def __init__(
        self,
        engine: Engine,
        client: ProviderClient,
        *,
        worker_id: str,
        stale_session_seconds: float = 7200.0,
        retry_policy: RetryPolicy | None = None,
        batch_size: int = 50,
        lease_seconds: float = 120.0,
        sweep_interval_seconds: float = 60.0,
    ) -> None:
        self.engine = engine
        self.client = client
        self.worker_id = worker_id
        self.stale_session_seconds = stale_session_seconds
        self.retry_policy = retry_policy or RetryPolicy(base_seconds=5.0, max_seconds=600.0, max_attempts=8)
        self.batch_size = batch_size
        self.lease_seconds = lease_seconds
        self.sweep_interval_seconds = sweep_interval_seconds
        self._last_sweep: float | None = None

    async def aclose(self) -> None:
        """Close the REST client."""
        await self.client.aclose()

    async def run_due(self, *, now: datetime | None = None) -> int:
        """Sweep stale sessions (at most once per ``sweep_interval_seconds``) and run due tasks once."""
        now = now or datetime.now(UTC)
        if self._last_sweep is None or time.monotonic() - self._last_sweep >= self.sweep_interval_seconds:
            self._last_sweep = time.monotonic()
            armed = arm_stale_sessions(self.engine, stale_seconds=self.stale_session_seconds, now=now)
            if armed:
                log.info("stale_sessions_armed", count=armed)
        ids = claim_tasks(self.engine, self.worker_id, limit=self.batch_size, lease_seconds=self.lease_seconds, now=now)
        position = 0
        try:
            for position, task_id in enumerate(ids):  # noqa: B007 - read in `finally`
                await self.run_task(task_id)
            position = len(ids)
        finally:
            if position < len(ids):  # interrupted (shutdown, database gone): give the rest back now
                self._release(ids[position:])
        return len(ids)

    def _release(self, task_ids: list[int]) -> None:
        try:
            with self.engine.begin() as connection:
                connection.execute(
                    update(ReconcileTask)
                    .where(ReconcileTask.id.in_(task_ids), ReconcileTask.locked_by == self.worker_id)
                    .values(locked_by=None, locked_until=None, attempts=ReconcileTask.attempts - 1)
                )
        except Exception:  # the database is what failed: the lease will expire instead
            log.warning("reconcile_release_failed", tasks=len(task_ids))

    async def run_task(self, task_id: int) -> str:
        """Run one claimed task; returns ``done``, ``retry``, ``dead`` or ``lost``."""
        with OrmSession(self.engine) as db:
            task = db.get(ReconcileTask, task_id)
            if task is None or task.locked_by != self.worker_id:
                return "lost"
            kind, object_id, attempts = task.kind, task.object_id, task.attempts
        handler = {
            "session": self.reconcile_session,
            "recording": self.reconcile_recording,
            "livestream": self.reconcile_livestream,
            "meeting": self.reconcile_meeting,
        }.get(kind)
        try:
            if handler is None:
                raise ValueError(f"unknown task kind {kind!r}")
            final = await handler(object_id)
        except (DyteAPIError, ValueError) as exc:
            return self._task_failed(task_id, kind, object_id, attempts, f"{type(exc).__name__}: {exc}")
        except Exception as exc:  # database or bug: recorded, retried like API errors
            return self._task_failed(task_id, kind, object_id, attempts, f"{type(exc).__name__}: {exc}")
        now = datetime.now(UTC)
        with OrmSession(writer(self.engine)) as db, db.begin():
            task = db.get(ReconcileTask, task_id)
            if task is None or task.locked_by != self.worker_id:
                return "lost"
            task.locked_by = task.locked_until = None
            task.updated_at = now
            task.last_error = None
            if final:
                task.status, task.done_at = TASK_DONE, now
                outcome = "done"
            else:  # e.g. the session is still live: look again later
                task.due_at = now + timedelta(seconds=max(self.stale_session_seconds, 60.0))
                task.attempts = 0
                outcome = "later"
        log.info("reconciled", kind=kind, object_id=object_id, outcome=outcome)
        return outcome

    def _task_failed(self, task_id: int, kind: str, object_id: str, attempts: int, error: str) -> str:
        now = datetime.now(UTC)
        dead = self.retry_policy.exhausted(attempts)
        with OrmSession(writer(self.engine)) as db, db.begin():
            task = db.get(ReconcileTask, task_id)
            if task is None:
                return "lost"
            task.last_error = error[:2000]
            task.locked_by = task.locked_until = None
            task.updated_at = now
            if dead:
                task.status = TASK_DEAD
            else:
                task.due_at = now + timedelta(seconds=self.retry_policy.delay_seconds(attempts))
        log.warning("reconcile_failed", kind=kind, object_id=object_id, attempts=attempts, dead=dead, error=error[:300])
        return "dead" if dead else "retry"

    async def reconcile_session(self, session_id: str) -> bool:
        """Merge the API's view of one session; returns False while the API says it is still live."""
        final, _, _ = await self.reconcile_session_counts(session_id)
        return final

    async def reconcile_session_counts(self, session_id: str) -> tuple[bool, int, int]:
        """Like :meth:`reconcile_session`; returns (final, intervals added, intervals changed)."""
        api_session = await self.client.get_session(session_id)
        if api_session.ended_at is None:
            now = datetime.now(UTC)
            with OrmSession(writer(self.engine)) as db, db.begin():
                row = ensure_session(db, session_id, api_session.associated_id, now)
                if api_session.started_at:
                    row.started_at = api_session.started_at
                row.updated_at = now
            return False, 0, 0
        participants = await self.client.list_session_participants(session_id)
        now = datetime.now(UTC)
        result = SessionMergeResult()
        with OrmSession(writer(self.engine)) as db, db.begin():
            meeting_id = api_session.associated_id
            if meeting_id:
                meeting = ensure_meeting(db, meeting_id, now)
                if not meeting.title and api_session.meeting_display_name:
                    meeting.title = api_session.meeting_display_name
            row = ensure_session(db, session_id, meeting_id, now)
            row.meeting_id = meeting_id or row.meeting_id
            row.started_at = api_session.started_at or row.started_at
            row.ended_at = api_session.ended_at
            row.status = "ended"
            existing = {
                i.peer_id: i
                for i in db.execute(
                    select(ParticipantInterval).where(ParticipantInterval.session_id == session_id)
                ).scalars()
            }
            erased = ErasedSubjects.load(db.connection())
            for participant in participants:
                identifiers = (
                    participant.participant_key,
                    participant.custom_participant_id,
                    participant.user_id,
                    participant.peer_id or participant.id,
                )
                if erased.covers(identifiers, participant.joined_at or participant.left_at):
                    continue  # an erased person's past presence: not brought back (receiver.processing.suppression)
                self._merge_participant(db, row, existing, participant, result, now)
            close_open_intervals(db, row)
            row.reconciled_at = now
            row.reconcile_added = result.added
            row.reconcile_changed = result.changed
            row.updated_at = now
        for kind in ("added", "changed", "confirmed"):
            metrics.RECONCILE_CHANGES.labels(kind=kind).inc(getattr(result, kind))
        log.info(
            "session_reconciled",
            session_id=session_id,
            meeting_id=api_session.associated_id,
            added=result.added,
            changed=result.changed,
            confirmed=result.confirmed,
        )
        return True, result.added, result.changed

    @staticmethod
    def _merge_participant(
        db: OrmSession,
        session_row: Session,
        existing: dict[str, ParticipantInterval],
        participant: ApiParticipant,
        result: SessionMergeResult,
        now: datetime,
    ) -> None:
        peer_id = participant.peer_id or participant.id
        interval = existing.get(peer_id)
        decision = merge_api_participant(interval, participant)
        if interval is None:
            interval = ParticipantInterval(
                session_id=session_row.session_id,
                meeting_id=session_row.meeting_id,
                peer_id=peer_id,
                participant_key=participant.participant_key,
                source="api",
                closed_at_session_end=False,
                updated_at=now,
            )
            db.add(interval)
            existing[peer_id] = interval
        elif interval.source == "webhook":
            interval.source = "both"
        setattr(result, decision, getattr(result, decision) + 1)
        interval.participant_key = participant.participant_key
        interval.custom_participant_id = participant.custom_participant_id or interval.custom_participant_id
        interval.user_id = participant.user_id or interval.user_id
        interval.display_name = participant.display_name or interval.display_name
        interval.preset_name = participant.preset_name or interval.preset_name
        interval.meeting_id = interval.meeting_id or session_row.meeting_id
        if participant.joined_at is not None:
            interval.joined_at = participant.joined_at
        if participant.left_at is not None:
            interval.left_at = participant.left_at
            interval.closed_at_session_end = False
        interval.updated_at = now

    async def reconcile_recording(self, recording_id: str) -> bool:
        """Fetch one recording and merge it into the recording index."""
        try:
            api = await self.client.get_recording(recording_id)
        except DyteNotFound:
            log.warning("recording_unknown_to_api", recording_id=recording_id)
            with OrmSession(writer(self.engine)) as db, db.begin():
                mark_recording_missing(db, recording_id, datetime.now(UTC))  # links are not queued again
            return True
        now = datetime.now(UTC)
        with OrmSession(writer(self.engine)) as db, db.begin():
            apply_api_recording(db, api, now, recording_id)
        return True

    async def reconcile_livestream(self, livestream_id: str) -> bool:
        """Link a livestream to its meeting (and name) from the API; the stream key is not kept."""
        api = await self.client.get_livestream(livestream_id)
        now = datetime.now(UTC)
        with OrmSession(writer(self.engine)) as db, db.begin():
            if api.meeting_id:
                ensure_meeting(db, api.meeting_id, now)
            _, changed = write_livestream(
                db,
                livestream_id,
                api.status,
                now=now,
                meeting_id=api.meeting_id,
                session_id=api.session_id,
                name=api.name,
                from_api=True,
            )
            if changed:
                db.execute(
                    upsert_insert(db, LivestreamStatusChange)
                    .values(livestream_id=livestream_id, status=api.status, observed_at=now, source="api")
                    .on_conflict_do_nothing(index_elements=["livestream_id", "status", "source"])
                )
        return True

    async def reconcile_meeting(self, meeting_id: str) -> bool:
        """Fetch a meeting's title once (``title_fetched_at`` records that it was asked)."""
        api = await self.client.get_meeting(meeting_id)
        now = datetime.now(UTC)
        with OrmSession(writer(self.engine)) as db, db.begin():
            meeting = ensure_meeting(db, meeting_id, now)
            if not meeting.title and api.title:
                meeting.title = api.title
            meeting.title_fetched_at = now
            meeting.created_at = meeting.created_at or api.created_at
        return True


def apply_api_recording(db: OrmSession, api: ApiRecording, now: datetime, recording_id: str | None = None) -> None:
    """Merge a REST recording into the index through :func:`receiver.processing.writes.write_recording`.

    API values win when the status advances; download links are always
    refreshed; the status never moves backwards. Stored under
    ``recording_id`` when given (the id asked for), else the API's id.
    """
    if api.meeting_id:
        ensure_meeting(db, api.meeting_id, now)
    if api.session_id:
        ensure_session(db, api.session_id, api.meeting_id, now)
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
    }
    row, changed = write_recording(db, recording_id, status, values, now=now, overwrite=_API_REFRESHED)
    row.api_missing_at = None  # the API knows it (again)
    if changed:
        db.execute(
            upsert_insert(db, RecordingStatusChange)
            .values(recording_id=recording_id, status=status, observed_at=now, source="api")
            .on_conflict_do_nothing(index_elements=["recording_id", "status", "source"])
        )
    row.reconciled_at = now


# Columns the REST API always refreshes (download links expire; the API issues fresh ones).
_API_REFRESHED = frozenset({"download_url", "download_url_expires_at", "audio_download_url"})

__all__ += ["apply_api_recording"]
