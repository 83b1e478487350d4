"""The API mirrors of the analysts' pages (issue #21): one event with its payload, a person, a series, the overview.

Endpoints (``GET``, role analyst, guarded by :func:`receiver.web.api._guarded`;
contract in :mod:`receiver.web.openapi`):

* ``/api/events/{event_id}``: the event's columns plus ``payload`` (the
  stored raw body pretty-printed, secrets redacted) and ``payload_state``
  (``stored``, ``purged``, ``erased``, ``empty``); JSON only;
* ``/api/people/{participant_key}`` (``since``, ``until``, ``limit``,
  ``offset``, ``format``): the person's totals, weeks and one page of their
  sessions (CSV: the session rows);
* ``/api/people/{participant_key}/weeks``: attended minutes per ISO week;
* ``/api/meetings/{meeting_id}/series`` (``since``, ``until``,
  ``occurrences`` 1..52, default 12): the occurrences x people matrix and
  the trend (CSV: one row per person per occurrence attended);
* ``/api/overview`` (``period`` ``day`` | ``week``, ``since``, ``until``;
  default the last 90 days / 26 weeks): sessions, people and minutes per period.

Every format goes through :func:`receiver.web.exports.export_response`.
"""

from __future__ import annotations

import functools
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.engine import Engine
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from receiver.errors import HTTPError
from receiver.reports.event_log import EVENT_COLUMNS, event_detail
from receiver.reports.overview import OVERVIEW_COLUMNS, PERIODS, overview_window, usage_overview
from receiver.reports.people import PERSON_SESSION_COLUMNS, person_report
from receiver.reports.series import MAX_OCCURRENCES, SERIES_CELL_COLUMNS, SeriesReport, series_cells, series_report
from receiver.web.exports import NO_STORE, export_response, json_items
from receiver.web.params import (
    event_id_param,
    int_param,
    page_params,
    parse_time_param,
    path_text,
    response_format,
)

__all__ = [
    "EVENT_DETAIL_COLUMNS",
    "PERSON_COLUMNS",
    "WEEK_COLUMNS",
    "occurrences_param",
    "overview_params",
    "person_weeks",
    "series_json",
    "show_event",
    "show_overview",
    "show_person",
    "show_series",
]

#: Keys of ``/api/events/{event_id}``.
EVENT_DETAIL_COLUMNS: tuple[str, ...] = (*EVENT_COLUMNS, "purged_at", "erased_at", "payload_state", "payload")
#: Keys of the ``person`` object of ``/api/people/{participant_key}``.
PERSON_COLUMNS: tuple[str, ...] = (
    "participant_key",
    "display_names",
    "sessions",
    "meetings",
    "attended_seconds",
    "first_seen_at",
    "last_seen_at",
)
WEEK_COLUMNS: tuple[str, ...] = ("period_start", "sessions", "attended_minutes")


def _engine(request: Request) -> Engine:
    return request.app.state.engine


def _window(request: Request) -> tuple[datetime | None, datetime | None]:
    return (
        parse_time_param("since", request.query_params.get("since")),
        parse_time_param("until", request.query_params.get("until")),
    )


async def show_event(request: Request) -> Response:
    """GET /api/events/{event_id}: one stored event with its redacted payload (404 when unknown)."""
    event_id = event_id_param(request)
    event = await run_in_threadpool(event_detail, _engine(request), event_id)
    if event is None:
        raise HTTPError(404, "not_found", f"no event {event_id}")
    return JSONResponse(json_items([event], EVENT_DETAIL_COLUMNS)[0], headers=NO_STORE)


async def show_person(request: Request) -> Response:
    """GET /api/people/{participant_key}: totals, weeks and a page of the person's sessions (newest first)."""
    fmt = response_format(request)
    limit, offset = page_params(request)
    key = path_text(request, "participant_key")
    since, until = _window(request)
    report = await run_in_threadpool(
        functools.partial(person_report, _engine(request), key, since=since, until=until, limit=limit, offset=offset)
    )
    if report is None:
        raise HTTPError(404, "not_found", f"no attendance of {key!r} in this window")
    page = report.sessions
    body = {
        "person": json_items([report.summary], PERSON_COLUMNS)[0],
        "weeks": json_items(report.weeks, WEEK_COLUMNS),
        "items": json_items(page.rows, PERSON_SESSION_COLUMNS),
        "total": page.total,
        "limit": limit,
        "offset": offset,
    }
    return export_response(
        fmt,
        page.rows,
        PERSON_SESSION_COLUMNS,
        json_body=body,
        filename=f"person-{key}",
        headers={"X-Total-Count": str(page.total)},
    )


async def person_weeks(request: Request) -> Response:
    """GET /api/people/{participant_key}/weeks: attended minutes and sessions per ISO week (Monday, UTC)."""
    fmt = response_format(request)
    key = path_text(request, "participant_key")
    since, until = _window(request)
    report = await run_in_threadpool(
        functools.partial(person_report, _engine(request), key, since=since, until=until, limit=1)
    )
    if report is None:
        raise HTTPError(404, "not_found", f"no attendance of {key!r} in this window")
    body = {"items": json_items(report.weeks, WEEK_COLUMNS)}
    return export_response(fmt, report.weeks, WEEK_COLUMNS, json_body=body, filename=f"person-{key}-weeks")


def occurrences_param(request: Request) -> int:
    """Query parameter ``occurrences``: 1..``MAX_OCCURRENCES`` (default 12); 400 otherwise."""
    return int_param(request, "occurrences", 12, 1, MAX_OCCURRENCES)


def series_json(report: SeriesReport) -> dict[str, Any]:
    """The JSON body of a series: meeting, totals, occurrences (with the trend) and people (minutes per occurrence)."""
    matrix = report.matrix
    return {
        "meeting_id": report.meeting_id,
        "title": report.title,
        "total_occurrences": report.total_occurrences,
        "average_ratio": matrix.average_ratio,
        "occurrences": json_items(
            matrix.trend, ("session_id", "started_at", "people", "attended_minutes", "average_ratio")
        ),
        "people": [
            {
                "participant_key": p.participant_key,
                "display_name": p.display_name,
                "attended": p.attended,
                "average_ratio": p.average_ratio,
                "minutes": p.cells,
            }
            for p in matrix.people
        ],
    }


async def show_series(request: Request) -> Response:
    """GET /api/meetings/{meeting_id}/series: the newest occurrences of a meeting x its people (404 when unknown)."""
    fmt = response_format(request)
    meeting_id = path_text(request, "meeting_id")
    occurrences = occurrences_param(request)
    since, until = _window(request)
    report = await run_in_threadpool(
        functools.partial(
            series_report, _engine(request), meeting_id, since=since, until=until, occurrences=occurrences
        )
    )
    if report is None:
        raise HTTPError(404, "not_found", f"no meeting {meeting_id!r}")
    return export_response(
        fmt, series_cells(report), SERIES_CELL_COLUMNS, json_body=series_json(report), filename=f"series-{meeting_id}"
    )


def overview_params(request: Request, now: datetime) -> tuple[str, datetime, datetime]:
    """``(period, since, until)`` of the query (see :func:`receiver.reports.overview.overview_window`); 400 when bad."""
    period = request.query_params.get("period", "day")
    since, until = _window(request)
    if period not in PERIODS:
        raise HTTPError(400, "bad_request", f"period: use {' or '.join(PERIODS)}")  # empty too: must be valid
    try:
        start, end = overview_window(period, since, until, now)
    except ValueError as exc:
        raise HTTPError(400, "bad_request", str(exc)) from None
    return period, start, end


async def show_overview(request: Request) -> Response:
    """GET /api/overview: sessions, people and attended minutes per UTC day or ISO week."""
    fmt = response_format(request)
    period, since, until = overview_params(request, datetime.now(UTC))
    rows = await run_in_threadpool(
        functools.partial(usage_overview, _engine(request), period=period, since=since, until=until)
    )
    body = {
        "period": period,
        "since": json_items([{"t": since}], ("t",))[0]["t"],
        "until": json_items([{"t": until}], ("t",))[0]["t"],
        "items": json_items(rows, OVERVIEW_COLUMNS),
    }
    return export_response(fmt, rows, OVERVIEW_COLUMNS, json_body=body, filename=f"overview-{period}")
