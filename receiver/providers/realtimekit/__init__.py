"""Cloudflare RealtimeKit (Dyte's successor): REST client on the Cloudflare API and the ``rtk-*`` webhook scheme.

Sources: ``shared/dyte/FACTS.md`` ("RealtimeKit REST API", "Signature") and
the official Python SDK ``cloudflare`` 5.9 (``cloudflare.types.realtime_kit``
for response shapes, ``cloudflare.resources.realtime_kit`` for paths and
query parameters). Webhook payloads are Dyte's and are parsed by
:mod:`receiver.providers.dyte.events`; REST objects come back as the shared
models of :mod:`receiver.providers.dyte.rest_models`.
"""
