"""GET /ui/people/{participant_key}: one person across sessions (issue #21).

Every session they attended (one page at a time, newest first), attended
minutes per ISO week as an inline SVG bar chart, first and last seen, the
names they used; ``since``/``until`` narrow the window; ``?format=csv``
downloads the session rows (as ``/api/people/{participant_key}``).
"""

from __future__ import annotations

import functools
from urllib.parse import quote

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from receiver.errors import HTTPError
from receiver.reports.people import PERSON_SESSION_COLUMNS, person_report
from receiver.web.pages.charts import bar_chart
from receiver.web.pages.filters import EXPORT_LIMIT, listing_query, page_export
from receiver.web.pages.views import PAGE_SIZE, base_context
from receiver.web.params import path_text, text_param
from receiver.web.templating import SECURITY_HEADERS, render

__all__ = ["find_person", "person_page"]

_NO_SORT = {"session_started_at": None}


async def person_page(request: Request) -> Response:
    """GET /ui/people/{participant_key}: totals, minutes per week, the sessions attended (404 when none)."""
    key = path_text(request, "participant_key")
    query = listing_query(request, ("since", "until"), _NO_SORT, "-session_started_at")
    report = await run_in_threadpool(
        functools.partial(
            person_report,
            request.app.state.engine,
            key,
            since=query.since,
            until=query.until,
            limit=PAGE_SIZE if query.fmt == "html" else EXPORT_LIMIT,
            offset=query.offset,
        )
    )
    if report is None:
        raise HTTPError(404, "not_found", f"No attendance of {key!r} in this window.")
    if query.fmt != "html":
        return page_export(
            query.fmt, report.sessions.rows, PERSON_SESSION_COLUMNS, f"person-{key}", report.sessions.total
        )
    weeks = bar_chart([(w["period_start"].isoformat(), w["attended_minutes"]) for w in report.weeks])
    return render(
        "person.html",
        **base_context(request, "sessions"),
        title=f"Person {key}",
        person=report.summary,
        weeks=report.weeks,
        weeks_chart=weeks,
        sessions=report.sessions.rows,
        total=report.sessions.total,
        page_size=PAGE_SIZE,
        query=query,
    )


async def find_person(request: Request) -> Response:
    """GET /ui/people?participant=KEY (the "Open a person" form): 303 to that person's page; 400 without a key."""
    key = text_param(request, "participant")
    if key is None:
        raise HTTPError(400, "bad_request", "participant: give a participant key (custom participant id or peer id).")
    return RedirectResponse(f"/ui/people/{quote(key, safe='')}", status_code=303, headers=SECURITY_HEADERS)
