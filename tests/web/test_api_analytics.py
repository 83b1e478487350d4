"""The issue #21 API mirrors on both databases: search and sort on the listings, event filters and the payload
view, a person, a series, the overview; JSON and CSV through the one export function; clear 400s and 404s.

Data: :func:`test_api.build_dataset` (see that module's docstring).
"""

from __future__ import annotations

import io
from datetime import datetime

import openpyxl
import test_api
from starlette.testclient import TestClient
from test_api import AUTH, SECRET_IN_BODY, _csv

# The scripted data and the API client of test_api.py.
api_settings = test_api.api_settings
data_engine = test_api.data_engine
client = test_api.client


def _ids(client: TestClient, path: str, key: str) -> list[str]:
    response = client.get(path, headers=AUTH)
    assert response.status_code == 200, (path, response.text)
    return [item[key] for item in response.json()["items"]]


def test_listings_search_sort_and_window(client: TestClient) -> None:
    """q finds sessions by a person's name and recordings by file name; sort flips the order; a window narrows."""
    assert _ids(client, "/api/sessions?q=bob", "session_id") == ["s-1"]
    assert _ids(client, "/api/sessions?sort=-started_at&limit=2", "session_id") == ["s-3", "s-2"]
    assert client.get("/api/sessions?sort=-started_at&limit=2", headers=AUTH).json()["total"] == 3
    assert _ids(client, "/api/recordings?q=r-1.mp4", "recording_id") == ["r-1"]
    assert _ids(client, "/api/recordings?sort=started_at", "recording_id") == ["r-1", "r-2"]
    assert _ids(client, "/api/recordings?since=2026-03-03", "recording_id") == ["r-2"]
    csv_rows = _csv(client.get("/api/sessions?q=weekly&format=csv", headers=AUTH).text)
    assert [r["session_id"] for r in csv_rows] == ["s-1", "s-2"]


def test_bad_sort_is_a_clear_400(client: TestClient) -> None:
    """A sort key outside the whitelist (or SQL) is refused naming the allowed keys, never run."""
    for path in ("/api/sessions?sort=peers", "/api/recordings?sort=download_url", "/api/events?sort=raw_body"):
        response = client.get(path, headers=AUTH)
        assert response.status_code == 400, path
        assert response.json()["error"] == "bad_request" and "sort: use one of" in response.json()["detail"]


def test_event_filters_and_payload_view(client: TestClient) -> None:
    """Events filter by type, session and delivery id; the payload view pretty-prints the body without the key."""
    assert _ids(client, "/api/events?event_name=meeting.unknownThing", "id") == [4]
    assert _ids(client, "/api/events?session_id=s-1&sort=id", "id") == [1, 2]
    assert _ids(client, "/api/events?delivery_id=delivery-5", "id") == [5]
    assert _ids(client, "/api/events?since=2026-03-05T00:00:03Z", "id") == [5, 4, 3]
    listing = client.get("/api/events", headers=AUTH).text
    assert SECRET_IN_BODY not in listing and "payload" not in listing
    detail = client.get("/api/events/1", headers=AUTH)
    assert detail.status_code == 200
    body = detail.json()
    assert body["payload_state"] == "stored" and '"streamId": "ls-1"' in body["payload"]
    assert SECRET_IN_BODY not in detail.text and "[redacted]" in body["payload"]
    assert client.get("/api/events/999", headers=AUTH).status_code == 404


def test_person_json_csv_and_weeks(client: TestClient) -> None:
    """Alice: totals, her week, a page of sessions (newest first); CSV is the session rows as an attachment."""
    body = client.get("/api/people/alice?limit=1", headers=AUTH).json()
    assert body["person"]["sessions"] == 2 and body["person"]["attended_seconds"] == 5400.0
    assert body["person"]["first_seen_at"] == "2026-03-02T10:00:00Z"
    assert body["weeks"] == [{"period_start": "2026-03-02", "sessions": 2, "attended_minutes": 90.0}]
    assert [i["session_id"] for i in body["items"]] == ["s-2"] and body["total"] == 2
    response = client.get("/api/people/alice?format=csv", headers=AUTH)
    assert response.headers["content-type"].startswith("text/csv")
    assert 'filename="person-alice.csv"' in response.headers["content-disposition"]
    assert [(r["session_id"], r["meeting_title"]) for r in _csv(response.text)] == [
        ("s-2", "Weekly sync"),
        ("s-1", "Weekly sync"),
    ]
    weeks = _csv(client.get("/api/people/alice/weeks?format=csv", headers=AUTH).text)
    assert weeks == [{"period_start": "2026-03-02", "sessions": "2", "attended_minutes": "90.0"}]
    assert client.get("/api/people/nobody", headers=AUTH).status_code == 404
    assert client.get("/api/people/alice?since=2027-01-01", headers=AUTH).status_code == 404


def test_series_json_and_csv(client: TestClient) -> None:
    """m-1's matrix: alice at both occurrences, bob and carol at the first; CSV has one row per attended cell."""
    body = client.get("/api/meetings/m-1/series", headers=AUTH).json()
    assert body["title"] == "Weekly sync" and body["total_occurrences"] == 2
    assert [o["session_id"] for o in body["occurrences"]] == ["s-1", "s-2"]
    assert {p["participant_key"]: p["minutes"] for p in body["people"]} == {
        "alice": [60.0, 30.0],
        "bob": [20.0, None],
        "c1": [50.0, None],
    }
    rows = _csv(client.get("/api/meetings/m-1/series?format=csv", headers=AUTH).text)
    assert len(rows) == 4 and {r["participant_key"] for r in rows} == {"alice", "bob", "c1"}
    assert client.get("/api/meetings/m-1/series?occurrences=53", headers=AUTH).status_code == 400
    assert client.get("/api/meetings/nope/series", headers=AUTH).status_code == 404


def test_overview_json_csv_and_bad_windows(client: TestClient) -> None:
    """Per day over a chosen window; per week; a reversed or too long window and an unknown period are 400s."""
    body = client.get("/api/overview?since=2026-03-01&until=2026-03-08", headers=AUTH).json()
    assert body["period"] == "day"
    assert [(i["period_start"], i["sessions"], i["people"]) for i in body["items"]] == [
        ("2026-03-02", 1, 3),
        ("2026-03-03", 1, 1),
        ("2026-03-04", 1, 1),
    ]
    weeks = _csv(
        client.get("/api/overview?period=week&since=2026-03-01&until=2026-03-08&format=csv", headers=AUTH).text
    )
    assert weeks == [{"period_start": "2026-03-02", "sessions": "3", "people": "4", "attended_minutes": "170.0"}]
    xlsx = client.get("/api/overview?period=week&since=2026-03-01&until=2026-03-08&format=xlsx", headers=AUTH)
    sheet = openpyxl.load_workbook(io.BytesIO(xlsx.content)).active
    header, row = ([cell.value for cell in line] for line in sheet.iter_rows())
    assert header == ["period_start", "sessions", "people", "attended_minutes"]
    assert row == [datetime(2026, 3, 2), 3, 4, 170.0]  # typed cells: the week's start is a date, not text
    for query in ("since=2026-03-08&until=2026-03-01", "since=2020-01-01&until=2026-03-01", "period=month", "period="):
        response = client.get(f"/api/overview?{query}", headers=AUTH)
        assert response.status_code == 400, query
        assert response.json()["error"] == "bad_request"
