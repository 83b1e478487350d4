"""POST /webhooks/realtimekit beside /webhooks/dyte: both header families on both routes, and whose key checks what.

An organisation moving from Dyte to RealtimeKit has two webhooks delivering
at once, one with ``dyte-*`` headers signed by Dyte's key, one with ``rtk-*``
headers signed by RealtimeKit's; neither may lose a delivery, store one
twice, or get more than a client's error for bad input.
"""

from __future__ import annotations

import json

import pytest
from helpers import app_client, compact, signed_headers, stored_events

from receiver.db.engine import make_engine
from receiver.providers.dyte.signature import generate_private_key, public_key_pem
from receiver.providers.registry import build_key_store
from receiver.settings import Settings

DYTE_URL = "https://dyte.test/.well-known/webhooks.json"
RTK_URL = "https://rtk.test/.well-known/webhooks.json"


def body(session: str = "s-1") -> bytes:
    return compact({"event": "meeting.started", "meeting": {"id": "m-1", "sessionId": session}})


@pytest.fixture(scope="module")
def dyte_key():
    return generate_private_key()


@pytest.fixture(scope="module")
def rtk_key():
    return generate_private_key()


@pytest.fixture
def inbox(settings):
    eng = make_engine(settings.database_url)
    yield lambda: stored_events(eng)
    eng.dispose()


class Documents:
    """Both platforms' key documents (RealtimeKit's shape), served by an injected fetch that counts URLs."""

    def __init__(self, dyte_key, rtk_key) -> None:
        self.docs = {
            DYTE_URL: {"success": True, "data": {"publicKey": public_key_pem(dyte_key)}},
            RTK_URL: {"success": True, "data": {"publicKey": public_key_pem(rtk_key)}},
        }
        self.fetched: list[str] = []

    async def __call__(self, url: str):
        self.fetched.append(url)
        return self.docs[url]


def document_settings(settings: Settings, provider: str) -> Settings:
    return settings.model_copy(
        update={
            "provider": provider,
            "dyte_webhook_public_key": None,
            "dyte_webhook_keys_url": DYTE_URL,
            "realtimekit_webhook_keys_url": RTK_URL,
        }
    )


def test_rtk_delivery_is_stored_under_its_rtk_uuid_and_webhook_id(settings, inbox, signing_key):
    raw = body()
    headers = signed_headers(raw, signing_key, prefix="rtk", delivery_id="rtk-d-1", webhook_id="rtk-wh-1")
    with app_client(settings) as client:
        response = client.post("/webhooks/realtimekit", content=raw, headers=headers)
    assert response.status_code == 200, response.text
    assert response.json() == {"status": "stored", "delivery_id": "rtk-d-1", "parse_status": "ok"}
    [row] = inbox()
    assert (row.delivery_id, row.webhook_id, row.session_id, row.raw_body) == ("rtk-d-1", "rtk-wh-1", "s-1", raw)


def test_both_routes_take_both_families_and_a_retry_on_the_other_route_is_a_duplicate(settings, inbox, signing_key):
    """dyte-* on /webhooks/realtimekit and rtk-* on /webhooks/dyte are accepted; the same uuid twice is one row."""
    with app_client(settings) as client:
        results = []
        for route, prefix, delivery_id in (
            ("/webhooks/realtimekit", "dyte", "d-1"),
            ("/webhooks/dyte", "rtk", "r-1"),
            ("/webhooks/dyte", "dyte", "d-1"),
            ("/webhooks/realtimekit", "rtk", "r-1"),
        ):
            raw = body(delivery_id)
            headers = signed_headers(raw, signing_key, prefix=prefix, delivery_id=delivery_id)
            results.append(client.post(route, content=raw, headers=headers).json()["status"])
    assert results == ["stored", "stored", "duplicate", "duplicate"]
    assert sorted(row.delivery_id for row in inbox()) == ["d-1", "r-1"]


def test_a_delivery_with_both_families_is_read_by_the_route_s_family(settings, inbox, signing_key):
    """Each route reads its own family's uuid and webhook id; the same body again under the other uuid
    is a replay (the inbox is unique on the body's digest too), so two bodies give two rows."""
    with app_client(settings) as client:
        for route, session, wanted in (
            ("/webhooks/realtimekit", "s-1", "rtk-id"),
            ("/webhooks/dyte", "s-2", "dyte-id"),
        ):
            raw = body(session)
            headers = {
                **signed_headers(raw, signing_key, prefix="dyte", delivery_id="dyte-id", webhook_id="dyte-wh"),
                **signed_headers(raw, signing_key, prefix="rtk", delivery_id="rtk-id", webhook_id="rtk-wh"),
            }
            answer = client.post(route, content=raw, headers=headers).json()
            assert (answer["delivery_id"], answer["status"]) == (wanted, "stored")
        raw = body("s-1")
        again = signed_headers(raw, signing_key, prefix="dyte", delivery_id="another-id")
        assert client.post("/webhooks/dyte", content=raw, headers=again).json()["status"] == "replay"
    assert {(r.delivery_id, r.webhook_id) for r in inbox()} == {("rtk-id", "rtk-wh"), ("dyte-id", "dyte-wh")}


def test_bad_input_on_the_realtimekit_route_gets_the_dyte_route_s_answers(settings, inbox, signing_key):
    """415, 413, 401 store nothing; malformed JSON is 400, kept only when its signature is valid."""
    stranger = generate_private_key()
    raw = body()
    small = settings.model_copy(update={"max_body_bytes": 1024})
    with app_client(small) as client:
        post = client.post
        wrong_type = post(
            "/webhooks/realtimekit",
            content=raw,
            headers={**signed_headers(raw, signing_key, prefix="rtk"), "content-type": "text/plain"},
        )
        big = b'{"event":"meeting.started","pad":"' + b"x" * 2000 + b'"}'
        too_big = post("/webhooks/realtimekit", content=big, headers=signed_headers(big, signing_key, prefix="rtk"))
        forged = post("/webhooks/realtimekit", content=raw, headers=signed_headers(raw, stranger, prefix="rtk"))
        unsigned = post("/webhooks/realtimekit", content=raw, headers={"content-type": "application/json"})
        garbled = post(
            "/webhooks/realtimekit",
            content=raw,
            headers={"content-type": "application/json", "rtk-signature": "not base64!", "rtk-uuid": "u"},
        )
        assert inbox() == []
        bad_json = b'{"event": "meeting.started",'
        malformed = post(
            "/webhooks/realtimekit",
            content=bad_json,
            headers=signed_headers(bad_json, signing_key, prefix="rtk", delivery_id="bad-1"),
        )
    statuses = [r.status_code for r in (wrong_type, too_big, forged, unsigned, garbled, malformed)]
    assert statuses == [415, 413, 401, 401, 401, 400]
    assert "dyte-signature or rtk-signature" in unsigned.json()["detail"]
    assert "kept as bad-1" in malformed.json()["detail"]
    [kept] = inbox()
    assert kept.delivery_id == "bad-1" and kept.parse_status == "invalid" and kept.raw_body == bad_json


def test_each_family_is_checked_against_its_own_platform_s_key_document(settings, inbox, dyte_key, rtk_key):
    """No configured key, PROVIDER=realtimekit: rtk-* fetches only RealtimeKit's document; the old Dyte
    webhook's dyte-* deliveries fetch Dyte's once; a stranger's signature and a missing header get 401."""
    documents = Documents(dyte_key, rtk_key)
    rtk_settings = document_settings(settings, "realtimekit")
    store = build_key_store(rtk_settings, fetch=documents)
    stranger = generate_private_key()
    with app_client(rtk_settings, key_store=store) as client:
        raw = body("s-rtk")
        rtk = client.post("/webhooks/realtimekit", content=raw, headers=signed_headers(raw, rtk_key, prefix="rtk"))
        assert rtk.status_code == 200 and documents.fetched == [RTK_URL]
        raw = body("s-dyte")
        old = client.post("/webhooks/dyte", content=raw, headers=signed_headers(raw, dyte_key, prefix="dyte"))
        assert old.status_code == 200 and documents.fetched == [RTK_URL, DYTE_URL]
        raw = body("s-again")
        again = client.post("/webhooks/dyte", content=raw, headers=signed_headers(raw, dyte_key, prefix="dyte"))
        assert again.status_code == 200 and len(documents.fetched) == 2  # cached
        raw = body("s-forged")
        forged = client.post("/webhooks/realtimekit", content=raw, headers=signed_headers(raw, stranger, prefix="rtk"))
        assert forged.status_code == 401
        before = len(documents.fetched)
        missing = client.post("/webhooks/realtimekit", content=raw, headers={"content-type": "application/json"})
        assert missing.status_code == 401 and len(documents.fetched) == before  # refused before any fetch
    assert sorted(row.session_id for row in inbox()) == ["s-again", "s-dyte", "s-rtk"]


def test_a_signature_by_the_other_platform_s_key_is_accepted_after_its_own_fails(settings, inbox, dyte_key, rtk_key):
    """rtk-* headers signed with Dyte's key (headers and key disagreeing) still verify: both keys are trusted."""
    documents = Documents(dyte_key, rtk_key)
    dyte_settings = document_settings(settings, "dyte")
    with app_client(dyte_settings, key_store=build_key_store(dyte_settings, fetch=documents)) as client:
        raw = body()
        response = client.post(
            "/webhooks/realtimekit", content=raw, headers=signed_headers(raw, dyte_key, prefix="rtk")
        )
    assert response.status_code == 200
    assert documents.fetched == [RTK_URL, DYTE_URL]  # the family's own document first
    assert len(inbox()) == 1


def test_configured_keys_replace_both_documents(settings, dyte_key, rtk_key):
    """DYTE_WEBHOOK_PUBLIC_KEY with both PEM blocks: one store for both families, no document ever fetched."""
    both = public_key_pem(dyte_key) + public_key_pem(rtk_key)
    configured = settings.model_copy(update={"dyte_webhook_public_key": both, "provider": "realtimekit"})
    documents = Documents(dyte_key, rtk_key)
    store = build_key_store(configured, fetch=documents)
    assert store.sources_for("dyte") == store.sources_for("realtimekit") and len(store.sources_for(None)) == 1
    with app_client(configured, key_store=store) as client:
        for key, prefix, route in ((dyte_key, "dyte", "/webhooks/dyte"), (rtk_key, "rtk", "/webhooks/realtimekit")):
            raw = body(prefix)
            assert client.post(route, content=raw, headers=signed_headers(raw, key, prefix=prefix)).status_code == 200
    assert documents.fetched == []


def test_one_key_document_url_for_both_platforms_is_fetched_once(settings, rtk_key):
    same = settings.model_copy(
        update={
            "dyte_webhook_public_key": None,
            "dyte_webhook_keys_url": RTK_URL,
            "realtimekit_webhook_keys_url": RTK_URL,
        }
    )
    store = build_key_store(same)
    assert len(store.sources_for(None)) == 1 and store.sources_for("dyte") == store.sources_for("realtimekit")


def test_enforced_webhook_id_names_the_rtk_header(settings, inbox, signing_key):
    raw = body()
    with app_client(settings, allowed_webhook_ids=lambda: {"ours"}) as client:
        refused = client.post(
            "/webhooks/realtimekit", content=raw, headers=signed_headers(raw, signing_key, prefix="rtk", webhook_id="x")
        )
        accepted = client.post(
            "/webhooks/realtimekit",
            content=raw,
            headers=signed_headers(raw, signing_key, prefix="rtk", webhook_id="ours"),
        )
    assert refused.status_code == 403
    assert json.loads(refused.text)["detail"] == "rtk-webhook-id is not a subscription of this service"
    assert accepted.status_code == 200 and len(inbox()) == 1
