"""Expired recording download links: queue their refresh for the worker, never fetch in a request.

Pre-signed download links expire (``download_url_expiry``, FACTS.md). A page
or API request that shows an expired link must not call the provider itself
(a slow or rate-limited provider would hold the request, and an anonymous
flood of page views would become a flood of provider calls). Instead:

1. the request hands the ids of the expired rows it shows to
   :func:`queue_link_refresh`, which arms a ``recording`` reconcile task for
   each through the write layer's :func:`receiver.processing.writes.schedule_task`
   (only rows someone asked for; not again while one is queued, within
   :data:`MIN_REFRESH_INTERVAL_SECONDS` of the last refresh, or once the
   provider answered 404);
2. the worker's reconciler runs the task through the process-wide rate
   limiter it already uses (:meth:`receiver.processing.reconcile.Reconciler.reconcile_recording`),
   storing the fresh link, or remembering a 404 in ``recordings.api_missing_at``;
3. the page shows the state of each expired link (:class:`LinkState`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session as OrmSession

from receiver.db.engine import writer
from receiver.db.models import TASK_DONE, TASK_PENDING, ReconcileTask, Recording
from receiver.enums import TaskKind
from receiver.processing.writes import schedule_task

__all__ = [
    "LinkState",
    "MIN_REFRESH_INTERVAL_SECONDS",
    "expired_recording_ids",
    "force_link_refresh",
    "queue_link_refresh",
]

#: A link refreshed less than this long ago (seconds) is not queued again, even if the new one is expired too.
MIN_REFRESH_INTERVAL_SECONDS = 300.0


class LinkState(StrEnum):
    """What the pages say about an expired download link."""

    QUEUED = "refresh_queued"  # a recording task is pending: the worker will fetch a fresh link
    MISSING = "missing"  # the provider answered 404 for this recording: not asked again
    RECENT = "recently_refreshed"  # refreshed within MIN_REFRESH_INTERVAL_SECONDS and still expired
    NOT_CONFIGURED = "not_configured"  # no provider credentials / reconciliation off: nothing can refresh it


def expired_recording_ids(rows: Iterable[dict[str, Any]], now: datetime) -> list[str]:
    """Pure: ids of report rows (``recordings_report``) whose link has an expiry at or before ``now`` (UTC)."""
    return [
        row["recording_id"]
        for row in rows
        if row.get("download_url_expires_at") is not None and row["download_url_expires_at"] <= now
    ]


def queue_link_refresh(
    engine: Engine, recording_ids: Sequence[str], now: datetime, *, enabled: bool = True
) -> dict[str, LinkState]:
    """Arm a ``recording`` reconcile task for each expired link asked for; returns each id's :class:`LinkState`.

    Args:
        engine: the database (writes go through :func:`receiver.db.engine.writer`).
        recording_ids: ids of expired links a request is about to show (at most a page).
        now: the current time, UTC.
        enabled: False when no worker can refresh (no credentials, reconciliation off):
            nothing is queued and every id is :attr:`LinkState.NOT_CONFIGURED`.

    Never calls the provider. Skipped (state in brackets): a recording the provider
    answered 404 for [missing], one with a pending task [queued, not re-armed], one whose
    task finished less than :data:`MIN_REFRESH_INTERVAL_SECONDS` ago [recently_refreshed].
    """
    ids = list(dict.fromkeys(recording_ids))
    if not ids:
        return {}
    if not enabled:
        return dict.fromkeys(ids, LinkState.NOT_CONFIGURED)
    states: dict[str, LinkState] = {}
    with OrmSession(engine) as db:
        missing = set(
            db.execute(
                select(Recording.recording_id).where(
                    Recording.recording_id.in_(ids), Recording.api_missing_at.is_not(None)
                )
            ).scalars()
        )
        tasks = {
            object_id: (status, done_at)
            for object_id, status, done_at in db.execute(
                select(ReconcileTask.object_id, ReconcileTask.status, ReconcileTask.done_at).where(
                    ReconcileTask.kind == TaskKind.RECORDING, ReconcileTask.object_id.in_(ids)
                )
            ).all()
        }
    to_queue: list[str] = []
    recent = now - timedelta(seconds=MIN_REFRESH_INTERVAL_SECONDS)
    for recording_id in ids:
        status, done_at = tasks.get(recording_id, (None, None))
        if recording_id in missing:
            states[recording_id] = LinkState.MISSING
        elif status == TASK_PENDING:
            states[recording_id] = LinkState.QUEUED
        elif status == TASK_DONE and done_at is not None and done_at > recent:
            states[recording_id] = LinkState.RECENT
        else:
            to_queue.append(recording_id)
            states[recording_id] = LinkState.QUEUED
    if to_queue:
        with OrmSession(writer(engine)) as db, db.begin():
            for recording_id in to_queue:
                schedule_task(db, TaskKind.RECORDING, recording_id, now, now)
    return states


def force_link_refresh(engine: Engine, recording_ids: Sequence[str], now: datetime) -> int:
    """An operator's "refresh links": queue every given recording, 404-marked and recently refreshed ones too.

    Clears ``api_missing_at`` (the provider may know the recording again) and arms the
    ``recording`` task of each id through :func:`receiver.processing.writes.schedule_task`.
    Returns how many were queued. Never calls the provider.
    """
    ids = list(dict.fromkeys(recording_ids))
    if not ids:
        return 0
    with OrmSession(writer(engine)) as db, db.begin():
        db.execute(update(Recording).where(Recording.recording_id.in_(ids)).values(api_missing_at=None))
        for recording_id in ids:
            schedule_task(db, TaskKind.RECORDING, recording_id, now, now)
    return len(ids)
