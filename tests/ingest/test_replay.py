"""Replays and the compact fallback: what a captured delivery can still cost, and verification before parsing.

The signature covers the body, not ``dyte-uuid``; the compact fallback
accepts any body that parses to the signed JSON. So:

* a delivery verified through the fallback is stored as the compact (signed)
  bytes, never the padded bytes that arrived;
* the inbox is unique on the stored body's digest: a replay under a new uuid
  answers 200 ``replay`` and adds no row;
* the raw-body signature is checked before any JSON parse, and only bodies of
  at most ``COMPACT_FALLBACK_MAX_BYTES`` are ever parsed when it fails.
"""

from __future__ import annotations

import json
import uuid

import pytest
from alembic import command
from helpers import app_client, compact, signed_headers, stored_events
from sqlalchemy import text

import receiver.ingest.endpoint as endpoint
from receiver.db.engine import alembic_config, make_engine

PAYLOAD = {
    "event": "meeting.started",
    "meeting": {"id": "m-1", "sessionId": "s-1", "startedAt": "2026-01-01T10:00:00Z", "title": "Weekly"},
}
SIGNED = compact(PAYLOAD)  # what Dyte signs (JSON.stringify)


def padded_with_spaces(body: bytes, spaces: int) -> bytes:
    """The same JSON with ``spaces`` spaces after the opening brace: parses to the signed object."""
    return b"{" + b" " * spaces + body[1:]


def leading_duplicate_key(body: bytes, junk_bytes: int) -> bytes:
    """``{"event": "<junk>", ...signed...}``: the later ``event`` wins, the object compacts to the signed bytes."""
    return b'{"event":"' + b"x" * junk_bytes + b'",' + body[1:]


@pytest.fixture
def inbox(settings):
    engine = make_engine(settings.database_url)
    yield lambda: stored_events(engine)
    engine.dispose()


def post(client, body: bytes, signed: bytes, key, delivery_id: str | None = None):
    """POST ``body`` with a signature over ``signed`` and a fresh (or given) dyte-uuid."""
    headers = signed_headers(signed, key, delivery_id=delivery_id or str(uuid.uuid4()))
    return client.post("/webhooks/dyte", content=body, headers=headers)


def test_replay_under_a_new_uuid_adds_nothing(settings, signing_key, inbox):
    """The same signed body under 20 fresh uuids: the first is stored, every other one is a 200 replay adding no row."""
    with app_client(settings) as client:
        first = post(client, SIGNED, SIGNED, signing_key, delivery_id="original")
        assert first.json()["status"] == "stored"
        for _ in range(20):
            response = post(client, SIGNED, SIGNED, signing_key)
            assert response.status_code == 200 and response.json()["status"] == "replay"
    rows = inbox()
    assert [(r.delivery_id, r.raw_body, r.duplicate_count) for r in rows] == [("original", SIGNED, 20)]


def test_compact_fallback_stores_the_signed_bytes_not_the_padding(settings, signing_key, inbox):
    """A body padded with 60,000 spaces verifies through the fallback and is stored as the compact bytes; padded
    replays under new uuids and with other paddings add nothing: one row of len(SIGNED) bytes in all."""
    with app_client(settings) as client:
        response = post(client, padded_with_spaces(SIGNED, 60_000), SIGNED, signing_key, delivery_id="padded")
        assert response.status_code == 200 and response.json()["status"] == "stored"
        for spaces in (1, 10, 1000, 50_000):
            again = post(client, padded_with_spaces(SIGNED, spaces), SIGNED, signing_key)
            assert again.status_code == 200 and again.json()["status"] == "replay"
        original = post(client, SIGNED, SIGNED, signing_key)  # the genuine bytes come later: nothing new either
        assert original.json()["status"] == "replay"
    rows = inbox()
    assert len(rows) == 1
    assert rows[0].raw_body == SIGNED and rows[0].signature_scheme == "compact" and rows[0].duplicate_count == 5


def test_leading_duplicate_key_with_780_kb_of_junk(settings, signing_key, inbox):
    """The 780 KB duplicate-key body is above the fallback cap: 401, unparsed, nothing stored. With the cap raised
    to 1 MiB it verifies, and what is stored is the compact signed form (a few hundred bytes), once."""
    attack = leading_duplicate_key(SIGNED, 780_000)
    assert len(attack) > 780_000 and json.loads(attack) == PAYLOAD
    with app_client(settings) as client:
        response = post(client, attack, SIGNED, signing_key)
        assert response.status_code == 401 and response.json()["error"] == "invalid_signature"
    assert inbox() == []
    roomy = settings.model_copy(update={"compact_fallback_max_bytes": 1_048_576})
    with app_client(roomy) as client:
        assert post(client, attack, SIGNED, signing_key).json()["status"] == "stored"
        for junk in (779_000, 500_000):
            assert post(client, leading_duplicate_key(SIGNED, junk), SIGNED, signing_key).json()["status"] == "replay"
    rows = inbox()
    assert len(rows) == 1 and rows[0].raw_body == SIGNED and len(rows[0].raw_body) < 200


def test_two_hundred_replays_of_one_capture_store_nothing_more(settings, signing_key, inbox):
    """What one captured delivery still costs in storage: 200 replays (fresh uuids, varied padding) leave one row of
    the signed bytes; only its duplicate counter moves."""
    with app_client(settings) as client:
        post(client, SIGNED, SIGNED, signing_key, delivery_id="genuine")
        for index in range(200):
            body = padded_with_spaces(SIGNED, index % 7) if index % 2 else SIGNED
            assert post(client, body, SIGNED, signing_key).json()["status"] == "replay"
    rows = inbox()
    assert len(rows) == 1 and sum(len(r.raw_body) for r in rows) == len(SIGNED) and rows[0].duplicate_count == 200


# --------------------------------------------------------------------------
# Verify before parsing
# --------------------------------------------------------------------------


@pytest.fixture
def parses(monkeypatch):
    """Counts the receive path's JSON parses (``endpoint._decode_json`` and ``endpoint._read_indexed``, the
    authentic body's), by body size."""
    sizes: list[int] = []
    for name in ("_decode_json", "_read_indexed"):
        original = getattr(endpoint, name)

        def counting(raw: bytes, original=original):
            sizes.append(len(raw))
            return original(raw)

        monkeypatch.setattr(endpoint, name, counting)
    return sizes


def test_unsigned_and_badly_signed_large_bodies_are_never_parsed(settings, signing_key, inbox, parses):
    """A 1 MiB JSON body without a signature, or with a signature over other bytes, is refused 401 without a parse."""
    big = compact({"event": "meeting.started", "pad": "p" * (1_048_576 - 100)})
    assert len(big) <= 1_048_576
    with app_client(settings) as client:
        unsigned = client.post("/webhooks/dyte", content=big, headers={"content-type": "application/json"})
        assert unsigned.status_code == 401
        wrong = post(client, big, SIGNED, signing_key)
        assert wrong.status_code == 401
    assert parses == [] and inbox() == []


def test_a_valid_raw_signature_is_checked_before_the_one_parse(settings, signing_key, parses):
    """A genuine delivery is parsed once, after its raw signature verified; a small badly signed body is parsed
    once for the fallback (and told 400 when it is not JSON)."""
    with app_client(settings) as client:
        assert post(client, SIGNED, SIGNED, signing_key).status_code == 200
        assert parses == [len(SIGNED)]
        parses.clear()
        assert post(client, b'{"event": "meeting.started"', SIGNED, signing_key).status_code == 400
        assert parses == [len(b'{"event": "meeting.started"')]
        parses.clear()
        small = settings.model_copy(update={"compact_fallback_max_bytes": 0})
    with app_client(small) as client:  # fallback off: nothing but signed raw bytes gets in
        assert post(client, padded_with_spaces(SIGNED, 3), SIGNED, signing_key).status_code == 401
        assert post(client, b"not json", SIGNED, signing_key).status_code == 401
    assert parses == []


# --------------------------------------------------------------------------
# Migration 0005 on a database that already holds duplicate bodies
# --------------------------------------------------------------------------


def test_migration_keeps_rows_whose_body_an_earlier_row_holds(db_url):
    """Upgrading a 0004 inbox with the same body under two ids keeps both rows; the first owns the body,
    and a later replay of that body is still a replay."""
    config = alembic_config(db_url)
    command.downgrade(config, "0004")
    engine = make_engine(db_url)
    try:
        with engine.begin() as connection:
            for delivery_id in ("first", "second"):
                connection.execute(
                    text(
                        "INSERT INTO webhook_events (delivery_id, raw_body, body_sha256, signature_scheme, "
                        "received_at, parse_status, status, attempts, duplicate_count, conflict_count) "
                        "VALUES (:d, :b, :h, 'raw', '2026-01-01 00:00:00', 'ok', 'done', 1, 0, 0)"
                    ),
                    {
                        "d": delivery_id,
                        "b": b"{}",
                        "h": "44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a",
                    },
                )
        command.upgrade(config, "head")
        with engine.connect() as connection:
            rows = connection.execute(
                text("SELECT delivery_id, unique_body_sha256 FROM webhook_events ORDER BY id")
            ).all()
        assert [(d, h is not None) for d, h in rows] == [("first", True), ("second", False)]
    finally:
        command.upgrade(config, "head")
        engine.dispose()
