"""Reconciliation with the provider's REST API, so reports converge to everything the platform knows.

Webhooks get lost (Dyte gives up after 5 retries), arrive twice, late and out
of order. The reconciler runs due :class:`~receiver.db.models.ReconcileTask` rows:

* ``session``: ``GET /sessions/{id}?include_breakout_rooms=true`` and every
  page of ``GET /sessions/{id}/participants?include_peer_events=true``. API
  times win where both sides know a peer (``source`` becomes ``both``);
  peers only the API knows are added (``api``); webhook-only peers are kept
  (``webhook``); open intervals are closed at the session end. Participants
  missing optional fields are kept one by one (rules:
  :mod:`receiver.processing.merge`). The session's meeting id from the
  webhooks is kept; a different one from the API is flagged
  (``api_meeting_id``). Breakout rooms become sessions linked to this one
  (``parent_session_id``) and are reconciled in turn. An inferred end is
  confirmed (or undone, when the API reports the session live). The session
  is marked reconciled with counts of what was added and changed, and a
  ``session_media`` task is armed; with OUTBOUND_WEBHOOK_URL set, the
  session's attendance is enqueued for the outbound webhook in the same
  transaction (:mod:`receiver.processing.outbound`). A session the API
  still reports live is checked again after ``STALE_SESSION_SECONDS``.
* ``session_media``: the session's recordings (``GET /recordings?meeting_id=``,
  those of this session or of none) and livestreams (``GET
  /meetings/{id}/livestream``, ``GET /sessions/{id}/livestream-sessions``
  with viewer and ingest seconds), so recordings and livestreams no webhook
  announced are found. An endpoint the provider does not have (404) counts
  as empty. Recordings still lacking their start/stop reasons get a
  ``recording`` task.
* ``recording``: ``GET /recordings/{id}``: download URLs, expiry, size,
  duration, session id, start/stop reasons. Status never moves backwards.
  Also armed by pages and the API for expired links someone looked at
  (:mod:`receiver.processing.links`); a 404 is remembered in
  ``recordings.api_missing_at``.
* ``livestream``: ``GET /livestreams/{id}`` links a bare ``streamId`` to its
  meeting, with its runs (viewer data). Stream keys are never stored.
* ``meeting``: ``GET /meetings/{id}`` fetches a missing title, once.

Sweeps (:mod:`receiver.processing.sweeps`): the worker infers the end of
sessions idle for ``SESSION_IDLE_END_SECONDS``; :meth:`Reconciler.run_due`
arms ``session`` tasks for sessions that never got meeting.ended and had no
event for ``STALE_SESSION_SECONDS`` (default 2 h). Failures back off
(:class:`~receiver.retry.RetryPolicy`) and are recorded on the task as one
line (the traceback goes to the log); after the attempt limit the task is
``dead``. Every write goes through the write layer
(:mod:`receiver.processing.writes_api`, :mod:`receiver.processing.writes`).

Participants of an erased person whose presence began before the erasure
are skipped (:mod:`receiver.processing.suppression`): a reconciliation or
backfill never brings their old presence back.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from traceback import format_exc
from typing import TypeVar

import structlog
from sqlalchemy import and_, or_, update
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session as OrmSession

from receiver import metrics
from receiver.db.engine import writer
from receiver.db.models import TASK_DEAD, TASK_DONE, TASK_PENDING, ReconcileTask, Session
from receiver.processing.merge import api_intervals, merge_api_participant
from receiver.processing.outbound import enqueue_session_attendance
from receiver.processing.queue import TRACEBACK_FRAMES, claim, error_line
from receiver.processing.sweeps import arm_stale_sessions
from receiver.processing.writes import (
    RowCache,
    close_open_intervals,
    ensure_meeting,
    mark_recording_missing,
    write_livestream,
)
from receiver.processing.writes_api import (
    apply_api_livestream,
    apply_api_recording,
    apply_api_session,
    merge_api_interval,
    write_livestream_session,
)
from receiver.providers.base import ProviderClient
from receiver.providers.dyte.rest_models import ApiParticipant, ApiSession
from receiver.providers.errors import ProviderAPIError, ProviderNotFound
from receiver.retry import RetryPolicy

__all__ = [
    "Reconciler",
    "SessionMergeResult",
    "merge_api_participant",
    "claim_tasks",
    "arm_stale_sessions",
    "apply_api_recording",
    "TASK_KINDS",
]

log = structlog.get_logger("receiver.processing.reconcile")

#: Kinds of reconciliation tasks, in the order a session's work happens.
TASK_KINDS = ("session", "session_media", "recording", "livestream", "meeting")

_T = TypeVar("_T")


class SessionMergeResult:
    """What one session reconciliation did: intervals added, changed, confirmed unchanged; participants skipped."""

    def __init__(self) -> None:
        self.added = 0
        self.changed = 0
        self.confirmed = 0
        self.skipped = 0


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


async def _or_empty(call: Awaitable[list[_T]], what: str, object_id: str) -> list[_T]:
    """A listing, or ``[]`` when the provider does not serve it (404: an endpoint it lacks, or nothing to list)."""
    try:
        return await call
    except ProviderNotFound:
        log.info("listing_not_served", listing=what, object_id=object_id)
        return []


def _fallback_end(api: ApiSession, participants: list[ApiParticipant]) -> datetime | None:
    """An end for a session the API calls ENDED without a readable ``ended_at``: the last leave, else ``updated_at``."""
    if api.ended_at is not None:
        return api.ended_at
    if api.status != "ENDED":
        return None
    leaves = [p.left_at for p in participants if p.left_at is not None]
    return max(leaves) if leaves else api.updated_at


class Reconciler:
    """Runs due reconciliation tasks against the provider's REST API.

    Args:
        engine: the database.
        client: a :class:`~receiver.providers.base.ProviderClient` (rate-limited, retrying).
        worker_id: identifies the claims of this process.
        stale_session_seconds: sweep threshold and re-check delay for live sessions.
        retry_policy: backoff between task attempts and the attempt limit.
        batch_size: tasks claimed per round.
        outbound: enqueue the outbound attendance webhook of each reconciled
            session, in the reconciliation's transaction
            (:func:`receiver.processing.outbound.enqueue_session_attendance`;
            OUTBOUND_WEBHOOK_URL set).
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
        outbound: bool = False,
    ) -> None:
        self.engine = engine
        self.client = client
        self.worker_id = worker_id
        self.stale_session_seconds = stale_session_seconds
        self.retry_policy = retry_policy or RetryPolicy(base_seconds=5.0, max_seconds=600.0, max_attempts=8)
        self.batch_size = batch_size
        self.lease_seconds = lease_seconds
        self.sweep_interval_seconds = sweep_interval_seconds
        self.outbound = outbound
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

    def _handler(self, kind: str) -> Callable[[str], Awaitable[bool]] | None:
        return {
            "session": self.reconcile_session,
            "session_media": self.reconcile_session_media,
            "recording": self.reconcile_recording,
            "livestream": self.reconcile_livestream,
            "meeting": self.reconcile_meeting,
        }.get(kind)

    async def run_task(self, task_id: int) -> str:
        """Run one claimed task; returns ``done``, ``later``, ``retry``, ``dead`` or ``lost``."""
        with OrmSession(self.engine) as db:
            task = db.get(ReconcileTask, task_id)
            if task is None or task.locked_by != self.worker_id:
                return "lost"
            kind, object_id, attempts = task.kind, task.object_id, task.attempts
        handler = self._handler(kind)
        try:
            if handler is None:
                raise ValueError(f"unknown task kind {kind!r}")
            final = await handler(object_id)
        except (ProviderAPIError, ValueError) as exc:
            return self._task_failed(task_id, kind, object_id, attempts, exc, traceback=False)
        except Exception as exc:  # database or bug: recorded, retried like API errors, traceback logged
            return self._task_failed(task_id, kind, object_id, attempts, exc, traceback=True)
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

    def _task_failed(
        self, task_id: int, kind: str, object_id: str, attempts: int, exc: Exception, *, traceback: bool
    ) -> str:
        now = datetime.now(UTC)
        error = error_line(exc)
        dead = self.retry_policy.exhausted(attempts)
        with OrmSession(writer(self.engine)) as db, db.begin():
            task = db.get(ReconcileTask, task_id)
            if task is None:
                return "lost"
            task.last_error = error
            task.locked_by = task.locked_until = None
            task.updated_at = now
            if dead:
                task.status = TASK_DEAD
            else:
                task.due_at = now + timedelta(seconds=self.retry_policy.delay_seconds(attempts))
        log.warning(
            "reconcile_failed",
            kind=kind,
            object_id=object_id,
            attempts=attempts,
            dead=dead,
            error=error,
            **({"traceback": format_exc(limit=TRACEBACK_FRAMES)} if traceback else {}),
        )
        return "dead" if dead else "retry"

    # ------------------------------------------------------------------ sessions

    async def reconcile_session(self, session_id: str) -> bool:
        """Merge the API's view of one session; returns False while the API says it is still live."""
        final, _, _ = await self.reconcile_session_counts(session_id)
        return final

    async def reconcile_session_counts(self, session_id: str, *, schedule_media: bool = True) -> tuple[bool, int, int]:
        """Like :meth:`reconcile_session`; returns (final, intervals added, intervals changed).

        ``schedule_media``: arm the ``session_media`` task (backfill runs
        :meth:`reconcile_session_media` itself). Raises the client's errors
        (nothing is written then).
        """
        api_session = await self.client.get_session(session_id, include_breakout_rooms=True)
        if api_session.ended_at is None and api_session.status != "ENDED":
            now = datetime.now(UTC)
            with OrmSession(writer(self.engine)) as db, db.begin(), db.no_autoflush:
                cache = RowCache()
                cache.prefetch(db, {api_session.associated_id} if api_session.associated_id else set(), {session_id})
                apply_api_session(db, api_session, now, cache)
                cache.flush(db)
            return False, 0, 0
        participants = await self.client.list_session_participants(session_id, include_peer_events=True)
        now = datetime.now(UTC)
        result = SessionMergeResult()
        with OrmSession(writer(self.engine)) as db, db.begin(), db.no_autoflush:
            cache = RowCache()
            # Lock order of the write layer: meetings, then sessions, each in id order.
            breakouts = sorted(api_session.breakout_rooms, key=lambda b: b.id)
            cache.prefetch(
                db,
                {s.associated_id for s in (api_session, *breakouts) if s.associated_id},
                {session_id, *(b.id for b in breakouts)},
            )
            row = apply_api_session(db, api_session, now, cache, ended_at=_fallback_end(api_session, participants))
            intervals = cache.session_intervals(db, session_id)
            erased = cache.erased_subjects(db)
            for participant in participants:
                identifiers = (
                    participant.participant_key,
                    participant.custom_participant_id,
                    participant.user_id,
                    participant.peer_id or participant.id,
                )
                if erased.covers(identifiers, participant.joined_at or participant.left_at):
                    continue  # an erased person's past presence: not brought back (receiver.processing.suppression)
                peers = api_intervals(participant)
                if not peers:
                    result.skipped += 1
                    log.warning("participant_without_identity", session_id=session_id)
                for peer in peers:
                    decision = merge_api_interval(intervals, row, peer, now)
                    setattr(result, decision, getattr(result, decision) + 1)
            close_open_intervals(db, row, cache)
            row.reconciled_at = now
            row.reconcile_added = result.added
            row.reconcile_changed = result.changed
            row.updated_at = now
            for breakout in breakouts:
                child = apply_api_session(db, breakout, now, cache, parent_session_id=session_id)
                if child.reconciled_at is None:
                    cache.schedule_task("session", breakout.id, now, now)
            if schedule_media:
                cache.schedule_task("session_media", session_id, now, now)
            cache.flush(db)
            if self.outbound:  # the delivery commits with the reconciliation, or not at all
                db.flush()
                enqueue_session_attendance(db, session_id, now)
        for kind in ("added", "changed", "confirmed"):
            metrics.RECONCILE_CHANGES.labels(kind=kind).inc(getattr(result, kind))
        log.info(
            "session_reconciled",
            session_id=session_id,
            meeting_id=api_session.associated_id,
            added=result.added,
            changed=result.changed,
            confirmed=result.confirmed,
            skipped=result.skipped,
            breakout_rooms=len(api_session.breakout_rooms),
        )
        return True, result.added, result.changed

    # ------------------------------------------------------------------ recordings and livestreams

    async def reconcile_session_media(self, session_id: str) -> bool:
        """List the session's recordings and livestreams (with their runs) and merge them; always final.

        Recordings of the session's meeting are kept when they belong to
        this session or name no session. Raises the client's errors (other
        than 404, which counts as an empty listing); nothing is written then.
        """
        with OrmSession(self.engine) as db:
            row = db.get(Session, session_id)
            meeting_id = row.meeting_id if row is not None else None
        recordings = []
        livestreams = []
        if meeting_id:
            recordings = await _or_empty(self.client.list_recordings(meeting_id=meeting_id), "recordings", meeting_id)
            livestreams = await _or_empty(self.client.list_meeting_livestreams(meeting_id), "livestreams", meeting_id)
        runs = await _or_empty(
            self.client.list_session_livestream_sessions(session_id), "livestream-sessions", session_id
        )
        now = datetime.now(UTC)
        found = 0
        with OrmSession(writer(self.engine)) as db, db.begin(), db.no_autoflush:
            cache = RowCache()
            cache.prefetch(db, {meeting_id} if meeting_id else set(), {session_id})
            for recording in sorted(recordings, key=lambda r: r.id):
                if recording.session_id not in (None, session_id):
                    continue
                found += 1
                if apply_api_recording(db, recording, now, cache=cache):
                    cache.schedule_task("recording", recording.id, now, now)  # for its start/stop reasons
            for livestream in sorted(livestreams, key=lambda s: s.id):
                apply_api_livestream(db, livestream, now, cache, meeting_id=meeting_id)
            for livestream_run in sorted(runs, key=lambda r: r.id):
                if livestream_run.livestream_id:  # the livestream streamed this session
                    write_livestream(
                        db,
                        livestream_run.livestream_id,
                        None,
                        now=now,
                        meeting_id=meeting_id,
                        session_id=session_id,
                        from_api=True,
                        cache=cache,
                    )
                write_livestream_session(db, livestream_run, now, cache, meeting_id=meeting_id)
            session_row = cache.sessions.get(session_id)
            if session_row is not None:
                session_row.media_reconciled_at = now
            cache.flush(db)
        log.info(
            "session_media_reconciled",
            session_id=session_id,
            recordings=found,
            livestreams=len(livestreams),
            livestream_runs=len(runs),
        )
        return True

    async def reconcile_recording(self, recording_id: str) -> bool:
        """Fetch one recording and merge it into the recording index."""
        try:
            api = await self.client.get_recording(recording_id)
        except ProviderNotFound:
            log.warning("recording_unknown_to_api", recording_id=recording_id)
            with OrmSession(writer(self.engine)) as db, db.begin():
                mark_recording_missing(db, recording_id, datetime.now(UTC))  # links are not queued again
            return True
        now = datetime.now(UTC)
        with OrmSession(writer(self.engine)) as db, db.begin(), db.no_autoflush:
            apply_api_recording(db, api, now, recording_id)
        return True

    async def reconcile_livestream(self, livestream_id: str) -> bool:
        """Link a livestream to its meeting (and name) from the API, and store its runs; the stream key is not kept."""
        api = await self.client.get_livestream(livestream_id)
        runs = await _or_empty(self.client.list_livestream_sessions(livestream_id), "livestream runs", livestream_id)
        now = datetime.now(UTC)
        with OrmSession(writer(self.engine)) as db, db.begin(), db.no_autoflush:
            cache = RowCache()
            apply_api_livestream(db, api, now, cache, livestream_id=livestream_id)
            for livestream_run in sorted(runs, key=lambda r: r.id):
                if livestream_run.livestream_id in (None, livestream_id, api.id):
                    run = livestream_run.model_copy(update={"livestream_id": livestream_id})
                    write_livestream_session(db, run, now, cache, meeting_id=api.meeting_id)
            cache.flush(db)
        return True

    async def reconcile_meeting(self, meeting_id: str) -> bool:
        """Fetch a meeting's title once (``title_fetched_at`` records that it was asked; a 404 is an answer too)."""
        try:
            api = await self.client.get_meeting(meeting_id)
        except ProviderNotFound:
            log.warning("meeting_unknown_to_api", meeting_id=meeting_id)
            api = None
        now = datetime.now(UTC)
        with OrmSession(writer(self.engine)) as db, db.begin(), db.no_autoflush:
            cache = RowCache()
            meeting = ensure_meeting(db, meeting_id, now, cache=cache)
            if api is not None and not meeting.title and api.title:
                meeting.title = api.title
            meeting.title_fetched_at = now
            if api is not None:
                meeting.created_at = meeting.created_at or api.created_at
            cache.flush(db)
        return True
