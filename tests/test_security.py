"""Bad-input matrix for POST /webhooks/dyte: every hostile or broken request ends in a documented state.

Each case asserts the HTTP status AND what the inbox holds afterwards (see the
outcome table in :mod:`receiver.ingest.endpoint`). Cases only look at their own
delivery ids and at the row count, so :func:`test_whole_matrix_then_worker`
can play all of them against one database and then run the worker over the
result. What tests/ingest/test_receive.py already pins down is not repeated here;
these cases go further (exact stored state, variants, streaming, headers).
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import uuid
from collections.abc import Callable, Iterable
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from helpers import app_client, compact, signed_headers, stored_events
from sqlalchemy import func, select
from sqlalchemy.orm import Session as OrmSession

from receiver.db.engine import make_engine
from receiver.db.models import ParticipantInterval, WebhookEvent
from receiver.ingest.inbox import body_digest
from receiver.processing.worker import Worker
from receiver.providers.dyte.signature import generate_private_key, sign_body

LIMIT = 1_048_576  # Settings.max_body_bytes default


@pytest.fixture(scope="module")
def other_key():
    """A well-formed RSA key Dyte never used."""
    return generate_private_key()


@pytest.fixture(scope="module")
def small_key():
    """A 1024-bit key: a signature of the wrong length for the trusted 2048-bit key."""
    return rsa.generate_private_key(public_exponent=65537, key_size=1024)


class Ctx:
    """One running app on the test database, plus what a case needs to send and inspect."""

    def __init__(self, client, engine, key, other_key, small_key, settings=None) -> None:
        self.client = client
        self.engine = engine
        self.settings = settings
        self.key = key
        self.other_key = other_key
        self.small_key = small_key

    # -- sending ---------------------------------------------------------------------------
    def post(self, body: bytes, headers: dict[str, str]):
        """POST raw bytes with exactly these headers."""
        return self.client.post("/webhooks/dyte", content=body, headers=headers)

    def signed(self, body: bytes, *, delivery_id: str | None = None, **extra: str):
        """POST ``body`` validly signed; returns (response, delivery id)."""
        delivery_id = delivery_id or new_id()
        headers = signed_headers(body, self.key, delivery_id=delivery_id)
        headers.update(extra)
        return self.post(body, headers), delivery_id

    def unsigned(self, body: bytes, *, delivery_id: str | None = None, content_type: str = "application/json"):
        """POST ``body`` with no signature header; returns (response, delivery id)."""
        delivery_id = delivery_id or new_id()
        return self.post(body, {"content-type": content_type, "dyte-uuid": delivery_id}), delivery_id

    def asgi(self, headers: list[tuple[bytes, bytes]], chunks: Iterable[bytes]) -> tuple[int, dict[str, Any]]:
        """Drive the ASGI app directly: header bytes as given, body pulled chunk by chunk on demand."""
        return self.client.portal.call(asgi_post, self.client.app, headers, chunks)

    # -- inspecting ------------------------------------------------------------------------
    def count(self) -> int:
        """Rows in the inbox."""
        with OrmSession(self.engine) as db:
            return db.execute(select(func.count()).select_from(WebhookEvent)).scalar_one()

    def row(self, delivery_id: str) -> WebhookEvent:
        """The stored row of one delivery (fails when it is missing)."""
        with OrmSession(self.engine, expire_on_commit=False) as db:
            found = db.execute(select(WebhookEvent).where(WebhookEvent.delivery_id == delivery_id)).scalar_one_or_none()
        assert found is not None, f"{delivery_id!r} was not stored"
        return found


async def asgi_post(app, headers: list[tuple[bytes, bytes]], chunks: Iterable[bytes]) -> tuple[int, dict[str, Any]]:
    """POST /webhooks/dyte straight into the ASGI app; returns (status, decoded JSON body)."""
    source = iter(chunks)
    ended = False
    messages: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        nonlocal ended
        if ended:
            return {"type": "http.disconnect"}
        try:
            chunk = next(source)
        except StopIteration:
            ended = True
            return {"type": "http.request", "body": b"", "more_body": False}
        return {"type": "http.request", "body": chunk, "more_body": True}

    async def send(message: dict[str, Any]) -> None:
        messages.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/webhooks/dyte",
        "raw_path": b"/webhooks/dyte",
        "query_string": b"",
        "root_path": "",
        "headers": headers,
        "client": ("203.0.113.9", 40000),
        "server": ("testserver", 80),
        "state": {},
    }
    await app(scope, receive, send)
    status = next(m["status"] for m in messages if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in messages if m["type"] == "http.response.body")
    return status, json.loads(body)


def new_id() -> str:
    """A fresh dyte-uuid."""
    return str(uuid.uuid4())


def started(**meeting: Any) -> bytes:
    """A valid meeting.started body with unique ids (overrides go into ``meeting``)."""
    fields = {
        "id": f"m-{uuid.uuid4().hex[:12]}",
        "sessionId": f"s-{uuid.uuid4().hex[:12]}",
        "startedAt": "2026-01-01T10:00:00Z",
    }
    fields.update(meeting)
    return compact({"event": "meeting.started", "meeting": fields})


def assert_refused(response, status: int, error: str) -> None:
    """A JSON refusal with this status and error code."""
    assert response.status_code == status, response.text
    assert response.json()["error"] == error


# --------------------------------------------------------------------------------------------
# The cases. Each takes a Ctx, sends, and asserts status and stored state.
# --------------------------------------------------------------------------------------------

CASES: list[Callable[[Ctx], None]] = []


def case(func: Callable[[Ctx], None]) -> Callable[[Ctx], None]:
    CASES.append(func)
    return func


@case
def missing_signature(ctx: Ctx) -> None:
    """No dyte-signature (nor rtk-signature) on a valid body: 401, nothing stored."""
    before = ctx.count()
    response, _ = ctx.unsigned(started())
    assert_refused(response, 401, "invalid_signature")
    assert "missing" in response.json()["detail"]
    assert ctx.count() == before


@case
def garbled_signature(ctx: Ctx) -> None:
    """Non-base64, right-length random bytes, PSS padding and SHA-1 over the right body: all 401, nothing stored."""
    before = ctx.count()
    body = started()
    pss = ctx.key.sign(body, padding.PSS(padding.MGF1(hashes.SHA256()), padding.PSS.MAX_LENGTH), hashes.SHA256())
    sha1 = ctx.key.sign(body, padding.PKCS1v15(), hashes.SHA1())
    for value in (
        "%%% not base64 %%%",
        base64.b64encode(os.urandom(256)).decode(),
        base64.b64encode(pss).decode(),
        base64.b64encode(sha1).decode(),
    ):
        response = ctx.post(body, {"content-type": "application/json", "dyte-signature": value, "dyte-uuid": new_id()})
        assert_refused(response, 401, "invalid_signature")
    assert ctx.count() == before


@case
def wrong_key_signature(ctx: Ctx) -> None:
    """Well-formed signatures made with untrusted keys (same size, and a 1024-bit one): 401, nothing stored."""
    before = ctx.count()
    for key in (ctx.other_key, ctx.small_key):
        body = started()
        response = ctx.post(body, signed_headers(body, key))
        assert_refused(response, 401, "invalid_signature")
    assert ctx.count() == before


@case
def valid_signature_over_another_body(ctx: Ctx) -> None:
    """A genuine Dyte signature lifted from one delivery onto a different body (raw or compact form): 401, nothing stored."""
    before = ctx.count()
    genuine = started()
    lifted = signed_headers(genuine, ctx.key)
    other = started()
    assert_refused(ctx.post(other, lifted), 401, "invalid_signature")
    # The compact fallback must not open a hole either: a pretty-printed *different* body.
    pretty = json.dumps(json.loads(other), indent=2).encode()
    assert_refused(ctx.post(pretty, {**lifted, "dyte-uuid": new_id()}), 401, "invalid_signature")
    assert ctx.count() == before


@case
def truncated_json_unsigned(ctx: Ctx) -> None:
    """Half of a real event, unsigned: 401 (an unsigned body is never parsed); with a signature over the whole
    event: 400 malformed_json (parsed for the compact fallback). Nothing stored."""
    before = ctx.count()
    body = started()
    response, _ = ctx.unsigned(body[: len(body) // 2])
    assert_refused(response, 401, "invalid_signature")
    assert_refused(ctx.post(body[: len(body) // 2], signed_headers(body, ctx.key)), 400, "malformed_json")
    assert ctx.count() == before


@case
def truncated_json_signed(ctx: Ctx) -> None:
    """Half of a real event, signed over those bytes: 400, kept byte-exact, flagged invalid and ignored."""
    body = started()
    half = body[: len(body) // 2]
    response, delivery_id = ctx.signed(half)
    assert_refused(response, 400, "malformed_json")
    assert delivery_id in response.json()["detail"]
    row = ctx.row(delivery_id)
    assert row.raw_body == half and row.parse_status == "invalid" and row.status == "ignored"
    assert row.parse_error.startswith("malformed JSON") and row.event_name is None


@case
def json_that_is_not_an_object(ctx: Ctx) -> None:
    """Signed JSON scalars (string, number, null, true): 200, kept and ignored as unknown_event."""
    for body in (b'"meeting.started"', b"42", b"null", b"true"):
        response, delivery_id = ctx.signed(body)
        assert response.status_code == 200, response.text
        assert response.json()["parse_status"] == "unknown_event"
        row = ctx.row(delivery_id)
        assert (row.status, row.parse_status, row.raw_body) == ("ignored", "unknown_event", body)
        assert row.parse_error == "payload is not a JSON object"


@case
def deeply_nested_json(ctx: Ctx) -> None:
    """100k nested arrays: 400 (too deep) and kept flagged when signed; unsigned: 401, never parsed; signed over
    other bytes: 400 when within the compact-fallback cap (64 KiB, parsed), 401 above it; 600 levels inside an
    event are fine."""
    deep = b"[" * 100_000 + b"]" * 100_000
    small_deep = b"[" * 20_000 + b"]" * 20_000
    before = ctx.count()
    response, _ = ctx.unsigned(deep)
    assert_refused(response, 401, "invalid_signature")
    response, _ = ctx.unsigned(small_deep)
    assert_refused(response, 401, "invalid_signature")
    other_bytes = signed_headers(b"{}", ctx.key)
    assert_refused(ctx.post(deep, other_bytes), 401, "invalid_signature")
    assert_refused(ctx.post(small_deep, other_bytes), 400, "malformed_json")
    assert ctx.count() == before
    response, delivery_id = ctx.signed(deep)
    assert_refused(response, 400, "malformed_json")
    row = ctx.row(delivery_id)
    assert row.parse_status == "invalid" and row.status == "ignored" and "too deeply" in row.parse_error
    event = json.loads(started())
    nested: Any = "leaf"
    for _ in range(300):
        nested = {"n": [nested]}
    event["extra"] = nested
    response, delivery_id = ctx.signed(compact(event))
    assert response.status_code == 200 and response.json()["parse_status"] == "ok"
    assert ctx.row(delivery_id).status == "pending"


@case
def huge_strings_within_the_limit(ctx: Ctx) -> None:
    """A 900 KB display name is stored and parses; a 900 KB event name is stored, flagged, its column value cut."""
    name = "N" * (900 * 1024)
    body = compact(
        {
            "event": "meeting.participantJoined",
            "meeting": {"id": f"m-{uuid.uuid4().hex[:12]}", "sessionId": f"s-{uuid.uuid4().hex[:12]}"},
            "participant": {
                "peerId": f"p-{uuid.uuid4().hex[:8]}",
                "userDisplayName": name,
                "joinedAt": "2026-01-01T10:00:05Z",
            },
        }
    )
    assert len(body) < LIMIT
    response, delivery_id = ctx.signed(body)
    assert response.status_code == 200 and response.json()["parse_status"] == "ok"
    row = ctx.row(delivery_id)
    assert row.raw_body == body and row.status == "pending"
    long_name = compact({"event": "x" * (900 * 1024)})
    response, delivery_id = ctx.signed(long_name)
    assert response.status_code == 200 and response.json()["parse_status"] == "unknown_event"
    row = ctx.row(delivery_id)
    assert row.status == "ignored" and row.raw_body == long_name and len(row.event_name) <= 100


@case
def wrong_or_missing_content_type(ctx: Ctx) -> None:
    """Look-alike media types get 415 and store nothing; parameters and case in application/json are accepted."""
    before = ctx.count()
    for content_type in (
        "application/jsonp",
        "application/vnd.api+json",
        "multipart/form-data; boundary=x",
        "json",
        "",
    ):
        body = started()
        headers = signed_headers(body, ctx.key)
        headers["content-type"] = content_type
        assert_refused(ctx.post(body, headers), 415, "unsupported_media_type")
    body = started()
    headers = {k: v for k, v in signed_headers(body, ctx.key).items() if k != "content-type"}
    assert_refused(ctx.post(body, headers), 415, "unsupported_media_type")
    assert ctx.count() == before
    for content_type in ("application/json; charset=utf-8", "Application/JSON"):
        body = started()
        response, delivery_id = ctx.signed(body, **{"content-type": content_type})
        assert response.status_code == 200, (content_type, response.text)
        assert ctx.row(delivery_id).raw_body == body


@case
def empty_body(ctx: Ctx) -> None:
    """An empty body: 401 unsigned (never parsed), nothing stored; 400 and kept flagged invalid when the signature
    covers the empty body."""
    before = ctx.count()
    response, _ = ctx.unsigned(b"")
    assert_refused(response, 401, "invalid_signature")
    assert ctx.count() == before
    response, delivery_id = ctx.signed(b"")
    assert_refused(response, 400, "malformed_json")
    row = ctx.row(delivery_id)
    assert row.raw_body == b"" and row.parse_status == "invalid" and row.status == "ignored"


@case
def oversized_body_refused_while_reading(ctx: Ctx) -> None:
    """A 50 MB chunked body is cut off with 413 after about 1 MiB (most chunks never pulled); a declared one before any."""
    chunk = b"a" * 65536
    total_chunks = 50 * 1024 * 1024 // len(chunk)
    yielded = 0

    def fifty_megabytes():
        nonlocal yielded
        for _ in range(total_chunks):
            yielded += 1
            yield chunk

    before = ctx.count()
    headers = [(b"content-type", b"application/json"), (b"dyte-signature", b"QUJD"), (b"dyte-uuid", new_id().encode())]
    status, body = ctx.asgi(headers, fifty_megabytes())
    assert (status, body["error"]) == (413, "payload_too_large")
    assert yielded <= LIMIT // len(chunk) + 2 < total_chunks
    yielded = 0
    status, body = ctx.asgi(headers + [(b"content-length", str(50 * 1024 * 1024).encode())], fifty_megabytes())
    assert (status, yielded) == (413, 0)
    assert ctx.count() == before


@case
def unknown_events(ctx: Ctx) -> None:
    """Unknown names (case-changed, padded, NUL, lone surrogate, non-string): 200, kept, ignored as unknown_event."""
    bodies = [
        b'{"event":"MEETING.STARTED","meeting":{"id":"m"}}',
        b'{"event":"meeting.started ","meeting":{"id":"m"}}',
        b'{"event":"meeting.\\u0000started"}',
        b'{"event":"meeting.\\ud800started"}',
        b'{"event":7,"meeting":{"id":"m"}}',
        b'{"meeting":{"id":"m"}}',
    ]
    for body in bodies:
        response, delivery_id = ctx.signed(body)
        assert response.status_code == 200, (body, response.text)
        assert response.json()["parse_status"] == "unknown_event"
        row = ctx.row(delivery_id)
        assert (row.status, row.parse_status, row.raw_body) == ("ignored", "unknown_event", body)
    assert ctx.row(delivery_id).event_name is None  # no "event" at all


@case
def known_event_with_wrong_field_types(ctx: Ctx) -> None:
    """Wrong types in known events: 200 and kept (pending: the receive path does not validate the model); the
    worker then flags each ignored as invalid, the field named and its value never quoted."""
    marker = "VALUE-THAT-MUST-NOT-BE-QUOTED"
    payloads = {
        "meeting.id": {"event": "meeting.started", "meeting": {"id": 12345, "title": marker}},
        "participant": {
            "event": "meeting.participantJoined",
            "meeting": {"id": "m", "sessionId": "s"},
            "participant": [marker],
        },
        "participant.leftAt": {
            "event": "meeting.participantLeft",
            "meeting": {"id": "m", "sessionId": "s"},
            "participant": {"peerId": "p", "leftAt": marker},
        },
        "recording.fileSize": {
            "event": "recording.statusUpdate",
            "recording": {"id": "r", "status": "UPLOADED", "fileSize": marker},
        },
        "status": {"event": "livestreaming.statusUpdate", "streamId": "ls", "status": {"live": True}},
        "meeting": {"event": "meeting.ended"},
    }
    sent = {}
    for field, payload in payloads.items():
        response, delivery_id = ctx.signed(compact(payload))
        assert response.status_code == 200 and marker not in response.text, (field, response.text)
        assert ctx.row(delivery_id).status == "pending"
        sent[field] = delivery_id
    asyncio.run(Worker(ctx.settings, ctx.engine).run(once=True))
    for field, payload in payloads.items():
        row = ctx.row(sent[field])
        assert (row.status, row.parse_status, row.event_name) == ("ignored", "invalid", payload["event"])
        assert field in row.parse_error and marker not in row.parse_error and marker not in (row.last_error or "")
    # An id no column can hold (PostgreSQL: VARCHAR(100), no NUL) is flagged too, not a 503 forever.
    for meeting_id in ("m" * 101, "m\x00m"):
        response, delivery_id = ctx.signed(started(id=meeting_id))
        assert response.status_code == 200, response.text
        row = ctx.row(delivery_id)
        assert (row.status, row.parse_status, row.meeting_id) == ("ignored", "invalid", None)


@case
def same_uuid_different_body(ctx: Ctx) -> None:
    """The id reused (once as dyte-uuid, once as rtk-uuid) for another event: 200 conflict, first body kept, flagged."""
    delivery_id = new_id()
    first = started()
    response, _ = ctx.signed(first, delivery_id=delivery_id)
    assert response.json()["status"] == "stored"
    second = compact({"event": "meeting.ended", "meeting": {"id": "m-other", "sessionId": "s-other"}, "reason": "x"})
    headers = {"content-type": "application/json", "rtk-signature": sign_body(second, ctx.key), "rtk-uuid": delivery_id}
    response = ctx.post(second, headers)
    assert response.status_code == 200 and response.json()["status"] == "conflict"
    row = ctx.row(delivery_id)
    assert row.raw_body == first and row.event_name == "meeting.started" and row.conflict_count == 1


@case
def non_utf8_bytes(ctx: Ctx) -> None:
    """Latin-1 JSON and an encoded surrogate: 400 and kept flagged when signed; 400 and nothing stored when the
    signature covers other bytes; 401 unsigned (never parsed)."""
    latin1 = '{"event":"meeting.started","meeting":{"id":"caf\u00e9"}}'.encode("latin-1")
    surrogate = b'{"event":"meeting.started","meeting":{"id":"\xed\xa0\x80"}}'
    for body in (latin1, surrogate):
        before = ctx.count()
        response, _ = ctx.unsigned(body)
        assert_refused(response, 401, "invalid_signature")
        assert_refused(ctx.post(body, signed_headers(b"{}", ctx.key)), 400, "malformed_json")
        assert ctx.count() == before
        response, delivery_id = ctx.signed(body)
        assert_refused(response, 400, "malformed_json")
        row = ctx.row(delivery_id)
        assert row.raw_body == body and row.parse_status == "invalid" and row.parse_error == "body is not UTF-8"


@case
def header_values_out_of_the_ordinary(ctx: Ctx) -> None:
    """dyte-uuid over 200 chars falls back to the body digest (retries still dedupe); odd ids are kept verbatim."""
    body = started()
    response, _ = ctx.signed(body, delivery_id="u" * 201)
    assert response.status_code == 200
    digest_id = "sha256:" + body_digest(body)
    assert response.json()["delivery_id"] == digest_id and ctx.row(digest_id).raw_body == body
    response, _ = ctx.signed(body, delivery_id="v" * 5000)
    assert response.json() == {"status": "duplicate", "delivery_id": digest_id, "parse_status": "ok"}
    exact = "w" * 199 + uuid.uuid4().hex[:1]
    response, _ = ctx.signed(started(), delivery_id=exact)
    assert response.json()["delivery_id"] == exact and ctx.row(exact).delivery_id == exact
    # A dyte-webhook-id longer than any subscription id is not kept (its column is 200 wide).
    response, delivery_id = ctx.signed(started(), **{"dyte-webhook-id": "h" * 300})
    assert response.status_code == 200 and ctx.row(delivery_id).webhook_id is None
    # Quotes, SQL, paths, CR/LF and Latin-1 bytes in dyte-uuid (sent at the ASGI level: clients refuse CR/LF).
    tag = uuid.uuid4().hex[:8].encode()
    for raw_id in (
        b"'; DROP TABLE webhook_events; --" + tag,
        b"../../etc/passwd?" + tag,
        b"a\r\nX-Injected: 1" + tag,
        b"caf\xe9-" + tag,
    ):
        body = started()
        headers = [
            (b"content-type", b"application/json"),
            (b"dyte-signature", sign_body(body, ctx.key).encode()),
            (b"dyte-uuid", raw_id),
        ]
        status, answer = ctx.asgi(headers, [body])
        expected_id = raw_id.decode("latin-1")
        assert (status, answer["delivery_id"]) == (200, expected_id)
        assert ctx.row(expected_id).raw_body == body
    assert ctx.count() > 0  # the table is still there


@case
def blank_idempotency_headers(ctx: Ctx) -> None:
    """A dyte-uuid/rtk-uuid that is empty or only blank characters (NBSP as UTF-8 or latin-1, spaces, tab, ideographic
    space, zero-width space, BOM) is treated as absent: the id is the body digest, so different events never share
    one blank id, and a retry with any blank header still dedupes. Blanks around a real id are trimmed."""
    blanks = (b"\xc2\xa0", b"\xa0", b"   ", b"\t", "\u3000".encode(), "\u200b".encode(), "\ufeff \u00a0".encode())
    seen: set[str] = set()
    for header in (b"dyte-uuid", b"rtk-uuid"):
        for blank in blanks:
            body = started()
            headers = [
                (b"content-type", b"application/json"),
                (b"dyte-signature", sign_body(body, ctx.key).encode()),
                (header, blank),
            ]
            status, answer = ctx.asgi(headers, [body])
            digest_id = "sha256:" + body_digest(body)
            assert (status, answer["status"], answer["delivery_id"]) == (200, "stored", digest_id), blank
            assert ctx.row(digest_id).raw_body == body
            seen.add(digest_id)
            status, again = ctx.asgi([*headers[:2], (header, b" ")], [body])  # a retry, another blank
            assert (status, again["status"], again["delivery_id"]) == (200, "duplicate", digest_id)
    assert len(seen) == 2 * len(blanks)
    tag = new_id()
    status, answer = ctx.asgi(
        [
            (b"content-type", b"application/json"),
            (b"dyte-signature", sign_body(body := started(), ctx.key).encode()),
            (b"dyte-uuid", "\u00a0".encode() + tag.encode() + b" \t"),
        ],
        [body],
    )
    assert (status, answer["delivery_id"]) == (200, tag) and ctx.row(tag).raw_body == body


@case
def realtimekit_headers(ctx: Ctx) -> None:
    """rtk-signature, rtk-uuid and rtk-webhook-id (RealtimeKit) are accepted like Dyte's headers."""
    body = started()
    delivery_id = new_id()
    headers = {
        "content-type": "application/json",
        "rtk-signature": sign_body(body, ctx.key),
        "rtk-uuid": delivery_id,
        "rtk-webhook-id": "rtk-wh-1",
    }
    response = ctx.post(body, headers)
    assert response.status_code == 200 and response.json()["status"] == "stored"
    row = ctx.row(delivery_id)
    assert (row.raw_body, row.webhook_id, row.status, row.signature_scheme) == (body, "rtk-wh-1", "pending", "raw")


# --------------------------------------------------------------------------------------------
# Tests
# --------------------------------------------------------------------------------------------


@pytest.fixture
def ctx(settings, signing_key, other_key, small_key):
    """A started app and an engine on the test database (SQLite, and PostgreSQL when it answers)."""
    engine = make_engine(settings.database_url)
    with app_client(settings) as client:
        yield Ctx(client, engine, signing_key, other_key, small_key, settings)
    engine.dispose()


@pytest.mark.parametrize("bad_input", CASES, ids=[c.__name__ for c in CASES])
def test_bad_input(ctx, bad_input):
    """Each bad input gets its documented status and leaves the documented inbox state (never a 500)."""
    bad_input(ctx)


def test_whole_matrix_then_worker(ctx, settings):
    """Every case against one database, then one worker drain: ok rows are done, the rest stay ignored, nothing fails."""
    for bad_input in CASES:
        bad_input(ctx)
    rows = stored_events(ctx.engine)
    processable = {row.id for row in rows if row.parse_status == "ok"}
    # A case that needs the worker's validation has drained the queue once already (done, or flagged invalid).
    assert processable and all(row.status in ("pending", "done") for row in rows if row.id in processable)
    assert all(row.status == "ignored" for row in rows if row.id not in processable)
    pending = sum(1 for row in rows if row.status == "pending")
    result = asyncio.run(Worker(settings, ctx.engine).run(once=True))
    assert (result.done, result.failed, result.ignored) == (pending, 0, 0), result
    after = {row.id: row for row in stored_events(ctx.engine)}
    assert {i for i, row in after.items() if row.status == "done"} == processable
    assert all(row.status == "ignored" for i, row in after.items() if i not in processable)
    with OrmSession(ctx.engine) as db:
        names = db.execute(select(func.length(ParticipantInterval.display_name))).scalars().all()
    assert 900 * 1024 in names  # the huge display name made it into the attendance tables
