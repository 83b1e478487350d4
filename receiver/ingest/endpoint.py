"""``POST /webhooks/dyte`` and ``POST /webhooks/realtimekit``: check, verify, persist, answer. No processing here.

Both routes accept both header families (``dyte-*`` and ``rtk-*``: Dyte and
Cloudflare RealtimeKit sign and identify deliveries the same way, FACTS.md),
so an organisation moving from one platform to the other loses nothing
whichever URL each webhook points at. A route only decides which family
wins when a delivery carries both. The signature is checked against the
key of the platform whose headers the delivery carries first, then the
other's (:mod:`receiver.providers.webhook_keys`).

Order of checks (cheap first), each with its documented answer:

==========================================  ======  ==========================
check                                       status  stored?
==========================================  ======  ==========================
content type is not application/json        415     no
body larger than MAX_BODY_BYTES (streamed)  413     no
body is not JSON (or not UTF-8)             400     only if its signature is
                                                    valid (flagged ``invalid``)
signature missing/garbled/no key matches    401     no
webhook id not ours (if enforced)           403     no
database unreachable                        503     no (Dyte retries)
authentic, known event, valid               200     yes, ``pending``
authentic, unknown event or invalid fields  200     yes, ``ignored`` + reason
same dyte-uuid/rtk-uuid again, same body    200     no new row (duplicate)
same dyte-uuid/rtk-uuid, different body     200     no; first kept, flagged
==========================================  ======  ==========================

Retries: both platforms retry any non-2xx up to 5 times (FACTS.md), so only
a client's own mistakes get 4xx; a database outage gets 503.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import structlog
from sqlalchemy.exc import SQLAlchemyError
from starlette.requests import ClientDisconnect, Request

from receiver import metrics
from receiver.db.models import PARSE_INVALID, PARSE_OK, PARSE_UNKNOWN_EVENT
from receiver.errors import HTTPError
from receiver.ingest.inbox import Delivery, GroupCommitter, InboxUnavailable, StoreOutcome, body_digest
from receiver.providers.base import WebhookScheme
from receiver.providers.dyte.events import EventParseError, UnknownEventError, event_name_of, parse_event
from receiver.providers.dyte.signature import SignatureError, decode_signature, verify_signature
from receiver.providers.registry import WEBHOOK_SCHEMES
from receiver.request_log import annotate_request
from receiver.responses import FastJSONResponse

__all__ = [
    "ClientError",
    "webhook_endpoint",
    "receive_dyte_webhook",
    "receive_realtimekit_webhook",
    "read_body_limited",
]

log = structlog.get_logger("receiver.ingest.endpoint")


@dataclass(frozen=True)
class _Family:
    """One provider's header names as ASGI gives them (lower-case bytes)."""

    scheme: WebhookScheme
    signature: bytes
    uuid: bytes
    webhook_id: bytes


def _family(scheme: WebhookScheme) -> _Family:
    return _Family(
        scheme,
        scheme.signature_header.encode(),
        scheme.delivery_id_header.encode(),
        scheme.webhook_id_header.encode(),
    )


# Per route: its own family first, then the others (Dyte's and RealtimeKit's, FACTS.md).
_FAMILIES: dict[str, tuple[_Family, ...]] = {
    name: tuple(_family(s) for s in sorted(WEBHOOK_SCHEMES.values(), key=lambda s: s.name != name))
    for name in WEBHOOK_SCHEMES
}

# Column widths of ``webhook_events`` (receiver.db.models). A longer value, a NUL
# (PostgreSQL text cannot hold one) or a lone surrogate (not encodable as
# UTF-8) would make the INSERT fail, so an authentic delivery would get a
# 503/500 on every Dyte retry. Such values are never passed to the database.
_MAX_EVENT_NAME_CHARS = 100
_MAX_ID_CHARS = 100
_MAX_WEBHOOK_ID_CHARS = 200


def _storable(value: str | None, limit: int | None = None) -> bool:
    """True when ``value`` fits its column and every database can store it."""
    if value is None:
        return True
    if (limit is not None and len(value) > limit) or "\x00" in value:
        return False
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _column_text(value: str | None, limit: int | None = None) -> str | None:
    """``value`` made storable: NUL and lone surrogates escaped, cut to ``limit`` characters."""
    if value is None or _storable(value, limit):
        return value
    cleaned = value.encode("utf-8", "backslashreplace").decode("utf-8").replace("\x00", "\\x00")
    return cleaned[:limit] if limit is not None else cleaned


# A request the client got wrong: the service's one HTTP error type, rendered
# by the app's handler (:func:`receiver.web.app.create_app`).
ClientError = HTTPError


def _header_map(request: Request) -> dict[bytes, bytes]:
    """The request's headers by lower-case name, the first of repeated ones kept (like Starlette's
    ``Headers.get``); built once per delivery (a ``Headers.get`` scans the list: ~0.35 us each)."""
    return dict(reversed(request.scope["headers"]))


def _first_header(headers: dict[bytes, bytes], names: tuple[bytes, ...]) -> str | None:
    for name in names:
        value = headers.get(name)
        if value:
            return value.decode("latin-1")
    return None


async def read_body_limited(request: Request, limit: int, declared: str | None) -> bytes:
    """Read the body, refusing (413) as soon as it exceeds ``limit`` bytes.

    ``declared`` (the Content-Length header's value, None when absent), when
    too large, is refused before reading.
    """
    if declared is not None and declared.strip().isdigit() and int(declared) > limit:
        raise ClientError(413, "payload_too_large", f"body exceeds {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise ClientError(413, "payload_too_large", f"body exceeds {limit} bytes")
            chunks.append(chunk)
    except ClientDisconnect as exc:
        raise ClientError(400, "client_disconnected", "client disconnected while sending the body") from exc
    return b"".join(chunks)


def _check_content_type(headers: dict[bytes, bytes]) -> None:
    content_type = headers.get(b"content-type", b"").decode("latin-1")
    media_type = content_type.split(";", 1)[0].strip().lower()
    if media_type != "application/json":
        raise ClientError(415, "unsupported_media_type", "Content-Type must be application/json")


def _decode_json(raw: bytes) -> tuple[Any, str | None]:
    """Decode strict UTF-8 JSON; returns (value, None) or (None, reason)."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return None, "body is not UTF-8"
    try:
        return json.loads(text), None
    except RecursionError:
        return None, "JSON nested too deeply"
    except ValueError as exc:
        return None, f"malformed JSON: {exc.args[0] if exc.args else exc}"[:200]


def _signing_family(headers: dict[bytes, bytes], families: tuple[_Family, ...]) -> _Family:
    """The family whose signature header the delivery carries (the route's own first); the route's when none."""
    for family in families:
        if headers.get(family.signature):
            return family
    return families[0]


async def _verify(request: Request, headers: dict[bytes, bytes], family: _Family, raw: bytes, parsed: Any) -> str:
    """Check the signature (raw body, then compact JSON); returns what it covered: ``raw`` or ``compact``.

    A missing or garbled header is refused before any key document is
    fetched. Then each key store (the family's platform first) is tried;
    after a failure a store re-fetches its document (rate-limited) and the
    signature is checked again whenever its keys changed, also when another
    request's fetch changed them while this one waited.

    Raises:
        SignatureError: the header is missing or garbled, or no trusted key matches.
    """
    header = _first_header(headers, (family.signature,))
    decode_signature(header)
    first_error: SignatureError | None = None
    for store in request.app.state.key_store.sources_for(family.scheme.name):
        keys = await store.keys()
        try:
            return verify_signature(raw, header, keys, parsed)
        except SignatureError as exc:
            first_error = first_error or exc
        # Rotation: the key document may have changed; fetch again (rate-limited).
        await store.refresh_after_failure()
        fresh = await store.keys()
        if fresh != keys:
            try:
                return verify_signature(raw, header, fresh, parsed)
            except SignatureError:
                pass
    raise first_error or SignatureError("no webhook key store is configured")


def _delivery_id(headers: dict[bytes, bytes], raw: bytes, uuid_names: tuple[bytes, ...]) -> str:
    value = _first_header(headers, uuid_names)
    if value and len(value) <= 200:
        return value.strip()
    # No usable dyte-uuid / rtk-uuid: the body's digest still dedupes exact retries.
    return "sha256:" + body_digest(raw)


def _describe(parsed: Any, raw: bytes) -> dict[str, Any]:
    """Parse the event; returns the delivery fields that depend on it."""
    name = _column_text(event_name_of(parsed), _MAX_EVENT_NAME_CHARS)
    try:
        event = parse_event(parsed, raw_body=raw)
    except UnknownEventError as exc:
        return {"event_name": name, "parse_status": PARSE_UNKNOWN_EVENT, "parse_error": _column_text(exc.reason)}
    except EventParseError as exc:
        return {"event_name": name, "parse_status": PARSE_INVALID, "parse_error": _column_text(exc.reason)}
    if not (_storable(event.meeting_id, _MAX_ID_CHARS) and _storable(event.session_id, _MAX_ID_CHARS)):
        return {
            "event_name": event.event,
            "parse_status": PARSE_INVALID,
            "parse_error": f"meeting or session id longer than {_MAX_ID_CHARS} characters or holding a NUL character",
        }
    return {
        "event_name": event.event,
        "parse_status": PARSE_OK,
        "parse_error": None,
        "meeting_id": event.meeting_id,
        "session_id": event.session_id,
        "occurred_at": event.occurred_at,
    }


async def _store(request: Request, delivery: Delivery) -> StoreOutcome:
    committer: GroupCommitter = request.app.state.committer  # set by the app's lifespan (web.app)
    try:
        return await committer.submit(delivery)
    except (SQLAlchemyError, InboxUnavailable) as exc:
        request.app.state.health.record_db_error(exc.__cause__ or exc)
        metrics.delivery_counter(delivery.event_name or "unknown", "db_unavailable").inc()
        log.error("delivery_not_stored", delivery_id=delivery.delivery_id, error=type(exc).__name__)
        raise ClientError(503, "database_unavailable", "could not store the delivery; retry later") from exc


Endpoint = Callable[[Request], Awaitable[FastJSONResponse]]


def webhook_endpoint(provider: str) -> Endpoint:
    """The handler of ``POST /webhooks/<provider>`` (see the module docstring for every outcome).

    Every route accepts both header families; ``provider`` (``dyte`` or
    ``realtimekit``) only decides which family is read first when a delivery
    carries both. The delivery id and webhook id are read from the family
    that signed it, falling back to the other family's header.

    Raises:
        KeyError: unknown provider.
    """
    families = _FAMILIES[provider]
    # For each signing family: the uuid and webhook-id header names, that family's first.
    lookups: dict[str, tuple[tuple[bytes, ...], tuple[bytes, ...]]] = {}
    for family in families:
        ordered = (family, *(f for f in families if f is not family))
        lookups[family.scheme.name] = (tuple(f.uuid for f in ordered), tuple(f.webhook_id for f in ordered))

    async def receive_webhook(request: Request) -> FastJSONResponse:
        return await _receive(request, families, lookups)

    receive_webhook.__name__ = f"receive_{provider}_webhook"
    receive_webhook.__doc__ = f"Handle one delivery posted to /webhooks/{provider} (dyte-* or rtk-* headers)."
    return receive_webhook


async def _receive(
    request: Request,
    families: tuple[_Family, ...],
    lookups: dict[str, tuple[tuple[bytes, ...], tuple[bytes, ...]]],
) -> FastJSONResponse:
    settings = request.app.state.settings
    headers = _header_map(request)
    _check_content_type(headers)
    declared = headers.get(b"content-length")
    raw = await read_body_limited(request, settings.max_body_bytes, declared.decode("latin-1") if declared else None)
    parsed, json_error = _decode_json(raw)
    family = _signing_family(headers, families)
    uuid_names, webhook_id_names = lookups[family.scheme.name]
    try:
        scheme = await _verify(request, headers, family, raw, parsed if json_error is None else None)
    except SignatureError as exc:
        metrics.SIGNATURE_FAILURES.inc()
        if json_error is not None:
            raise ClientError(400, "malformed_json", json_error) from exc
        raise ClientError(401, "invalid_signature", str(exc)) from exc

    webhook_id = _first_header(headers, webhook_id_names)
    allowed = request.app.state.allowed_webhook_ids
    if allowed is not None and webhook_id not in allowed():
        raise ClientError(
            403,
            "unknown_subscription",
            f"{family.scheme.webhook_id_header} is not a subscription of this service",
        )
    if not _storable(webhook_id, _MAX_WEBHOOK_ID_CHARS):
        webhook_id = None  # longer than any real subscription id: not kept (like an over-long dyte-uuid)

    received_at = datetime.now(UTC)
    delivery_id = _delivery_id(headers, raw, uuid_names)
    if json_error is not None:
        fields: dict[str, Any] = {"event_name": None, "parse_status": PARSE_INVALID, "parse_error": json_error}
    else:
        fields = _describe(parsed, raw)
    delivery = Delivery(
        delivery_id=delivery_id,
        webhook_id=webhook_id,
        raw_body=raw,
        signature_scheme=scheme,
        received_at=received_at,
        **fields,
    )
    outcome = await _store(request, delivery)
    event_label = delivery.event_name if delivery.parse_status != PARSE_UNKNOWN_EVENT else "unknown"
    metrics.delivery_counter(event_label or "unknown", outcome.value).inc()
    if outcome is not StoreOutcome.STORED:
        metrics.dedupe_counter(outcome.value).inc()
    # The request log line (receiver.request_log) carries these.
    annotate_request(
        request,
        delivery_id=delivery_id,
        webhook_id=webhook_id,
        event_name=delivery.event_name,
        meeting_id=delivery.meeting_id,
        session_id=delivery.session_id,
        outcome=outcome.value,
        parse_status=delivery.parse_status,
        provider=family.scheme.name,
    )
    if json_error is not None:
        raise ClientError(400, "malformed_json", f"{json_error}; the signed body was kept as {delivery_id}")
    body = {"status": outcome.value, "delivery_id": delivery_id, "parse_status": delivery.parse_status}
    if delivery.parse_error:
        body["parse_error"] = delivery.parse_error
    return FastJSONResponse(body, status_code=200)


#: ``POST /webhooks/dyte``: dyte-* headers first.
receive_dyte_webhook = webhook_endpoint("dyte")
#: ``POST /webhooks/realtimekit``: rtk-* headers first.
receive_realtimekit_webhook = webhook_endpoint("realtimekit")
