"""Realistic signed deliveries for the ingest bench, as ready-to-send HTTP/1.1 request bytes.

* :func:`participant_joined_bodies` renders ``meeting.participantJoined``
  payloads shaped like ``shared/dyte/payloads/meeting-participantJoined.json``
  (compact JSON, as Dyte sends), each with its own peer, spread over many
  sessions and meetings;
* :func:`sign_all` signs them with RSA-SHA256 before the timed phase, on a
  thread pool (``cryptography`` releases the GIL while signing);
* :class:`RequestFactory` holds the pre-built bytes; per request only the
  ``dyte-uuid`` header changes (a counter formatted like a UUID), so every
  request is a distinct delivery while building one costs a ``bytes.join``.

The signature covers the body only, not the headers, so a body may be
reused with a new ``dyte-uuid`` when the bench outruns the pre-signed pool:
the receiver stores it as a new delivery (same bytes, new id).
"""

from __future__ import annotations

import json
import random
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

from receiver.providers.dyte.signature import sign_body
from receiver.sandbox.formats import iso_ms

__all__ = [
    "BENCH_WEBHOOK_ID",
    "participant_joined_payload",
    "participant_joined_bodies",
    "sign_all",
    "build_request",
    "RequestFactory",
]

#: ``dyte-webhook-id`` sent by the bench.
BENCH_WEBHOOK_ID = "00000000-be9c-4b0c-8000-00000000be9c"
_NAMES = ["Alice Ng", "Bob Okafor", "Carol Schmidt", "Dan Rossi", "Erin Silva", "Frank Tanaka", "Grace Moreau"]
_BASE_TIME = datetime(2026, 11, 1, 9, 0, 0, tzinfo=UTC)


def _uuid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def participant_joined_payload(
    *,
    meeting_id: str,
    session_id: str,
    session_started_at: datetime,
    peer_id: str,
    custom_id: str,
    display_name: str,
    joined_at: datetime,
    org_id: str = "bench-org",
) -> dict[str, Any]:
    """A ``meeting.participantJoined`` payload with the real payload's keys, in its order."""
    return {
        "event": "meeting.participantJoined",
        "meeting": {
            "id": meeting_id,
            "sessionId": session_id,
            "title": "Weekly sync",
            "status": "LIVE",
            "createdAt": iso_ms(session_started_at),
            "startedAt": iso_ms(session_started_at),
            "organizedBy": {"id": org_id, "name": "Bench Org"},
        },
        "participant": {
            "peerId": peer_id,
            "userDisplayName": display_name,
            "clientSpecificId": custom_id,
            "customParticipantId": custom_id,
            "joinedAt": iso_ms(joined_at),
        },
    }


def participant_joined_bodies(count: int, *, seed: int = 0, peers_per_session: int = 100) -> list[bytes]:
    """``count`` distinct compact-JSON join bodies: ``peers_per_session`` peers per session, 4 sessions per meeting."""
    rng = random.Random(seed)
    bodies: list[bytes] = []
    meeting_id = session_id = ""
    started = _BASE_TIME
    for index in range(count):
        if index % peers_per_session == 0:
            session_no = index // peers_per_session
            if session_no % 4 == 0:
                meeting_id = _uuid(rng)
            session_id = _uuid(rng)
            started = _BASE_TIME + timedelta(hours=3 * session_no)
        payload = participant_joined_payload(
            meeting_id=meeting_id,
            session_id=session_id,
            session_started_at=started,
            peer_id=_uuid(rng),
            custom_id=f"p{rng.getrandbits(40):010x}",
            display_name=rng.choice(_NAMES),
            joined_at=started + timedelta(milliseconds=rng.randrange(1, 3_600_000)),
        )
        bodies.append(json.dumps(payload, separators=(",", ":")).encode("utf-8"))
    return bodies


def sign_all(bodies: list[bytes], private_key: Any, *, threads: int = 2) -> list[str]:
    """``dyte-signature`` values for ``bodies`` (RSA PKCS#1 v1.5, SHA-256), signed on ``threads`` threads."""
    if threads <= 1 or len(bodies) < 64:
        return [sign_body(body, private_key) for body in bodies]
    with ThreadPoolExecutor(max_workers=threads) as pool:
        return list(pool.map(lambda body: sign_body(body, private_key), bodies, chunksize=256))


def build_request(method: str, target: str, host: str, headers: list[tuple[str, str]], body: bytes) -> bytes:
    """One HTTP/1.1 request as bytes (keep-alive; ``content-length`` added)."""
    lines = [f"{method} {target} HTTP/1.1", f"host: {host}"]
    lines += [f"{name}: {value}" for name, value in headers]
    lines.append(f"content-length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


class RequestFactory:
    """Pre-built signed deliveries; :meth:`next` returns the next request's bytes.

    Every request gets a fresh ``dyte-uuid`` (``<run>-0000-4000-8000-<counter>``,
    UUID-shaped); bodies are taken round-robin from the signed pool.

    Attributes:
        issued: requests built so far.
        pool_size: distinct signed bodies.
    """

    def __init__(
        self,
        bodies: list[bytes],
        signatures: list[str],
        *,
        host: str,
        path: str = "/webhooks/dyte",
        webhook_id: str = BENCH_WEBHOOK_ID,
        run_id: str | None = None,
    ) -> None:
        if len(bodies) != len(signatures) or not bodies:
            raise ValueError("need one signature per body, and at least one body")
        self.run_id = (run_id or uuid.uuid4().hex[:8])[:8].ljust(8, "0")
        self.path = path
        head = (
            f"POST {path} HTTP/1.1\r\nhost: {host}\r\ncontent-type: application/json\r\n"
            f"user-agent: receiver-bench\r\ndyte-webhook-id: {webhook_id}\r\ndyte-uuid: "
        )
        self._head = head.encode("latin-1")
        self._tails = [
            f"\r\ndyte-signature: {signature}\r\ncontent-length: {len(body)}\r\n\r\n".encode("latin-1") + body
            for body, signature in zip(bodies, signatures, strict=False)
        ]
        self.pool_size = len(self._tails)
        self.issued = 0

    def delivery_id(self, n: int) -> str:
        """The ``dyte-uuid`` of the ``n``-th request (0-based)."""
        return f"{self.run_id}-0000-4000-8000-{n:012x}"

    def request_number(self, delivery_id: str) -> int:
        """The ``n`` of :meth:`delivery_id` (the inverse). Raises ValueError for another id."""
        prefix = f"{self.run_id}-0000-4000-8000-"
        if not delivery_id.startswith(prefix):
            raise ValueError(f"not a delivery id of run {self.run_id}: {delivery_id!r}")
        return int(delivery_id[len(prefix) :], 16)

    def body_index(self, n: int) -> int:
        """Which pooled body the ``n``-th request carries."""
        return n % self.pool_size

    def next(self) -> bytes:
        """The next request: a new ``dyte-uuid`` and the next pooled signed body."""
        n = self.issued
        self.issued = n + 1
        return b"".join((self._head, self.delivery_id(n).encode("ascii"), self._tails[n % self.pool_size]))

    @property
    def bodies_reused(self) -> int:
        """Requests that reused a pooled body (with a new ``dyte-uuid``)."""
        return max(0, self.issued - self.pool_size)
