"""Meeting platforms (Dyte, Cloudflare RealtimeKit) behind one interface.

Owns: what a provider must offer the rest of the service
(:class:`receiver.providers.base.Provider`: verify a delivery, parse an
event, list/get sessions, participants, recordings, livestreams, manage
webhooks), the shared REST rate limiter, and one subpackage per provider.

May import: the top-level shared modules (settings, errors, timeparse,
retry, metrics, enums). Never ingest, processing, reports, web, db or cli.
"""
