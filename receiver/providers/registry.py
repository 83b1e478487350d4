"""Building the configured provider's REST client from settings.

One place maps ``Settings`` to a :class:`receiver.providers.base.ProviderClient`;
callers (reconciliation, backfill, subscriptions, the composition root)
never construct a provider's client themselves.

===============  ===========================  ==============================================================
PROVIDER         client                       credentials
===============  ===========================  ==============================================================
``dyte``         :class:`DyteClient`          HTTP Basic ``DYTE_ORG_ID:DYTE_API_KEY`` at ``DYTE_API_BASE_URL``
``realtimekit``  :class:`RealtimeKitClient`   ``Authorization: Bearer REALTIMEKIT_API_TOKEN`` at
                                              ``REALTIMEKIT_API_BASE_URL/accounts/REALTIMEKIT_ACCOUNT_ID/
                                              realtime/kit/REALTIMEKIT_APP_ID``
===============  ===========================  ==============================================================
"""

from __future__ import annotations

import functools

import httpx

from receiver import metrics
from receiver.errors import ConfigurationError
from receiver.providers.base import ProviderClient, WebhookScheme
from receiver.providers.dyte.client import DyteClient
from receiver.providers.dyte.keys import FetchDocument, WebhookKeyStore, http_fetch_document
from receiver.providers.dyte.signature import DYTE_WEBHOOK_SCHEME
from receiver.providers.realtimekit.client import RealtimeKitClient
from receiver.providers.realtimekit.signature import RTK_WEBHOOK_SCHEME
from receiver.providers.webhook_keys import ProviderKeyStores
from receiver.settings import Settings

__all__ = [
    "build_client",
    "require_client",
    "build_key_store",
    "record_call",
    "WEBHOOK_SCHEMES",
    "WEBHOOK_PATHS",
    "webhook_path",
]

#: The webhook scheme (header names) of every provider.
WEBHOOK_SCHEMES: dict[str, WebhookScheme] = {"dyte": DYTE_WEBHOOK_SCHEME, "realtimekit": RTK_WEBHOOK_SCHEME}
#: The service's delivery endpoint per provider (both accept both header families).
WEBHOOK_PATHS: dict[str, str] = {"dyte": "/webhooks/dyte", "realtimekit": "/webhooks/realtimekit"}


def webhook_path(provider: str) -> str:
    """The path the provider's managed webhook points at: ``/webhooks/dyte`` or ``/webhooks/realtimekit``.

    Raises:
        ConfigurationError: unknown provider.
    """
    try:
        return WEBHOOK_PATHS[provider]
    except KeyError:
        raise ConfigurationError(f"unknown provider {provider!r}; known: {', '.join(WEBHOOK_PATHS)}") from None


def record_call(provider: str, method: str, template: str, status: int | str, seconds: float) -> None:
    """Count one REST attempt in ``receiver_dyte_api_calls_total`` (provider, method, path template, status).

    The metric keeps its first name for both providers, so that dashboards and
    alerts keep working after a move from Dyte to RealtimeKit; the ``provider``
    label (``dyte`` or ``realtimekit``) tells them apart.
    """
    metrics.DYTE_API_CALLS.labels(provider=provider, method=method, endpoint=template, status=str(status)).inc()


def build_client(settings: Settings, *, transport: httpx.AsyncBaseTransport | None = None) -> ProviderClient | None:
    """The configured provider's REST client, or None when its credentials are incomplete.

    Dyte: HTTP Basic ``DYTE_ORG_ID:DYTE_API_KEY`` against ``DYTE_API_BASE_URL``,
    at most DYTE_API_CALLS_PER_MINUTE calls per minute. RealtimeKit: Bearer
    ``REALTIMEKIT_API_TOKEN`` against the app's resources under
    ``REALTIMEKIT_API_BASE_URL``, at most REALTIMEKIT_API_CALLS_PER_FIVE_MINUTES
    calls per five minutes. ``transport`` replaces the network (tests: the
    sandbox app). Use :func:`require_client` when the caller cannot go on without one.
    """
    if not settings.api_credentials_set:
        return None
    if settings.provider == "realtimekit":
        assert settings.realtimekit_api_token is not None
        return RealtimeKitClient(
            settings.realtimekit_api_base_url,
            settings.realtimekit_account_id or "",
            settings.realtimekit_app_id or "",
            settings.realtimekit_api_token.get_secret_value(),
            transport=transport,
            timeout_seconds=settings.realtimekit_api_timeout_seconds,
            calls_per_five_minutes=settings.realtimekit_api_calls_per_five_minutes,
            on_call=functools.partial(record_call, "realtimekit"),
        )
    assert settings.dyte_api_key is not None and settings.dyte_org_id is not None
    return DyteClient(
        settings.dyte_api_base_url,
        settings.dyte_org_id,
        settings.dyte_api_key.get_secret_value(),
        transport=transport,
        timeout_seconds=settings.dyte_api_timeout_seconds,
        calls_per_minute=settings.dyte_api_calls_per_minute,
        on_call=functools.partial(record_call, "dyte"),
    )


def require_client(
    settings: Settings, purpose: str, *, transport: httpx.AsyncBaseTransport | None = None
) -> ProviderClient:
    """Like :func:`build_client`, for callers that need the REST API.

    Raises:
        ConfigurationError: the chosen provider's credentials are incomplete;
            one line naming the unset variables (see
            :meth:`receiver.settings.Settings.require_api_credentials`).
    """
    settings.require_api_credentials(purpose)
    client = build_client(settings, transport=transport)
    assert client is not None
    return client


def build_key_store(settings: Settings, *, fetch: FetchDocument = http_fetch_document) -> ProviderKeyStores:
    """The webhook keys to trust (rules in :mod:`receiver.providers.webhook_keys`).

    DYTE_WEBHOOK_PUBLIC_KEY set: one store of those PEM blocks for both header
    families, no document. Otherwise one fetching store per key document
    (DYTE_WEBHOOK_KEYS_URL for ``dyte-*`` deliveries, REALTIMEKIT_WEBHOOK_KEYS_URL
    for ``rtk-*``; the chosen provider's first; one store when both URLs are
    equal), each refreshed at most once per DYTE_WEBHOOK_KEYS_REFRESH_SECONDS
    after a success, and with a back-off up to DYTE_WEBHOOK_KEYS_RETRY_MAX_SECONDS
    after a failed fetch (the receive path answers 503 meanwhile).
    ``fetch`` replaces the network (tests).

    Raises:
        ValueError: DYTE_WEBHOOK_PUBLIC_KEY is neither PEM text nor a readable
            file, or holds something other than an RSA public key (at start-up,
            not at the first delivery).
    """
    pems = settings.webhook_public_key_pems()
    if pems:
        configured = WebhookKeyStore(pems, None)
        return ProviderKeyStores({name: configured for name in WEBHOOK_SCHEMES})
    urls = {"dyte": settings.dyte_webhook_keys_url, "realtimekit": settings.realtimekit_webhook_keys_url}
    order = [settings.provider, *(name for name in urls if name != settings.provider)]
    by_url: dict[str, WebhookKeyStore] = {}
    stores: dict[str, WebhookKeyStore] = {}
    for name in order:
        url = urls[name]
        if url not in by_url:
            by_url[url] = WebhookKeyStore(
                [],
                url,
                refresh_seconds=settings.dyte_webhook_keys_refresh_seconds,
                retry_max_seconds=settings.dyte_webhook_keys_retry_max_seconds,
                fetch=fetch,
            )
        stores[name] = by_url[url]
    return ProviderKeyStores(stores)
