"""The outbound page ``/ui/outbound``: the outbound attendance webhook's deliveries, linked from the event log.

``GET /ui/outbound`` (``?status=``, ``?session_id=``, ``?offset=``; role
analyst): whether the webhook is on (the receiver's host only, never the
URL or the secret), counts by state, and the deliveries newest first with
their attempts, next attempt and the receiver's last answer. ``POST
/ui/outbound/{delivery_id}/retry`` (role operator, audited as
``retry_outbound``): send a failed or dead delivery again now.
The queries are :mod:`receiver.processing.outbound_queue`'s.
"""

from __future__ import annotations

import functools
from typing import Any
from urllib.parse import urlencode, urlsplit

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from receiver.db.models import OUTBOUND_STATUSES
from receiver.processing.outbound_queue import delivery_rows, outbound_counts
from receiver.web.api import int_param, text_param
from receiver.web.outbound import outbound_status_param, retry_audited
from receiver.web.pages.views import PAGE_SIZE, base_context
from receiver.web.templating import SECURITY_HEADERS, render

__all__ = ["outbound_page", "retry_outbound_page"]


def _receiver_host(request: Request) -> str | None:
    """The configured receiver's host (None when the webhook is off); the URL's path may hold a token."""
    settings: Any = getattr(request.app.state, "settings", None)
    url = getattr(settings, "outbound_webhook_url", "") if settings is not None else ""
    return (urlsplit(url).hostname or "?") if url else None


async def outbound_page(request: Request) -> Response:
    """GET /ui/outbound: outbound deliveries newest first, ``PAGE_SIZE`` per page, with counts by state."""
    status = outbound_status_param(request)
    session_id = text_param(request, "session_id")
    offset = int_param(request, "offset", 0, 0, 1_000_000_000)
    engine = request.app.state.engine
    rows, total = await run_in_threadpool(
        functools.partial(delivery_rows, engine, status=status, session_id=session_id, limit=PAGE_SIZE, offset=offset)
    )
    counts = await run_in_threadpool(outbound_counts, engine)
    retried = request.query_params.get("retried")
    return render(
        "outbound.html",
        **base_context(request, "outbound"),
        title="Outbound webhook",
        deliveries=rows,
        total=total,
        offset=offset,
        page_size=PAGE_SIZE,
        status=status,
        session_id=session_id,
        base={k: v for k, v in (("status", status), ("session_id", session_id)) if v},
        statuses=OUTBOUND_STATUSES,
        counts=counts,
        host=_receiver_host(request),
        retried=retried if retried and retried.isdigit() else None,
    )


async def retry_outbound_page(request: Request) -> Response:
    """POST /ui/outbound/{delivery_id}/retry: send a failed or dead delivery again now; audited."""
    delivery_id = await retry_audited(request)
    query = {"retried": str(delivery_id)}
    status = request.state.form.get("status")
    if status in OUTBOUND_STATUSES:
        query["status"] = status
    return RedirectResponse("/ui/outbound?" + urlencode(query), status_code=303, headers=SECURITY_HEADERS)
