"""``POST /webhooks/dyte``: check, verify, persist, answer. No processing here.

Order of checks (cheap first), each with its documented answer:

==========================================  ======  ==========================
check                                       status  stored?
==========================================  ======  ==========================
content type is not application/json        415     no
body larger than MAX_BODY_BYTES (streamed)  413     no
body not received within BODY_READ_TIMEOUT_  408     no (Dyte retries)
SECONDS (1 s)
signature over the raw bytes                -       (no JSON parse before it)
signature header missing or garbled        401     no (body never parsed)
raw fails; body <= COMPACT_FALLBACK_MAX_    400     no
BYTES and not JSON (or not UTF-8)
raw fails; compact form fails too, or the   401     no
body is larger (then unparsed)
key document unavailable (no key configured  503     no (Dyte retries)
and none fetched, or the re-fetch failed)
dyte-webhook-id not ours (if enforced)      403     no
database unreachable                        503     no (Dyte retries)
authentic, body not JSON                    400     yes, flagged ``invalid``
authentic, known event, valid               200     yes, ``pending``
authentic, unknown event or invalid fields  200     yes, ``ignored`` + reason
same dyte-uuid again, same body             200     no new row (duplicate)
same dyte-uuid, different body              200     no; first kept, flagged
new dyte-uuid, a body already stored        200     no new row (replay)
==========================================  ======  ==========================

What is stored is what the signature covered: the raw bytes, or - when only
the compact re-serialisation verified (Dyte's Node sample signs
``JSON.stringify(body)``, FACTS.md) - the compact bytes, never the bytes that
arrived (they may be padded, or lead with a duplicate key holding junk). The
inbox is unique on the stored body's digest as well as on ``dyte-uuid``, so a
captured delivery replayed under fresh uuids adds no row
(:mod:`receiver.ingest.inbox`).

Retries: Dyte retries any non-2xx up to 5 times (FACTS.md), so only a
client's own mistakes get 4xx; a database outage gets 503.
"""

from __future__ import annotations

import asyncio
import json
import unicodedata
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import structlog
from sqlalchemy.exc import SQLAlchemyError
from starlette.requests import ClientDisconnect, Request

from receiver import metrics
from receiver.db.models import PARSE_INVALID, PARSE_OK, PARSE_UNKNOWN_EVENT
from receiver.errors import HTTPError
from receiver.ingest.inbox import Delivery, InboxUnavailable, StoreOutcome, body_digest
from receiver.providers.dyte.events import EventParseError, UnknownEventError, event_name_of, parse_event
from receiver.providers.dyte.keys import KeyDocumentUnavailable
from receiver.providers.dyte.signature import SignatureError, compact_json, decode_signature, signature_matches
from receiver.request_log import annotate_request
from receiver.responses import FastJSONResponse

__all__ = ["ClientError", "idempotency_key", "receive_dyte_webhook", "read_body_limited"]

log = structlog.get_logger("receiver.ingest.endpoint")

# Header names: Dyte's, and RealtimeKit's equivalents (FACTS.md), as ASGI
# gives them (lower-case bytes).
SIGNATURE_HEADERS = (b"dyte-signature", b"rtk-signature")
UUID_HEADERS = (b"dyte-uuid", b"rtk-uuid")
WEBHOOK_ID_HEADERS = (b"dyte-webhook-id", b"rtk-webhook-id")

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


async def read_body_limited(
    request: Request, limit: int, declared: str | None, timeout_seconds: float | None = None
) -> bytes:
    """Read the body, refusing (413) as soon as it exceeds ``limit`` bytes, and (408) when it is not all
    received within ``timeout_seconds`` (None: no deadline).

    ``declared`` (the Content-Length header's value, None when absent), when
    too large, is refused before reading.

    Raises:
        ClientError: 413 too large, 408 too slow (BODY_READ_TIMEOUT_SECONDS), 400 client gone.
    """
    if declared is not None and declared.strip().isdigit() and int(declared) > limit:
        raise ClientError(413, "payload_too_large", f"body exceeds {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    try:
        async with asyncio.timeout(timeout_seconds):
            async for chunk in request.stream():
                size += len(chunk)
                if size > limit:
                    raise ClientError(413, "payload_too_large", f"body exceeds {limit} bytes")
                chunks.append(chunk)
    except TimeoutError as exc:
        raise ClientError(
            408, "request_timeout", f"the body was not received within {timeout_seconds:g} s", {"Connection": "close"}
        ) from exc
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


@dataclass(slots=True)
class _Verified:
    """An authentic body: what the signature covered (``raw`` or ``compact``) and the bytes to store."""

    scheme: str
    body: bytes
    parsed: Any = None  # the parsed JSON when the compact fallback already parsed it
    parsed_ok: bool = False


def _compact_form(parsed: Any, raw: bytes) -> bytes | None:
    """The compact re-serialisation of ``parsed`` when it differs from ``raw`` (None: nothing else to try)."""
    try:
        compact = compact_json(parsed)
    except (ValueError, RecursionError):  # nested deeper than the encoder goes: no fallback
        return None
    return compact if compact != raw else None


def _key_document_down(exc: KeyDocumentUnavailable) -> ClientError:
    """503 for a key-document outage: not the sender's fault, retryable (Dyte retries a non-2xx)."""
    log.warning("webhook_keys_unavailable", error=str(exc))
    return ClientError(
        503,
        "key_document_unavailable",
        "the webhook public key could not be fetched; retry later",
        {"Retry-After": str(int(exc.retry_after_seconds))},
    )


async def _authenticate(request: Request, headers: dict[bytes, bytes], raw: bytes) -> _Verified:
    """Check the signature before any parsing; parse only for the compact fallback (``COMPACT_FALLBACK_MAX_BYTES``).

    0. No signature header, or one that is not base64: 401 at once, the body never parsed.
    1. The raw bytes against the trusted keys: no JSON parse at all (every real delivery).
    2. Only when that fails and the body is at most ``compact_fallback_max_bytes``: parse it.
       Not JSON: 400 ``malformed_json``. JSON: its compact re-serialisation (what Dyte's own
       Node sample signs, FACTS.md) against the keys; a match is stored as the *compact* bytes.
       Larger bodies are not parsed: 401.
    3. Still no match: re-fetch the key document (rotation; rate-limited by the key store) and
       try both forms again. While the document cannot be fetched - no key known at all, or
       the re-fetch failed - the answer is 503 ``key_document_unavailable`` with ``Retry-After``
       (Dyte retries), not 401: the sender may be right.

    Cost of a refused request (measured on the 2-core VM): one RSA check over the raw bytes
    (0.16 ms for a real delivery, ~4 ms for 1 MiB), plus, with a signature header and at most
    64 KiB, one parse and re-serialisation (0.8 ms for 64 KiB of padding, up to ~20 ms for
    64 KiB of crafted small values); before this order, every unsigned 1 MiB body was parsed
    and re-serialised first (~330 ms for 1 MiB of small numbers).

    Raises:
        ClientError: 400 malformed JSON (signed, parsed bodies only), 401 missing, garbled or wrong
            signature, 503 key document unavailable.
    """
    key_store = request.app.state.key_store
    try:
        signature: bytes | None = decode_signature(_first_header(headers, SIGNATURE_HEADERS))
    except SignatureError as exc:
        signature, failure = None, exc
    try:
        keys = await key_store.keys() if signature is not None else []
    except KeyDocumentUnavailable as exc:
        raise _key_document_down(exc) from exc
    if signature is not None:
        if signature_matches(raw, signature, keys):
            return _Verified("raw", raw)
        failure = SignatureError(
            "no webhook public key is configured or could be fetched"
            if not keys
            else "signature does not match the body with any trusted key"
        )
    json_error: str | None = None
    compact: bytes | None = None
    parsed: Any = None
    if signature is not None and len(raw) <= request.app.state.settings.compact_fallback_max_bytes:
        parsed, json_error = _decode_json(raw)
        if json_error is None:
            compact = _compact_form(parsed, raw)
            if compact is not None and signature_matches(compact, signature, keys):
                return _Verified("compact", compact, parsed, True)
    if signature is not None:
        # Rotation: the key document may have changed; fetch again (rate-limited). Verify again
        # whenever the keys changed, also when another request's fetch did it while this one waited.
        await key_store.refresh_after_failure()
        fresh = await key_store.keys()
        if fresh != keys:
            if signature_matches(raw, signature, fresh):
                return _Verified("raw", raw)
            if compact is not None and signature_matches(compact, signature, fresh):
                return _Verified("compact", compact, parsed, True)
        if key_store.failing:  # the keys may be stale (a rotation we cannot see): let Dyte retry
            raise _key_document_down(key_store.unavailable())
    metrics.SIGNATURE_FAILURES.inc()
    if json_error is not None:
        raise ClientError(400, "malformed_json", json_error)
    raise ClientError(401, "invalid_signature", str(failure))


# Characters that carry no identity at the ends of a dyte-uuid: Unicode spaces (Zs: NBSP,
# U+2000.., U+3000), line/paragraph separators, controls (Cc: tab, NUL ...) and format
# characters (Cf: zero-width space U+200B, BOM U+FEFF).
_BLANK_CATEGORIES = frozenset({"Zs", "Zl", "Zp", "Cc", "Cf"})


def _header_text(value: bytes) -> str:
    """A header value as text: UTF-8 when it is valid UTF-8 (what a client sending non-ASCII means), else latin-1."""
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        return value.decode("latin-1")


def _strip_blank(text: str) -> str:
    """``text`` without blank characters (:data:`_BLANK_CATEGORIES`) at either end."""
    start, end = 0, len(text)
    while start < end and unicodedata.category(text[start]) in _BLANK_CATEGORIES:
        start += 1
    while end > start and unicodedata.category(text[end - 1]) in _BLANK_CATEGORIES:
        end -= 1
    return text[start:end]


def idempotency_key(headers: dict[bytes, bytes], body: bytes) -> str:
    """The delivery id: the ``dyte-uuid`` (or ``rtk-uuid``) header, else ``sha256:<hex digest of the stored body>``.

    Rule (FACTS.md, "Delivery"): ``dyte-uuid`` is unique per event, the idempotency key.
    The header is trimmed of blank characters at both ends (Unicode spaces such as a
    non-breaking space, sent as UTF-8 or latin-1, controls, zero-width characters).

    An **empty or blank-only** header is treated as absent, like a missing one, an over-long
    one (> 200 characters) or one holding a NUL: the id becomes the body's digest. Not a 400,
    because the signature does not cover the header (it proves nothing either way), a 400
    would make Dyte give up on an authentic event after 5 retries if a proxy blanked it, and
    the body digest dedupes as well as a uuid: the inbox is unique on it. Before, every
    blank header became the same empty id, so unrelated deliveries collided as "conflicts".
    """
    for name in UUID_HEADERS:
        value = headers.get(name)
        if value:
            text = _strip_blank(_header_text(value))
            if text and len(text) <= 200 and _storable(text):
                return text
            break  # present but unusable: the digest, not the other header
    return "sha256:" + body_digest(body)


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
    try:
        return await request.app.state.committer.submit(delivery)
    except (SQLAlchemyError, InboxUnavailable) as exc:
        request.app.state.health.record_db_error(exc.__cause__ or exc)
        metrics.delivery_counter(delivery.event_name or "unknown", "db_unavailable").inc()
        log.error("delivery_not_stored", delivery_id=delivery.delivery_id, error=type(exc).__name__)
        raise ClientError(503, "database_unavailable", "could not store the delivery; retry later") from exc


async def receive_dyte_webhook(request: Request) -> FastJSONResponse:
    """Handle one Dyte delivery (see the module docstring for every outcome)."""
    settings = request.app.state.settings
    headers = _header_map(request)
    _check_content_type(headers)
    declared = headers.get(b"content-length")
    raw = await read_body_limited(
        request,
        settings.max_body_bytes,
        declared.decode("latin-1") if declared else None,
        settings.body_read_timeout_seconds,
    )
    verified = await _authenticate(request, headers, raw)
    body = verified.body  # the signed bytes: the raw body, or its compact form
    if verified.parsed_ok:
        parsed, json_error = verified.parsed, None
    else:
        parsed, json_error = _decode_json(body)  # authentic: parsed whatever its size

    webhook_id = _first_header(headers, WEBHOOK_ID_HEADERS)
    allowed = request.app.state.allowed_webhook_ids
    if allowed is not None and webhook_id not in allowed():
        raise ClientError(403, "unknown_subscription", "dyte-webhook-id is not a subscription of this service")
    if not _storable(webhook_id, _MAX_WEBHOOK_ID_CHARS):
        webhook_id = None  # longer than any real subscription id: not kept (like an over-long dyte-uuid)

    received_at = datetime.now(UTC)
    delivery_id = idempotency_key(headers, body)
    if json_error is not None:
        fields: dict[str, Any] = {"event_name": None, "parse_status": PARSE_INVALID, "parse_error": json_error}
    else:
        fields = _describe(parsed, body)
    delivery = Delivery(
        delivery_id=delivery_id,
        webhook_id=webhook_id,
        raw_body=body,
        signature_scheme=verified.scheme,
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
    )
    if json_error is not None:
        raise ClientError(400, "malformed_json", f"{json_error}; the signed body was kept as {delivery_id}")
    answer = {"status": outcome.value, "delivery_id": delivery_id, "parse_status": delivery.parse_status}
    if delivery.parse_error:
        answer["parse_error"] = delivery.parse_error
    return FastJSONResponse(answer, status_code=200)
