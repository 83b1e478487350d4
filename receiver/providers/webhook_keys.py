"""Which public keys a delivery's signature is checked against, for Dyte and RealtimeKit together.

Rules (``shared/dyte/FACTS.md``, "Signature"; README "Moving from Dyte to RealtimeKit"):

1. Keys configured in DYTE_WEBHOOK_PUBLIC_KEY are the only keys trusted;
   no document is fetched. During a move, configure both platforms' PEM
   blocks (concatenated).
2. Otherwise each platform's key comes from its own published document:
   Dyte's (DYTE_WEBHOOK_KEYS_URL) and RealtimeKit's
   (REALTIMEKIT_WEBHOOK_KEYS_URL). A delivery is checked first against the
   document of the platform whose headers it carries (``dyte-signature`` ->
   Dyte, ``rtk-signature`` -> RealtimeKit), then against the other one.

Why both documents, whatever PROVIDER says: while an organisation moves,
its old Dyte webhook and its new RealtimeKit webhook both deliver, and a
refused delivery is retried 5 times and then lost; both keys belong to the
same operator (Cloudflare), so accepting either adds no signer the service
did not already trust. A document is fetched only when a delivery needs it
(an organisation that only ever receives ``rtk-*`` deliveries never fetches
Dyte's), cached, and re-fetched after a failure at most once per
DYTE_WEBHOOK_KEYS_REFRESH_SECONDS (:class:`~receiver.providers.dyte.keys.WebhookKeyStore`).
A valid signature proves the platform sent the delivery, not which
organisation's webhook did: SUBSCRIPTION_ENFORCE_WEBHOOK_ID is what refuses
other organisations' webhooks.
"""

from __future__ import annotations

from collections.abc import Mapping

from receiver.providers.dyte.keys import WebhookKeyStore

__all__ = ["ProviderKeyStores"]


class ProviderKeyStores:
    """One :class:`WebhookKeyStore` per provider, asked in order for a delivery of a given header family.

    Args:
        stores: ``{"dyte": store, "realtimekit": store}``; the same store
            object may serve several providers (configured keys).

    Raises:
        ValueError: ``stores`` is empty.
    """

    def __init__(self, stores: Mapping[str, WebhookKeyStore]) -> None:
        if not stores:
            raise ValueError("ProviderKeyStores needs at least one key store")
        self.stores = dict(stores)
        # Computed once: the receive path asks for every delivery.
        self._everyone = self._ordered(None)
        self._orders = {name: self._ordered(name) for name in self.stores}

    def _ordered(self, provider: str | None) -> list[WebhookKeyStore]:
        ordered: list[WebhookKeyStore] = []
        first = self.stores.get(provider) if provider is not None else None
        for store in ([first] if first is not None else []) + list(self.stores.values()):
            if not any(store is seen for seen in ordered):
                ordered.append(store)
        return ordered

    def sources_for(self, provider: str | None) -> list[WebhookKeyStore]:
        """The key stores to try for a delivery carrying ``provider``'s headers: its own first, then the others'.

        Each distinct store appears once; an unknown or None ``provider``
        gives every store in configuration order. The list is shared: do not modify it.
        """
        if provider is None:
            return self._everyone
        return self._orders.get(provider, self._everyone)

    @property
    def fetch_count(self) -> int:
        """Key document fetches so far, over every distinct store."""
        return sum(store.fetch_count for store in self._everyone)
