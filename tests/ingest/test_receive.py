"""POST /webhooks/dyte over HTTP: every real payload, dedupe, and each refusal."""

from __future__ import annotations

import asyncio
import base64
import json

import pytest
from conftest import payload_files
from helpers import app_client, compact, post_signed, signed_headers, stored_events
from sqlalchemy import update
from starlette.testclient import TestClient

from receiver.db.engine import make_engine
from receiver.db.models import WebhookEvent
from receiver.processing.worker import Worker
from receiver.providers.dyte.signature import generate_private_key

PAYLOADS = payload_files()


@pytest.fixture
def client(settings):
    with app_client(settings) as c:
        yield c


@pytest.fixture
def inbox(settings):
    eng = make_engine(settings.database_url)
    yield lambda: stored_events(eng)
    eng.dispose()


@pytest.mark.skipif(not PAYLOADS, reason="../shared/dyte/payloads not found")
def test_every_real_payload_is_stored_byte_exact(client, inbox, signing_key):
    """Each documented Dyte payload, sent signed as Dyte formats it, gets 200 and one exact row."""
    sent = {}
    for path in PAYLOADS:
        raw = path.read_bytes()  # the file's own bytes: pretty-printed, duplicate keys and all
        response = post_signed(client, raw, signing_key, delivery_id=path.stem)
        assert response.status_code == 200, (path.name, response.text)
        assert response.json()["parse_status"] == "ok", (path.name, response.json())
        sent[path.stem] = raw
    rows = {row.delivery_id: row for row in inbox()}
    assert set(rows) == set(sent)
    for delivery_id, raw in sent.items():
        row = rows[delivery_id]
        assert row.raw_body == raw
        assert row.event_name == json.loads(raw)["event"]
        assert row.status == "pending"
        assert row.webhook_id == "wh-test"
        assert row.received_at.tzinfo is not None
    assert rows["meeting-participantJoined"].session_id == "05e57591-d89e-45c9-ae44-78d53eaad0e0"
    assert rows["meeting-chatSynced"].meeting_id == "d9fc4d6a-a5a0-4430-9a73-d4ba14e597f9"


def test_compact_reserialisation_signature_is_accepted(client, inbox, signing_key):
    """A signature over JSON.stringify(body) verifies even when the raw bytes are pretty-printed; the signed (compact) bytes are stored."""
    payload = {
        "event": "meeting.started",
        "meeting": {"id": "m1", "sessionId": "s1", "startedAt": "2026-01-01T00:00:00Z"},
    }
    pretty = json.dumps(payload, indent=2).encode()
    headers = signed_headers(compact(payload), signing_key)
    response = client.post("/webhooks/dyte", content=pretty, headers=headers)
    assert response.status_code == 200
    assert inbox()[0].signature_scheme == "compact"
    assert inbox()[0].raw_body == compact(payload)


def test_same_delivery_twice_gives_one_row(client, inbox, signing_key):
    """A Dyte retry (same dyte-uuid, same body) answers 200 and adds nothing."""
    body = compact({"event": "meeting.started", "meeting": {"id": "m1", "sessionId": "s1"}})
    first = post_signed(client, body, signing_key, delivery_id="d-1")
    second = post_signed(client, body, signing_key, delivery_id="d-1")
    assert (first.status_code, second.status_code) == (200, 200)
    assert first.json()["status"] == "stored" and second.json()["status"] == "duplicate"
    rows = inbox()
    assert len(rows) == 1 and rows[0].duplicate_count == 1


def test_same_uuid_with_different_body_keeps_the_first(client, inbox, signing_key):
    """A reused dyte-uuid with another body is flagged as a conflict; the first body stays."""
    one = compact({"event": "meeting.started", "meeting": {"id": "m1", "sessionId": "s1"}})
    two = compact({"event": "meeting.started", "meeting": {"id": "m2", "sessionId": "s2"}})
    post_signed(client, one, signing_key, delivery_id="d-1")
    response = post_signed(client, two, signing_key, delivery_id="d-1")
    assert response.status_code == 200 and response.json()["status"] == "conflict"
    rows = inbox()
    assert len(rows) == 1 and rows[0].raw_body == one and rows[0].conflict_count == 1


def _flip(data: bytes, index: int) -> bytes:
    return data[:index] + bytes([data[index] ^ 0x01]) + data[index + 1 :]


def test_flipped_byte_in_body_is_401_and_stores_nothing(client, inbox, signing_key):
    """Changing one byte of a signed body makes the signature fail."""
    body = compact({"event": "meeting.started", "meeting": {"id": "m1", "sessionId": "s1"}})
    headers = signed_headers(body, signing_key)
    tampered = body.replace(b"m1", b"m2")
    response = client.post("/webhooks/dyte", content=tampered, headers=headers)
    assert response.status_code == 401 and response.json()["error"] == "invalid_signature"
    assert inbox() == []


def test_flipped_byte_in_signature_is_401(client, inbox, signing_key):
    """Changing one byte of the signature makes it fail."""
    body = compact({"event": "meeting.started", "meeting": {"id": "m1", "sessionId": "s1"}})
    headers = signed_headers(body, signing_key)
    raw_sig = base64.b64decode(headers["dyte-signature"])
    headers["dyte-signature"] = base64.b64encode(_flip(raw_sig, 10)).decode()
    assert client.post("/webhooks/dyte", content=body, headers=headers).status_code == 401
    assert inbox() == []


@pytest.mark.parametrize("signature", [None, "", "not base64 !!", "QUJD", "A" * 5000])
def test_missing_or_garbled_signature_is_401(client, inbox, signature):
    """No header, an empty one, non-base64, a short one or an absurdly long one: 401, never 500."""
    body = compact({"event": "meeting.started", "meeting": {"id": "m1"}})
    headers = {"content-type": "application/json", "dyte-uuid": "x"}
    if signature is not None:
        headers["dyte-signature"] = signature
    response = client.post("/webhooks/dyte", content=body, headers=headers)
    assert response.status_code == 401
    assert inbox() == []


def test_signature_from_another_key_is_401(client, inbox):
    """A correctly formed signature made with an untrusted key is refused."""
    body = compact({"event": "meeting.started", "meeting": {"id": "m1"}})
    response = post_signed(client, body, generate_private_key())
    assert response.status_code == 401 and inbox() == []


def test_non_json_is_400(client, inbox, signing_key):
    """A body that is not JSON, with a signature over other bytes, gets 400 with a reason and is not stored;
    without a signature header it is a 401 (an unsigned body is never parsed)."""
    headers = signed_headers(b"other bytes", signing_key)
    response = client.post("/webhooks/dyte", content=b"hello", headers=headers)
    assert response.status_code == 400 and response.json()["error"] == "malformed_json"
    unsigned = client.post("/webhooks/dyte", content=b"hello", headers={"content-type": "application/json"})
    assert unsigned.status_code == 401 and unsigned.json()["error"] == "invalid_signature"
    assert inbox() == []


def test_signed_non_json_is_400_and_kept(client, inbox, signing_key):
    """An authentic (signed) body that is not JSON is refused with 400 but kept, flagged invalid."""
    body = b'{"event": "meeting.started", '
    response = post_signed(client, body, signing_key, delivery_id="trunc")
    assert response.status_code == 400
    rows = inbox()
    assert len(rows) == 1 and rows[0].parse_status == "invalid" and rows[0].status == "ignored"


def test_two_mebibytes_is_413(client, inbox, signing_key):
    """A 2 MiB body is refused with 413 (default limit 1 MiB)."""
    body = b'{"event":"meeting.started","pad":"' + b"a" * (2 * 1024 * 1024) + b'"}'
    response = post_signed(client, body, signing_key)
    assert response.status_code == 413 and inbox() == []


def test_oversized_streamed_body_is_413_without_content_length(client, inbox, signing_key):
    """A chunked body with no Content-Length is cut off while reading once it passes the limit."""

    def chunks():
        yield b'{"event":"meeting.started","pad":"'
        for _ in range(40):
            yield b"a" * 65536
        yield b'"}'

    response = client.post(
        "/webhooks/dyte", content=chunks(), headers={"content-type": "application/json", "dyte-signature": "QUJD"}
    )
    assert response.status_code == 413 and inbox() == []


@pytest.mark.parametrize("content_type", [None, "text/plain", "application/x-www-form-urlencoded"])
def test_wrong_content_type_is_415(client, inbox, signing_key, content_type):
    """Anything but application/json is refused with 415 before reading."""
    body = compact({"event": "meeting.started", "meeting": {"id": "m1"}})
    headers = signed_headers(body, signing_key)
    if content_type is None:
        del headers["content-type"]
    else:
        headers["content-type"] = content_type
    assert client.post("/webhooks/dyte", content=body, headers=headers).status_code == 415
    assert inbox() == []


def test_unknown_event_is_stored_and_flagged(client, inbox, signing_key):
    """An authentic event with a name we do not know is kept (ignored, unknown_event), answered 200."""
    body = compact({"event": "meeting.pollCreated", "poll": {"id": "p"}})
    response = post_signed(client, body, signing_key)
    assert response.status_code == 200 and response.json()["parse_status"] == "unknown_event"
    rows = inbox()
    assert rows[0].status == "ignored" and rows[0].parse_status == "unknown_event"
    assert rows[0].event_name == "meeting.pollCreated"


def test_known_event_with_wrong_types_is_stored_and_flagged(client, inbox, signing_key, settings):
    """A participantJoined with a malformed joinedAt is acknowledged and kept pending (the receive path does not
    validate the model), then the worker flags it: ignored, invalid, with the field named."""
    body = compact(
        {
            "event": "meeting.participantJoined",
            "meeting": {"id": "m"},
            "participant": {"peerId": "p", "joinedAt": "yesterday"},
        }
    )
    response = post_signed(client, body, signing_key)
    assert response.status_code == 200 and response.json()["status"] == "stored"
    row = inbox()[0]
    assert row.status == "pending" and row.meeting_id == "m" and row.occurred_at is None
    engine = make_engine(settings.database_url)
    try:
        result = asyncio.run(Worker(settings, engine).run(once=True))
    finally:
        engine.dispose()
    row = inbox()[0]
    assert result.ignored == 1 and row.status == "ignored"
    assert row.parse_status == "invalid" and "joinedAt" in row.parse_error and row.raw_body == body


def test_worker_corrects_indexed_fields_from_the_model(client, inbox, signing_key, settings):
    """The receive path reads the indexed fields without validating; when they disagree with the model (here
    made to, as a drift between the two readers would), the worker writes the model's values."""
    body = compact(
        {
            "event": "meeting.participantJoined",
            "meeting": {"id": "m", "sessionId": "s"},
            "participant": {"peerId": "p", "userId": "u", "joinedAt": "2024-01-01T10:00:00Z"},
        }
    )
    assert post_signed(client, body, signing_key).status_code == 200
    engine = make_engine(settings.database_url)
    try:
        with engine.begin() as connection:
            connection.execute(update(WebhookEvent).values(meeting_id="wrong", session_id=None, occurred_at=None))
        asyncio.run(Worker(settings, engine).run(once=True))
    finally:
        engine.dispose()
    row = inbox()[0]
    assert (row.status, row.parse_status, row.meeting_id, row.session_id) == ("done", "ok", "m", "s")
    assert row.occurred_at is not None and row.occurred_at.isoformat() == "2024-01-01T10:00:00+00:00"


def test_json_that_is_not_an_object_is_stored_and_flagged(client, inbox, signing_key):
    """A signed JSON array is authentic but not an event: kept and flagged, answered 200."""
    response = post_signed(client, b"[1,2,3]", signing_key)
    assert response.status_code == 200 and inbox()[0].status == "ignored"


def test_deeply_nested_json_is_not_a_500(client, signing_key):
    """100k nested arrays: 400 (too deep) or stored-and-flagged, never a server error."""
    body = b"[" * 100_000 + b"]" * 100_000
    response = post_signed(client, body, signing_key)
    assert response.status_code in (200, 400)


def test_non_utf8_body_is_400(client, inbox, signing_key):
    """Bytes that are not UTF-8 cannot be JSON: 400."""
    response = post_signed(client, b'{"event":"\xff\xfe"}', signing_key)
    assert response.status_code == 400


def test_healthz_and_readyz(client):
    """/healthz answers 200; /readyz reports a reachable database at the migration head."""
    assert client.get("/healthz").status_code == 200
    ready = client.get("/readyz")
    assert ready.status_code == 200, ready.text
    assert ready.json()["database"]["reachable"] is True


def test_a_body_that_trickles_in_past_the_deadline_is_408(settings, signing_key, inbox):
    """A sender that does not finish the body within BODY_READ_TIMEOUT_SECONDS gets 408 (Dyte retries) and
    nothing is stored; one finishing in time is stored."""
    import asyncio

    from receiver.web.app import create_app

    body = compact({"event": "meeting.started", "meeting": {"id": "m-slow", "sessionId": "s-slow"}})
    headers = [(k.encode(), v.encode()) for k, v in signed_headers(body, signing_key).items()]
    app = create_app(settings.model_copy(update={"body_read_timeout_seconds": 0.3}))

    async def send(pause: float) -> tuple[int, dict]:
        parts = [body[:10], body[10:]]
        messages: list[dict] = []

        async def receive():
            if parts:
                await asyncio.sleep(pause)
                part = parts.pop(0)
                return {"type": "http.request", "body": part, "more_body": bool(parts)}
            await asyncio.sleep(3600)  # the client says nothing more
            return {"type": "http.disconnect"}

        async def respond(message):
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
        await app(scope, receive, respond)
        status = next(m["status"] for m in messages if m["type"] == "http.response.start")
        return status, json.loads(b"".join(m.get("body", b"") for m in messages if m["type"].endswith("body")))

    with TestClient(app) as client:  # runs the lifespan (engine, committer)
        status, answer = client.portal.call(send, 0.2)  # 2 x 0.2 s: past the 0.3 s deadline
        assert (status, answer["error"]) == (408, "request_timeout")
        assert inbox() == []
        status, answer = client.portal.call(send, 0.01)
        assert (status, answer["status"]) == (200, "stored")
    assert len(inbox()) == 1
