"""Composition root: builds the provider's REST client, reconciler, worker and the full HTTP app from settings.

Commands and the demo call these; modules below never read settings
themselves beyond what they are handed.
"""

from __future__ import annotations

import gc
import socket
import sys
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import httpx
import structlog
from sqlalchemy import select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session as OrmSession
from starlette.applications import Starlette

from receiver.db.engine import writer
from receiver.db.models import Recording
from receiver.errors import ConfigurationError
from receiver.processing.outbound_sender import DEFAULT_RETRY_POLICY, OutboundSender
from receiver.processing.reconcile import Reconciler, apply_api_recording
from receiver.processing.worker import Worker, default_worker_id
from receiver.providers.base import ProviderClient
from receiver.providers.errors import ProviderAPIError as DyteAPIError
from receiver.providers.registry import build_client
from receiver.reports.queries import ReportFilter
from receiver.settings import Settings, load_settings
from receiver.web.app import create_app

__all__ = [
    "build_dyte_client",
    "build_worker",
    "build_service_app",
    "build_server",
    "serve_app",
    "serve_workers",
    "app_from_environment",
    "tune_process",
    "refresh_expired_recordings",
]

# Process-wide tuning of `receiver serve`, applied once the app has started.
# Threads (an in-process worker, the SQLite fallback writer) wait for the GIL at
# most this long while the event loop is busy (Python's default: 5 ms).
GIL_SWITCH_INTERVAL_SECONDS = 0.001
# Cyclic GC generation thresholds (Python's default: 700, 10, 10). Requests
# waiting for their group commit keep many young objects alive, so at 700 the
# collector ran every few requests and rescanned them: ~3% of the receive
# path's CPU (callgrind, `receiver bench ingest`). At 10,000 most are freed
# by reference counting before a collection sees them.
GC_THRESHOLDS = (10_000, 20, 20)

#: Seconds a ``--workers`` child may take to start (and to answer the supervisor's pings) before it is replaced.
WORKER_START_TIMEOUT_SECONDS = 60

#: The uvicorn factory each process of ``receiver serve --workers N`` imports.
APP_FACTORY = "receiver.service:app_from_environment"

log = structlog.get_logger("receiver.service")


def tune_process() -> None:
    """Tune the interpreter for serving (called by the app once start-up objects exist).

    Start-up objects are long-lived: ``gc.freeze`` moves them out of the
    collector's way (halves the receive path's p99, which is mostly GC
    pauses; see ``receiver bench ingest``); then :data:`GC_THRESHOLDS` and
    :data:`GIL_SWITCH_INTERVAL_SECONDS` apply.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)
    sys.setswitchinterval(GIL_SWITCH_INTERVAL_SECONDS)


def build_dyte_client(
    settings: Settings, *, transport: httpx.AsyncBaseTransport | None = None
) -> ProviderClient | None:
    """The configured provider's REST client: Dyte or RealtimeKit per PROVIDER, None without credentials.

    The name is historical; see :func:`receiver.providers.registry.build_client`.
    """
    return build_client(settings, transport=transport)


def build_worker(
    settings: Settings,
    engine: Engine,
    *,
    transport: httpx.AsyncBaseTransport | None = None,
    outbound_transport: httpx.AsyncBaseTransport | None = None,
) -> Worker:
    """A worker, with a reconciler when reconciliation is enabled and credentials are set.

    With OUTBOUND_WEBHOOK_URL set, the reconciler enqueues each reconciled
    session's attendance and the worker sends it (:func:`build_outbound_sender`).
    """
    worker_id = default_worker_id()
    reconciler = None
    if settings.reconcile_enabled:
        client = build_dyte_client(settings, transport=transport)
        if client is not None:
            reconciler = Reconciler(
                engine,
                client,
                worker_id=worker_id,
                stale_session_seconds=settings.stale_session_seconds,
                # A claimed task outlives a dead worker only for this long; one task
                # makes at most a few REST calls, each bounded by the client timeout.
                lease_seconds=max(settings.worker_lease_seconds, 6 * settings.api_timeout_seconds),
                batch_size=10,
                outbound=settings.outbound_enabled,
            )
        else:
            missing = ", ".join(settings.missing_api_settings())
            log.warning("reconciliation_disabled", provider=settings.provider, reason=f"{missing} not set")
    return Worker(
        settings,
        engine,
        reconciler=reconciler,
        worker_id=worker_id,
        outbound=build_outbound_sender(settings, engine, worker_id, transport=outbound_transport),
    )


def build_outbound_sender(
    settings: Settings, engine: Engine, worker_id: str, *, transport: httpx.AsyncBaseTransport | None = None
) -> OutboundSender | None:
    """The sender of the outbound attendance webhook, or None when OUTBOUND_WEBHOOK_URL is empty (off)."""
    if not settings.outbound_enabled or settings.outbound_webhook_secret is None:
        return None
    log.info("outbound_webhook_enabled", host=urlsplit(settings.outbound_webhook_url).hostname)
    return OutboundSender(
        engine,
        url=settings.outbound_webhook_url,
        secret=settings.outbound_webhook_secret.get_secret_value(),
        worker_id=worker_id,
        retry_policy=replace(DEFAULT_RETRY_POLICY, max_attempts=settings.outbound_webhook_max_attempts),
        timeout_seconds=settings.outbound_webhook_timeout_seconds,
        transport=transport,
    )


def build_service_app(
    settings: Settings, *, run_worker: bool, dyte_transport: Any = None, on_started: Callable[[], None] | None = None
) -> Starlette:
    """The full service: webhook endpoint, health, metrics, the reports API (/api) and pages (/ui).

    Deliveries are taken on ``/webhooks/dyte`` and ``/webhooks/realtimekit``.
    Also ensures the provider's webhook subscription in the background
    (unless SUBSCRIPTION_ENSURE_ON_START is false or PUBLIC_URL/credentials
    are missing) and, with SUBSCRIPTION_ENFORCE_WEBHOOK_ID, refuses
    deliveries of unmanaged webhooks (see :mod:`receiver.subscriptions.wiring`).
    ``dyte_transport`` is the httpx transport of every provider client (tests).
    """
    from receiver.subscriptions.wiring import SubscriptionWiring
    from receiver.web.api import analyst_routes

    wiring = SubscriptionWiring(settings, transport=dyte_transport)
    app = create_app(
        settings,
        run_worker=run_worker,
        extra_routes=analyst_routes(settings),
        dyte_transport=dyte_transport,
        allowed_webhook_ids=wiring.allowed_webhook_ids,
        background_tasks=wiring.background_tasks,
        on_started=on_started,
        worker_factory=lambda engine: build_worker(settings, engine, transport=dyte_transport),
    )
    wiring.attach(app)
    return app


async def refresh_expired_recordings(
    settings: Settings,
    engine: Engine,
    flt: ReportFilter | None = None,
    *,
    transport: httpx.AsyncBaseTransport | None = None,
    now: datetime | None = None,
) -> int:
    """Re-fetch recordings whose download URL has expired (GET /recordings/{id}); returns how many were refreshed.

    For ``receiver report recordings`` (a command, not a request). Pages and the API never call the
    provider: they queue a refresh for the worker (:mod:`receiver.processing.links`).
    """
    now = now or datetime.now(UTC)
    client = build_dyte_client(settings, transport=transport)
    if client is None:
        return 0
    conditions = [Recording.download_url_expires_at.is_not(None), Recording.download_url_expires_at <= now]
    if flt is not None and flt.meeting_id:
        conditions.append(Recording.meeting_id == flt.meeting_id)
    with OrmSession(engine) as db:
        ids = list(db.execute(select(Recording.recording_id).where(*conditions)).scalars())
    refreshed = 0
    async with client:
        for recording_id in ids:
            try:
                api = await client.get_recording(recording_id)
            except DyteAPIError as exc:
                log.warning("recording_refresh_failed", recording_id=recording_id, error=type(exc).__name__)
                continue
            with OrmSession(writer(engine)) as db, db.begin():
                apply_api_recording(db, api, datetime.now(UTC))
            refreshed += 1
    return refreshed


def _listen(host: str, port: int) -> socket.socket:
    """A bound TCP socket (IPv6 when ``host`` has a colon), SO_REUSEADDR set; uvicorn calls ``listen``."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    sock.set_inheritable(True)
    return sock


def build_server(
    app: Starlette, *, host: str, port: int, admin_port: int | None = None
) -> tuple[Any, list[socket.socket] | None]:
    """A uvicorn server for ``app`` and the sockets to pass to ``server.run(sockets=...)``.

    Without ``admin_port`` the sockets are None (uvicorn binds ``host:port``). With it, two
    sockets on ``host``: ``port`` (the public one: webhooks and health) and ``admin_port``
    (metrics, reports API, pages); :class:`receiver.web.app.AdminPortGate` tells them apart
    by each connection's local port, so the app's settings must carry the same ADMIN_PORT.

    Raises:
        ConfigurationError: ``admin_port`` equals ``port``.
        OSError: a port cannot be bound.
    """
    import uvicorn

    if admin_port is not None and admin_port == port:
        raise ConfigurationError(f"--admin-port must differ from --port (both {port})")
    config = uvicorn.Config(app, host=host, port=port, log_config=None, access_log=False, timeout_graceful_shutdown=20)
    server = uvicorn.Server(config)
    if admin_port is None:
        return server, None
    sockets = [_listen(host, port)]
    try:
        sockets.append(_listen(host, admin_port))
    except OSError:
        sockets[0].close()
        raise
    return server, sockets


def serve_app(app: Starlette, *, host: str, port: int, admin_port: int | None = None) -> None:
    """Run ``app`` with uvicorn until a signal stops it (``receiver serve``); see :func:`build_server`."""
    server, sockets = build_server(app, host=host, port=port, admin_port=admin_port)
    if admin_port is not None:
        log.info("serving", public_port=port, admin_port=admin_port, host=host)
    server.run(sockets=sockets)


def app_from_environment() -> Starlette:
    """The app of one process of ``receiver serve --workers N`` (uvicorn factory :data:`APP_FACTORY`).

    Each process reads the settings from the environment (the parent has put its command-line
    overrides there: DATABASE_URL, ADMIN_PORT), configures its JSON logging on stdout, and
    builds the full service without the in-process worker; it has its own group-commit writer
    and database pool (both made in the app's lifespan).

    Raises:
        pydantic.ValidationError: invalid settings (the parent checked them before spawning).
    """
    from receiver.logging_setup import configure_logging, register_secret

    settings = load_settings()
    configure_logging(settings.log_format, settings.log_level, sys.stdout, settings.log_flush_seconds)
    for secret in (settings.dyte_api_key, settings.realtimekit_api_token):
        if secret is not None:
            register_secret(secret.get_secret_value())
    return build_service_app(settings, run_worker=False, on_started=tune_process)


def serve_workers(*, host: str, port: int, workers: int, admin_port: int | None = None) -> None:
    """Serve with ``workers`` processes sharing the listening socket(s) until a signal stops them.

    uvicorn's process supervisor: the sockets are bound here (``port``, and ``admin_port`` when
    given) and handed to each child; a child that dies is replaced; SIGTERM/SIGINT stop them all
    gracefully (each commits its queued deliveries before exiting). Each child builds its app with
    :func:`app_from_environment`, so the settings must be in the environment.

    Raises:
        ConfigurationError: ``admin_port`` equals ``port``, or ``workers`` < 2 (use :func:`serve_app`).
        OSError: a port cannot be bound.
    """
    import uvicorn
    from uvicorn.supervisors import Multiprocess

    if workers < 2:
        raise ConfigurationError("serve_workers needs at least 2 workers")
    if admin_port is not None and admin_port == port:
        raise ConfigurationError(f"--admin-port must differ from --port (both {port})")
    config = uvicorn.Config(
        APP_FACTORY,
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=20,
        # A child re-imports the service (spawn): several seconds on a loaded 2-core VM, longer than
        # uvicorn's default 5 s, after which it would kill the child as hung and start another.
        timeout_worker_healthcheck=WORKER_START_TIMEOUT_SECONDS,
    )
    sockets = [_listen(host, port)]
    try:
        if admin_port is not None:
            sockets.append(_listen(host, admin_port))
        log.info("serving", public_port=port, admin_port=admin_port, host=host, workers=workers)
        Multiprocess(config, sockets=sockets).run()
    finally:
        for sock in sockets:
            sock.close()
