"""Webhook key rotation: the fetched key document, configured PEM blocks, and the HTTP path in between.

Rule (receiver.providers.dyte.keys): with no key configured, Dyte's key document is fetched
on first use, and fetched again after a failed verification at most once per
``refresh_seconds`` after a successful fetch; after a failed fetch, once the back-off
(0.5 s doubling to ``retry_max_seconds``) has passed, and deliveries get 503 meanwhile. Time is an injected clock and the document an injected
``fetch`` coroutine, so every fetch is counted and nothing touches the network.
"""

from __future__ import annotations

import asyncio
import json
import uuid

import pytest
from helpers import app_client, compact, signed_headers, stored_events

from receiver.db.engine import make_engine
from receiver.providers.dyte.keys import KeyDocumentUnavailable, WebhookKeyStore
from receiver.providers.dyte.signature import (
    SignatureError,
    generate_private_key,
    public_key_pem,
    public_keys_from_document,
    sign_body,
    verify_signature,
)
from receiver.settings import Settings

KEYS_URL = "https://keys.test/.well-known/webhooks.json"
REFRESH = 60.0


@pytest.fixture(scope="module")
def key_a():
    """The key Dyte signs with before the rotation."""
    return generate_private_key()


@pytest.fixture(scope="module")
def key_b():
    """The key Dyte signs with after the rotation."""
    return generate_private_key()


@pytest.fixture(scope="module")
def key_c():
    """A key nobody publishes."""
    return generate_private_key()


class Clock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class KeyDocument:
    """The published key document, as an injected ``fetch``: counts calls, can fail or block."""

    def __init__(self, document) -> None:
        self.document = document
        self.fetches = 0
        self.urls: list[str] = []
        self.error: Exception | None = None
        self.gate: asyncio.Event | None = None

    async def __call__(self, url: str):
        self.fetches += 1
        self.urls.append(url)
        if self.gate is not None:
            await self.gate.wait()
        if self.error is not None:
            raise self.error
        return self.document


def rtk_document(key) -> dict:
    """RealtimeKit's shape: ``{"success": true, "data": {"publicKey": PEM}}``."""
    return {"success": True, "data": {"publicKey": public_key_pem(key)}}


def body() -> bytes:
    """A fresh, valid meeting.started delivery."""
    return compact(
        {
            "event": "meeting.started",
            "meeting": {"id": f"m-{uuid.uuid4().hex[:8]}", "sessionId": f"s-{uuid.uuid4().hex[:8]}"},
        }
    )


async def verify_like_the_receiver(store: WebhookKeyStore, raw: bytes, header: str) -> str:
    """What receiver.ingest.endpoint does: verify; on failure refresh (rate-limited) and verify again if the keys changed."""
    keys = await store.keys()
    try:
        return verify_signature(raw, header, keys)
    except SignatureError:
        await store.refresh_after_failure()
        fresh = await store.keys()
        if fresh != keys:
            return verify_signature(raw, header, fresh)
        raise


def document_store(document: KeyDocument, clock: Clock) -> WebhookKeyStore:
    """A store that trusts only the fetched document."""
    return WebhookKeyStore([], KEYS_URL, refresh_seconds=REFRESH, fetch=document, clock=clock)


# --------------------------------------------------------------------------- (1) the key store


def test_rotation_refetches_once_and_accepts_the_new_key(key_a, key_b, key_c):
    """Key A fetched; a B-signed delivery after rotation re-fetches (now B) and passes; a later failure inside the interval does not fetch; after it, it may."""
    clock, document = Clock(), KeyDocument(rtk_document(key_a))
    store = document_store(document, clock)

    async def scenario() -> None:
        raw = body()
        assert await verify_like_the_receiver(store, raw, sign_body(raw, key_a)) == "raw"
        assert (document.fetches, document.urls) == (1, [KEYS_URL])
        document.document = rtk_document(key_b)  # Dyte rotates
        clock.now += REFRESH + 1
        raw = body()
        assert await verify_like_the_receiver(store, raw, sign_body(raw, key_b)) == "raw"
        assert document.fetches == 2 and store.last_error is None
        clock.now += REFRESH / 2  # a forged or stale delivery inside the interval: refused, no fetch
        with pytest.raises(SignatureError):
            await verify_like_the_receiver(store, raw, sign_body(raw, key_c))
        with pytest.raises(SignatureError):
            await verify_like_the_receiver(store, raw, sign_body(raw, key_a))
        assert document.fetches == 2
        clock.now += REFRESH / 2 + 1  # the interval since the last fetch has passed: one more fetch
        with pytest.raises(SignatureError):
            await verify_like_the_receiver(store, raw, sign_body(raw, key_c))
        assert document.fetches == 3
        with pytest.raises(SignatureError):
            await verify_like_the_receiver(store, raw, sign_body(raw, key_c))
        assert document.fetches == 3

    asyncio.run(scenario())
    assert store.fetch_count == document.fetches == 3


def test_a_failure_right_after_the_first_fetch_does_not_refetch(key_a, key_b):
    """The interval counts from any fetch: a new-key delivery within it of the first fetch is 401 (Dyte retries) with no second fetch."""
    clock, document = Clock(), KeyDocument(rtk_document(key_a))
    store = document_store(document, clock)

    async def scenario() -> None:
        raw = body()
        await verify_like_the_receiver(store, raw, sign_body(raw, key_a))
        document.document = rtk_document(key_b)
        clock.now += REFRESH - 1
        with pytest.raises(SignatureError):
            await verify_like_the_receiver(store, raw, sign_body(raw, key_b))
        assert document.fetches == 1
        clock.now += 2
        assert await verify_like_the_receiver(store, raw, sign_body(raw, key_b)) == "raw"
        assert document.fetches == 2

    asyncio.run(scenario())


def test_a_flood_of_bad_signatures_costs_one_fetch_per_interval(key_a, key_c):
    """A thousand forged deliveries over three intervals cause at most one fetch per interval (no hammering Dyte)."""
    clock, document = Clock(), KeyDocument(rtk_document(key_a))
    store = document_store(document, clock)
    raw = body()
    forged = sign_body(raw, key_c)

    async def flood() -> None:
        for _ in range(1000):
            clock.now += 3 * REFRESH / 1000
            with pytest.raises(SignatureError):
                await verify_like_the_receiver(store, raw, forged)

    asyncio.run(flood())
    assert 1 <= document.fetches <= 4


def test_concurrent_first_use_fetches_once(key_a):
    """Twenty deliveries racing on a cold store share one fetch and all verify."""
    clock, document = Clock(), KeyDocument(rtk_document(key_a))
    store = document_store(document, clock)
    raws = [body() for _ in range(20)]

    async def race() -> list[str]:
        document.gate = asyncio.Event()
        tasks = [asyncio.create_task(verify_like_the_receiver(store, raw, sign_body(raw, key_a))) for raw in raws]
        await asyncio.sleep(0.01)
        document.gate.set()
        return await asyncio.gather(*tasks)

    assert asyncio.run(race()) == ["raw"] * 20
    assert document.fetches == 1


def test_configured_keys_never_fetch(key_a, key_b):
    """With a configured key the document is never fetched, even after failures."""
    document = KeyDocument(rtk_document(key_b))
    store = WebhookKeyStore([public_key_pem(key_a)], KEYS_URL, refresh_seconds=0, fetch=document, clock=Clock())
    raw = body()

    async def scenario() -> None:
        with pytest.raises(SignatureError):
            await verify_like_the_receiver(store, raw, sign_body(raw, key_b))

    asyncio.run(scenario())
    assert document.fetches == 0 and not store.uses_document


# --------------------------------------------------------------------------- (2) configured PEM blocks


@pytest.mark.parametrize("form", ["concatenated", "escaped-newlines", "file"])
def test_two_configured_pem_blocks_accept_either_key(settings, key_a, key_b, key_c, monkeypatch, tmp_path, form):
    """Old + new PEM blocks in DYTE_WEBHOOK_PUBLIC_KEY (text, one line with \\n, or a file): A and B pass, C does not."""
    pems = public_key_pem(key_a) + public_key_pem(key_b)
    if form == "escaped-newlines":
        pems = pems.replace("\n", "\\n")
    elif form == "file":
        path = tmp_path / "dyte-keys.pem"
        path.write_text(pems)
        pems = str(path)
    monkeypatch.setenv("DYTE_WEBHOOK_PUBLIC_KEY", pems)
    monkeypatch.setenv("DATABASE_URL", settings.database_url)
    configured = Settings(reconcile_enabled=False)
    assert len(configured.webhook_public_key_pems()) == 2
    engine = make_engine(configured.database_url)
    try:
        with app_client(configured) as client:
            ids = {}
            for name, key in (("a", key_a), ("b", key_b), ("c", key_c)):
                raw = body()
                response = client.post("/webhooks/dyte", content=raw, headers=signed_headers(raw, key))
                ids[name] = (response.status_code, response.json().get("delivery_id"))
        assert ids["a"][0] == ids["b"][0] == 200 and ids["c"][0] == 401
        assert {row.delivery_id for row in stored_events(engine)} == {ids["a"][1], ids["b"][1]}
    finally:
        engine.dispose()


# --------------------------------------------------------------------------- (3) through HTTP


@pytest.fixture
def document_settings(settings):
    """The test settings with no configured key (so the key document is used)."""
    return settings.model_copy(update={"dyte_webhook_public_key": None})


def test_http_delivery_signed_with_the_rotated_key_is_accepted(document_settings, key_a, key_b, key_c):
    """Over HTTP with the fetching store: A passes, Dyte rotates to B, the B-signed delivery gets 200 thanks to the refetch."""
    clock, document = Clock(), KeyDocument(rtk_document(key_a))
    store = document_store(document, clock)
    engine = make_engine(document_settings.database_url)
    try:
        with app_client(document_settings, key_store=store) as client:
            assert document.fetches == 0  # nothing fetched at start-up
            raw = body()
            first = client.post("/webhooks/dyte", content=raw, headers=signed_headers(raw, key_a))
            assert first.status_code == 200 and document.fetches == 1
            document.document = rtk_document(key_b)
            clock.now += REFRESH + 1
            raw = body()
            rotated = client.post("/webhooks/dyte", content=raw, headers=signed_headers(raw, key_b))
            assert rotated.status_code == 200, rotated.text
            assert document.fetches == 2
            raw = body()
            again = client.post("/webhooks/dyte", content=raw, headers=signed_headers(raw, key_b))
            assert again.status_code == 200 and document.fetches == 2  # cached, no fetch per delivery
            for key in (key_a, key_c):  # the retired key and a stranger: 401, no fetch within the interval
                raw = body()
                refused = client.post("/webhooks/dyte", content=raw, headers=signed_headers(raw, key))
                assert refused.status_code == 401
            assert document.fetches == 2
        stored = {row.delivery_id for row in stored_events(engine)}
        assert stored == {first.json()["delivery_id"], rotated.json()["delivery_id"], again.json()["delivery_id"]}
    finally:
        engine.dispose()


def test_concurrent_deliveries_after_rotation_all_pass(document_settings, key_a, key_b):
    """Several B-signed deliveries arriving together after the rotation are all accepted by the one refetch."""
    clock, document = Clock(), KeyDocument(rtk_document(key_a))
    store = document_store(document, clock)
    with app_client(document_settings, key_store=store) as client:
        raw = body()
        assert client.post("/webhooks/dyte", content=raw, headers=signed_headers(raw, key_a)).status_code == 200
        document.document = rtk_document(key_b)
        clock.now += REFRESH + 1
        raws = [body() for _ in range(5)]

        async def together() -> list[int]:
            document.gate = asyncio.Event()
            tasks = [asyncio.create_task(_asgi_post(client.app, raw, signed_headers(raw, key_b))) for raw in raws]
            for _ in range(20):  # let every request fail its first verification and queue for the refetch
                await asyncio.sleep(0.005)
            document.gate.set()
            return await asyncio.gather(*tasks)

        statuses = client.portal.call(together)
    assert statuses == [200] * 5
    assert document.fetches == 2


async def _asgi_post(app, raw: bytes, headers: dict[str, str]) -> int:
    """POST /webhooks/dyte straight into the ASGI app (so several can run at once); returns the status."""
    sent = False
    status = 0

    async def receive():
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": raw, "more_body": False}

    async def send(message):
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]

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
        "headers": [(k.encode(), v.encode()) for k, v in headers.items()],
        "client": ("203.0.113.7", 40000),
        "server": ("testserver", 80),
        "state": {},
    }
    await app(scope, receive, send)
    return status


# --------------------------------------------------------------------------- (4) document shapes


@pytest.mark.parametrize(
    "shape",
    ["realtimekit", "list", "public_key", "publicKey-escaped-newlines", "keys-array", "bare-string"],
)
def test_key_document_shapes_are_understood(key_a, key_b, shape):
    """RealtimeKit's envelope, a list of keys, public_key, escaped newlines, keys arrays and a bare PEM all yield the keys."""
    pem_a, pem_b = public_key_pem(key_a), public_key_pem(key_b)
    documents = {
        "realtimekit": ({"success": True, "data": {"publicKey": pem_a}}, [key_a]),
        "list": ([pem_a, pem_b], [key_a, key_b]),
        "public_key": ({"public_key": pem_a}, [key_a]),
        "publicKey-escaped-newlines": (json.loads(json.dumps({"publicKey": pem_a.replace("\n", "\\n")})), [key_a]),
        "keys-array": (
            {"keys": [{"kid": "old", "publicKey": pem_a}, {"kid": "new", "publicKey": pem_b}]},
            [key_a, key_b],
        ),
        "bare-string": (pem_b, [key_b]),
    }
    document, expected = documents[shape]
    found = public_keys_from_document(document)
    assert [k.public_numbers() for k in found] == [k.public_key().public_numbers() for k in expected]


def _deep_list(depth: int) -> list:
    root: list = []
    node = root
    for _ in range(depth):
        child: list = []
        node.append(child)
        node = child
    return root


@pytest.mark.parametrize(
    "garbage",
    [
        None,
        42,
        "not a key",
        {"success": False, "error": {"message": "internal"}},
        {"publicKey": "-----BEGIN PUBLIC KEY-----\nnot base64 at all\n-----END PUBLIC KEY-----\n"},
        {"publicKey": "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"},
        {"keys": [{"kty": "RSA", "n": "AQAB", "e": "AQAB"}]},
        "private-key",
        "deeply-nested",
    ],
    ids=[
        "null",
        "number",
        "string",
        "error-envelope",
        "bad-base64",
        "certificate-garbage",
        "jwk",
        "private-key",
        "deeply-nested",
    ],
)
def test_garbage_documents_hold_no_keys(key_a, garbage):
    """Documents without a usable RSA public key (a private key PEM included, any nesting depth) yield no keys and never raise."""
    if garbage == "private-key":
        from receiver.providers.dyte.signature import private_key_pem

        garbage = {"publicKey": private_key_pem(key_a)}
    elif garbage == "deeply-nested":
        garbage = _deep_list(50_000)
    assert public_keys_from_document(garbage) == []


@pytest.mark.parametrize("failure", ["raises", "garbage", "empty-then-raises", "deeply-nested"])
def test_unusable_key_document_gives_503_not_401_or_500(document_settings, key_a, failure):
    """A fetch that raises, or a document with no key, makes deliveries 503 with Retry-After (Dyte retries; the
    sender is not at fault) and stores nothing; within the back-off no new fetch starts."""
    clock = Clock()
    document = KeyDocument({"success": True, "data": {}})
    if failure == "raises":
        document.error = OSError("connection refused")
    elif failure == "garbage":
        document.document = "<html>502 Bad Gateway</html>"
    elif failure == "empty-then-raises":
        document.document = {}
    else:
        document.document = {"data": _deep_list(50_000)}
    store = document_store(document, clock)
    engine = make_engine(document_settings.database_url)
    try:
        with app_client(document_settings, key_store=store) as client:
            for step in range(3):
                if failure == "empty-then-raises" and step == 1:
                    document.error = ValueError("not JSON")
                    clock.now += REFRESH + 1
                raw = body()
                response = client.post("/webhooks/dyte", content=raw, headers=signed_headers(raw, key_a))
                assert response.status_code == 503, response.text
                assert response.json()["error"] == "key_document_unavailable"
                assert int(response.headers["retry-after"]) >= 1
            assert client.get("/healthz").status_code == 200
        assert stored_events(engine) == []
        assert store.last_error is not None and store.failing
        assert document.fetches <= 2
    finally:
        engine.dispose()


def test_key_document_recovers_after_an_outage_within_the_back_off(document_settings, key_a):
    """The first fetch fails: 503; the document comes back; the next delivery after the 0.5 s back-off fetches and
    passes (not a minute later as before), the one inside the back-off is still 503 without a fetch."""
    clock, document = Clock(), KeyDocument(rtk_document(key_a))
    document.error = TimeoutError("keys endpoint timed out")
    store = document_store(document, clock)
    with app_client(document_settings, key_store=store) as client:
        raw = body()
        assert client.post("/webhooks/dyte", content=raw, headers=signed_headers(raw, key_a)).status_code == 503
        document.error = None
        clock.now += 0.2
        assert client.post("/webhooks/dyte", content=raw, headers=signed_headers(raw, key_a)).status_code == 503
        assert document.fetches == 1
        clock.now += 0.4
        response = client.post("/webhooks/dyte", content=raw, headers=signed_headers(raw, key_a))
        assert response.status_code == 200, response.text
    assert document.fetches == 2 and store.last_error is None and not store.failing


def test_back_off_doubles_up_to_its_maximum(key_a):
    """Failed fetches in a row wait 0.5, 1, 2, 4, 8, then 10 s (DYTE_WEBHOOK_KEYS_RETRY_MAX_SECONDS); success resets it."""
    clock, document = Clock(), KeyDocument(rtk_document(key_a))
    document.error = OSError("down")
    store = WebhookKeyStore([], KEYS_URL, refresh_seconds=REFRESH, retry_max_seconds=10.0, fetch=document, clock=clock)

    async def scenario() -> list[float]:
        waits = []
        for _ in range(7):
            with pytest.raises(KeyDocumentUnavailable):
                await store.keys()
            waits.append(store.retry_after_seconds())
            clock.now += waits[-1]
        document.error = None
        assert await store.keys()
        return waits

    assert asyncio.run(scenario()) == [0.5, 1.0, 2.0, 4.0, 8.0, 10.0, 10.0]
    assert document.fetches == 8 and store.retry_after_seconds() == REFRESH


def test_a_rotation_during_an_outage_is_503_and_cached_keys_keep_working(document_settings, key_a, key_b):
    """Key A cached; the document goes down and Dyte rotates to B: A-signed deliveries still pass on the cached key,
    a B-signed one is 503 (the keys may be stale), and passes once the document is back."""
    clock, document = Clock(), KeyDocument(rtk_document(key_a))
    store = document_store(document, clock)
    with app_client(document_settings, key_store=store) as client:
        raw = body()
        assert client.post("/webhooks/dyte", content=raw, headers=signed_headers(raw, key_a)).status_code == 200
        document.error, document.document = OSError("down"), rtk_document(key_b)
        clock.now += REFRESH + 1
        rotated = body()
        response = client.post("/webhooks/dyte", content=rotated, headers=signed_headers(rotated, key_b))
        assert response.status_code == 503 and response.json()["error"] == "key_document_unavailable"
        still_a = body()
        assert client.post("/webhooks/dyte", content=still_a, headers=signed_headers(still_a, key_a)).status_code == 200
        document.error = None
        clock.now += 1
        response = client.post("/webhooks/dyte", content=rotated, headers=signed_headers(rotated, key_b))
        assert response.status_code == 200, response.text


def test_a_configured_key_wins_over_a_failing_document(document_settings, key_a, key_b):
    """With DYTE_WEBHOOK_PUBLIC_KEY set, a dead document is never fetched: the configured key passes (200) and any
    other is 401, never 503."""
    document = KeyDocument(rtk_document(key_b))
    document.error = OSError("down")
    configured = document_settings.model_copy(update={"dyte_webhook_public_key": public_key_pem(key_a)})
    store = WebhookKeyStore([public_key_pem(key_a)], KEYS_URL, fetch=document, clock=Clock())
    with app_client(configured, key_store=store) as client:
        raw = body()
        assert client.post("/webhooks/dyte", content=raw, headers=signed_headers(raw, key_a)).status_code == 200
        other = body()
        assert client.post("/webhooks/dyte", content=other, headers=signed_headers(other, key_b)).status_code == 401
    assert document.fetches == 0
