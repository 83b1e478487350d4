"""The list pages with filters, search, sort, pagination and downloads: sessions, recordings, the event log.

Each reads one ``PAGE_SIZE`` page through the paged queries of
:mod:`receiver.reports.browse` / :mod:`receiver.reports.event_log` (never
every row) and answers ``?format=csv`` with the same rows as its API mirror
(:mod:`receiver.web.pages.filters`). Handlers run behind
:func:`receiver.web.login.guarded` (role analyst).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from datetime import UTC, datetime

from sqlalchemy.engine import Engine
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from receiver.db.models import EVENT_STATUSES
from receiver.processing.queue import queue_stats
from receiver.reports.browse import RECORDING_SORTS, SESSION_SORTS, recordings_page, sessions_page
from receiver.reports.event_log import EVENT_COLUMNS, EVENT_SORTS, EventFilter, event_page
from receiver.reports.paging import Page
from receiver.reports.queries import RECORDING_COLUMNS, SESSION_COLUMNS, ReportFilter
from receiver.web.api import ApiError, queue_expired_links
from receiver.web.pages.filters import EXPORT_LIMIT, ListingQuery, listing_query, page_export
from receiver.web.pages.views import PAGE_SIZE, base_context
from receiver.web.templating import render

__all__ = ["events_list", "recordings_list", "sessions_list"]


def _engine(request: Request) -> Engine:
    return request.app.state.engine


def _size(fmt: str) -> int:
    return PAGE_SIZE if fmt == "html" else EXPORT_LIMIT


async def _browse(request: Request, query: ListingQuery, browse: Callable[..., Page]) -> Page:
    """One page of ``browse`` (sessions or recordings) for the page's filters, search, sort and offset."""
    flt = ReportFilter(meeting_id=query.text("meeting_id"), since=query.since, until=query.until)
    return await run_in_threadpool(
        functools.partial(
            browse,
            _engine(request),
            flt,
            q=query.text("q"),
            sort=query.sort,
            limit=_size(query.fmt),
            offset=query.offset,
        )
    )


async def sessions_list(request: Request) -> Response:
    """GET /ui/sessions: filters (meeting, search ``q``, ``since``/``until``), sort (default newest first), pages."""
    query = listing_query(request, ("meeting_id", "q", "since", "until"), SESSION_SORTS, "-started_at")
    page = await _browse(request, query, sessions_page)
    if query.fmt != "html":
        return page_export(query.fmt, page.rows, SESSION_COLUMNS, "sessions", page.total)
    return render(
        "sessions.html",
        **base_context(request, "sessions"),
        title="Sessions",
        sessions=page.rows,
        total=page.total,
        page_size=PAGE_SIZE,
        query=query,
        meeting_id=query.text("meeting_id"),
    )


async def recordings_list(request: Request) -> Response:
    """GET /ui/recordings: filters, search, sort (default newest first), pages; expired links shown are queued."""
    query = listing_query(request, ("meeting_id", "q", "since", "until"), RECORDING_SORTS, "-started_at")
    page = await _browse(request, query, recordings_page)
    if query.fmt != "html":
        return page_export(query.fmt, page.rows, RECORDING_COLUMNS, "recordings", page.total)
    link_states = await queue_expired_links(request, page.rows)
    settings = request.app.state.settings
    refreshed = request.query_params.get("refreshed") or ""
    return render(
        "recordings.html",
        **base_context(request, "recordings"),
        title="Recordings",
        recordings=page.rows,
        total=page.total,
        page_size=PAGE_SIZE,
        query=query,
        link_states=link_states,
        refresh_possible=settings.reconcile_enabled and settings.api_credentials_set,
        now=datetime.now(UTC),
        meeting_id=query.text("meeting_id"),
        refreshed=refreshed if refreshed.isdigit() else None,
    )


async def events_list(request: Request) -> Response:
    """GET /ui/events: the event log (newest first) filtered by status, type, session, delivery id and time."""
    query = listing_query(
        request, ("status", "event_name", "session_id", "delivery_id", "since", "until"), EVENT_SORTS, "-id"
    )
    status = query.text("status")
    if status is not None and status not in EVENT_STATUSES:
        raise ApiError(400, "bad_request", f"status: use one of {', '.join(EVENT_STATUSES)}")
    flt = EventFilter(
        status=status,
        event_name=query.text("event_name"),
        session_id=query.text("session_id"),
        delivery_id=query.text("delivery_id"),
        since=query.since,
        until=query.until,
    )
    engine = _engine(request)
    page = await run_in_threadpool(
        functools.partial(event_page, engine, flt, sort=query.sort, limit=_size(query.fmt), offset=query.offset)
    )
    if query.fmt != "html":
        return page_export(query.fmt, page.rows, EVENT_COLUMNS, "events", page.total)
    stats = await run_in_threadpool(queue_stats, engine)
    retried = request.query_params.get("retried")
    retried_dead = request.query_params.get("retried_dead")
    return render(
        "events.html",
        **base_context(request, "events"),
        title="Events",
        events=page.rows,
        total=page.total,
        page_size=PAGE_SIZE,
        query=query,
        status=status,
        statuses=EVENT_STATUSES,
        stats=stats,
        retried=retried if retried and retried.isdigit() else None,
        retried_dead=retried_dead if retried_dead and retried_dead.isdigit() else None,
        retry_statuses=("failed", "dead"),
    )
