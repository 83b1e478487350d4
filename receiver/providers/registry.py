"""Building the configured provider's REST client from settings.

One place maps ``Settings`` to a :class:`receiver.providers.base.ProviderClient`;
callers (reconciliation, backfill, subscriptions, the composition root)
never construct a provider's client themselves.
"""

from __future__ import annotations

import httpx

from receiver import metrics
from receiver.providers.base import ProviderClient
from receiver.providers.dyte.client import DyteClient
from receiver.settings import Settings

__all__ = ["build_client", "record_call"]


def record_call(method: str, template: str, status: int | str, seconds: float) -> None:
    """Count one REST attempt in ``receiver_dyte_api_calls_total`` (method, path template, status)."""
    metrics.DYTE_API_CALLS.labels(method=method, endpoint=template, status=str(status)).inc()


def build_client(settings: Settings, *, transport: httpx.AsyncBaseTransport | None = None) -> ProviderClient | None:
    """The configured provider's REST client, or None when its credentials are missing.

    Dyte: HTTP Basic ``DYTE_ORG_ID:DYTE_API_KEY`` against ``DYTE_API_BASE_URL``.
    ``transport`` replaces the network (tests: the sandbox app).
    """
    if not settings.api_credentials_set:
        return None
    assert settings.dyte_api_key is not None and settings.dyte_org_id is not None
    return DyteClient(
        settings.dyte_api_base_url,
        settings.dyte_org_id,
        settings.dyte_api_key.get_secret_value(),
        transport=transport,
        timeout_seconds=settings.dyte_api_timeout_seconds,
        calls_per_minute=settings.dyte_api_calls_per_minute,
        on_call=record_call,
    )
