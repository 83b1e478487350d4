"""GET /ui/overview: the organisation overview (issue #21).

Sessions, people and attended minutes per UTC day or ISO week
(``period``), each as an inline SVG bar chart, plus the table; default
window the last 90 days / 26 weeks (:func:`receiver.reports.overview.overview_window`);
``?format=csv`` downloads the rows (as ``/api/overview``).
"""

from __future__ import annotations

import functools
from datetime import UTC, datetime

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from receiver.reports.overview import OVERVIEW_COLUMNS, PERIODS, usage_overview
from receiver.web.api_analytics import overview_params
from receiver.web.pages.charts import bar_chart
from receiver.web.pages.filters import listing_query, page_export
from receiver.web.pages.views import base_context
from receiver.web.templating import render

__all__ = ["overview_page"]

_NO_SORT = {"period_start": None}


async def overview_page(request: Request) -> Response:
    """GET /ui/overview: three charts (sessions, people, minutes per period) and their table."""
    query = listing_query(request, ("period", "since", "until"), _NO_SORT, "period_start")
    period, since, until = overview_params(request, datetime.now(UTC))
    rows = await run_in_threadpool(
        functools.partial(usage_overview, request.app.state.engine, period=period, since=since, until=until)
    )
    if query.fmt != "html":
        return page_export(query.fmt, rows, OVERVIEW_COLUMNS, f"overview-{period}")

    def chart(column: str) -> object:
        return bar_chart([(r["period_start"].isoformat(), r[column]) for r in rows])

    return render(
        "overview.html",
        **base_context(request, "overview"),
        title="Overview",
        rows=rows,
        period=period,
        periods=PERIODS,
        since=since,
        until=until,
        sessions_chart=chart("sessions"),
        people_chart=chart("people"),
        minutes_chart=chart("attended_minutes"),
        query=query,
    )
