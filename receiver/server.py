"""Composition root: builds the Dyte client, reconciler, worker and the full HTTP app from settings.

Commands and the demo call these; modules below never read settings
themselves beyond what they are handed.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import httpx
import structlog
from sqlalchemy import select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session as OrmSession
from starlette.applications import Starlette

from . import metrics
from .app import create_app
from .database import writer
from .dyte_client import DyteAPIError, DyteClient
from .models import Recording
from .reconcile import Reconciler, apply_api_recording
from .reports import ReportFilter
from .settings import Settings
from .worker import Worker, default_worker_id

__all__ = ["build_dyte_client", "build_worker", "build_service_app", "refresh_expired_recordings"]

log = structlog.get_logger("receiver.server")


def _record_call(method: str, template: str, status: int | str, seconds: float) -> None:
    metrics.DYTE_API_CALLS.labels(method=method, endpoint=template, status=str(status)).inc()


def build_dyte_client(settings: Settings, *, transport: httpx.AsyncBaseTransport | None = None) -> DyteClient | None:
    """A Dyte REST client from DYTE_ORG_ID / DYTE_API_KEY, or None when credentials are missing."""
    if not settings.api_credentials_set:
        return None
    assert settings.dyte_api_key is not None and settings.dyte_org_id is not None
    client = DyteClient(
        settings.dyte_api_base_url,
        settings.dyte_org_id,
        settings.dyte_api_key.get_secret_value(),
        transport=transport,
        timeout_seconds=settings.dyte_api_timeout_seconds,
        calls_per_minute=settings.dyte_api_calls_per_minute,
        on_call=_record_call,
    )
    return client


def build_worker(settings: Settings, engine: Engine, *, transport: httpx.AsyncBaseTransport | None = None) -> Worker:
    """A worker, with a reconciler when reconciliation is enabled and credentials are set."""
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
                lease_seconds=max(settings.worker_lease_seconds, 6 * settings.dyte_api_timeout_seconds),
                batch_size=10,
            )
        else:
            log.warning("reconciliation_disabled", reason="DYTE_ORG_ID and DYTE_API_KEY are not both set")
    return Worker(settings, engine, reconciler=reconciler, worker_id=worker_id)


def build_service_app(settings: Settings, *, run_worker: bool, dyte_transport: Any = None) -> Starlette:
    """The full service: webhook endpoint, health, metrics, the reports API (/api) and pages (/ui).

    Also ensures the Dyte webhook subscription in the background (unless
    SUBSCRIPTION_ENSURE_ON_START is false or PUBLIC_URL/credentials are
    missing) and, with SUBSCRIPTION_ENFORCE_WEBHOOK_ID, refuses deliveries
    of unmanaged webhooks (see :mod:`receiver.subscriptions`).
    ``dyte_transport`` is the httpx transport of every Dyte client (tests).
    """
    from .api import analyst_routes
    from .subscriptions import SubscriptionWiring

    wiring = SubscriptionWiring(settings, transport=dyte_transport)
    app = create_app(
        settings,
        run_worker=run_worker,
        extra_routes=analyst_routes(settings),
        dyte_transport=dyte_transport,
        allowed_webhook_ids=wiring.allowed_webhook_ids,
        background_tasks=wiring.background_tasks,
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
    """Re-fetch recordings whose download URL has expired (GET /recordings/{id}); returns how many were refreshed."""
    now = now or datetime.now(timezone.utc)
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
                apply_api_recording(db, api, datetime.now(timezone.utc))
            refreshed += 1
    return refreshed
