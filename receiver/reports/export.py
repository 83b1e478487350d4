"""Exports: report rows streamed as CSV, JSON or XLSX bytes, one function for the CLI and the API.

:func:`stream_export` is the format dispatch every export goes through
(``receiver report ... --format csv|json|xlsx``, ``/api/export/...``, the
pages' download buttons); a new list endpoint gets all three formats by
handing it its rows and columns. Rows are consumed as they come, so memory
does not grow with the number of rows (issue #23 item 4) as long as the
caller's iterator does not hold them all (see
:func:`receiver.reports.attendance_stream.iter_attendance`).

The cells are those of :mod:`receiver.reports.formatting` (CSV, JSON) and
:mod:`receiver.reports.xlsx`; times are UTC unless a zone is given.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from datetime import UTC, tzinfo
from typing import Any

from receiver.reports.formatting import cell, csv_header, csv_line
from receiver.reports.xlsx import write_xlsx

__all__ = ["CHUNK_BYTES", "EXPORT_FORMATS", "MEDIA_TYPES", "export_filename", "stream_export"]

EXPORT_FORMATS = ("csv", "json", "xlsx")
#: Content types of the export formats.
MEDIA_TYPES = {
    "csv": "text/csv; charset=utf-8",
    "json": "application/json",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
}
#: Bytes gathered before a chunk is handed on.
CHUNK_BYTES = 64 * 1024


def export_filename(name: str, fmt: str) -> str:
    """The download file name: ``name`` (letters, digits, ``-`` and ``_`` kept) plus the format's extension."""
    safe = "".join(ch if ch.isalnum() or ch in "-_" else "-" for ch in name)[:80] or "report"
    return f"{safe}.{fmt}"


def _gathered(parts: Iterable[str]) -> Iterator[bytes]:
    buffer: list[str] = []
    size = 0
    for part in parts:
        buffer.append(part)
        size += len(part)
        if size >= CHUNK_BYTES:
            yield "".join(buffer).encode("utf-8")
            buffer, size = [], 0
    if buffer:
        yield "".join(buffer).encode("utf-8")


def _csv_parts(rows: Iterable[dict[str, Any]], columns: Sequence[str], zone: tzinfo) -> Iterator[str]:
    yield csv_header(columns) + "\n"
    for row in rows:
        yield csv_line(row, columns, zone) + "\n"


def _json_parts(rows: Iterable[dict[str, Any]], columns: Sequence[str], zone: tzinfo) -> Iterator[str]:
    # The text of formatting.to_json (indent 2), one object at a time.
    first = True
    for row in rows:
        item = json.dumps({c: cell(row.get(c), zone) for c in columns}, indent=2, ensure_ascii=False)
        yield ("[\n  " if first else ",\n  ") + item.replace("\n", "\n  ")
        first = False
    yield "[]" if first else "\n]"


def _xlsx_chunks(rows: Iterable[dict[str, Any]], columns: Sequence[str], zone: tzinfo, title: str) -> Iterator[bytes]:
    with tempfile.TemporaryFile() as spool:  # the workbook is a zip: written whole, then read back in chunks
        write_xlsx(rows, columns, spool, title=title, zone=zone)
        spool.seek(0)
        while chunk := spool.read(CHUNK_BYTES):
            yield chunk


def stream_export(
    rows: Iterable[dict[str, Any]],
    columns: Sequence[str],
    fmt: str,
    *,
    zone: tzinfo = UTC,
    title: str = "report",
) -> Iterator[bytes]:
    """``rows`` (dicts) rendered as ``fmt`` (``csv``, ``json`` or ``xlsx``), as chunks of bytes.

    CSV and JSON: UTF-8 text equal to :func:`receiver.reports.formatting.to_csv`
    / ``to_json`` of the same rows, in chunks of about :data:`CHUNK_BYTES`
    as rows arrive. XLSX: a workbook (:func:`receiver.reports.xlsx.write_xlsx`,
    worksheet ``title``) built in a temporary file, then read out in chunks.
    Times are in ``zone`` (UTC by default).

    Raises:
        ValueError: an unknown format (raised when the iterator is created, before any row is read).
    """
    if fmt not in EXPORT_FORMATS:
        raise ValueError(f"unknown export format {fmt!r}; use one of {', '.join(EXPORT_FORMATS)}")
    if fmt == "csv":
        return _gathered(_csv_parts(rows, columns, zone))
    if fmt == "json":
        return _gathered(_json_parts(rows, columns, zone))
    return _xlsx_chunks(rows, columns, zone, title)
