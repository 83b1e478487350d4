"""XLSX workbooks of report rows, streamed (openpyxl write-only mode), with typed and injection-safe cells.

Owns :func:`write_xlsx`: one worksheet of a header row and one row per
report row, written as the rows come (openpyxl keeps only the current row;
the worksheet goes to a temporary file until the workbook is closed).

Cells (issue #21 item 2):

* datetimes are date cells (``yyyy-mm-dd hh:mm:ss``) holding the wall time in
  the export's time zone (UTC by default): Excel cells carry no zone, so the
  zone is named in the header (``first_joined_at (Europe/Berlin)``) when it is
  not UTC;
* numbers are number cells, booleans boolean cells, null an empty cell,
  lists (every display name) one text cell joined with ``"; "``;
* text is always a text cell (``data_type 's'``), never a formula: a display
  name such as ``=HYPERLINK(...)`` or ``@SUM(A1)`` is stored and shown as that
  text (OWASP "CSV Injection"; unlike CSV, no quote is needed, so the cell
  holds the exact name). Characters XML cannot carry (control characters
  other than tab, CR and LF) are replaced with U+FFFD.

A worksheet holds at most 1,048,576 rows: longer reports continue on
further worksheets (``<title> 2``, ``<title> 3``...), each with the header.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, date, datetime, tzinfo
from decimal import Decimal
from typing import IO, Any

from openpyxl import Workbook
from openpyxl.cell import WriteOnlyCell
from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE, Cell
from openpyxl.worksheet._write_only import WriteOnlyWorksheet

__all__ = ["DATETIME_FORMAT", "SHEET_ROWS", "write_xlsx", "xlsx_header"]

#: Number format of date-time cells.
DATETIME_FORMAT = "yyyy-mm-dd hh:mm:ss"
#: Rows per worksheet (Excel's limit), the header row included.
SHEET_ROWS = 1_048_576
_TITLE_CHARS = 31  # Excel's limit on a worksheet title


def xlsx_header(columns: Sequence[str], zone: tzinfo = UTC) -> list[str]:
    """Header cells: the column names; with a zone other than UTC, time columns (``*_at``) name it."""
    if zone is UTC:
        return list(columns)
    return [f"{c} ({zone})" if c.endswith("_at") else c for c in columns]


def _text(ws: WriteOnlyWorksheet, value: str) -> Cell:
    cell = WriteOnlyCell(ws, value=ILLEGAL_CHARACTERS_RE.sub("\ufffd", value))
    cell.data_type = "s"  # never "f": text starting with "=" stays text
    return cell


def _cell(ws: WriteOnlyWorksheet, value: Any, zone: tzinfo) -> Any:
    if value is None:
        return None
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float, Decimal)):
        return value
    if isinstance(value, datetime):
        moment = value.replace(tzinfo=UTC) if value.tzinfo is None else value
        cell = WriteOnlyCell(ws, value=moment.astimezone(zone).replace(tzinfo=None))
        cell.number_format = DATETIME_FORMAT
        return cell
    if isinstance(value, date):
        return value
    if isinstance(value, (list, tuple)):
        return _text(ws, "; ".join(map(str, value)))
    return _text(ws, str(value))


def write_xlsx(
    rows: Iterable[dict[str, Any]],
    columns: Sequence[str],
    target: str | IO[bytes],
    *,
    title: str = "report",
    zone: tzinfo = UTC,
) -> int:
    """Write ``rows`` (dicts; ``columns`` in order) as an XLSX workbook to ``target`` (a path or a binary file).

    Returns the number of data rows written. Memory stays constant in the
    number of rows (openpyxl write-only mode).

    Raises:
        OSError: ``target`` cannot be written.
    """
    workbook = Workbook(write_only=True)
    base = (title or "report")[:_TITLE_CHARS]
    header = xlsx_header(columns, zone)
    sheet_number = 1
    sheet = workbook.create_sheet(base)
    sheet.append([_text(sheet, h) for h in header])
    used = 1
    count = 0
    for row in rows:
        if used >= SHEET_ROWS:
            sheet_number += 1
            suffix = f" {sheet_number}"
            sheet = workbook.create_sheet(base[: _TITLE_CHARS - len(suffix)] + suffix)
            sheet.append([_text(sheet, h) for h in header])
            used = 1
        sheet.append([_cell(sheet, row.get(c), zone) for c in columns])
        used += 1
        count += 1
    workbook.save(target)
    return count
