"""The ASGI application: ``create_app(settings)``.

Routes: ``POST /webhooks/dyte`` (see :mod:`receiver.receive`), ``GET /healthz``,
``GET /readyz``, ``GET /metrics``. Engine, key store and the group committer
are created in the lifespan, never at import.
"""

from __future__ import annotations

import asyncio
import gc
import sys
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

from . import metrics
from .database import make_engine
from .health import HealthState
from .inbox import GroupCommitter
from .keys import WebhookKeyStore
from .logging_setup import flush_logs
from .receive import ClientError, receive_dyte_webhook
from .request_log import RequestLogMiddleware, annotate_request
from .responses import FastJSONResponse
from .settings import Settings

__all__ = ["create_app"]

log = structlog.get_logger("receiver.app")


async def _client_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ClientError)
    metrics.REJECTED.labels(status=str(exc.status_code)).inc()
    annotate_request(request, error=exc.error, detail=exc.detail)
    return FastJSONResponse({"error": exc.error, "detail": exc.detail}, status_code=exc.status_code)


async def healthz(request: Request) -> Response:
    """Liveness: 200 while the process serves requests."""
    return JSONResponse({"status": "ok"})


async def readyz(request: Request) -> Response:
    """Readiness: 200 when the database answers and is at the migration head; 503 otherwise."""
    ready, detail = await asyncio.to_thread(request.app.state.health.check)
    detail["status"] = "ready" if ready else "not_ready"
    return JSONResponse(detail, status_code=200 if ready else 503)


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

    PostgreSQL: :class:`receiver.inbox_postgres.PostgresGroupCommitter`
    (asyncpg); SQLite: :class:`receiver.inbox_sqlite.SqliteGroupCommitter`.
    """
    if engine.dialect.name == "postgresql":
        from .inbox_postgres import PostgresGroupCommitter

        return PostgresGroupCommitter(engine.url)
    from .inbox_sqlite import SqliteGroupCommitter

    return SqliteGroupCommitter(engine)


GIL_SWITCH_INTERVAL_SECONDS = 0.001
# Cyclic GC generation thresholds (Python's default: 700, 10, 10). Requests
# waiting for their group commit keep many young objects alive, so at 700 the
# collector ran every few requests and rescanned them: ~3% of the receive
# path's CPU (callgrind, `receiver bench ingest`). At 10,000 most are freed
# by reference counting before a collection sees them.
GC_THRESHOLDS = (10_000, 20, 20)


def create_app(
    settings: Settings,
    *,
    engine: Engine | None = None,
    key_store: WebhookKeyStore | None = None,
    run_worker: bool = False,
    extra_routes: list[Any] | None = None,
    allowed_webhook_ids: Callable[[], set[str]] | None = None,
    dyte_transport: Any = None,
    background_tasks: list[Callable[[Starlette], Awaitable[None]]] | None = None,
) -> Starlette:
    """Build the application.

    Args:
        settings: service settings.
        engine: an existing engine (tests); otherwise one is made from DATABASE_URL.
        key_store: trusted keys (tests inject one); otherwise built from settings.
        run_worker: also run the event worker in a background thread
            (``receiver serve`` on the embedded SQLite database).
        extra_routes: more routes (reports API, pages) mounted by the caller.
        allowed_webhook_ids: when given, deliveries whose dyte-webhook-id is
            not in its result get 403.
        dyte_transport: httpx transport for the in-process worker's Dyte
            client (tests point it at the sandbox).
        background_tasks: coroutines ``f(app)`` started after start-up and
            cancelled at shutdown (e.g. ensuring the webhook subscription);
            they must not block readiness.
    """

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        own_engine = engine is None
        app.state.engine = engine or make_engine(settings.database_url)
        app.state.key_store = key_store or WebhookKeyStore(
            settings.webhook_public_key_pems(),
            settings.dyte_webhook_keys_url,
            refresh_seconds=settings.dyte_webhook_keys_refresh_seconds,
        )
        app.state.health = HealthState(app.state.engine)
        app.state.health.subscription = app.state.subscription_state
        app.state.committer = make_committer(app.state.engine)
        await app.state.committer.start()
        from .queue import refresh_queue_metrics

        app.state.refresh_queue_metrics = lambda: refresh_queue_metrics(app.state.engine)
        worker_runner = None
        if run_worker:
            from .server import build_worker
            from .worker import BackgroundWorker

            worker_runner = BackgroundWorker(build_worker(settings, app.state.engine, transport=dyte_transport))
            worker_runner.start()
        tasks = [asyncio.create_task(job(app)) for job in background_tasks or []]
        # Start-up objects are long-lived: move them out of the collector's way
        # (halves the receive path's p99, which is mostly GC pauses; see `receiver bench ingest`).
        gc.collect()
        gc.freeze()
        gc.set_threshold(*GC_THRESHOLDS)
        # Threads (an in-process worker, the SQLite fallback writer) wait for the GIL at
        # most this long while the event loop is busy (Python's default: 5 ms).
        sys.setswitchinterval(GIL_SWITCH_INTERVAL_SECONDS)
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

    routes: list[Any] = [
        Route("/webhooks/dyte", receive_dyte_webhook, methods=["POST"]),
        Route("/healthz", healthz, methods=["GET"]),
        Route("/readyz", readyz, methods=["GET"]),
        Route("/metrics", metrics_endpoint, methods=["GET"]),
    ]
    routes.extend(extra_routes or [])
    app = Starlette(routes=routes, lifespan=lifespan, exception_handlers={ClientError: _client_error})
    app.state.settings = settings
    app.state.allowed_webhook_ids = allowed_webhook_ids
    app.state.dyte_transport = dyte_transport
    app.state.refresh_queue_metrics = None
    # Background jobs (e.g. the subscription manager) write their state here; /readyz shows it.
    app.state.subscription_state = {"state": "disabled"}
    app.add_middleware(RequestLogMiddleware)
    return app
