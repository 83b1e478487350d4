"""Fuzzing the receiver's HTTP API in-process (starlette TestClient): nothing ever answers 5xx.

Three generators, each bounded so the file runs in well under 30 s on SQLite
and PostgreSQL together:

* random requests: methods, paths, header sets (content types, signatures,
  uuids, RealtimeKit headers) and bodies (binary, JSON-ish, nested);
* signed random JSON objects, event-shaped, so they pass the signature:
  200 and stored, or 400, never 5xx; the worker then drains the result;
* schemathesis cases from a small OpenAPI document of the public routes
  (positive and negative generation), when schemathesis is installed.

Every test prints how many cases it ran (``pytest -s`` shows them).
"""

from __future__ import annotations

import asyncio
import base64
import json
import uuid
from collections import Counter
from typing import Any

import pytest
from helpers import app_client, signed_headers, stored_events
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from receiver.db.engine import make_engine
from receiver.processing.worker import Worker
from receiver.providers.dyte.events import KNOWN_EVENTS
from receiver.providers.dyte.signature import compact_json, sign_body

RANDOM_REQUESTS = 150
SIGNED_OBJECTS = 120
SCHEMATHESIS_PER_OPERATION = 40

CASES_RUN: Counter[str] = Counter()


def fuzz(max_examples: int) -> hsettings:
    """Hypothesis settings for one fuzz loop: bounded, no deadline, no example database."""
    return hsettings(
        max_examples=max_examples,
        deadline=None,
        database=None,
        print_blob=True,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
    )


@pytest.fixture(scope="module", autouse=True)
def _report_counts():
    """Print the number of cases each fuzz test ran once the module is done."""
    yield
    print("\nfuzz cases run: " + ", ".join(f"{name}={count}" for name, count in sorted(CASES_RUN.items())))
    print(f"fuzz cases total: {sum(CASES_RUN.values())}")


# --------------------------------------------------------------------------- strategies

# Strings that have broken receivers before: NUL, lone surrogates, RTL override, column overflow.
NASTY_TEXT = st.sampled_from(
    [
        "",
        " ",
        "\x00",
        "a\x00b",
        "\ud800",
        "\udfff",
        "\u202e",
        "𝄞",
        "é",
        "null",
        "NaN",
        "0",
        "-1",
        "a" * 101,
        "b" * 201,
        "'; DROP TABLE x;--",
    ]
)
TEXT = st.one_of(
    st.text(max_size=40), st.text(st.characters(codec=None, exclude_categories=()), max_size=12), NASTY_TEXT
)
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    TEXT,
)
JSON_VALUES = st.recursive(
    SCALARS,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(TEXT, inner, max_size=4)),
    max_leaves=20,
)
TIMESTAMPS = st.one_of(
    st.sampled_from(
        [
            "2026-01-01T10:00:00Z",
            "2023-04-14 04:46:08.306221Z",
            "2026-01-01T10:00:00+05:30",
            "null",
            "",
            "yesterday",
            "9999-99-99",
        ]
    ),
    st.integers(min_value=-(2**40), max_value=2**40),
    JSON_VALUES,
)
IDS = st.one_of(st.uuids().map(str), TEXT, JSON_VALUES)
GOOD_IDS = st.one_of(st.uuids().map(str), st.text("abcdef0123456789-", min_size=1, max_size=36))
GOOD_TIMES = st.sampled_from(["2026-01-01T10:00:00Z", "2026-01-01T10:30:00.123Z", "2023-04-14 04:46:08.306221Z", None])


def field(good: st.SearchStrategy, bad: st.SearchStrategy = JSON_VALUES) -> st.SearchStrategy:
    """Mostly a plausible value, sometimes anything at all."""
    return st.one_of(good, good, good, bad)


def _maybe(fields: dict[str, st.SearchStrategy]) -> st.SearchStrategy[dict[str, Any]]:
    """A dict holding any subset of ``fields``."""
    return st.fixed_dictionaries({}, optional=fields)


def _shape(
    required: dict[str, st.SearchStrategy], optional: dict[str, st.SearchStrategy]
) -> st.SearchStrategy[dict[str, Any]]:
    """A dict with ``required`` keys, any subset of ``optional`` ones and a few random extra keys."""
    return st.builds(
        lambda extra, base: {**extra, **base},
        st.dictionaries(TEXT, JSON_VALUES, max_size=2),
        st.fixed_dictionaries(required, optional=optional),
    )


MEETING = _shape(
    {"id": field(GOOD_IDS, IDS)},
    {
        "sessionId": field(GOOD_IDS, IDS),
        "title": field(TEXT),
        "status": field(st.just("LIVE")),
        "startedAt": field(GOOD_TIMES, TIMESTAMPS),
        "endedAt": field(GOOD_TIMES, TIMESTAMPS),
        "createdAt": field(GOOD_TIMES, TIMESTAMPS),
        "organizedBy": field(_maybe({"id": GOOD_IDS, "name": TEXT})),
    },
)
PARTICIPANT = _shape(
    {"peerId": field(GOOD_IDS, IDS)},
    {
        "userDisplayName": field(TEXT),
        "customParticipantId": field(GOOD_IDS, IDS),
        "clientSpecificId": field(GOOD_IDS, IDS),
        "userId": field(GOOD_IDS, IDS),
        "presetName": field(TEXT),
        "joinedAt": field(GOOD_TIMES, TIMESTAMPS),
        "leftAt": field(GOOD_TIMES, TIMESTAMPS),
    },
)
RECORDING = _shape(
    {
        "id": field(GOOD_IDS, IDS),
        "status": field(st.sampled_from(["INVOKED", "RECORDING", "UPLOADING", "UPLOADED", "ERRORED"]), TEXT),
    },
    {
        "fileSize": field(
            st.integers(min_value=0, max_value=2**40), st.one_of(st.integers(min_value=-(2**70), max_value=2**70), TEXT)
        ),
        "recordingDuration": field(st.floats(min_value=0, max_value=1e6), st.one_of(st.floats(), TEXT)),
        "startedTime": field(GOOD_TIMES, TIMESTAMPS),
        "stoppedTime": field(GOOD_TIMES, TIMESTAMPS),
        "downloadUrl": field(st.just("https://bucket.example/rec.mp4?X-Amz-Signature=abc"), TEXT),
        "downloadUrlExpiry": field(GOOD_TIMES, TIMESTAMPS),
        "outputFileName": field(TEXT),
        "stopReason": JSON_VALUES,
        "meetingId": field(GOOD_IDS, IDS),
        "sessionId": field(GOOD_IDS, IDS),
    },
)
URL_FIELDS = {
    "meeting.chatSynced": "chatDownloadUrl",
    "meeting.transcript": "transcriptDownloadUrl",
    "meeting.summary": "summaryDownloadUrl",
}
KNOWN_SHAPES = st.one_of(
    st.sampled_from(["meeting.started", "meeting.ended"]).flatmap(
        lambda e: _shape({"event": st.just(e), "meeting": field(MEETING)}, {"reason": field(TEXT)})
    ),
    st.sampled_from(["meeting.participantJoined", "meeting.participantLeft"]).flatmap(
        lambda e: _shape({"event": st.just(e), "meeting": field(MEETING), "participant": field(PARTICIPANT)}, {})
    ),
    _shape(
        {"event": st.just("meeting.chatSynced")},
        {
            "sessionId": field(GOOD_IDS, IDS),
            "meetingId": field(GOOD_IDS, IDS),
            "chatDownloadUrl": field(TEXT),
            "chatDownloadUrlExpiry": field(GOOD_TIMES, TIMESTAMPS),
        },
    ),
    st.sampled_from(["meeting.transcript", "meeting.summary"]).flatmap(
        lambda e: _shape(
            {"event": st.just(e), "meeting": field(MEETING)},
            {URL_FIELDS[e]: field(TEXT), URL_FIELDS[e] + "Expiry": field(GOOD_TIMES, TIMESTAMPS)},
        )
    ),
    _shape({"event": st.just("recording.statusUpdate"), "recording": field(RECORDING)}, {"meeting": field(MEETING)}),
    _shape(
        {
            "event": st.just("livestreaming.statusUpdate"),
            "streamId": field(GOOD_IDS, IDS),
            "status": field(st.sampled_from(["LIVE", "OFFLINE", "IDLE"]), TEXT),
        },
        {
            "meetingId": field(GOOD_IDS, IDS),
            "sessionId": field(GOOD_IDS, IDS),
            "meeting": field(MEETING),
            "streamKey": TEXT,
        },
    ),
)
RANDOM_OBJECTS = st.dictionaries(st.one_of(st.just("event"), TEXT), JSON_VALUES, max_size=5)
EVENT_OBJECTS = st.one_of(KNOWN_SHAPES, KNOWN_SHAPES, KNOWN_SHAPES, RANDOM_OBJECTS)

HEADER_BYTES = st.binary(max_size=60).map(lambda b: bytes(c for c in b if c >= 0x20 and c != 0x7F))
CONTENT_TYPES = st.one_of(
    st.just(b"application/json"),
    st.just(b"application/json"),
    st.sampled_from(
        [
            b"application/json",
            b"application/json; charset=utf-8",
            b"APPLICATION/JSON",
            b"application/json;",
            b"application/json ; charset=latin-1",
            b"text/plain",
            b"application/x-www-form-urlencoded",
            b"multipart/form-data; boundary=zz",
            b"",
        ]
    ),
    HEADER_BYTES,
)
SIGNATURES = st.one_of(
    HEADER_BYTES,
    st.binary(min_size=0, max_size=600).map(base64.b64encode),
    st.just(b"A" * 5000),
)
HEADER_SETS = _maybe(
    {
        "content-type": CONTENT_TYPES,
        "dyte-signature": SIGNATURES,
        "rtk-signature": SIGNATURES,
        "dyte-uuid": st.one_of(st.uuids().map(lambda u: str(u).encode()), HEADER_BYTES, st.just(b"u" * 300)),
        "rtk-uuid": HEADER_BYTES,
        "dyte-webhook-id": st.one_of(HEADER_BYTES, st.just(b"w" * 300)),
        "content-encoding": st.sampled_from([b"gzip", b"br", b"identity"]),
        "transfer-encoding": st.sampled_from([b"chunked", b"gzip"]),
        "authorization": HEADER_BYTES,
        "x-forwarded-for": HEADER_BYTES,
    }
)
BODIES = st.one_of(
    st.binary(max_size=4096),
    JSON_VALUES.map(lambda v: json.dumps(v).encode()),
    EVENT_OBJECTS.map(lambda v: json.dumps(v).encode()),
    EVENT_OBJECTS.map(lambda v: json.dumps(v).encode()[: len(json.dumps(v)) // 2]),
    st.integers(min_value=1, max_value=5000).map(lambda n: b"[" * n + b"]" * n),
    st.integers(min_value=1, max_value=5000).map(lambda n: b'{"a":' * n + b"1" + b"}" * n),
)
PATH_CHARS = st.characters(codec="ascii", categories=["L", "N", "P", "S"], exclude_characters="?#%\\")
PATHS = st.one_of(
    st.just("/webhooks/dyte"),
    st.just("/webhooks/dyte"),
    st.just("/webhooks/dyte"),
    st.sampled_from(
        [
            "/webhooks/dyte",
            "/webhooks/dyte/",
            "/WEBHOOKS/DYTE",
            "/webhooks/dyte?dyte-uuid=x",
            "/webhooks//dyte",
            "/healthz",
            "/readyz",
            "/metrics",
            "/",
            "/webhooks",
            "/..%2f..%2fetc/passwd",
            "/webhooks/dyte%00",
        ]
    ),
    st.text(PATH_CHARS, max_size=30).map(lambda s: "/" + s),
)
METHODS = st.one_of(
    st.just("POST"),
    st.just("POST"),
    st.just("POST"),
    st.sampled_from(["GET", "HEAD", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE"]),
)


# --------------------------------------------------------------------------- tests


@pytest.fixture
def client(settings):
    """One started app on the test database, shared by every example of a test."""
    with app_client(settings) as c:
        yield c


def test_random_requests_never_get_a_5xx(client, db_url):
    """Random methods, paths, header sets and bodies: every answer is below 500 (and no exception escapes)."""
    name = f"random_requests[{db_url.split(':', 1)[0].split('+')[0]}]"
    statuses: Counter[int] = Counter()

    @fuzz(RANDOM_REQUESTS)
    @given(method=METHODS, path=PATHS, headers=HEADER_SETS, body=BODIES)
    def one(method: str, path: str, headers: dict[str, bytes], body: bytes) -> None:
        CASES_RUN[name] += 1
        response = client.request(
            method, path, headers=headers, content=body if method not in ("GET", "HEAD") else None
        )
        statuses[response.status_code] += 1
        assert response.status_code < 500, (method, path, headers, body[:200], response.text[:300])

    one()
    print(f"\n{name}: {CASES_RUN[name]} cases, statuses {dict(sorted(statuses.items()))}")


def test_signed_random_json_objects_are_stored_or_refused_never_5xx(client, settings, signing_key, db_url):
    """Signed event-shaped random JSON objects: 200 and the signed bytes stored once (or 400), never 5xx; the worker then drains them without crashing.

    A pretty-printed body verified through the compact fallback is stored as the compact bytes (what was
    signed); hypothesis repeats objects, and a body already stored under another uuid is a replay: no row.
    """
    name = f"signed_objects[{db_url.split(':', 1)[0].split('+')[0]}]"
    statuses: Counter[str] = Counter()
    engine = make_engine(settings.database_url)

    @fuzz(SIGNED_OBJECTS)
    @given(obj=EVENT_OBJECTS, pretty=st.booleans())
    def one(obj: dict[str, Any], pretty: bool) -> None:
        CASES_RUN[name] += 1
        signed = compact_json(obj)  # what Dyte signs (JSON.stringify)
        sent = json.dumps(obj, indent=2).encode() if pretty else signed
        delivery_id = str(uuid.uuid4())
        headers = signed_headers(signed, signing_key, delivery_id=delivery_id)
        response = client.post("/webhooks/dyte", content=sent, headers=headers)
        statuses[f"{response.status_code}:{response.json().get('parse_status', response.json().get('error'))}"] += 1
        assert response.status_code in (200, 400), (obj, response.status_code, response.text[:300])
        if response.status_code == 200:
            assert response.json()["status"] in ("stored", "replay")
            stored_id = response.json()["delivery_id"]
            assert stored_id == delivery_id
            everything = stored_events(engine)
            rows = [r for r in everything if r.delivery_id == delivery_id]
            if response.json()["status"] == "replay":
                assert rows == [] and [r for r in everything if r.raw_body == signed]
            else:
                assert len(rows) == 1 and rows[0].raw_body == signed

    try:
        one()
        rows = stored_events(engine)
        result = asyncio.run(Worker(settings, engine).run(once=True))
        drained = stored_events(engine)
    finally:
        engine.dispose()
    after = Counter(row.status for row in drained)
    assert not after.get("processing") and not after.get("pending"), after
    # The receive path does not validate the model: the worker flags what fails it (ignored, parse_status invalid).
    was_pending = {r.id for r in rows if r.status == "pending"}
    flagged = [r for r in drained if r.id in was_pending and r.status == "ignored"]
    assert all(r.parse_status == "invalid" and r.parse_error for r in flagged)
    assert (
        result.done
        == after.get("done", 0)
        == len(was_pending) - len(flagged) - after.get("failed", 0) - after.get("dead", 0)
    )
    assert after.get("failed", 0) + after.get("dead", 0) <= result.failed  # a failure may be retried within the drain
    print(f"\n{name}: {CASES_RUN[name]} cases, answers {dict(statuses)}; worker {result!r}, inbox {dict(after)}")
    for row in drained:  # processing failures are recorded and retried, not crashes; shown for the record
        if row.status in ("failed", "dead"):
            print(f"  worker failure on {row.event_name}: {(row.last_error or '').splitlines()[0][:200]}")


# --------------------------------------------------------------------------- schemathesis

OPENAPI: dict[str, Any] = {
    "openapi": "3.0.3",
    "info": {"title": "receiver webhook endpoint", "version": "1"},
    "paths": {
        "/webhooks/dyte": {
            "post": {
                "parameters": [
                    {"name": "dyte-signature", "in": "header", "required": True, "schema": {"type": "string"}},
                    {
                        "name": "dyte-uuid",
                        "in": "header",
                        "required": True,
                        "schema": {"type": "string", "maxLength": 300},
                    },
                    {"name": "dyte-webhook-id", "in": "header", "required": False, "schema": {"type": "string"}},
                ],
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "required": ["event"],
                                "properties": {
                                    "event": {"type": "string", "enum": list(KNOWN_EVENTS) + ["meeting.pollCreated"]},
                                    "meeting": {
                                        "type": "object",
                                        "properties": {
                                            "id": {"type": "string"},
                                            "sessionId": {"type": "string"},
                                            "startedAt": {"type": "string", "format": "date-time"},
                                        },
                                    },
                                    "participant": {
                                        "type": "object",
                                        "properties": {"peerId": {"type": "string"}, "joinedAt": {"type": "string"}},
                                    },
                                },
                            }
                        }
                    },
                },
                "responses": {
                    "200": {"description": "stored, duplicate or conflict"},
                    "400": {"description": "malformed JSON"},
                    "401": {"description": "bad signature"},
                    "413": {"description": "too large"},
                    "415": {"description": "not JSON"},
                },
            }
        },
        "/healthz": {"get": {"responses": {"200": {"description": "alive"}}}},
        "/readyz": {"get": {"responses": {"200": {"description": "ready"}, "503": {"description": "not ready"}}}},
    },
}


def _schemathesis():
    return pytest.importorskip("schemathesis", reason="schemathesis is not installed (pip install schemathesis)")


def _send(client, case, signing_key=None) -> Any:
    """Send a schemathesis case through the starlette TestClient (signing its JSON body when a key is given)."""
    kwargs = case.as_transport_kwargs(base_url="http://testserver")
    headers: dict[str, Any] = {}
    for key, value in (kwargs.get("headers") or {}).items():
        if key.lower() in ("user-agent", "x-schemathesis-testcaseid", "accept-encoding", "connection", "accept"):
            continue
        headers[key] = value.encode("utf-8", "surrogateescape") if isinstance(value, str) else value
    if "json" in kwargs:
        content = json.dumps(kwargs["json"]).encode()
        headers.setdefault("Content-Type", b"application/json")
    else:
        data = kwargs.get("data")
        content = data.encode("utf-8", "surrogatepass") if isinstance(data, str) else data
    if signing_key is not None and content is not None:
        headers["dyte-signature"] = sign_body(content, signing_key).encode()
    return client.request(
        kwargs["method"], kwargs["url"], headers=headers, content=content, params=kwargs.get("params")
    )


@pytest.mark.parametrize("signed", [False, True], ids=["as-generated", "signed"])
def test_schemathesis_cases_never_get_a_5xx(client, signing_key, db_url, signed):
    """Schemathesis cases (positive and negative) for POST /webhooks/dyte, /healthz and /readyz never get a 5xx."""
    schemathesis = _schemathesis()
    from schemathesis.generation.modes import GenerationMode

    schema = schemathesis.openapi.from_dict(OPENAPI)
    statuses: Counter[int] = Counter()
    for result in schema.get_all_operations():
        operation = result.ok()
        name = (
            f"schemathesis[{db_url.split(':', 1)[0].split('+')[0]}-{'signed' if signed else 'raw'}] {operation.label}"
        )
        strategy = operation.as_strategy(GenerationMode.POSITIVE) | operation.as_strategy(GenerationMode.NEGATIVE)
        limit = SCHEMATHESIS_PER_OPERATION if operation.method.upper() == "POST" else 5

        @fuzz(limit)
        @given(case=strategy)
        def one(case) -> None:
            CASES_RUN[name] += 1  # noqa: B023
            response = _send(client, case, signing_key if signed else None)
            statuses[response.status_code] += 1
            assert response.status_code < 500, (case.method, case.path, case.headers, case.body, response.text[:300])

        one()
    print(f"\nschemathesis[{'signed' if signed else 'raw'}]: statuses {dict(sorted(statuses.items()))}")
