"""The one place where a list answer of the reports API or a page becomes JSON, CSV or XLSX (issue #21).

Two kinds of answer:

* :func:`export_response`: one page of a list (the rows are in memory,
  at most ``limit``): JSON is the ``json_body`` the endpoint built (an
  envelope with ``items``); CSV and XLSX are the rows' ``columns``, written
  by :func:`receiver.reports.export.stream_export` (header row, times in
  UTC or the ``tz`` zone, empty cell for null, formula-like cells
  neutralised).
* :func:`stream_download`: every matching row of an export
  (``/api/export/...``, ``/ui/export/...``), read lazily and streamed.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, date, datetime, tzinfo
from typing import Any

from starlette.responses import JSONResponse, Response, StreamingResponse

from receiver.reports.export import EXPORT_FORMATS, MEDIA_TYPES, export_filename, stream_export
from receiver.reports.formatting import cell

__all__ = ["NO_STORE", "TABLE_FORMATS", "export_response", "json_items", "stream_download"]

NO_STORE = {"Cache-Control": "no-store"}
#: The tabular ones: the pages offer a download button for each.
TABLE_FORMATS: tuple[str, ...] = tuple(f for f in EXPORT_FORMATS if f != "json")


def _value(value: Any, zone: tzinfo = UTC) -> Any:
    """A JSON-ready value: a calendar date as ``YYYY-MM-DD``, the rest as :func:`receiver.reports.formatting.cell`."""
    if isinstance(value, date) and not isinstance(value, datetime):
        return value.isoformat()
    return cell(value, zone)


def json_items(rows: Sequence[dict[str, Any]], columns: Sequence[str], zone: tzinfo = UTC) -> list[dict[str, Any]]:
    """``rows`` restricted to ``columns``, each value made JSON-ready (times ISO 8601 in ``zone``, dates ``YYYY-MM-DD``)."""
    return [{c: _value(r.get(c), zone) for c in columns} for r in rows]


def export_response(
    fmt: str,
    rows: Sequence[dict[str, Any]],
    columns: Sequence[str],
    *,
    json_body: dict[str, Any],
    filename: str | None = None,
    headers: dict[str, str] | None = None,
    zone: tzinfo = UTC,
) -> Response:
    """The answer of a list endpoint in format ``fmt`` (``json``, ``csv`` or ``xlsx``, from ``response_format``).

    ``rows``/``columns``: what the tabular formats carry; ``json_body``:
    the JSON answer. ``filename`` (no extension): CSV is sent as an
    attachment named ``<filename>.csv`` (XLSX always is, ``export.xlsx``
    without a name). ``headers`` are added to every format (e.g.
    ``X-Total-Count``); answers are never cached. ``zone``: the time zone
    of the tabular formats' times (``tz=``; default UTC).

    Raises:
        ValueError: an unknown ``fmt`` (callers pass a checked one).
    """
    extra = {**NO_STORE, **(headers or {})}
    if fmt == "json":
        return JSONResponse(json_body, headers=extra)
    if fmt not in ("csv", "xlsx"):
        raise ValueError(f"no export format {fmt!r}")
    if filename or fmt == "xlsx":
        extra["Content-Disposition"] = f'attachment; filename="{export_filename(filename or "export", fmt)}"'
    body = b"".join(stream_export(rows, columns, fmt, zone=zone, title=filename or "export"))
    return Response(body, media_type=MEDIA_TYPES[fmt], headers=extra)


def stream_download(
    rows: Iterable[dict[str, Any]], columns: Sequence[str], fmt: str, zone: tzinfo, name: str
) -> StreamingResponse:
    """A streamed download of every row of ``rows`` as ``fmt`` (csv, json, xlsx), named ``<name>.<fmt>``.

    :func:`receiver.reports.export.stream_export` in a ``StreamingResponse``
    (``Content-Disposition: attachment``). ``rows`` is consumed while the
    body is sent (in Starlette's thread pool for a plain iterator), so a
    lazy iterator reads the database as the client downloads (constant
    memory; issue #23 item 4).
    """
    headers = {**NO_STORE, "Content-Disposition": f'attachment; filename="{export_filename(name, fmt)}"'}
    return StreamingResponse(
        stream_export(rows, columns, fmt, zone=zone, title=name), media_type=MEDIA_TYPES[fmt], headers=headers
    )
