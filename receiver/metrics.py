"""Prometheus metrics (prometheus-client), served at ``GET /metrics``.

Names follow Prometheus conventions: ``_total`` counters, ``_seconds``
histograms. Labels never carry ids (bounded cardinality).

The receive path counts through :func:`delivery_counter`,
:func:`dedupe_counter` and :func:`request_latency`: a labelled metric's
``labels()`` takes a lock and builds a key on every call, so the children it
returns are cached (they are the same objects ``labels()`` returns).
"""

from __future__ import annotations

from functools import lru_cache

from prometheus_client import Counter, Gauge, Histogram

DELIVERIES = Counter(
    "receiver_deliveries_total",
    "Webhook deliveries by event name and outcome (stored, duplicate, conflict, db_unavailable).",
    ["event", "outcome"],
)
SIGNATURE_FAILURES = Counter("receiver_signature_failures_total", "Deliveries refused for a bad or missing signature.")
DEDUPE_HITS = Counter("receiver_dedupe_hits_total", "Deliveries whose dyte-uuid was already stored.", ["kind"])
REJECTED = Counter("receiver_rejected_requests_total", "Requests refused with a 4xx/5xx, by status.", ["status"])
REQUEST_LATENCY = Histogram(
    "receiver_request_duration_seconds",
    "HTTP request latency, seconds, by route and status.",
    ["route", "method", "status"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
)
QUEUE_DEPTH = Gauge("receiver_queue_depth", "Stored events by processing status.", ["status"])
OLDEST_PENDING_AGE = Gauge("receiver_oldest_pending_event_age_seconds", "Age of the oldest pending event, seconds.")
PROCESSED = Counter(
    "receiver_events_processed_total", "Events processed by the worker, by event and result.", ["event", "result"]
)
PROCESSING_LATENCY = Histogram(
    "receiver_event_processing_seconds",
    "Time to apply one event, seconds.",
    ["event"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1.0, 5.0),
)
EVENT_LAG = Histogram(
    "receiver_event_lag_seconds",
    "From receipt to processed, seconds.",
    buckets=(0.01, 0.05, 0.1, 0.5, 1, 5, 15, 60, 300, 3600),
)
DYTE_API_CALLS = Counter(
    "receiver_dyte_api_calls_total",
    "Provider REST calls (Dyte or RealtimeKit, by the provider label) by endpoint and status.",
    ["provider", "method", "endpoint", "status"],
)
RATE_LIMIT_WAIT = Counter(
    "receiver_dyte_rate_limiter_wait_seconds_total", "Seconds spent waiting in the client-side rate limiter."
)
RECONCILE_CHANGES = Counter(
    "receiver_reconcile_changes_total", "What reconciliation did to intervals (added, changed, confirmed).", ["kind"]
)
SUBSCRIPTION_STATE = Gauge(
    "receiver_subscription_ok", "1 once the webhook subscription is ensured by this process, 0 while it is not."
)
RETENTION_PURGED_BODIES = Counter(
    "receiver_retention_purged_bodies_total", "Raw webhook bodies emptied by the retention purge (RAW_RETENTION_DAYS)."
)
RETENTION_PURGED_BYTES = Counter(
    "receiver_retention_purged_bytes_total", "Bytes of raw webhook bodies emptied by the retention purge."
)
RETENTION_LAST_SUCCESS = Gauge(
    "receiver_retention_last_success_timestamp_seconds",
    "Unix time (UTC) when the last retention purge finished, by any worker (maintenance_runs); 0 if none seen yet.",
)
INBOX_PARTITION_FAILURES = Counter(
    "receiver_inbox_partition_failures_total",
    "Month partitions of the inbox (PostgreSQL) a worker could not create; retried every 10 minutes.",
)
ERASURES = Counter(
    "receiver_erasures_total",
    "Erasure requests carried out (receiver forget, POST /api/erasures), by origin.",
    ["origin"],
)

OUTBOUND_DELIVERIES = Counter(
    "receiver_outbound_deliveries_total",
    "Attempts of the outbound attendance webhook (OUTBOUND_WEBHOOK_URL), by result (delivered, failed, dead, lost).",
    ["result"],
)


# Children of the receive path's labelled metrics, looked up once per label values.
# Bounded caches: a label value outside the expected few (an odd HTTP method) still counts.
delivery_counter = lru_cache(maxsize=256)(DELIVERIES.labels)
delivery_counter.__doc__ = "``DELIVERIES.labels(event, outcome)``, cached."
dedupe_counter = lru_cache(maxsize=16)(DEDUPE_HITS.labels)
dedupe_counter.__doc__ = "``DEDUPE_HITS.labels(kind)``, cached."
request_latency = lru_cache(maxsize=256)(REQUEST_LATENCY.labels)
request_latency.__doc__ = "``REQUEST_LATENCY.labels(route, method, status)``, cached."
