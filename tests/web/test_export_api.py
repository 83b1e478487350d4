"""GET /api/export/{attendance,sessions,recordings} (issue #21 item 2, issue #23 item 4) and tz= on the listings.

Data: the scripted meetings of test_api.py (s-1 of "Weekly sync": alice 10:00-11:00 on two devices,
bob 20 min, carol without a custom participant id, open until the end 11:00; s-2: alice 30 min; s-3 live).
"""

from __future__ import annotations

import csv
import io
from datetime import datetime

import pytest
from openpyxl import load_workbook
from pydantic import SecretStr
from starlette.testclient import TestClient
from test_api import AUTH, OTHER_TOKEN, TOKEN, analyst_client, build_dataset

from receiver.db.engine import make_engine
from receiver.reports.queries import ATTENDANCE_REPORT_COLUMNS, RECORDING_COLUMNS, SESSION_COLUMNS
from receiver.settings import Settings


@pytest.fixture
def client(settings: Settings):
    """An API client on test_api's scripted meetings (TOKEN: operator, OTHER_TOKEN: analyst)."""
    api = settings.model_copy(update={"api_tokens": SecretStr(f"ops:operator:{TOKEN},{OTHER_TOKEN}")})
    engine = make_engine(api.database_url)
    build_dataset(engine)
    with analyst_client(api) as c:
        yield c
    engine.dispose()


def _csv(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


def test_attendance_export_csv_has_every_row_and_the_analyst_columns(client: TestClient) -> None:
    """No page: all 5 rows; an attachment; title, guest flag and minutes as computed by hand."""
    response = client.get("/api/export/attendance?format=csv", headers=AUTH)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    assert response.headers["content-disposition"] == 'attachment; filename="attendance.csv"'
    assert response.text.splitlines()[0] == ",".join(ATTENDANCE_REPORT_COLUMNS)
    rows = _csv(response.text)
    assert len(rows) == 5
    s1 = {r["participant_key"]: r for r in rows if r["session_id"] == "s-1"}
    alice, carol = s1["alice"], next(r for k, r in s1.items() if k not in ("alice", "bob"))
    assert (alice["meeting_title"], alice["is_guest"], alice["custom_participant_id"]) == (
        "Weekly sync",
        "false",
        "alice",
    )
    assert (alice["attended_seconds"], alice["attended_minutes"]) == ("3600.0", "60.0")
    assert (s1["bob"]["attended_seconds"], s1["bob"]["attended_minutes"]) == ("1200.0", "20.0")
    assert (carol["is_guest"], carol["custom_participant_id"], carol["attended_minutes"]) == ("true", "", "50.0")


def test_attendance_export_xlsx_reads_back_typed(client: TestClient) -> None:
    """XLSX: one worksheet, the header, 5 rows; times are date cells, seconds numbers, flags booleans."""
    response = client.get("/api/export/attendance?format=xlsx&session_id=s-1", headers=AUTH)
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    assert response.headers["content-disposition"] == 'attachment; filename="attendance.xlsx"'
    sheet = load_workbook(io.BytesIO(response.content))["attendance"]
    header, *rows = list(sheet.iter_rows(values_only=True))
    assert list(header) == list(ATTENDANCE_REPORT_COLUMNS) and len(rows) == 3
    alice = dict(zip(header, next(r for r in rows if r[header.index("participant_key")] == "alice"), strict=True))
    assert alice["first_joined_at"] == datetime(2026, 3, 2, 10, 0)
    assert alice["attended_seconds"] == 3600 and alice["is_guest"] is False and alice["meeting_title"] == "Weekly sync"


def test_sessions_and_recordings_exports_in_each_format(client: TestClient) -> None:
    """Sessions and recordings export every row as CSV, JSON (a plain array) and XLSX."""
    sessions_json = client.get("/api/export/sessions?format=json", headers=AUTH).json()
    assert [s["session_id"] for s in sessions_json] == ["s-1", "s-2", "s-3"]
    assert list(sessions_json[0]) == list(SESSION_COLUMNS)
    sessions_csv = _csv(client.get("/api/export/sessions", headers=AUTH).text)  # csv by default
    assert [s["session_id"] for s in sessions_csv] == ["s-1", "s-2", "s-3"]
    book = load_workbook(io.BytesIO(client.get("/api/export/recordings?format=xlsx", headers=AUTH).content))
    header, *rows = list(book["recordings"].iter_rows(values_only=True))
    assert list(header) == list(RECORDING_COLUMNS) and len(rows) == 2
    assert {r[header.index("file_size_bytes")] for r in rows} == {2044680}


def test_tz_renders_times_in_the_zone_everywhere(client: TestClient) -> None:
    """tz=Europe/Berlin: 10:00Z in March is 11:00+01:00 in the listing JSON and CSV and in the export."""
    listing = client.get("/api/attendance?tz=Europe/Berlin&participant=alice", headers=AUTH)
    assert listing.status_code == 200
    assert listing.json()["items"][0]["first_joined_at"] == "2026-03-02T11:00:00+01:00"
    page_csv = _csv(client.get("/api/sessions/s-1/attendance?format=csv&tz=Europe/Berlin", headers=AUTH).text)
    assert {r["first_joined_at"] for r in page_csv if r["participant_key"] == "alice"} == {"2026-03-02T11:00:00+01:00"}
    exported = _csv(client.get("/api/export/attendance?participant=alice&tz=Europe/Berlin", headers=AUTH).text)
    assert [r["first_joined_at"] for r in exported] == ["2026-03-02T11:00:00+01:00", "2026-03-03T10:00:00+01:00"]
    utc = client.get("/api/sessions/s-1", headers=AUTH).json()
    assert utc["started_at"] == "2026-03-02T10:00:00Z"
    book = load_workbook(io.BytesIO(client.get("/api/export/sessions?format=xlsx&tz=Asia/Tokyo", headers=AUTH).content))
    assert book["sessions"]["D1"].value == "started_at (Asia/Tokyo)"
    assert book["sessions"]["D2"].value == datetime(2026, 3, 2, 19, 0)


def test_export_mistakes_are_400(client: TestClient) -> None:
    """Unknown zone or format, a page parameter on an export, a bad time: 400 with a JSON error, never 500."""
    for path in (
        "/api/export/attendance?tz=Mars/Base",
        "/api/attendance?tz=%2B02:00",
        "/api/export/attendance?format=pdf",
        "/api/export/recordings?format=",  # empty is not a format (schemathesis found it accepted as CSV)
        "/api/export/sessions?limit=10",
        "/api/export/recordings?since=yesterday",
    ):
        response = client.get(path, headers=AUTH)
        assert response.status_code == 400, path
        assert response.json()["error"] == "bad_request", path
    assert client.get("/api/export/attendance").status_code == 401
