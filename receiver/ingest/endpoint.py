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
body not received within BODY_READ_TIMEOUT_  408     no (the platforms retry)
SECONDS (1 s)
signature over the raw bytes                -       (no JSON parse before it)
signature header missing or garbled         401     no (body never parsed)
raw fails; body <= COMPACT_FALLBACK_MAX_    400     no
BYTES and not JSON (or not UTF-8)
raw fails; compact form fails too, or the   401     no
body is larger (then unparsed); no key of
either platform's document matches
a key document unavailable (no key          503     no (the platforms retry)
configured and none fetched, or the
re-fetch failed) and no other key matched
webhook id not ours (if enforced)           403     no
database unreachable                        503     no (the platforms retry)
authentic, body not JSON                    400     yes, flagged ``invalid``
authentic, known event                      200     yes, ``pending`` (the worker validates
                                                    the model; invalid: ``ignored`` + reason)
authentic, unknown event or id too long     200     yes, ``ignored`` + reason
same dyte-uuid/rtk-uuid again, same body    200     no new row (duplicate)
same dyte-uuid/rtk-uuid, different body     200     no; first kept, flagged
new uuid (or blank), a body already stored  200     no new row (replay)
==========================================  ======  ==========================

What is stored is what the signature covered: the raw bytes, or - when only
the compact re-serialisation verified (Dyte's Node sample signs
``JSON.stringify(body)``, FACTS.md) - the compact bytes, never the bytes that
arrived (they may be padded, or lead with a duplicate key holding junk). The
inbox is unique on the stored body's digest as well as on the delivery id, so
a captured delivery replayed under fresh uuids adds no row
(:mod:`receiver.ingest.inbox`).

Retries: both platforms retry any non-2xx up to 5 times (FACTS.md), so only
a client's own mistakes get 4xx; a database outage or a key-document outage
gets 503.
"""

from __future__ import annotations

import asyncio
import json
import unicodedata
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
import structlog
from sqlalchemy.exc import SQLAlchemyError
from starlette.requests import ClientDisconnect, Request

from receiver import metrics
from receiver.db.models import PARSE_INVALID, PARSE_OK, PARSE_UNKNOWN_EVENT
from receiver.errors import HTTPError
from receiver.ingest.inbox import Delivery, GroupCommitter, InboxUnavailable, StoreOutcome, body_digest
from receiver.providers.base import WebhookScheme
from receiver.providers.dyte.indexed import indexed_fields
from receiver.providers.dyte.keys import KeyDocumentUnavailable, WebhookKeyStore
from receiver.providers.dyte.signature import SignatureError, compact_json, decode_signature, signature_matches
from receiver.providers.registry import WEBHOOK_SCHEMES
from receiver.request_log import annotate_request
from receiver.responses import FastJSONResponse

__all__ = [
    "ClientError",
    "idempotency_key",
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
    """Decode strict UTF-8 JSON with :mod:`json`; returns (value, None) or (None, reason).

    Used where the decoded value is re-serialised (the compact fallback): :func:`_read_indexed`
    is the cheaper reader of an authentic body.
    """
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


def _read_indexed(raw: bytes) -> tuple[Any, str | None]:
    """Decode an authentic body for its indexed fields; returns (value, None) or (None, reason).

    orjson (~1 us for a delivery against ~4 us with :mod:`json`); what it refuses and the
    standard library accepts (NaN, lone surrogates in escapes, integers beyond 64 bits) goes
    to :func:`_decode_json`, so what counts as JSON is the standard library's, as before. Only
    the indexed fields are read from the value (orjson reads a huge integer as a float).
    """
    try:
        return orjson.loads(raw), None
    except orjson.JSONDecodeError:
        return _decode_json(raw)


def _signing_family(headers: dict[bytes, bytes], families: tuple[_Family, ...]) -> _Family:
    """The family whose signature header the delivery carries (the route's own first); the route's when none."""
    for family in families:
        if headers.get(family.signature):
            return family
    return families[0]


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
    """503 for a key-document outage: not the sender's fault, retryable (both platforms retry a non-2xx)."""
    log.warning("webhook_keys_unavailable", error=str(exc))
    return ClientError(
        503,
        "key_document_unavailable",
        "the webhook public key could not be fetched; retry later",
        {"Retry-After": str(int(exc.retry_after_seconds))},
    )


class _Candidate:
    """The forms of one body a signature may cover: the raw bytes, and (parsed at most once, only when
    the raw bytes failed and the body is small enough) its compact re-serialisation."""

    __slots__ = ("raw", "fallback_allowed", "parsed", "json_error", "compact", "_parsed_done")

    def __init__(self, raw: bytes, fallback_allowed: bool) -> None:
        self.raw = raw
        self.fallback_allowed = fallback_allowed
        self.parsed: Any = None
        self.json_error: str | None = None
        self.compact: bytes | None = None
        self._parsed_done = False

    def match(self, signature: bytes, keys: list[Any]) -> _Verified | None:
        if signature_matches(self.raw, signature, keys):
            return _Verified("raw", self.raw)
        if self.fallback_allowed and not self._parsed_done:
            self._parsed_done = True
            self.parsed, self.json_error = _decode_json(self.raw)
            if self.json_error is None:
                self.compact = _compact_form(self.parsed, self.raw)
        if self.compact is not None and signature_matches(self.compact, signature, keys):
            return _Verified("compact", self.compact, self.parsed, True)
        return None


async def _authenticate(request: Request, headers: dict[bytes, bytes], family: _Family, raw: bytes) -> _Verified:
    """Check the signature before any parsing; parse only for the compact fallback (``COMPACT_FALLBACK_MAX_BYTES``).

    0. No signature header, or one that is not base64: 401 at once, the body never parsed and
       no key document fetched.
    1. For each key store (:mod:`receiver.providers.webhook_keys`: the signing family's platform
       first, then the other's), the raw bytes against its keys: no JSON parse at all (every
       real delivery).
    2. Only when that fails and the body is at most ``compact_fallback_max_bytes``: parse it (once).
       JSON: its compact re-serialisation (what Dyte's own Node sample signs, FACTS.md) against
       the keys; a match is stored as the *compact* bytes. Larger bodies are not parsed.
    3. Still no match: the store re-fetches its document (rotation; rate-limited by the store) and
       both forms are tried again whenever its keys changed.
    4. No store matched: while a document that was asked cannot be fetched - no key known at all,
       or the re-fetch failed - the answer is 503 ``key_document_unavailable`` with ``Retry-After``
       (the platforms retry), not 401: the sender may be right. Otherwise a signed small body
       that is not JSON gets 400 ``malformed_json``, anything else 401.

    Cost of a refused request (measured on the 2-core VM): one RSA check over the raw bytes per
    key (0.16 ms for a real delivery, ~4 ms for 1 MiB), plus, with a signature header and at most
    64 KiB, one parse and re-serialisation (0.8 ms for 64 KiB of padding, up to ~20 ms for
    64 KiB of crafted small values); before this order, every unsigned 1 MiB body was parsed
    and re-serialised first (~330 ms for 1 MiB of small numbers).

    Raises:
        ClientError: 400 malformed JSON (signed, parsed bodies only), 401 missing, garbled or wrong
            signature, 503 key document unavailable.
    """
    try:
        signature = decode_signature(_first_header(headers, (family.signature,)))
    except SignatureError as exc:
        metrics.SIGNATURE_FAILURES.inc()
        raise ClientError(401, "invalid_signature", str(exc)) from exc
    candidate = _Candidate(raw, len(raw) <= request.app.state.settings.compact_fallback_max_bytes)
    stores: list[WebhookKeyStore] = request.app.state.key_store.sources_for(family.scheme.name)
    outage: KeyDocumentUnavailable | None = None
    any_keys = False
    for store in stores:
        try:
            keys = await store.keys()
        except KeyDocumentUnavailable as exc:
            outage = outage or exc
            continue
        any_keys = any_keys or bool(keys)
        verified = candidate.match(signature, keys)
        if verified is not None:
            return verified
        # Rotation: the key document may have changed; fetch again (rate-limited). Verify again
        # whenever the keys changed, also when another request's fetch did it while this one waited.
        await store.refresh_after_failure()
        try:
            fresh = await store.keys()
        except KeyDocumentUnavailable as exc:
            outage = outage or exc
            continue
        if fresh != keys:
            verified = candidate.match(signature, fresh)
            if verified is not None:
                return verified
        if store.failing and outage is None:  # the keys may be stale (a rotation we cannot see)
            outage = store.unavailable()
    if outage is not None:
        raise _key_document_down(outage)
    metrics.SIGNATURE_FAILURES.inc()
    if candidate.json_error is not None:
        raise ClientError(400, "malformed_json", candidate.json_error)
    if not any_keys:
        raise ClientError(401, "invalid_signature", "no webhook public key is configured or could be fetched")
    raise ClientError(401, "invalid_signature", "signature does not match the body with any trusted key")


# Characters that carry no identity at the ends of a dyte-uuid: Unicode spaces (Zs: NBSP,
# U+2000.., U+3000), line/paragraph separators, controls (Cc: tab, NUL ...) and format
# characters (Cf: zero-width space U+200B, BOM U+FEFF).
_BLANK_CATEGORIES = frozenset({"Zs", "Zl", "Zp", "Cc", "Cf"})

#: Delivery id headers, Dyte's first (the order of the ``/webhooks/dyte`` route).
UUID_HEADERS = tuple(
    s.delivery_id_header.encode() for s in sorted(WEBHOOK_SCHEMES.values(), key=lambda s: s.name != "dyte")
)


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


def idempotency_key(headers: dict[bytes, bytes], body: bytes, uuid_names: tuple[bytes, ...] = UUID_HEADERS) -> str:
    """The delivery id: the first present of ``uuid_names`` (``dyte-uuid``, ``rtk-uuid``; the signing
    family's first), else ``sha256:<hex digest of the stored body>``.

    Rule (FACTS.md, "Delivery"): ``dyte-uuid`` / ``rtk-uuid`` is unique per event, the idempotency key.
    The header is trimmed of blank characters at both ends (Unicode spaces such as a
    non-breaking space, sent as UTF-8 or latin-1, controls, zero-width characters).

    An **empty or blank-only** header is treated as absent, like a missing one, an over-long
    one (> 200 characters) or one holding a NUL: the id becomes the body's digest. Not a 400,
    because the signature does not cover the header (it proves nothing either way), a 400
    would make the platform give up on an authentic event after 5 retries if a proxy blanked it,
    and the body digest dedupes as well as a uuid: the inbox is unique on it. Before, every
    blank header became the same empty id, so unrelated deliveries collided as "conflicts".
    """
    for name in uuid_names:
        value = headers.get(name)
        if value:
            text = _strip_blank(_header_text(value))
            if text and len(text) <= 200 and _storable(text):
                return text
            break  # present but unusable: the digest, not the other header
    return "sha256:" + body_digest(body)


def _describe(parsed: Any) -> dict[str, Any]:
    """The delivery fields that depend on the body: its indexed fields, without validating the model.

    Rule (issue #23, item 1): the receive path does only what acknowledging needs; the full model
    validation runs in the worker, which flags an invalid event (``parse_status = 'invalid'``,
    status ``ignored``) and corrects these fields from the model
    (:mod:`receiver.providers.dyte.indexed`). Here: an unknown event is flagged at once, and a
    meeting or session id the columns cannot hold makes the event ``invalid``.
    """
    fields = indexed_fields(parsed)
    name = _column_text(fields.event_name, _MAX_EVENT_NAME_CHARS)
    if fields.unknown_reason is not None:
        return {
            "event_name": name,
            "parse_status": PARSE_UNKNOWN_EVENT,
            "parse_error": _column_text(fields.unknown_reason),
        }
    if not (_storable(fields.meeting_id, _MAX_ID_CHARS) and _storable(fields.session_id, _MAX_ID_CHARS)):
        return {
            "event_name": name,
            "parse_status": PARSE_INVALID,
            "parse_error": f"meeting or session id longer than {_MAX_ID_CHARS} characters or holding a NUL character",
        }
    return {
        "event_name": name,
        "parse_status": PARSE_OK,
        "parse_error": None,
        "meeting_id": fields.meeting_id,
        "session_id": fields.session_id,
        "occurred_at": fields.occurred_at,
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
    raw = await read_body_limited(
        request,
        settings.max_body_bytes,
        declared.decode("latin-1") if declared else None,
        settings.body_read_timeout_seconds,
    )
    family = _signing_family(headers, families)
    uuid_names, webhook_id_names = lookups[family.scheme.name]
    verified = await _authenticate(request, headers, family, raw)
    body = verified.body  # the signed bytes: the raw body, or its compact form
    if verified.parsed_ok:
        parsed, json_error = verified.parsed, None
    else:
        parsed, json_error = _read_indexed(body)  # authentic: parsed whatever its size

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
    delivery_id = idempotency_key(headers, body, uuid_names)
    if json_error is not None:
        fields: dict[str, Any] = {"event_name": None, "parse_status": PARSE_INVALID, "parse_error": json_error}
    else:
        fields = _describe(parsed)
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
        provider=family.scheme.name,
    )
    if json_error is not None:
        raise ClientError(400, "malformed_json", f"{json_error}; the signed body was kept as {delivery_id}")
    answer = {"status": outcome.value, "delivery_id": delivery_id, "parse_status": delivery.parse_status}
    if delivery.parse_error:
        answer["parse_error"] = delivery.parse_error
    return FastJSONResponse(answer, status_code=200)


#: ``POST /webhooks/dyte``: dyte-* headers first.
receive_dyte_webhook = webhook_endpoint("dyte")
#: ``POST /webhooks/realtimekit``: rtk-* headers first.
receive_realtimekit_webhook = webhook_endpoint("realtimekit")
