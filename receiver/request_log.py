"""One log line and one latency observation per HTTP request.

:class:`RequestLogMiddleware` writes the ``request`` line (method, path,
status, ``ms``) after the response is sent, plus whatever the handler added
with :func:`annotate_request` (delivery id, event, meeting, session,
outcome; error and detail for a refused request). Probe and scrape paths
(``/healthz``, ``/readyz``, ``/metrics``) log at debug. The latency goes to
``receiver_request_duration_seconds`` by route template (never by raw path,
so ids do not become labels).

The fields live in the request's ASGI scope, not in context variables:
copying and scanning the context on every request cost more than the rest
of the log line (``receiver bench ingest``).
"""

from __future__ import annotations

import time
from typing import Any

from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from receiver import metrics
from receiver.logging_setup import log_line

__all__ = ["RequestLogMiddleware", "annotate_request"]

_LOGGER_NAME = "receiver.web.app"

_FIELDS_KEY = "receiver.log_fields"
_QUIET_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})


def annotate_request(request: Request, **fields: Any) -> None:
    """Add ``fields`` to the request's log line (no-op outside :class:`RequestLogMiddleware`)."""
    bound = request.scope.get(_FIELDS_KEY)
    if bound is not None:
        bound.update(fields)


class RequestLogMiddleware:
    """ASGI middleware: the request line and latency metric (see the module docstring)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500
        fields: dict[str, Any] = {}
        scope[_FIELDS_KEY] = fields

        async def send_and_note_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_and_note_status)
        finally:
            elapsed = time.perf_counter() - started
            route = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            metrics.request_latency(template, scope["method"], str(status)).observe(elapsed)
            fields.update(method=scope["method"], path=scope["path"], status=status, ms=round(elapsed * 1000, 2))
            log_line(_LOGGER_NAME, "debug" if scope["path"] in _QUIET_PATHS else "info", "request", fields)
