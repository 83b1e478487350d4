"""The subscription at service start-up: the background ensure and the managed webhook ids.

Owns :func:`subscription_background_task` (ensure with back-off, never
blocking readiness; state in ``app.state.subscription_state``, shown by
``/readyz``), :class:`ManagedWebhookIds` (the ``allowed_webhook_ids`` cache
read from ``managed_subscriptions``) and :class:`SubscriptionWiring`, which
``build_service_app`` uses to add both to the app.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import httpx
import structlog
from sqlalchemy import select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session as OrmSession
from starlette.applications import Starlette

from receiver.db.models import ManagedSubscription
from receiver.metrics import SUBSCRIPTION_STATE
from receiver.providers.errors import (
    ProviderAuthError,
    ProviderRateLimited,
    ProviderResponseError,
    ProviderStatusError,
)
from receiver.retry import RetryPolicy
from receiver.settings import Settings
from receiver.subscriptions.ensure import ensure_subscription
from receiver.subscriptions.lock import LOCK_TIMEOUT_SECONDS
from receiver.subscriptions.spec import (
    SubscriptionConfigError,
    SubscriptionError,
    SubscriptionLockTimeout,
    SubscriptionSpec,
    missing_subscription_settings,
    subscription_disabled_reason,
)

__all__ = [
    "ManagedWebhookIds",
    "SubscriptionWiring",
    "managed_webhook_ids",
    "subscription_background_task",
]

log = structlog.get_logger(__name__)

#: Seconds the webhook-id cache of :class:`ManagedWebhookIds` is trusted before re-reading the table.
WEBHOOK_IDS_MAX_AGE_SECONDS = 5.0
#: Characters of an error kept in ``subscription_state["last_error"]``.
ERROR_CHARS = 300


# --------------------------------------------------------------------------- allowed webhook ids


def managed_webhook_ids(engine: Engine) -> set[str]:
    """Every webhook id in ``managed_subscriptions`` (raises SQLAlchemyError when the database fails)."""
    with OrmSession(engine) as db:
        return set(db.execute(select(ManagedSubscription.webhook_id)).scalars())


class ManagedWebhookIds:
    """The ``allowed_webhook_ids`` callable of :func:`receiver.web.app.create_app`: ids of managed subscriptions.

    Calls return an in-memory set, re-read from ``managed_subscriptions`` at
    most every ``max_age_seconds`` (a failed read keeps the previous set and
    is retried after the same interval). :meth:`reload` re-reads at once
    (done after every successful ensure).

    Args:
        engine: the database, or a zero-argument callable returning it
            (the app's engine exists only once its lifespan started); may be
            bound later with :meth:`bind`.
        max_age_seconds: cache lifetime, seconds.
        clock: monotonic clock, seconds (tests pass a fake).
    """

    def __init__(
        self,
        engine: Engine | Callable[[], Engine] | None = None,
        *,
        max_age_seconds: float = WEBHOOK_IDS_MAX_AGE_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._engine = engine
        self.max_age_seconds = max_age_seconds
        self._clock = clock
        self._ids: set[str] = set()
        self._loaded_at: float | None = None

    def bind(self, engine: Engine | Callable[[], Engine]) -> None:
        """Set the database (or a callable returning it) to read from."""
        self._engine = engine
        self._loaded_at = None

    def _resolve(self) -> Engine:
        engine = self._engine
        if engine is None:
            raise RuntimeError("ManagedWebhookIds is not bound to a database")
        return engine if isinstance(engine, Engine) else engine()

    def reload(self) -> set[str]:
        """Re-read the table now and return the new set (raises on database errors)."""
        ids = managed_webhook_ids(self._resolve())
        self._ids = ids
        self._loaded_at = self._clock()
        return ids

    def __call__(self) -> set[str]:
        """The managed webhook ids, refreshed when older than ``max_age_seconds``."""
        now = self._clock()
        if self._loaded_at is None or now - self._loaded_at >= self.max_age_seconds:
            try:
                self.reload()
            except Exception as exc:  # keep serving the last known set
                self._loaded_at = now
                log.warning("managed_webhook_ids_unavailable", error=type(exc).__name__)
        return self._ids


# --------------------------------------------------------------------------- start-up


def _is_permanent(exc: BaseException) -> bool:
    """Errors a retry will not fix without an operator: bad credentials, other 4xx, malformed answers, config."""
    if isinstance(exc, (ProviderAuthError, ProviderResponseError, SubscriptionConfigError)):
        return True
    if isinstance(exc, ProviderStatusError) and not isinstance(exc, ProviderRateLimited):
        return exc.status_code < 500
    return isinstance(exc, SubscriptionError) and not isinstance(exc, SubscriptionLockTimeout)


def _error_text(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    return " ".join(text.split())[:ERROR_CHARS]


def subscription_background_task(
    settings: Settings,
    *,
    transport: httpx.AsyncBaseTransport | None = None,
    retry: RetryPolicy | None = None,
    lock_timeout_seconds: float = LOCK_TIMEOUT_SECONDS,
) -> Callable[[Starlette], Awaitable[None]]:
    """A ``background_tasks`` job for :func:`receiver.web.app.create_app` that ensures the subscription.

    The job runs :func:`ensure_subscription` (no pruning) on the app's engine
    until it succeeds, sleeping ``retry.delay_seconds(attempt)`` after a
    transient failure (Dyte unreachable, 5xx, 429, database or lock busy) and
    ``retry.max_seconds`` after a permanent one (401/403, other 4xx,
    malformed answer, not migrated). Default ``retry``: base
    SUBSCRIPTION_RETRY_BASE_SECONDS, cap SUBSCRIPTION_RETRY_MAX_SECONDS,
    jitter 0.5, unlimited attempts. Each attempt's Dyte calls get at most 2
    tries of their own (the job is the outer retry).

    It updates ``app.state.subscription_state`` in place (``/readyz`` shows
    it): ``state`` (``ensuring`` -> ``ok``, or ``retrying``/``error`` while
    failing; ``disabled`` when credentials or PUBLIC_URL are missing),
    ``webhook_id``, ``last_error``, ``attempts``, ``url``,
    ``next_retry_seconds``, ``action`` and ``ensured_at`` (ISO 8601 UTC); and
    logs ``subscription_ensured`` / ``subscription_ensure_failed``. After
    success it reloads ``app.state.allowed_webhook_ids`` when that is a
    :class:`ManagedWebhookIds`. Readiness never waits for it.

    Args:
        settings: service settings (PUBLIC_URL, DYTE_*, SUBSCRIPTION_*).
        transport: httpx transport for the Dyte client (tests: the sandbox).
        retry: back-off between attempts (``max_attempts`` is ignored).
        lock_timeout_seconds: wait for another replica's ensure, seconds.
    """
    base = settings.subscription_retry_base_seconds
    policy = retry or RetryPolicy(
        base_seconds=base, max_seconds=max(base, settings.subscription_retry_max_seconds), max_attempts=1 << 30
    )
    inner_base = min(0.5, policy.base_seconds)
    inner_retry = RetryPolicy(base_seconds=inner_base, max_seconds=max(inner_base, 2.0), max_attempts=2)

    async def ensure_subscription_job(app: Starlette) -> None:
        from receiver.providers.registry import build_client

        state: dict[str, Any] = app.state.subscription_state
        try:
            spec = SubscriptionSpec.from_settings(settings)
        except SubscriptionConfigError as exc:
            reason = _error_text(exc)
            state.update(state="disabled" if missing_subscription_settings(settings) else "error", last_error=reason)
            SUBSCRIPTION_STATE.set(0)
            log.error("subscription_not_ensured", error=reason)
            return
        client = build_client(settings, transport=transport)
        assert client is not None  # credentials checked by from_settings
        client.retry = inner_retry
        SUBSCRIPTION_STATE.set(0)
        state.update(state="ensuring", url=spec.url, webhook_id=None, last_error=None, attempts=0)
        log.info("subscription_ensuring", url=spec.url, name=spec.name, events=len(spec.events))
        attempt = 0
        try:
            while True:
                attempt += 1
                state["attempts"] = attempt
                try:
                    result = await ensure_subscription(
                        client, spec, engine=app.state.engine, lock_timeout_seconds=lock_timeout_seconds
                    )
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    permanent = _is_permanent(exc)
                    delay = policy.max_seconds if permanent else policy.delay_seconds(attempt)
                    SUBSCRIPTION_STATE.set(0)
                    state.update(
                        state="error" if permanent else "retrying",
                        last_error=_error_text(exc),
                        next_retry_seconds=round(delay, 3),
                    )
                    log.warning(
                        "subscription_ensure_failed",
                        state=state["state"],
                        error=state["last_error"],
                        attempt=attempt,
                        retry_in_seconds=round(delay, 3),
                    )
                    await asyncio.sleep(delay)
                    continue
                SUBSCRIPTION_STATE.set(1)
                state.update(
                    state="ok",
                    webhook_id=result.webhook_id,
                    last_error=None,
                    next_retry_seconds=None,
                    action=result.summary,
                    ensured_at=datetime.now(UTC).isoformat().replace("+00:00", "Z"),
                )
                log.info(
                    "subscription_ensured",
                    webhook_id=result.webhook_id,
                    action=result.summary,
                    writes=result.write_count,
                    attempts=attempt,
                )
                allowed = getattr(app.state, "allowed_webhook_ids", None)
                if isinstance(allowed, ManagedWebhookIds):
                    try:
                        await asyncio.to_thread(allowed.reload)
                    except Exception as exc:
                        log.warning("managed_webhook_ids_unavailable", error=type(exc).__name__)
                return
        finally:
            await client.aclose()

    return ensure_subscription_job


class SubscriptionWiring:
    """What ``build_service_app`` adds for the subscription: pass the attributes to ``create_app``, then :meth:`attach`.

    Attributes:
        allowed_webhook_ids: a :class:`ManagedWebhookIds` when
            SUBSCRIPTION_ENFORCE_WEBHOOK_ID is true, else None.
        background_tasks: ``[subscription_background_task(...)]``, or empty
            when :func:`subscription_disabled_reason` gives a reason.
        disabled_reason: that reason, or None.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        retry: RetryPolicy | None = None,
    ) -> None:
        self.allowed_webhook_ids = ManagedWebhookIds() if settings.subscription_enforce_webhook_id else None
        self.disabled_reason = subscription_disabled_reason(settings)
        self.background_tasks: list[Callable[[Starlette], Awaitable[None]]] = (
            [] if self.disabled_reason else [subscription_background_task(settings, transport=transport, retry=retry)]
        )

    def attach(self, app: Starlette) -> None:
        """Bind the webhook-id cache to the app's engine and set the initial ``subscription_state``."""
        if self.allowed_webhook_ids is not None:
            self.allowed_webhook_ids.bind(lambda: app.state.engine)
        state: dict[str, Any] = app.state.subscription_state
        if self.disabled_reason:
            state.update(state="disabled", reason=self.disabled_reason)
        else:
            state.update(state="ensuring", webhook_id=None, last_error=None, attempts=0)
