"""Trusted webhook public keys: configured ones, or one platform's published key document.

Rule (FACTS.md, "Signature"): Dyte and RealtimeKit each publish their key at
``/.well-known/webhooks.json``; a :class:`WebhookKeyStore` serves one
document (:mod:`receiver.providers.webhook_keys` combines the two). When no
key is configured the document is fetched on first use and cached; when a
signature fails it is fetched again, at most once per ``refresh_seconds``
(default 60 s) after a successful fetch, so a key rotation is picked up
without letting bad requests hammer the platform.

An outage of the document (a fetch that fails, or a document with no RSA
key) is not the sender's fault: while the store has no key it raises
:class:`KeyDocumentUnavailable` (the receive path answers 503, which the
platforms retry), and the next fetch may start after a back-off that doubles
from ``retry_base_seconds`` up to ``retry_max_seconds`` (default 0.5 s .. 10 s),
not after ``refresh_seconds``: the first delivery after the document is
back is accepted within the back-off, not a minute later. Cached keys are
kept through an outage. A configured key always wins: nothing is fetched.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import structlog
from cryptography.hazmat.primitives.asymmetric import rsa

from receiver.errors import ProviderError
from receiver.providers.dyte.signature import load_public_key, public_keys_from_document

__all__ = ["KeyDocumentUnavailable", "WebhookKeyStore", "http_fetch_document"]

log = structlog.get_logger(__name__)

FetchDocument = Callable[[str], Awaitable[Any]]


async def http_fetch_document(url: str) -> Any:
    """GET ``url`` and decode JSON (5 s timeout). Raises httpx errors or ValueError."""
    async with httpx.AsyncClient(timeout=httpx.Timeout(5.0)) as client:
        response = await client.get(url)
        response.raise_for_status()
        return response.json()


class KeyDocumentUnavailable(ProviderError):
    """No webhook key is known: the key document could not be fetched or holds no RSA key.

    Retryable: the receive path answers 503 with ``Retry-After`` =
    ``retry_after_seconds`` (the wait before the next fetch may start).
    """

    def __init__(self, message: str, *, retry_after_seconds: float) -> None:
        super().__init__(message)
        self.retry_after_seconds = retry_after_seconds


class WebhookKeyStore:
    """Holds the keys signatures are checked against.

    Args:
        configured_pems: PEM texts from DYTE_WEBHOOK_PUBLIC_KEY (may be empty;
            several during a rotation). Invalid PEM raises ValueError here,
            at start-up, not at the first delivery.
        keys_url: the key document URL, used only when nothing is configured.
        refresh_seconds: minimum seconds from a *successful* fetch to the next one.
        retry_base_seconds, retry_max_seconds: back-off after a *failed* fetch:
            the n-th failure in a row waits ``min(base * 2**(n-1), max)`` seconds.
        fetch: coroutine ``url -> decoded JSON`` (injected in tests).
        clock: monotonic seconds (injected in tests).
    """

    def __init__(
        self,
        configured_pems: list[str],
        keys_url: str | None,
        *,
        refresh_seconds: float = 60.0,
        retry_base_seconds: float = 0.5,
        retry_max_seconds: float = 10.0,
        fetch: FetchDocument = http_fetch_document,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._configured = [load_public_key(pem) for pem in configured_pems]
        self._keys_url = keys_url
        self._refresh_seconds = refresh_seconds
        self._retry_base_seconds = retry_base_seconds
        self._retry_max_seconds = max(retry_max_seconds, retry_base_seconds)
        self._fetch = fetch
        self._clock = clock
        self._fetched: list[rsa.RSAPublicKey] = []
        self._next_fetch_at: float | None = None  # None: never fetched
        self._failures = 0  # failed fetches in a row
        self._lock = asyncio.Lock()
        self.fetch_count = 0
        self.last_error: str | None = None

    def sources_for(self, provider: str | None) -> list[WebhookKeyStore]:
        """``[self]``: one store answers for every provider (the interface of
        :class:`receiver.providers.webhook_keys.ProviderKeyStores`)."""
        return [self]

    @property
    def uses_document(self) -> bool:
        """True when keys come from the published document (nothing configured)."""
        return not self._configured and bool(self._keys_url)

    @property
    def failing(self) -> bool:
        """True while the last fetch of the document failed (cached keys, if any, may be stale)."""
        return self.uses_document and self._failures > 0

    def retry_after_seconds(self) -> float:
        """Seconds until the next fetch may start (0 when it may start now)."""
        if self._next_fetch_at is None:
            return 0.0
        return max(0.0, self._next_fetch_at - self._clock())

    def unavailable(self) -> KeyDocumentUnavailable:
        """The error to answer while the document is failing (503 with ``Retry-After``)."""
        wait = max(1.0, math.ceil(self.retry_after_seconds()))
        return KeyDocumentUnavailable(
            f"webhook key document unavailable ({self.last_error or 'no fetch yet'}); retry in {wait:.0f} s",
            retry_after_seconds=wait,
        )

    async def keys(self) -> list[rsa.RSAPublicKey]:
        """The current trusted keys; fetches the document when none is known and the back-off allows.

        Raises:
            KeyDocumentUnavailable: the document is in use and no key could be obtained.
        """
        if not self.uses_document:
            return self._configured
        if self._fetched:
            return self._fetched
        async with self._lock:  # one fetch at a time; those waiting see its result
            if not self._fetched and self.retry_after_seconds() <= 0:
                await self._fetch_now()
        if not self._fetched:
            raise self.unavailable()
        return self._fetched

    async def refresh_after_failure(self) -> bool:
        """Re-fetch the document after a failed verification, when allowed.

        Allowed: ``refresh_seconds`` after the last successful fetch, or once the
        back-off after a failed one has passed. Returns True when a fetch
        happened and gave at least one key.
        """
        if not self.uses_document:
            return False
        async with self._lock:
            if self.retry_after_seconds() > 0:
                return False
            return await self._fetch_now()

    async def _fetch_now(self) -> bool:
        now = self._clock()
        self.fetch_count += 1
        try:
            document = await self._fetch(self._keys_url or "")
        except Exception as exc:  # network or JSON error: keep the old keys
            return self._failed(now, f"{type(exc).__name__}: {exc}"[:300])
        keys = public_keys_from_document(document)
        if not keys:
            return self._failed(now, "key document holds no RSA public key")
        self._fetched = keys
        self._failures = 0
        self._next_fetch_at = now + self._refresh_seconds
        self.last_error = None
        log.info("webhook_keys_fetched", url=self._keys_url, keys=len(keys))
        return True

    def _failed(self, now: float, error: str) -> bool:
        self._failures += 1
        delay = min(self._retry_base_seconds * 2 ** min(self._failures - 1, 30), self._retry_max_seconds)
        self._next_fetch_at = now + delay
        self.last_error = error
        log.warning(
            "webhook_keys_fetch_failed", url=self._keys_url, error=error, failures=self._failures, retry_in=delay
        )
        return False
