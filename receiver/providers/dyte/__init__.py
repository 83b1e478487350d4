"""Dyte v2: REST client, webhook payload and REST models (one set of
coercion types), signature scheme and key document.

Sources: ``shared/dyte/openapi-v2.yaml`` (REST), ``shared/dyte/FACTS.md``
(headers, signing, retries, limits), ``shared/dyte/payloads`` (webhooks).
"""
