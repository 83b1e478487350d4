"""RealtimeKit webhook deliveries: Dyte's signing scheme under ``rtk-*`` headers, and RealtimeKit's key document.

Rule (``shared/dyte/FACTS.md``, "Signature"): RealtimeKit signs the raw
body with RSA PKCS#1 v1.5 SHA-256, base64 in ``rtk-signature``; ``rtk-uuid``
is the idempotency key and ``rtk-webhook-id`` the subscription. Its public
key is published at :data:`DEFAULT_KEYS_URL` as
``{"success": true, "data": {"publicKey": "<SPKI PEM>"}}``, which
:func:`receiver.providers.dyte.signature.public_keys_from_document` reads.
Verification is :func:`receiver.providers.dyte.signature.verify_signature`.
"""

from __future__ import annotations

from receiver.providers.base import WebhookScheme

__all__ = ["RTK_WEBHOOK_SCHEME", "DEFAULT_KEYS_URL"]

#: Where RealtimeKit publishes its webhook public key.
DEFAULT_KEYS_URL = "https://api.realtime.cloudflare.com/.well-known/webhooks.json"

#: The headers of a RealtimeKit delivery.
RTK_WEBHOOK_SCHEME = WebhookScheme(
    name="realtimekit",
    signature_header="rtk-signature",
    delivery_id_header="rtk-uuid",
    webhook_id_header="rtk-webhook-id",
)
