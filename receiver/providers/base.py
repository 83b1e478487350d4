"""What a meeting platform must offer the service: the provider interface.

The rest of the service (ingest, processing, subscriptions, web) talks to a
provider only through these types:

* :class:`WebhookScheme` - how a delivery is signed and identified: the
  header names of the signature, idempotency key (delivery id) and webhook
  id, and the URL of the published key document. Dyte and Cloudflare
  RealtimeKit sign the same way (RSA PKCS#1 v1.5 SHA-256 over the raw body,
  ``shared/dyte/FACTS.md``), with ``dyte-*`` and ``rtk-*`` headers.
* :class:`ProviderClient` - the REST calls reconciliation, backfill and
  subscription management make. Objects come back as the Dyte v2 models of
  :mod:`receiver.providers.dyte.rest_models` (RealtimeKit, Dyte's
  successor, serves the same objects in the same snake_case shapes); errors
  are :mod:`receiver.providers.errors`.

Webhook payloads are the same for both platforms and are parsed by
:func:`receiver.providers.dyte.events.parse_event`.

A new provider adds a subpackage with a client satisfying
:class:`ProviderClient` and a :class:`WebhookScheme`, and an entry in
:mod:`receiver.providers.registry`; ingest, processing and reports do not change.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol, runtime_checkable

from receiver.providers.dyte.rest_models import (
    ApiLivestream,
    ApiLivestreamSession,
    ApiMeeting,
    ApiParticipant,
    ApiRecording,
    ApiSession,
    ApiWebhook,
)
from receiver.providers.ratelimit import RateLimiter
from receiver.retry import RetryPolicy

__all__ = ["WebhookScheme", "ProviderClient"]


@dataclass(frozen=True)
class WebhookScheme:
    """The headers of one provider's signed deliveries (lower-case names).

    Attributes:
        name: provider name (``dyte`` or ``realtimekit``).
        signature_header: base64 RSA-SHA256 signature of the raw body.
        delivery_id_header: the idempotency key, stable across retries.
        webhook_id_header: id of the webhook subscription that delivered it.
    """

    name: str
    signature_header: str
    delivery_id_header: str
    webhook_id_header: str


@runtime_checkable
class ProviderClient(Protocol):
    """The REST calls the service makes to a provider (all async, all rate-limited and retried).

    Every method raises :class:`receiver.providers.errors.ProviderAPIError`
    subclasses: ``ProviderNotFound`` (404), ``ProviderAuthError`` (401/403),
    ``ProviderRateLimited`` (429 after retries), ``ProviderTransportError``,
    ``ProviderResponseError``. Times are aware UTC datetimes; participant
    ``duration_minutes`` is in minutes, recording durations and livestream
    ``viewer_seconds`` / ``ingest_seconds`` in seconds.

    Listings walk every page, driven by the server's ``paging`` totals (a
    capped page size or a short page never ends the walk early), and skip
    an item that is not a usable object with a warning instead of failing
    the whole listing.
    """

    provider_name: str
    retry: RetryPolicy
    limiter: RateLimiter

    async def __aenter__(self) -> Any: ...

    async def __aexit__(self, *exc_info: object) -> None: ...

    async def aclose(self) -> None: ...

    async def get_session(self, session_id: str, *, include_breakout_rooms: bool = False) -> ApiSession: ...

    async def list_session_participants(
        self, session_id: str, *, include_peer_events: bool = False
    ) -> list[ApiParticipant]: ...

    def iter_sessions(
        self,
        *,
        start_time: datetime | None = None,
        end_time: datetime | None = None,
        on_page: Callable[[int, int, int | None], object] | None = None,
    ) -> AsyncIterator[ApiSession]: ...

    async def list_recordings(self, *, meeting_id: str | None = None) -> list[ApiRecording]: ...

    async def list_meeting_livestreams(self, meeting_id: str) -> list[ApiLivestream]: ...

    async def list_session_livestream_sessions(self, session_id: str) -> list[ApiLivestreamSession]: ...

    async def list_livestream_sessions(self, livestream_id: str) -> list[ApiLivestreamSession]: ...

    async def get_recording(self, recording_id: str) -> ApiRecording: ...

    async def get_livestream(self, livestream_id: str) -> ApiLivestream: ...

    async def get_meeting(self, meeting_id: str) -> ApiMeeting: ...

    async def list_webhooks(self) -> list[ApiWebhook]: ...

    async def create_webhook(self, name: str, url: str, events: Iterable[str], enabled: bool = True) -> ApiWebhook: ...

    async def update_webhook(self, webhook_id: str, **fields: Any) -> ApiWebhook: ...

    async def delete_webhook(self, webhook_id: str) -> None: ...
