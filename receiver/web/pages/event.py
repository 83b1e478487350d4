"""GET /ui/events/{event_id}: one stored event and its payload view (issue #21).

The event's columns and its stored raw body pretty-printed with secrets
redacted (:func:`receiver.reports.event_log.event_detail`: stream keys,
tokens, storage secrets never show); a body purged by retention shows
"purged", one dropped by an erasure "erased".
"""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from receiver.errors import HTTPError
from receiver.reports.event_log import event_detail
from receiver.web.pages.views import base_context
from receiver.web.params import event_id_param
from receiver.web.templating import render

__all__ = ["event_page_view"]


async def event_page_view(request: Request) -> Response:
    """GET /ui/events/{event_id}: the event's facts and redacted payload (404 when unknown)."""
    event_id = event_id_param(request)
    event = await run_in_threadpool(event_detail, request.app.state.engine, event_id)
    if event is None:
        raise HTTPError(404, "not_found", f"No event {event_id}.")
    return render(
        "event.html",
        **base_context(request, "events"),
        title=f"Event {event_id}",
        event=event,
        retry_statuses=("failed", "dead"),
    )
