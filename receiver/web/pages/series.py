"""GET /ui/meetings/{meeting_id}/series: a recurring meeting (issue #21).

The occurrences x people matrix (minutes per cell, blank = absent), the
attendance trend (people per occurrence, inline SVG line) and the average
attendance ratio; ``occurrences`` (1..52, default 12) and
``since``/``until`` choose the window; ``?format=csv`` downloads the
matrix in long form (as ``/api/meetings/{meeting_id}/series``).
"""

from __future__ import annotations

import functools

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from receiver.errors import HTTPError
from receiver.reports.series import SERIES_CELL_COLUMNS, series_cells, series_report
from receiver.web.api_analytics import occurrences_param
from receiver.web.pages.charts import bar_chart, line_chart
from receiver.web.pages.filters import listing_query, page_export
from receiver.web.pages.views import base_context
from receiver.web.params import path_text
from receiver.web.templating import render

__all__ = ["series_page"]

_NO_SORT = {"started_at": None}


async def series_page(request: Request) -> Response:
    """GET /ui/meetings/{meeting_id}/series: matrix, trend and average ratio (404 for an unknown meeting)."""
    meeting_id = path_text(request, "meeting_id")
    query = listing_query(request, ("since", "until", "occurrences"), _NO_SORT, "started_at")
    occurrences = occurrences_param(request)
    report = await run_in_threadpool(
        functools.partial(
            series_report,
            request.app.state.engine,
            meeting_id,
            since=query.since,
            until=query.until,
            occurrences=occurrences,
        )
    )
    if report is None:
        raise HTTPError(404, "not_found", f"No meeting {meeting_id!r}.")
    if query.fmt != "html":
        return page_export(query.fmt, series_cells(report), SERIES_CELL_COLUMNS, f"series-{meeting_id}")
    trend = report.matrix.trend
    labels = [t["started_at"].strftime("%Y-%m-%d") if t["started_at"] else t["session_id"] for t in trend]
    return render(
        "series.html",
        **base_context(request, "meetings"),
        title=f"Series {meeting_id}",
        report=report,
        matrix=report.matrix,
        labels=labels,
        people_chart=line_chart([(label, t["people"]) for label, t in zip(labels, trend, strict=True)]),
        minutes_chart=bar_chart([(label, t["attended_minutes"]) for label, t in zip(labels, trend, strict=True)]),
        occurrences=occurrences,
        query=query,
    )
