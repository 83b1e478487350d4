"""The ASGI application: ``create_app(settings)``.

Routes: ``POST /webhooks/dyte`` and ``POST /webhooks/realtimekit`` (both take
Dyte's and RealtimeKit's deliveries; see :mod:`receiver.ingest.endpoint`), ``GET /healthz``,
``GET /readyz``, ``GET /metrics``. Engine, key store and the group committer
are created in the lifespan, never at import.

With ``ADMIN_PORT`` set (``receiver serve --admin-port``), one app listens on
two ports and :class:`AdminPortGate` splits them by the local port of each
connection: the main port answers only :data:`PUBLIC_PATHS` (the webhooks,
``/healthz`` and a ``/readyz`` that only says ready or not); ``/metrics``,
``/api``, ``/ui`` and the detailed ``/readyz`` answer only on the admin port
(404 elsewhere), so only ``/webhooks/*`` need face the internet.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import structlog
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy.engine import Engine
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from receiver import metrics
from receiver.db.engine import make_engine
from receiver.errors import HTTPError
from receiver.ingest.endpoint import receive_dyte_webhook, receive_realtimekit_webhook
from receiver.ingest.inbox import GroupCommitter
from receiver.logging_setup import flush_logs
from receiver.providers.dyte.keys import WebhookKeyStore
from receiver.providers.registry import build_key_store
from receiver.providers.webhook_keys import ProviderKeyStores
from receiver.request_log import RequestLogMiddleware, annotate_request
from receiver.responses import http_error_response
from receiver.settings import Settings
from receiver.web.health import HealthState

__all__ = ["AdminPortGate", "PUBLIC_PATHS", "WebhookFastPath", "create_app", "on_admin_port"]

#: Paths the main port serves when an admin port is configured (prefixes end with "/").
PUBLIC_PATHS = ("/webhooks/", "/healthz", "/readyz")

log = structlog.get_logger("receiver.web.app")


async def _http_error(request: Request, exc: Exception) -> Response:
    """The one handler of :class:`receiver.errors.HTTPError` (a client's mistake: never a 500)."""
    assert isinstance(exc, HTTPError)
    if request.url.path.startswith("/webhooks/"):
        metrics.REJECTED.labels(status=str(exc.status_code)).inc()
    annotate_request(request, error=exc.error, detail=exc.detail)
    return http_error_response(exc)


async def healthz(request: Request) -> Response:
    """Liveness: 200 while the process serves requests."""
    return JSONResponse({"status": "ok"})


def on_admin_port(request: Request | Any) -> bool:
    """True when the request came in on the admin port, or when no admin port is configured (one port serves all).

    The port is the local one of the connection (ASGI ``scope["server"]``), not a header a client could forge.
    """
    admin_port = request.app.state.settings.admin_port
    if admin_port is None:
        return True
    server = request.scope.get("server")
    return server is not None and server[1] == admin_port


async def readyz(request: Request) -> Response:
    """Readiness: 200 when the database answers and is at the migration head; 503 otherwise.

    The details (database revision, errors, subscription state) are shown on the admin port only
    (or on the one port when no ADMIN_PORT is set); the main port of a split deployment says
    ``{"status": "ready"}`` or ``{"status": "not_ready"}``.
    """
    ready, detail = await asyncio.to_thread(request.app.state.health.check)
    status = "ready" if ready else "not_ready"
    if not on_admin_port(request):
        return JSONResponse({"status": status}, status_code=200 if ready else 503)
    detail["status"] = status
    return JSONResponse(detail, status_code=200 if ready else 503)


class AdminPortGate:
    """ASGI middleware: with an admin port, the other ports answer 404 to every path but :data:`PUBLIC_PATHS`."""

    def __init__(self, app: ASGIApp, admin_port: int | None) -> None:
        self.app = app
        self.admin_port = admin_port

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.admin_port is not None and scope["type"] == "http":
            server = scope.get("server")
            path = scope.get("path", "")
            public = any(path == p.rstrip("/") or path.startswith(p) for p in PUBLIC_PATHS)
            if not public and (server is None or server[1] != self.admin_port):
                response = http_error_response(HTTPError(404, "not_found", "not served on this port"))
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


class WebhookFastPath:
    """ASGI middleware: ``POST /webhooks/*`` goes straight to its handler, past Starlette's router.

    Starlette's exception middleware, route matching and per-request handler wrappers cost ~5 us of a
    delivery's CPU (issue #23: the receive path does only what acknowledging needs). The handler and
    its answers are the same: :class:`receiver.errors.HTTPError` is rendered by :func:`_http_error`,
    like the app's exception handler does, and ``scope["route"]`` is set so the request log and the
    latency metric name the route. Any other method or path goes through the router (405, 404, ...);
    an unexpected exception propagates to the server-error middleware (500) as before.
    """

    def __init__(self, app: ASGIApp, routes: dict[str, Route]) -> None:
        self.app = app
        self.routes = routes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        route = self.routes.get(scope["path"]) if scope["type"] == "http" and scope["method"] == "POST" else None
        if route is None:
            await self.app(scope, receive, send)
            return
        scope["route"] = route
        request = Request(scope, receive, send)
        try:
            response: Response = await route.endpoint(request)
        except HTTPError as exc:
            response = await _http_error(request, exc)
        await response(scope, receive, send)


async def metrics_endpoint(request: Request) -> Response:
    """Prometheus exposition of :mod:`receiver.metrics` (queue gauges refreshed on scrape)."""
    refresh = request.app.state.refresh_queue_metrics
    if refresh is not None:
        try:
            await asyncio.to_thread(refresh)
        except Exception:  # a scrape must not fail because the database is down
            log.warning("queue_metrics_unavailable")
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)


def make_committer(engine: Engine) -> GroupCommitter:
    """The receive path's inbox writer for ``engine``'s database (group commit, acknowledged after commit).

    PostgreSQL: :class:`receiver.ingest.postgres.PostgresGroupCommitter`
    (asyncpg); SQLite: :class:`receiver.ingest.sqlite.SqliteGroupCommitter`.
    """
    if engine.dialect.name == "postgresql":
        from receiver.ingest.postgres import PostgresGroupCommitter

        return PostgresGroupCommitter(engine.url)
    from receiver.ingest.sqlite import SqliteGroupCommitter

    return SqliteGroupCommitter(engine)


def create_app(
    settings: Settings,
    *,
    engine: Engine | None = None,
    key_store: WebhookKeyStore | ProviderKeyStores | None = None,
    run_worker: bool = False,
    extra_routes: list[Any] | None = None,
    allowed_webhook_ids: Callable[[], set[str]] | None = None,
    dyte_transport: Any = None,
    background_tasks: list[Callable[[Starlette], Awaitable[None]]] | None = None,
    worker_factory: Callable[[Engine], Any] | None = None,
    on_started: Callable[[], None] | None = None,
) -> Starlette:
    """Build the application.

    Args:
        settings: service settings.
        engine: an existing engine (tests); otherwise one is made from DATABASE_URL.
        key_store: trusted keys (tests inject one, used for both header
            families); otherwise :func:`receiver.providers.registry.build_key_store`:
            the configured keys, else Dyte's and RealtimeKit's key documents.
        run_worker: also run the event worker in a background thread
            (``receiver serve`` on the embedded SQLite database).
        extra_routes: more routes (reports API, pages) mounted by the caller.
        allowed_webhook_ids: when given, deliveries whose dyte-webhook-id /
            rtk-webhook-id is not in its result get 403.
        dyte_transport: httpx transport for the in-process worker's Dyte
            client (tests point it at the sandbox).
        worker_factory: builds the in-process worker from the engine
            (required with ``run_worker``; the composition root passes it).
        on_started: called once start-up is complete (the entry point's
            process-wide tuning: see :func:`receiver.service.tune_process`).
        background_tasks: coroutines ``f(app)`` started after start-up and
            cancelled at shutdown (e.g. ensuring the webhook subscription);
            they must not block readiness.
    """

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        own_engine = engine is None
        app.state.engine = engine or make_engine(settings.database_url)
        app.state.key_store = key_store or build_key_store(settings)
        app.state.health = HealthState(app.state.engine)
        app.state.health.subscription = app.state.subscription_state
        app.state.committer = make_committer(app.state.engine)
        await app.state.committer.start()
        from receiver.processing.queue import refresh_queue_metrics

        app.state.refresh_queue_metrics = lambda: refresh_queue_metrics(app.state.engine)
        worker_runner = None
        if run_worker:
            from receiver.processing.worker import BackgroundWorker

            if worker_factory is None:
                raise ValueError("create_app(run_worker=True) needs a worker_factory")
            worker_runner = BackgroundWorker(worker_factory(app.state.engine))
            worker_runner.start()
        # ensure_future: a job returns any awaitable (a coroutine becomes a task, as with create_task).
        tasks: list[asyncio.Future[None]] = [asyncio.ensure_future(job(app)) for job in background_tasks or []]
        if on_started is not None:
            on_started()
        log.info("receiver_started", database=app.state.engine.dialect.name, in_process_worker=run_worker)
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
            if tasks:
                await asyncio.gather(*tasks, return_exceptions=True)
            if worker_runner is not None:
                worker_runner.stop()
            await app.state.committer.stop()
            if own_engine:
                app.state.engine.dispose()
            log.info("receiver_stopped")
            flush_logs()

    webhook_routes = [
        Route("/webhooks/dyte", receive_dyte_webhook, methods=["POST"]),
        Route("/webhooks/realtimekit", receive_realtimekit_webhook, methods=["POST"]),
    ]
    routes: list[Any] = [
        *webhook_routes,
        Route("/healthz", healthz, methods=["GET"]),
        Route("/readyz", readyz, methods=["GET"]),
        Route("/metrics", metrics_endpoint, methods=["GET"]),
    ]
    routes.extend(extra_routes or [])
    app = Starlette(routes=routes, lifespan=lifespan, exception_handlers={HTTPError: _http_error})
    app.state.settings = settings
    app.state.allowed_webhook_ids = allowed_webhook_ids
    app.state.dyte_transport = dyte_transport
    app.state.refresh_queue_metrics = None
    # Background jobs (e.g. the subscription manager) write their state here; /readyz shows it.
    app.state.subscription_state = {"state": "disabled"}
    app.add_middleware(WebhookFastPath, routes={route.path: route for route in webhook_routes})
    app.add_middleware(AdminPortGate, admin_port=settings.admin_port)
    app.add_middleware(RequestLogMiddleware)
    return app
