"""Operator actions of the pages: retry, replay, bulk retry, refresh links, revoke a sign-in. Each is audited.

All run behind :func:`receiver.web.login.guarded` with the ``operator`` role
(an analyst gets a 403 page and a ``denied`` audit row), as form posts with
the session's CSRF field. The two that redo finished work ask first:

* **replay** (a ``done`` event applied again): ``GET /ui/events/{id}/replay``
  shows what will happen; only ``POST`` with ``confirm=yes`` does it;
* **bulk retry** (every ``dead`` event): ``GET /ui/events/retry-dead`` shows
  how many; only ``POST`` with ``confirm=yes`` does it.

A single failed or dead event is retried with one click (``POST
/ui/events/{id}/retry``): that is what the button is for.
"""

from __future__ import annotations

import functools
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

from sqlalchemy import func, select
from sqlalchemy.engine import Engine
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from receiver.db.models import EVENT_DEAD, EVENT_DONE, EVENT_STATUSES, WebhookEvent
from receiver.processing.links import expired_recording_ids, force_link_refresh
from receiver.processing.queue import requeue_events
from receiver.reports.queries import ReportFilter, recordings_report
from receiver.web import audit
from receiver.web.api import ApiError, get_event, retry_event, text_param
from receiver.web.pages.views import base_context
from receiver.web.templating import SECURITY_HEADERS, render

__all__ = [
    "retry_page",
    "replay_confirm",
    "replay_page",
    "bulk_retry_confirm",
    "bulk_retry_page",
    "refresh_links_page",
    "revoke_sign_in_page",
]


def _engine(request: Request) -> Engine:
    return request.app.state.engine


def _event_id(request: Request) -> int:
    raw_id = str(request.path_params["event_id"])
    if not raw_id.isdigit() or not 1 <= int(raw_id) <= 2**63 - 1:
        raise ApiError(400, "bad_request", "event_id: not a positive integer")
    return int(raw_id)


async def _audit(request: Request, action: str, target: str, detail: str | None = None) -> None:
    await audit.record_request(request, action, target=target, detail=detail)


def _confirmed(request: Request) -> None:
    if request.state.form.get("confirm") != "yes":
        raise ApiError(400, "not_confirmed", "Confirm on the confirmation page (confirm=yes) first.")


def _back_to_events(query: dict[str, str], status: str | None) -> Response:
    if status in EVENT_STATUSES:
        query["status"] = status
    return RedirectResponse("/ui/events?" + urlencode(query), status_code=303, headers=SECURITY_HEADERS)


async def retry_page(request: Request) -> Response:
    """POST /ui/events/{event_id}/retry: requeue one failed or dead event; a done one must be replayed (confirmed)."""
    event_id = _event_id(request)
    event = await run_in_threadpool(get_event, _engine(request), event_id)
    if event is None:
        raise ApiError(404, "not_found", f"no event {event_id}")
    if event["status"] == EVENT_DONE:
        return RedirectResponse(f"/ui/events/{event_id}/replay", status_code=303, headers=SECURITY_HEADERS)
    event = await run_in_threadpool(retry_event, _engine(request), event_id)
    await _audit(request, "retry", f"event:{event_id}", f"{event.get('event_name') or 'unknown'}")
    return _back_to_events({"retried": str(event_id)}, request.state.form.get("status"))


async def replay_confirm(request: Request) -> Response:
    """GET /ui/events/{event_id}/replay: what replaying this done event will do, and the confirm button."""
    event_id = _event_id(request)
    event = await run_in_threadpool(get_event, _engine(request), event_id)
    if event is None:
        raise ApiError(404, "not_found", f"no event {event_id}")
    return render(
        "confirm.html",
        **base_context(request, "events"),
        title=f"Replay event {event_id}?",
        message=(
            f"Event {event_id} ({event['event_name'] or 'unknown'}, received {event['received_at']}) was already "
            "applied. Replaying puts it back in the queue; the worker applies it again (idempotently) and the "
            "replay is recorded in the audit log under your name."
        ),
        action=f"/ui/events/{event_id}/replay",
        button="Replay event",
        possible=event["status"] == EVENT_DONE,
        cancel="/ui/events",
    )


async def replay_page(request: Request) -> Response:
    """POST /ui/events/{event_id}/replay (confirm=yes): requeue one done event."""
    _confirmed(request)
    event_id = _event_id(request)
    event = await run_in_threadpool(get_event, _engine(request), event_id)
    if event is None:
        raise ApiError(404, "not_found", f"no event {event_id}")
    if event["status"] != EVENT_DONE:
        raise ApiError(409, "conflict", f"event {event_id} is {event['status']}, not done: use Retry")
    await run_in_threadpool(retry_event, _engine(request), event_id)
    await _audit(request, "replay", f"event:{event_id}", f"{event.get('event_name') or 'unknown'}")
    return _back_to_events({"retried": str(event_id)}, None)


def _dead_count(engine: Engine) -> int:
    with engine.connect() as connection:
        count = connection.execute(
            select(func.count()).select_from(WebhookEvent).where(WebhookEvent.status == EVENT_DEAD)
        ).scalar_one()
    return int(count)


async def bulk_retry_confirm(request: Request) -> Response:
    """GET /ui/events/retry-dead: how many dead events a bulk retry would requeue, and the confirm button."""
    count = await run_in_threadpool(_dead_count, _engine(request))
    return render(
        "confirm.html",
        **base_context(request, "events"),
        title="Retry every dead event?",
        message=(
            f"{count} event{'' if count == 1 else 's'} failed too often and are dead. Retrying puts all of them "
            "back in the queue with a fresh attempt count; the action is recorded in the audit log."
        ),
        action="/ui/events/retry-dead",
        button=f"Retry {count} dead event{'' if count == 1 else 's'}",
        possible=count > 0,
        cancel="/ui/events?status=dead",
    )


async def bulk_retry_page(request: Request) -> Response:
    """POST /ui/events/retry-dead (confirm=yes): requeue every dead event."""
    _confirmed(request)
    count = await run_in_threadpool(functools.partial(requeue_events, _engine(request), statuses=(EVENT_DEAD,)))
    await _audit(request, "bulk_retry", "events:dead", f"{count} events requeued")
    return _back_to_events({"retried_dead": str(count)}, None)


async def refresh_links_page(request: Request) -> Response:
    """POST /ui/recordings/refresh: queue a refresh of every expired link shown (``meeting_id``), 404s included."""
    meeting_id = text_param(request, "meeting_id")
    now = datetime.now(UTC)
    engine = _engine(request)

    def expired() -> list[str]:
        return expired_recording_ids(recordings_report(engine, ReportFilter(meeting_id=meeting_id)), now)

    ids = await run_in_threadpool(expired)
    count = await run_in_threadpool(force_link_refresh, engine, ids, now)
    target = f"recordings:meeting={meeting_id}" if meeting_id else "recordings:all"
    await _audit(request, "refresh_links", target, f"{count} expired links queued")
    query: dict[str, Any] = {"refreshed": count}
    if meeting_id:
        query["meeting_id"] = meeting_id
    return RedirectResponse("/ui/recordings?" + urlencode(query), status_code=303, headers=SECURITY_HEADERS)


async def revoke_sign_in_page(request: Request) -> Response:
    """POST /ui/audit/sign-ins/{session_hash}/revoke: end someone's page sign-in at once."""
    session_hash = str(request.path_params["session_hash"])
    if len(session_hash) != 64 or any(ch not in "0123456789abcdef" for ch in session_hash):
        raise ApiError(400, "bad_request", "not a sign-in reference")
    revoked = await run_in_threadpool(
        request.state.page_auth.sessions.revoke, _engine(request), session_hash, datetime.now(UTC)
    )
    if not revoked:
        raise ApiError(404, "not_found", "no such active sign-in")
    await _audit(request, "revoke_session", f"ui_session:{session_hash[:12]}")
    return RedirectResponse("/ui/audit?revoked=1", status_code=303, headers=SECURITY_HEADERS)
