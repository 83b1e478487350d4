"""A fake provider REST API over a sandbox world (Starlette app): Dyte v2, or Cloudflare RealtimeKit.

:func:`create_sandbox_app` serves ``state.world`` in the dialect of
``state.provider`` (:mod:`receiver.sandbox.dialects`: prefix, auth, error
envelope, the few shapes that differ), with the routes of
:mod:`receiver.sandbox.handlers` and the objects of
:mod:`receiver.sandbox.rest_objects`. Conventions common to both:

* faults (:class:`RestFaults`), drawn per REST request before auth: 500,
  429 with ``retry-after`` (seconds), or a pause of ``timeout_seconds``
  before answering normally (logged as 504 at once);
* ``state.calls`` logs ``(method, path, status)`` of every request;
* ``GET /.well-known/webhooks.json`` (no auth, no faults) publishes the
  webhook public key as ``{"success": true, "data": {"publicKey": "<SPKI PEM>"}}``
  (RealtimeKit's documented shape; Dyte's is undocumented).

Dyte: REST under ``/v2``, HTTP Basic ``org_id:api_key``. RealtimeKit: REST
under ``/client/v4/accounts/{account_id}/realtime/kit/{app_id}``,
``Authorization: Bearer <api_token>``, Cloudflare's v4 error envelope.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from receiver.providers.dyte.signature import public_key_pem
from receiver.sandbox.handlers import Handler, rest_routes
from receiver.sandbox.rest_objects import DEFAULT_PER_PAGE, ApiError
from receiver.sandbox.state import RestFaults, SandboxState

__all__ = ["RestFaults", "SandboxState", "create_sandbox_app", "DEFAULT_PER_PAGE"]

_ALL_METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE"]


def create_sandbox_app(state: SandboxState) -> Starlette:
    """The fake API serving ``state`` in its provider's dialect (see the module docstring)."""
    dialect = state.dialect

    def api(handler: Handler) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            method, path = request.method, request.url.path
            fault = state.draw_fault()
            if fault == "rate_limit":
                state.calls.append((method, path, 429))
                return dialect.rate_limited(state.rest_faults.retry_after_seconds)
            if fault == "error":
                state.calls.append((method, path, 500))
                return dialect.error(500, "Internal server error (sandbox fault)")
            if fault == "timeout":
                state.calls.append((method, path, 504))
                await asyncio.sleep(state.rest_faults.timeout_seconds)
            if not dialect.authorized(request, state):
                response: Response = dialect.unauthorized()
            else:
                try:
                    response = await handler(request, state)
                except ApiError as exc:
                    response = dialect.error(exc.status, exc.message)
            if fault != "timeout":
                state.calls.append((method, path, response.status_code))
            return response

        return endpoint

    async def well_known(request: Request) -> Response:
        """GET /.well-known/webhooks.json: ``{"success": true, "data": {"publicKey": "<SPKI PEM>"}}``."""
        state.calls.append((request.method, request.url.path, 200))
        return JSONResponse({"success": True, "data": {"publicKey": public_key_pem(state.private_key)}})

    async def could_not_route(request: Request, _: SandboxState) -> Response:
        """Cloudflare's answer to a path outside the configured account and app."""
        raise ApiError(404, f"Could not route to {request.url.path}, perhaps your object identifier is invalid?")

    prefix = dialect.prefix(state)
    routes = [Route("/.well-known/webhooks.json", well_known, methods=["GET"])]
    for method, path, handler in rest_routes(state):
        methods = _ALL_METHODS if method == "*" else [method]
        routes.append(Route(prefix + path, api(handler), methods=methods))
    if dialect.name == "realtimekit":
        routes.append(Route("/client/v4/{rest:path}", api(could_not_route), methods=_ALL_METHODS))
    return Starlette(routes=routes)
