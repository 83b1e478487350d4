"""Sending the outbound webhook: signed POSTs of claimed outbox rows, with back-off, then dead.

The signature is Standard Webhooks' (https://www.standardwebhooks.com),
made by the ``standardwebhooks`` package: headers ``webhook-id`` (the
delivery's ``msg_...`` id, the same on every attempt), ``webhook-timestamp``
(integer seconds since the epoch, UTC, of this attempt) and
``webhook-signature`` (``v1,<base64 of HMAC-SHA256(key, "{id}.{timestamp}.{body}")>``,
the key being the base64 part of the ``whsec_...`` secret). A receiver
verifies it with any Standard Webhooks library and the same secret.

Outcomes: a 2xx answer delivers; anything else (another status, a
redirect, which is not followed, a timeout, a refused connection) is a
failed attempt, retried after an exponential back-off with jitter
(:class:`~receiver.retry.RetryPolicy`: 5 s doubling to 1 h) until
``OUTBOUND_WEBHOOK_MAX_ATTEMPTS`` attempts, then ``dead``. The secret never
reaches a log or a stored error; the URL is logged by host only (URLs of
webhook receivers often carry a token).
"""

from __future__ import annotations

from datetime import UTC, datetime
from urllib.parse import urlsplit

import httpx
import structlog
from sqlalchemy import select
from sqlalchemy.engine import Engine
from standardwebhooks.webhooks import Webhook

from receiver import metrics
from receiver.db.models import OutboundDelivery
from receiver.processing.outbound_queue import AttemptOutcome, claim_deliveries, record_attempt
from receiver.processing.queue import error_line
from receiver.retry import RetryPolicy

__all__ = ["OutboundSender", "signature_headers", "DEFAULT_RETRY_POLICY"]

log = structlog.get_logger("receiver.processing.outbound_sender")

#: Back-off of outbound deliveries: 5 s after the first failure, doubling, at most 1 h (then jittered down to half).
DEFAULT_RETRY_POLICY = RetryPolicy(base_seconds=5.0, max_seconds=3600.0, max_attempts=8, jitter=0.5)


def signature_headers(secret: str, webhook_id: str, timestamp: int, body: str) -> dict[str, str]:
    """The Standard Webhooks headers of one attempt.

    Args:
        secret: ``whsec_<base64>`` (the key is the decoded base64 part).
        webhook_id: the delivery's id (``msg_...``).
        timestamp: seconds since the epoch (UTC), integer.
        body: the exact body text sent (UTF-8 on the wire).

    Returns:
        ``webhook-id``, ``webhook-timestamp``, ``webhook-signature`` (``v1,<base64>``).
    """
    signature = Webhook(secret).sign(webhook_id, datetime.fromtimestamp(timestamp, UTC), body)
    return {"webhook-id": webhook_id, "webhook-timestamp": str(timestamp), "webhook-signature": signature}


class OutboundSender:
    """Claims due outbound deliveries and POSTs them to the configured URL (run by the worker after each batch).

    Args:
        engine: the database.
        url: ``OUTBOUND_WEBHOOK_URL``.
        secret: ``OUTBOUND_WEBHOOK_SECRET`` (``whsec_...``).
        worker_id: identifies this process's claims.
        retry_policy: back-off and attempt limit (``max_attempts`` from OUTBOUND_WEBHOOK_MAX_ATTEMPTS).
        timeout_seconds: timeout of one POST.
        batch_size: deliveries claimed per round.
        transport: an httpx transport (tests: ``httpx.MockTransport``).
    """

    def __init__(
        self,
        engine: Engine,
        *,
        url: str,
        secret: str,
        worker_id: str,
        retry_policy: RetryPolicy = DEFAULT_RETRY_POLICY,
        timeout_seconds: float = 10.0,
        batch_size: int = 20,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        Webhook(secret)  # fails now on an unusable secret, not at the first delivery
        self.engine = engine
        self.url = url
        self._secret = secret
        self.worker_id = worker_id
        self.retry_policy = retry_policy
        self.batch_size = batch_size
        self.host = urlsplit(url).hostname or "?"
        # Lease: longer than one POST can take, so a live worker never loses a claim mid-request.
        self.lease_seconds = max(60.0, 3 * timeout_seconds)
        self._client = httpx.AsyncClient(
            timeout=timeout_seconds,
            transport=transport,
            follow_redirects=False,
            headers={"user-agent": "receiver-outbound/1", "content-type": "application/json"},
        )

    def __repr__(self) -> str:
        return f"OutboundSender(host={self.host!r})"  # never the secret, nor the full URL

    async def aclose(self) -> None:
        """Close the HTTP client."""
        await self._client.aclose()

    async def run_due(self, *, now: datetime | None = None) -> int:
        """Claim due deliveries and attempt each once; returns how many were attempted."""
        now = now or datetime.now(UTC)
        ids = claim_deliveries(
            self.engine, self.worker_id, limit=self.batch_size, lease_seconds=self.lease_seconds, now=now
        )
        for delivery_id in ids:
            await self.attempt(delivery_id)
        return len(ids)

    async def attempt(self, delivery_id: int) -> str:
        """POST one claimed delivery and record the outcome; returns ``delivered``, ``failed``, ``dead`` or ``lost``."""
        with self.engine.connect() as connection:
            row = connection.execute(
                select(
                    OutboundDelivery.webhook_id,
                    OutboundDelivery.session_id,
                    OutboundDelivery.payload,
                    OutboundDelivery.attempts,
                ).where(OutboundDelivery.id == delivery_id, OutboundDelivery.locked_by == self.worker_id)
            ).first()
        if row is None:
            return "lost"
        outcome = await self._post(row.webhook_id, row.payload)
        dead = not outcome.delivered and self.retry_policy.exhausted(row.attempts)
        status = record_attempt(
            self.engine,
            delivery_id,
            self.worker_id,
            outcome,
            dead=dead,
            retry_after_seconds=self.retry_policy.delay_seconds(row.attempts),
            now=datetime.now(UTC),
        )
        metrics.OUTBOUND_DELIVERIES.labels(result=status).inc()
        line = dict(
            delivery_id=delivery_id,
            webhook_id=row.webhook_id,
            session_id=row.session_id,
            host=self.host,
            attempts=row.attempts,
            status_code=outcome.status_code,
            result=status,
        )
        if outcome.delivered:
            log.info("outbound_delivered", **line)
        else:
            log.warning("outbound_failed", error=outcome.error, **line)
        return status

    async def _post(self, webhook_id: str, body: str) -> AttemptOutcome:
        timestamp = int(datetime.now(UTC).timestamp())
        headers = signature_headers(self._secret, webhook_id, timestamp, body)
        try:
            response = await self._client.post(self.url, content=body.encode("utf-8"), headers=headers)
        except httpx.HTTPError as exc:
            # httpx messages may name the URL: the stored and logged line names the host only (and never the secret).
            error = error_line(exc).replace(self.url, self.host).replace(self._secret, "[redacted]")
            return AttemptOutcome(None, error)
        if 200 <= response.status_code < 300:
            return AttemptOutcome(response.status_code, None)
        return AttemptOutcome(response.status_code, f"HTTP {response.status_code} {response.reason_phrase}".strip())
