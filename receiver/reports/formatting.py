"""Rendering report rows as a terminal table (rich), CSV or JSON.

CSV: UTF-8, a header row, ISO 8601 UTC timestamps (``...Z``), empty cell
for null. JSON: a list of objects with the same keys and formats.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from rich.console import Console
from rich.table import Table

from receiver.timeparse import to_iso

__all__ = ["FORMATS", "cell", "to_csv", "to_json", "to_table", "render"]

FORMATS = ("table", "csv", "json")


def cell(value: Any) -> Any:
    """JSON-ready value: datetimes as ISO 8601 UTC, lists kept, everything else as is."""
    if isinstance(value, datetime):
        return to_iso(value)
    return value


def to_csv(rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> str:
    """CSV text with a header row."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(columns)
    for row in rows:
        values = []
        for column in columns:
            value = cell(row.get(column))
            if isinstance(value, bool):
                value = "true" if value else "false"
            elif isinstance(value, list):
                value = "; ".join(map(str, value))
            values.append("" if value is None else value)
        writer.writerow(values)
    return buffer.getvalue()


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
