"""The reports HTTP API (/api) on SQLite and PostgreSQL: auth, pagination, CSV/JSON, filters, errors, retry, OpenAPI.

The scripted data (:func:`build_dataset`, applied as webhook events through
``apply_event``, plus stored inbox rows in every state):

* meeting ``m-1`` "Weekly sync", session ``s-1`` 2026-03-02 10:00-11:00:
  alice on two devices (a1 10:00-10:40, a2 10:30-11:00), bob rejoining
  (b1 10:05-10:15, b2 10:20-10:30), carol (no custom id: key ``c1``) from
  10:10 never leaving (closed at the end by meeting.ended); recording
  ``r-1`` whose link expired in 2020;
* session ``s-2`` of ``m-1``, 2026-03-03 09:00-09:30: alice (a3) throughout;
  recording ``r-2`` whose link expires in 2099;
* meeting ``m-2`` "Town <hall> & co", session ``s-3`` 2026-03-04 from 12:00,
  still live: frank 12:00-12:10;
* inbox events 1..5: done, failed, dead, ignored, processing; the bodies
  hold a fake ``streamKey`` that must never be served.
"""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime
from itertools import count
from typing import Any

import pytest
from pydantic import SecretStr
from sqlalchemy import insert, select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session as OrmSession
from starlette.testclient import TestClient

from receiver.db.engine import make_engine
from receiver.db.models import AuditEntry, WebhookEvent
from receiver.processing.apply import apply_event
from receiver.providers.dyte.events import parse_event
from receiver.reports.queries import ATTENDANCE_REPORT_COLUMNS, SESSION_COLUMNS
from receiver.settings import Settings
from receiver.web.api import analyst_routes
from receiver.web.app import create_app
from receiver.web.openapi import openapi_document

TOKEN = "test-token-1"
OTHER_TOKEN = "second-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
SECRET_IN_BODY = "SECRET-STREAM-KEY-do-not-show"


# --------------------------------------------------------------------------
# Data
# --------------------------------------------------------------------------


def _meeting(meeting_id: str, session_id: str, title: str, started: str, ended: str | None = None) -> dict[str, Any]:
    return {
        "id": meeting_id,
        "sessionId": session_id,
        "title": title,
        "status": "LIVE",
        "createdAt": started,
        "startedAt": started,
        "endedAt": ended,
        "organizedBy": {"id": "org-1", "name": "Org"},
    }


def _participant(
    event: str, meeting: dict[str, Any], peer: str, name: str, key: str | None, joined: str, left: str | None = None
):
    participant: dict[str, Any] = {"peerId": peer, "userDisplayName": name, "joinedAt": joined}
    if key:
        participant["customParticipantId"] = key
    if left:
        participant["leftAt"] = left
    return {"event": event, "meeting": meeting, "participant": participant}


def _presence(
    meeting: dict[str, Any], peer: str, name: str, key: str | None, joined: str, left: str | None
) -> list[dict[str, Any]]:
    events = [_participant("meeting.participantJoined", meeting, peer, name, key, joined)]
    if left:
        events.append(_participant("meeting.participantLeft", meeting, peer, name, key, joined, left))
    return events


def _recording(
    meeting: dict[str, Any], recording_id: str, session_id: str, start: str, stop: str, expiry: str
) -> dict[str, Any]:
    return {
        "event": "recording.statusUpdate",
        "meeting": meeting,
        "recording": {
            "id": recording_id,
            "sessionId": session_id,
            "status": "UPLOADED",
            "startedTime": start,
            "stoppedTime": stop,
            "fileSize": 2044680,
            "outputFileName": f"{recording_id}.mp4",
            "downloadUrl": f"https://recordings.example.com/{recording_id}.mp4?sig=abc",
            "audioDownloadUrl": f"https://recordings.example.com/{recording_id}.mp3?sig=abc",
            "downloadUrlExpiry": expiry,
            "recordingDuration": 2999.5,
        },
    }


def dataset_payloads() -> list[dict[str, Any]]:
    """The webhook payloads of the scripted data (see the module docstring), in delivery order."""
    m1s1 = _meeting("m-1", "s-1", "Weekly sync", "2026-03-02T10:00:00.000Z")
    m1s1_end = _meeting("m-1", "s-1", "Weekly sync", "2026-03-02T10:00:00.000Z", "2026-03-02T11:00:00.000Z")
    m1s2 = _meeting("m-1", "s-2", "Weekly sync", "2026-03-03T09:00:00.000Z")
    m1s2_end = _meeting("m-1", "s-2", "Weekly sync", "2026-03-03T09:00:00.000Z", "2026-03-03T09:30:00.000Z")
    m2s3 = _meeting("m-2", "s-3", "Town <hall> & co", "2026-03-04T12:00:00.000Z")
    payloads: list[dict[str, Any]] = [{"event": "meeting.started", "meeting": m1s1}]
    payloads += _presence(m1s1, "a1", "Alice", "alice", "2026-03-02T10:00:00.000Z", "2026-03-02T10:40:00.000Z")
    payloads += _presence(m1s1, "a2", "Alice (phone)", "alice", "2026-03-02T10:30:00.000Z", "2026-03-02T11:00:00.000Z")
    payloads += _presence(m1s1, "b1", "Bob", "bob", "2026-03-02T10:05:00.000Z", "2026-03-02T10:15:00.000Z")
    payloads += _presence(m1s1, "b2", "Bob", "bob", "2026-03-02T10:20:00.000Z", "2026-03-02T10:30:00.000Z")
    payloads += _presence(m1s1, "c1", "Carol", None, "2026-03-02T10:10:00.000Z", None)
    payloads.append({"event": "meeting.ended", "meeting": m1s1_end, "reason": "HOST_ENDED_MEETING"})
    payloads.append(
        _recording(
            m1s1,
            "r-1",
            "s-1",
            "2026-03-02 10:05:00.000000Z",
            "2026-03-02 10:55:00.000000Z",
            "2020-01-01 00:00:00.000000Z",
        )
    )
    payloads.append({"event": "meeting.started", "meeting": m1s2})
    payloads += _presence(m1s2, "a3", "Alice", "alice", "2026-03-03T09:00:00.000Z", "2026-03-03T09:30:00.000Z")
    payloads.append({"event": "meeting.ended", "meeting": m1s2_end, "reason": "ALL_PARTICIPANTS_LEFT"})
    payloads.append(
        _recording(
            m1s2,
            "r-2",
            "s-2",
            "2026-03-03 09:00:00.000000Z",
            "2026-03-03 09:10:00.000000Z",
            "2099-01-01 00:00:00.000000Z",
        )
    )
    payloads.append({"event": "meeting.started", "meeting": m2s3})
    payloads += _presence(m2s3, "f1", "Frank <b>", "frank", "2026-03-04T12:00:00.000Z", "2026-03-04T12:10:00.000Z")
    return payloads


INBOX_STATES = (
    ("done", 1, None),
    ("failed", 3, "database is locked"),
    ("dead", 8, "boom <script>alert(1)</script>"),
    ("ignored", 0, None),
    ("processing", 1, None),
)


def build_dataset(engine: Engine) -> None:
    """Apply :func:`dataset_payloads` through ``apply_event`` and store inbox events 1..5 (one per state)."""
    received = datetime(2026, 3, 5, tzinfo=UTC)
    event_ids = count(1000)
    with OrmSession(engine) as db, db.begin():
        for payload in dataset_payloads():
            apply_event(db, parse_event(payload), event_id=next(event_ids), received_at=received, now=received)
    with engine.begin() as connection:
        for index, (status, attempts, error) in enumerate(INBOX_STATES, start=1):
            body = json.dumps(
                {"event": "livestreaming.statusUpdate", "streamId": f"ls-{index}", "streamKey": SECRET_IN_BODY}
            )
            connection.execute(
                insert(WebhookEvent).values(
                    id=index,
                    delivery_id=f"delivery-{index}",
                    webhook_id="wh-1",
                    event_name="livestreaming.statusUpdate" if status != "ignored" else "meeting.unknownThing",
                    raw_body=body.encode(),
                    body_sha256="0" * 64,
                    signature_scheme="raw",
                    received_at=datetime(2026, 3, 5, 0, 0, index, tzinfo=UTC),
                    parse_status="ok" if status != "ignored" else "unknown_event",
                    parse_error=None if status != "ignored" else "unknown event name",
                    session_id="s-1" if index <= 2 else None,
                    status=status,
                    attempts=attempts,
                    last_error=error,
                    locked_by="worker-x" if status == "processing" else None,
                    locked_until=datetime(2099, 1, 1, tzinfo=UTC) if status == "processing" else None,
                    duplicate_count=0,
                    conflict_count=0,
                )
            )


def analyst_client(settings: Settings) -> TestClient:
    """A TestClient on the app with the analyst routes (use as a context manager to run the lifespan)."""
    return TestClient(create_app(settings, extra_routes=analyst_routes(settings)), raise_server_exceptions=True)


@pytest.fixture
def api_settings(settings: Settings) -> Settings:
    """The test settings with two API tokens: TOKEN named ``ops`` with the operator role, OTHER_TOKEN plain (analyst)."""
    return settings.model_copy(update={"api_tokens": SecretStr(f"ops:operator:{TOKEN}, {OTHER_TOKEN}")})


@pytest.fixture
def data_engine(api_settings: Settings):
    """An engine on the test database holding :func:`build_dataset`."""
    engine = make_engine(api_settings.database_url)
    build_dataset(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def client(api_settings: Settings, data_engine: Engine):
    """An API client on the scripted data."""
    with analyst_client(api_settings) as c:
        yield c


def _csv(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


# --------------------------------------------------------------------------
# Auth
# --------------------------------------------------------------------------

GUARDED = [
    ("GET", "/api/sessions"),
    ("GET", "/api/sessions/s-1"),
    ("GET", "/api/sessions/s-1/attendance"),
    ("GET", "/api/attendance"),
    ("GET", "/api/recordings"),
    ("GET", "/api/events"),
    ("POST", "/api/events/2/retry"),
]


def test_missing_token_is_401_with_challenge(client: TestClient) -> None:
    """Every API endpoint answers 401 with a Bearer WWW-Authenticate challenge and a JSON error without a token."""
    for method, path in GUARDED:
        response = client.request(method, path)
        assert response.status_code == 401, path
        assert response.headers["www-authenticate"] == 'Bearer realm="receiver"'
        assert response.json()["error"] == "unauthorized"


def test_wrong_token_is_401(client: TestClient) -> None:
    """A wrong, truncated, over-long or non-Bearer credential is refused with 401 on every endpoint."""
    for header in (f"Bearer {TOKEN}x", "Bearer test-token", f"Basic {TOKEN}", TOKEN, "Bearer ", f"Bearer {'x' * 5000}"):
        for method, path in GUARDED:
            response = client.request(method, path, headers={"Authorization": header})
            assert response.status_code == 401, (header[:20], path)
            assert response.headers["www-authenticate"].startswith('Bearer realm="receiver"')


def test_each_configured_token_is_accepted(client: TestClient) -> None:
    """Both comma-separated tokens of API_TOKENS work, and the scheme name is case-insensitive."""
    assert client.get("/api/sessions", headers=AUTH).status_code == 200
    assert client.get("/api/sessions", headers={"Authorization": f"bearer {OTHER_TOKEN}"}).status_code == 200


def test_query_token_and_cookie_do_not_open_the_api(client: TestClient) -> None:
    """The API takes only the Authorization header: ?token=, a cookie holding the token, or a page sign-in's
    session cookie are not enough."""
    assert client.get(f"/api/sessions?token={TOKEN}").status_code == 401
    client.cookies.set("receiver_token", TOKEN)
    assert client.get("/api/sessions").status_code == 401
    client.cookies.clear()
    signed_in = client.post("/ui/login", data={"token": TOKEN}, follow_redirects=False)
    assert signed_in.status_code == 303 and "receiver_session" in client.cookies
    assert client.get("/api/sessions").status_code == 401


def test_unconfigured_tokens_answer_503(settings: Settings) -> None:
    """Without API_TOKENS every API endpoint answers 503 not_configured, while the OpenAPI document is served."""
    with analyst_client(settings) as c:
        for method, path in GUARDED:
            response = c.request(method, path, headers=AUTH)
            assert response.status_code == 503, path
            assert response.json()["error"] == "not_configured"
        assert c.get("/api/openapi.json").status_code == 200


def test_blank_token_list_is_unconfigured(settings: Settings) -> None:
    """API_TOKENS made only of commas and spaces configures no token (503), so an empty bearer never matches."""
    blank = settings.model_copy(update={"api_tokens": SecretStr(" , ,")})
    with analyst_client(blank) as c:
        assert c.get("/api/sessions", headers={"Authorization": "Bearer  "}).status_code == 503


def test_api_tokens_read_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """API_TOKENS in the environment becomes a secret setting that is not shown in its repr."""
    monkeypatch.setenv("API_TOKENS", "abc,def")
    loaded = Settings()
    assert loaded.api_tokens is not None and loaded.api_tokens.get_secret_value() == "abc,def"
    assert "abc" not in repr(loaded)


# --------------------------------------------------------------------------
# Listings, formats, pagination
# --------------------------------------------------------------------------


def test_sessions_json_envelope(client: TestClient) -> None:
    """GET /api/sessions returns the items/total/limit/offset envelope with every session column."""
    response = client.get("/api/sessions", headers=AUTH)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    assert set(body) == {"items", "total", "limit", "offset"}
    assert body["total"] == 3 and body["limit"] == 100 and body["offset"] == 0
    assert response.headers["x-total-count"] == "3"
    assert [s["session_id"] for s in body["items"]] == ["s-1", "s-2", "s-3"]
    s1 = body["items"][0]
    assert list(s1) == list(SESSION_COLUMNS)
    assert s1["meeting_title"] == "Weekly sync"
    assert s1["started_at"] == "2026-03-02T10:00:00Z" and s1["ended_at"] == "2026-03-02T11:00:00Z"
    assert s1["duration_seconds"] == 3600.0
    assert (s1["participants"], s1["peers"], s1["peak_concurrency"]) == (3, 5, 3)
    assert body["items"][2]["status"] == "live" and body["items"][2]["ended_at"] is None


def test_pagination_limit_and_offset(client: TestClient) -> None:
    """limit and offset slice the rows while total stays the full count."""
    first = client.get("/api/attendance?limit=2", headers=AUTH).json()
    second = client.get("/api/attendance?limit=2&offset=2", headers=AUTH).json()
    everything = client.get("/api/attendance?limit=1000", headers=AUTH).json()
    assert first["total"] == second["total"] == everything["total"] == 5
    assert (first["limit"], first["offset"], second["offset"]) == (2, 0, 2)
    keys = [(r["session_id"], r["participant_key"]) for r in everything["items"]]
    assert [(r["session_id"], r["participant_key"]) for r in first["items"] + second["items"]] == keys[:4]
    past_end = client.get("/api/attendance?offset=50", headers=AUTH).json()
    assert past_end["items"] == [] and past_end["total"] == 5


def test_attendance_pages_with_a_cursor(client: TestClient) -> None:
    """next_cursor walks /api/attendance page by page to the same rows as one big page; Link names the next page."""
    everything = client.get("/api/attendance?limit=1000", headers=AUTH).json()
    assert everything["next_cursor"] is None and everything["total_exact"] is True
    seen: list[dict] = []
    url = "/api/attendance?limit=2"
    for _ in range(10):
        response = client.get(url, headers=AUTH)
        body = response.json()
        assert body["total"] == 5 and response.headers["x-total-exact"] == "true"
        seen += body["items"]
        if body["next_cursor"] is None:
            assert "link" not in response.headers
            break
        assert len(body["items"]) == 2
        link = response.headers["link"]
        assert link.endswith('>; rel="next"') and "cursor=" + body["next_cursor"] in link
        url = f"/api/attendance?limit=2&cursor={body['next_cursor']}"
    assert seen == everything["items"]
    filtered = client.get("/api/attendance?limit=1&meeting_id=m-1", headers=AUTH).json()
    rest = client.get(f"/api/attendance?meeting_id=m-1&cursor={filtered['next_cursor']}", headers=AUTH).json()
    assert [r["meeting_id"] for r in filtered["items"] + rest["items"]] == ["m-1"] * 4
    as_csv = client.get(f"/api/attendance?format=csv&limit=2&cursor={filtered['next_cursor']}", headers=AUTH)
    assert [r["participant_key"] for r in _csv(as_csv.text)] == [r["participant_key"] for r in rest["items"][:2]]


def test_bad_cursors_are_400(client: TestClient) -> None:
    """A cursor the API did not give, or a cursor with an offset, is a 400 with a reason, never a 500."""
    good = client.get("/api/attendance?limit=1", headers=AUTH).json()["next_cursor"]
    for cursor in ("x", "!!!", "bnVsbA", "WzEsMiwzXQ", "WyIyMDI2LTAzLTAyIiwiYSIsLTFd", "a" * 600):
        response = client.get(f"/api/attendance?cursor={cursor}", headers=AUTH)
        assert response.status_code == 400, cursor
        assert response.json()["error"] == "bad_request" and "cursor" in response.json()["detail"]
    both = client.get(f"/api/attendance?offset=1&cursor={good}", headers=AUTH)
    assert both.status_code == 400 and "offset" in both.json()["detail"]
    offset_page = client.get("/api/attendance?offset=1&limit=1", headers=AUTH).json()
    assert offset_page["next_cursor"] is None and offset_page["total"] == 5


def test_a_cursor_names_a_place_whatever_its_time_offset(client: TestClient) -> None:
    """A cursor's time is compared in UTC: the same instant written with +02:00 starts the page at the same row."""
    from receiver.reports.queries import PageKey
    from receiver.web.params import encode_cursor

    utc = PageKey(datetime(2026, 3, 2, 10, 0, tzinfo=UTC), "s-1", 1)
    shifted = PageKey(datetime.fromisoformat("2026-03-02T12:00:00+02:00"), "s-1", 1)
    pages = [client.get(f"/api/attendance?cursor={encode_cursor(k)}", headers=AUTH).json() for k in (utc, shifted)]
    assert pages[0]["items"] == pages[1]["items"]
    everything = client.get("/api/attendance", headers=AUTH).json()["items"]
    assert pages[0]["items"] == everything[2:]


def test_csv_by_query_and_by_accept(client: TestClient) -> None:
    """?format=csv and Accept: text/csv both give the same CSV (header row, no envelope); the query parameter wins."""
    by_query = client.get("/api/attendance?format=csv", headers=AUTH)
    by_accept = client.get("/api/attendance", headers={**AUTH, "Accept": "text/csv"})
    assert by_query.status_code == by_accept.status_code == 200
    assert by_query.headers["content-type"].startswith("text/csv")
    assert by_query.text == by_accept.text
    assert by_query.text.splitlines()[0] == ",".join(ATTENDANCE_REPORT_COLUMNS)
    assert by_query.headers["x-total-count"] == "5"
    rows = _csv(by_query.text)
    assert len(rows) == 5
    carol = next(r for r in rows if r["participant_key"] == "c1")
    assert carol["closed_at_session_end"] == "true" and carol["last_left_at"] == "2026-03-02T11:00:00Z"
    forced_json = client.get("/api/attendance?format=json", headers={**AUTH, "Accept": "text/csv"})
    assert forced_json.headers["content-type"].startswith("application/json")


def test_accept_preference_follows_q_values(client: TestClient) -> None:
    """Accept ranks by q-value: JSON when it is preferred or listed first, CSV when text/csv wins, JSON for */*."""
    cases = {
        "application/json, text/csv": "application/json",
        "text/csv;q=0.5, application/json": "application/json",
        "application/json;q=0.1, text/csv": "text/csv",
        "text/csv, application/json": "text/csv",
        "*/*": "application/json",
        "text/csv;q=0": "application/json",
    }
    for accept, expected in cases.items():
        response = client.get("/api/sessions", headers={**AUTH, "Accept": accept})
        assert response.headers["content-type"].startswith(expected), accept


def test_csv_is_paginated_too(client: TestClient) -> None:
    """CSV pages with limit/offset like JSON, with X-Total-Count carrying the full count."""
    response = client.get("/api/sessions?format=csv&limit=1&offset=1", headers=AUTH)
    rows = _csv(response.text)
    assert [r["session_id"] for r in rows] == ["s-2"]
    assert response.headers["x-total-count"] == "3"


def test_session_detail_and_attendance(client: TestClient) -> None:
    """/api/sessions/{id} is one session object; /attendance lists its people with the union of their devices."""
    detail = client.get("/api/sessions/s-1", headers=AUTH)
    assert detail.status_code == 200 and detail.json()["session_id"] == "s-1"
    assert detail.json()["end_reason"] == "HOST_ENDED_MEETING"
    csv_detail = _csv(client.get("/api/sessions/s-1?format=csv", headers=AUTH).text)
    assert len(csv_detail) == 1 and csv_detail[0]["peak_concurrency"] == "3"
    attendance = client.get("/api/sessions/s-1/attendance", headers=AUTH).json()
    by_key = {row["participant_key"]: row for row in attendance["items"]}
    assert set(by_key) == {"alice", "bob", "c1"}
    assert by_key["alice"]["attended_seconds"] == 3600.0  # 10:00-11:00 on two devices, counted once
    assert by_key["alice"]["join_count"] == 2
    assert by_key["alice"]["display_names"] == ["Alice", "Alice (phone)"]
    assert by_key["bob"]["attended_seconds"] == 1200.0  # two 10-minute visits
    assert by_key["bob"]["display_names"] == ["Bob"]  # one name: still a list in the API
    assert by_key["c1"]["closed_at_session_end"] is True
    assert list(attendance["items"][0]) == [*ATTENDANCE_REPORT_COLUMNS, "display_names"]


def test_unknown_session_is_404(client: TestClient) -> None:
    """An unknown session id gives a JSON 404 on the detail and on its attendance."""
    for path in ("/api/sessions/nope", "/api/sessions/nope/attendance"):
        response = client.get(path, headers=AUTH)
        assert response.status_code == 404
        assert response.json()["error"] == "not_found"


# --------------------------------------------------------------------------
# Filters
# --------------------------------------------------------------------------


def test_attendance_filters(client: TestClient) -> None:
    """meeting_id, participant, since and until narrow the attendance rows; an empty filter means no filter."""

    def keys(query: str) -> list[tuple[str, str]]:
        response = client.get(f"/api/attendance?{query}", headers=AUTH)
        assert response.status_code == 200, response.text
        return [(r["session_id"], r["participant_key"]) for r in response.json()["items"]]

    assert {s for s, _ in keys("meeting_id=m-2")} == {"s-3"}
    assert keys("participant=alice") == [("s-1", "alice"), ("s-2", "alice")]
    assert keys("participant=alice&since=2026-03-03") == [("s-2", "alice")]
    assert keys("participant=alice&until=2026-03-02T12:00:00Z") == [("s-1", "alice")]
    assert keys("since=2026-03-03T08:00:00%2B00:00&until=2026-03-04") == [("s-2", "alice")]
    assert keys("since=2026-03-02T11:00:00") == [("s-2", "alice"), ("s-3", "frank")]  # no offset: UTC
    assert len(keys("meeting_id=&participant=")) == 5
    assert keys("meeting_id=unknown") == []


def test_sessions_and_recordings_filters(client: TestClient) -> None:
    """/api/sessions filters on meeting and time window; /api/recordings on meeting and session."""
    sessions = client.get("/api/sessions?meeting_id=m-1&since=2026-03-03", headers=AUTH).json()
    assert [s["session_id"] for s in sessions["items"]] == ["s-2"]
    recordings = client.get("/api/recordings", headers=AUTH).json()
    assert [r["recording_id"] for r in recordings["items"]] == ["r-2", "r-1"]  # newest first
    r1 = recordings["items"][1]
    assert r1["download_url_expires_at"] == "2020-01-01T00:00:00Z" and r1["file_size_bytes"] == 2044680
    only = client.get("/api/recordings?session_id=s-1", headers=AUTH).json()
    assert [r["recording_id"] for r in only["items"]] == ["r-1"]
    assert client.get("/api/recordings?meeting_id=m-2", headers=AUTH).json()["total"] == 0


BAD_QUERIES = (
    "since=yesterday",
    "since=2026-13-01",
    "until=2026-03-02X10:00:00Z",
    "since=9999-12-31T23:59:59-05:00",
    "limit=0",
    "limit=1001",
    "limit=-1",
    "limit=ten",
    "limit=",
    "offset=-5",
    "offset=1.5",
    "offset=99999999999999999999",
    "format=xml",
    "format=",
    "format=CSV",
    "meeting_id=" + "m" * 201,
    "participant=a%00b",
    "meeting_id=%0A",
    "meeting=m-1",
    "token=abc",
)


def test_bad_query_parameters_are_400(client: TestClient) -> None:
    """A malformed time, out-of-range page, unknown format or parameter, over-long id or control character is a JSON 400, never a 500."""
    for query in BAD_QUERIES:
        response = client.get(f"/api/attendance?{query}", headers=AUTH)
        assert response.status_code == 400, (query, response.text)
        body = response.json()
        assert body["error"] == "bad_request" and body["detail"], query


def test_bad_event_parameters_are_400(client: TestClient) -> None:
    """An unknown status, and a non-numeric, zero or 64-bit-overflowing event id are JSON 400s."""
    assert client.get("/api/events?status=zombie", headers=AUTH).status_code == 400
    assert client.get("/api/events?status=", headers=AUTH).status_code == 400
    for raw in ("abc", "0", "-1", str(2**63), "1e3"):
        response = client.post(f"/api/events/{raw}/retry", headers=AUTH)
        assert response.status_code == 400, raw
        assert response.json()["error"] == "bad_request"


def test_bad_path_session_id_is_400(client: TestClient) -> None:
    """A session id with a control character or over 200 characters is a 400 (a NUL would break PostgreSQL)."""
    assert client.get("/api/sessions/a%00b", headers=AUTH).status_code == 400
    assert client.get("/api/sessions/" + "s" * 201 + "/attendance", headers=AUTH).status_code == 400


# --------------------------------------------------------------------------
# Events and retry
# --------------------------------------------------------------------------


def test_events_list_without_raw_bodies(client: TestClient) -> None:
    """/api/events lists stored events newest first, filters by status and session, and never serves bodies or secrets."""
    response = client.get("/api/events", headers=AUTH)
    body = response.json()
    assert body["total"] == 5
    assert [e["id"] for e in body["items"]] == [5, 4, 3, 2, 1]
    assert "raw_body" not in body["items"][0]
    assert SECRET_IN_BODY not in response.text
    assert SECRET_IN_BODY not in client.get("/api/events?format=csv", headers=AUTH).text
    dead = client.get("/api/events?status=dead", headers=AUTH).json()
    assert [e["id"] for e in dead["items"]] == [3]
    assert dead["items"][0]["attempts"] == 8 and dead["items"][0]["last_error"].startswith("boom")
    by_session = client.get("/api/events?session_id=s-1", headers=AUTH).json()
    assert [e["id"] for e in by_session["items"]] == [2, 1]


@pytest.mark.parametrize("event_id", [2, 3])
def test_retry_requeues_failed_and_dead_events(client: TestClient, data_engine: Engine, event_id: int) -> None:
    """POST /api/events/{id}/retry puts a failed or dead event back to pending with attempts and error reset."""
    response = client.post(f"/api/events/{event_id}/retry", headers=AUTH)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["requeued"] is True
    assert (
        body["event"]["status"] == "pending" and body["event"]["attempts"] == 0 and body["event"]["last_error"] is None
    )
    with OrmSession(data_engine) as db:
        row = db.execute(select(WebhookEvent).where(WebhookEvent.id == event_id)).scalar_one()
        assert (row.status, row.attempts, row.next_attempt_at, row.last_error) == ("pending", 0, None, None)


def test_retry_refuses_ignored_processing_and_unknown(client: TestClient) -> None:
    """Retrying an ignored or processing event is a 409 and an unknown id a 404; nothing changes."""
    assert client.post("/api/events/4/retry", headers=AUTH).status_code == 409
    assert client.post("/api/events/5/retry", headers=AUTH).status_code == 409
    missing = client.post("/api/events/999/retry", headers=AUTH)
    assert missing.status_code == 404 and missing.json()["error"] == "not_found"
    states = {e["id"]: e["status"] for e in client.get("/api/events", headers=AUTH).json()["items"]}
    assert states == {1: "done", 2: "failed", 3: "dead", 4: "ignored", 5: "processing"}


def test_an_analyst_token_may_read_but_not_retry(client: TestClient, data_engine: Engine) -> None:
    """A plain (analyst) token reads every listing but its retry is 403 and changes nothing; the refusal and the
    operator's retry are both in the audit log under the tokens' names, never the tokens."""
    analyst = {"Authorization": f"Bearer {OTHER_TOKEN}"}
    assert client.get("/api/events", headers=analyst).status_code == 200
    denied = client.post("/api/events/2/retry", headers=analyst)
    assert denied.status_code == 403 and denied.json()["error"] == "forbidden"
    assert "operator" in denied.json()["detail"] and OTHER_TOKEN not in denied.text
    with OrmSession(data_engine) as db:
        assert db.execute(select(WebhookEvent.status).where(WebhookEvent.id == 2)).scalar_one() == "failed"
    assert client.post("/api/events/2/retry", headers=AUTH).status_code == 200
    with OrmSession(data_engine) as db:
        rows = db.execute(select(AuditEntry).order_by(AuditEntry.id)).scalars().all()
        entries = [(r.actor, r.role, r.action, r.target, r.outcome, r.source) for r in rows]
    assert entries == [
        ("token-2", "analyst", "retry", "/api/events/2/retry", "denied", "api"),
        ("ops", "operator", "retry", "event:2", "ok", "api"),
    ]


def test_malformed_api_tokens_fail_at_start_up() -> None:
    """A typo in a role, a bad name, a repeated name or a short token is a configuration error naming the entry,
    never echoing the token."""
    from receiver.errors import ConfigurationError

    for raw, needle in (
        ("alice:operatr:aaaaaaaaaaaa", "unknown role"),
        ("alice:aaaaaaaaaaaa", "name:role:token"),
        ("al ice:analyst:aaaaaaaaaaaa", "name must be"),
        ("a:analyst:aaaaaaaaaaaa,a:operator:bbbbbbbbbbbb", "used twice"),
        ("bob:analyst:short", "shorter than 8"),
    ):
        with pytest.raises(ConfigurationError, match=needle) as error:
            analyst_routes(Settings(api_tokens=SecretStr(raw)))
        assert "aaaaaaaaaaaa" not in str(error.value) and "short" not in str(error.value).replace("shorter", "")


def test_retry_needs_post(client: TestClient) -> None:
    """GET on the retry endpoint is 405: a link can never requeue an event."""
    assert client.get("/api/events/2/retry", headers=AUTH).status_code == 405


# --------------------------------------------------------------------------
# OpenAPI
# --------------------------------------------------------------------------


def test_openapi_document_lists_every_route(client: TestClient) -> None:
    """GET /api/openapi.json needs no token and documents every /api route, its parameters and the bearer scheme."""
    response = client.get("/api/openapi.json")
    assert response.status_code == 200
    document = response.json()
    assert document == json.loads(json.dumps(openapi_document()))
    assert document["openapi"].startswith("3.")
    assert document["components"]["securitySchemes"]["bearerAuth"] == {
        "type": "http",
        "scheme": "bearer",
        "description": "A token of API_TOKENS (name:role:token, or a plain token: role analyst). "
        "Every GET needs the analyst role; the retry and the erasure need operator.",
    }
    routes = {
        (method.lower(), route.path)
        for route in analyst_routes(Settings(api_tokens=SecretStr("x" * 16)))
        if route.path.startswith("/api/")
        for method in route.methods - {"HEAD"}
    }
    documented = {(method, path) for path, item in document["paths"].items() for method in item}
    assert documented == routes
    attendance_params = {p["$ref"].rsplit("/", 1)[1] for p in document["paths"]["/api/attendance"]["get"]["parameters"]}
    assert attendance_params == {
        "meeting_id",
        "since",
        "until",
        "participant",
        "cursor",
        "limit",
        "offset",
        "format",
        "tz",
    }
    for path, item in document["paths"].items():
        for operation in item.values():
            if path != "/api/openapi.json":
                assert {"200", "400", "401", "503"} <= set(operation["responses"]), path


def test_openapi_schema_matches_live_answers(client: TestClient) -> None:
    """Every key of the live JSON items is a documented property, and every documented property is present."""
    schemas = openapi_document()["components"]["schemas"]
    samples = {
        "Session": client.get("/api/sessions", headers=AUTH).json()["items"][0],
        "AttendanceRow": client.get("/api/attendance", headers=AUTH).json()["items"][0],
        "Recording": client.get("/api/recordings", headers=AUTH).json()["items"][0],
        "Event": client.get("/api/events", headers=AUTH).json()["items"][0],
    }
    for name, sample in samples.items():
        assert list(sample) == list(schemas[name]["properties"]), name


# --------------------------------------------------------------------------
# Schemathesis: generated requests against the documented contract
# --------------------------------------------------------------------------
# Driven through APIOperation.as_strategy with Hypothesis rather than
# schemathesis.pytest.from_fixture, whose lazy loader breaks on pytest 9
# (it reads the removed Function._nodeid).

# (method, path, generation mode): the parameterless OpenAPI document has no invalid input to generate.
OPERATIONS = sorted(
    (method.upper(), path, mode)
    for path, item in openapi_document()["paths"].items()
    for method in item
    for mode in (("positive",) if path == "/api/openapi.json" else ("positive", "negative"))
)


@pytest.mark.parametrize(("method", "path", "mode"), OPERATIONS, ids=[f"{m} {p} {g}" for m, p, g in OPERATIONS])
def test_api_conforms_to_its_openapi_document(
    api_settings: Settings, data_engine: Engine, method: str, path: str, mode: str
) -> None:
    """Generated requests (30 per operation and mode, valid token) never get a 5xx and every answer matches the documented status, type and schema."""
    schemathesis = pytest.importorskip("schemathesis", reason="schemathesis is not installed (pip install -e .[test])")
    from hypothesis import HealthCheck, given
    from hypothesis import settings as hypothesis_settings
    from schemathesis import checks
    from schemathesis.generation import GenerationMode

    with analyst_client(api_settings) as started:  # runs the lifespan: the engine is on app.state
        operation = schemathesis.openapi.from_asgi("/api/openapi.json", started.app)[path][method]
        strategy = operation.as_strategy(generation_mode=GenerationMode(mode))

        @given(case=strategy)
        @hypothesis_settings(
            max_examples=30, deadline=None, derandomize=True, database=None, suppress_health_check=list(HealthCheck)
        )
        def run(case) -> None:
            case.call_and_validate(
                headers=AUTH,
                checks=[
                    checks.not_a_server_error,
                    checks.status_code_conformance,
                    checks.content_type_conformance,
                    checks.response_schema_conformance,
                    *([checks.negative_data_rejection] if mode == "negative" else []),
                ],
            )

        run()
