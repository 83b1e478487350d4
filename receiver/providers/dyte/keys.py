"""Trusted webhook public keys: configured ones, or one platform's published key document.

Rule (FACTS.md, "Signature"): Dyte and RealtimeKit each publish their key at
``/.well-known/webhooks.json``; a :class:`WebhookKeyStore` serves one
document (:mod:`receiver.providers.webhook_keys` combines the two). When no
key is configured the document is fetched on first use and cached; when a
signature fails it is fetched again, at most once per ``refresh_seconds``
(default 60 s), so a key rotation is picked up without letting bad requests
hammer the platform.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import structlog
from cryptography.hazmat.primitives.asymmetric import rsa

from receiver.providers.dyte.signature import load_public_key, public_keys_from_document

__all__ = ["WebhookKeyStore", "http_fetch_document"]

log = structlog.get_logger(__name__)

FetchDocument = Callable[[str], Awaitable[Any]]


async def http_fetch_document(url: str) -> Any:
    """GET ``url`` and decode JSON (5 s timeout). Raises httpx errors or ValueError."""
    async with httpx.AsyncClient(timeout=httpx.Timeout(5.0)) as client:
        response = await client.get(url)
        response.raise_for_status()
        return response.json()


class WebhookKeyStore:
    """Holds the keys signatures are checked against.

    Args:
        configured_pems: PEM texts from DYTE_WEBHOOK_PUBLIC_KEY (may be empty;
            several during a rotation). Invalid PEM raises ValueError here,
            at start-up, not at the first delivery.
        keys_url: the key document URL, used only when nothing is configured.
        refresh_seconds: minimum seconds between two fetches.
        fetch: coroutine ``url -> decoded JSON`` (injected in tests).
    """

    def __init__(
        self,
        configured_pems: list[str],
        keys_url: str | None,
        *,
        refresh_seconds: float = 60.0,
        fetch: FetchDocument = http_fetch_document,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._configured = [load_public_key(pem) for pem in configured_pems]
        self._keys_url = keys_url
        self._refresh_seconds = refresh_seconds
        self._fetch = fetch
        self._clock = clock
        self._fetched: list[rsa.RSAPublicKey] = []
        self._last_fetch: float | None = None
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

    async def keys(self) -> list[rsa.RSAPublicKey]:
        """The current trusted keys; fetches the document once if it was never fetched."""
        if not self.uses_document:
            return self._configured
        if not self._fetched and self._last_fetch is None:
            await self._refresh(force=True)
        elif not self._fetched:
            # A first fetch may be in flight: wait for it rather than answer with no keys.
            async with self._lock:
                pass
        return self._fetched

    async def refresh_after_failure(self) -> bool:
        """Re-fetch the document after a failed verification, at most once per ``refresh_seconds``.

        Returns True when a fetch happened and gave at least one key.
        """
        if not self.uses_document:
            return False
        return await self._refresh(force=False)

    async def _refresh(self, *, force: bool) -> bool:
        async with self._lock:
            now = self._clock()
            if not force and self._last_fetch is not None and now - self._last_fetch < self._refresh_seconds:
                return False
            if force and self._last_fetch is not None:
                return bool(self._fetched)
            self._last_fetch = now
            self.fetch_count += 1
            try:
                document = await self._fetch(self._keys_url or "")
            except Exception as exc:  # network or JSON error: keep the old keys
                self.last_error = f"{type(exc).__name__}: {exc}"[:300]
                log.warning("webhook_keys_fetch_failed", url=self._keys_url, error=self.last_error)
                return False
            keys = public_keys_from_document(document)
            if not keys:
                self.last_error = "key document holds no RSA public key"
                log.warning("webhook_keys_fetch_empty", url=self._keys_url)
                return False
            self._fetched = keys
            self.last_error = None
            log.info("webhook_keys_fetched", url=self._keys_url, keys=len(keys))
            return True
