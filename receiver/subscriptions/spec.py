"""What the service's Dyte webhook subscription must look like, and the settings it needs.

Owns :class:`SubscriptionSpec` (spec ``WebhookRequest`` fields ``name``,
``url``, ``events``), the delivery URL rules (:func:`webhook_url`,
:func:`same_url`), the settings checks shared by ``receiver subscribe`` and
start-up (:func:`missing_subscription_settings`,
:func:`subscription_disabled_reason`) and the subscription errors.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx

from receiver.errors import ReceiverError
from receiver.settings import ALL_EVENTS, Settings

__all__ = [
    "WEBHOOK_PATH",
    "SubscriptionError",
    "SubscriptionConfigError",
    "SubscriptionLockTimeout",
    "SubscriptionSpec",
    "webhook_url",
    "same_url",
    "missing_subscription_settings",
    "subscription_disabled_reason",
]

#: Path of the webhook endpoint, appended to PUBLIC_URL.
WEBHOOK_PATH = "/webhooks/dyte"


# --------------------------------------------------------------------------- errors


class SubscriptionError(ReceiverError):
    """Ensuring the subscription failed for a reason other than a Dyte API error."""


class SubscriptionConfigError(SubscriptionError):
    """PUBLIC_URL, DYTE_ORG_ID or DYTE_API_KEY missing, or PUBLIC_URL not an absolute http(s) URL."""


class SubscriptionLockTimeout(SubscriptionError):
    """Another replica held the subscription lock for longer than the timeout (seconds)."""


# --------------------------------------------------------------------------- configuration


def webhook_url(public_url: str, path: str = WEBHOOK_PATH) -> str:
    """The delivery URL for PUBLIC_URL: ``PUBLIC_URL + path`` (not doubled if already there).

    ``path`` is the provider's endpoint (:func:`receiver.providers.registry.webhook_path`):
    ``/webhooks/dyte`` (the default) or ``/webhooks/realtimekit``.

    Raises:
        SubscriptionConfigError: ``public_url`` is not an absolute http(s) URL.
    """
    base = (public_url or "").strip().rstrip("/")
    try:
        parsed = httpx.URL(base)
    except Exception:  # httpx.InvalidURL and friends
        parsed = None
    if parsed is None or parsed.scheme not in ("http", "https") or not parsed.host:
        raise SubscriptionConfigError(
            f"PUBLIC_URL must be an absolute http(s) URL such as https://hooks.example.com, got {public_url!r}"
        )
    return base if base.endswith(path) else base + path


def same_url(a: str | None, b: str | None) -> bool:
    """True when two webhook URLs are the same endpoint (scheme/host case, default port, trailing ``/`` ignored)."""
    if not a or not b:
        return False

    def key(value: str) -> tuple[Any, ...]:
        try:
            u = httpx.URL(value.strip())
        except Exception:
            return (value.strip(),)
        scheme = u.scheme.lower()
        port = u.port or {"http": 80, "https": 443}.get(scheme)
        return (scheme, u.host.lower(), port, u.path.rstrip("/") or "/", u.query)

    return key(a) == key(b)


def missing_subscription_settings(settings: Settings) -> list[str]:
    """Names of the environment variables that must be set to manage the webhook and are not (in a fixed order)."""
    missing = []
    if not (settings.public_url or "").strip():
        missing.append("PUBLIC_URL")
    return missing + settings.missing_api_settings()  # the chosen provider's (PROVIDER)


def subscription_disabled_reason(settings: Settings) -> str | None:
    """Why ``receiver serve`` would not ensure the subscription at start-up, or None when it will."""
    if not settings.subscription_ensure_on_start:
        return "SUBSCRIPTION_ENSURE_ON_START is false"
    missing = missing_subscription_settings(settings)
    if missing:
        return f"{', '.join(missing)} not set"
    return None


@dataclass(frozen=True)
class SubscriptionSpec:
    """What the managed webhook must look like: spec ``WebhookRequest`` fields ``name``, ``url``, ``events`` (enabled is always true)."""

    name: str
    url: str
    events: tuple[str, ...]

    @classmethod
    def from_settings(cls, settings: Settings) -> SubscriptionSpec:
        """SUBSCRIPTION_NAME, PUBLIC_URL + the provider's path (``/webhooks/dyte`` or
        ``/webhooks/realtimekit``, per PROVIDER) and SUBSCRIPTION_EVENTS.

        Raises:
            SubscriptionConfigError: PUBLIC_URL or the provider's credentials
                are missing (the message names them), or PUBLIC_URL is not a URL.
        """
        from receiver.providers.registry import webhook_path

        missing = missing_subscription_settings(settings)
        if missing:
            raise SubscriptionConfigError(
                f"set {', '.join(missing)} to manage the {settings.provider_label} webhook subscription"
            )
        events = tuple(e for e in settings.subscription_events.split(",") if e) or ALL_EVENTS
        url = webhook_url(settings.public_url or "", webhook_path(settings.provider))
        return cls(name=settings.subscription_name, url=url, events=events)
