"""The one place where a list answer of the reports API becomes JSON or CSV (issue #21).

Every list endpoint renders through :func:`export_response`, so another
format (XLSX) is one branch here plus its name in
:func:`receiver.web.params.response_format`. CSV is the rows' ``columns``
(header row, ISO 8601 UTC times, empty cell for null, formula-like cells
neutralised by :func:`receiver.reports.formatting.to_csv`); JSON is the
``json_body`` the endpoint built (an envelope with ``items``).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime
from typing import Any

from starlette.responses import JSONResponse, Response

from receiver.reports.formatting import cell, to_csv

__all__ = ["EXPORT_FORMATS", "NO_STORE", "TABLE_FORMATS", "export_response", "json_items"]

NO_STORE = {"Cache-Control": "no-store"}
#: Formats :func:`export_response` writes (add ``xlsx`` here with its branch below).
EXPORT_FORMATS: tuple[str, ...] = ("json", "csv")
#: The tabular ones: the pages offer a download button for each.
TABLE_FORMATS: tuple[str, ...] = tuple(f for f in EXPORT_FORMATS if f != "json")


def _value(value: Any) -> Any:
    """A JSON-ready value: a calendar date as ``YYYY-MM-DD``, the rest as :func:`receiver.reports.formatting.cell`."""
    if isinstance(value, date) and not isinstance(value, datetime):
        return value.isoformat()
    return cell(value)


def json_items(rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> list[dict[str, Any]]:
    """``rows`` restricted to ``columns``, each value made JSON-ready (times ISO 8601 UTC, dates ``YYYY-MM-DD``)."""
    return [{c: _value(r.get(c)) for c in columns} for r in rows]


def _with_dates(rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> Sequence[dict[str, Any]]:
    """``rows`` with calendar dates as text (CSV writes datetimes itself); the same list when there are none."""
    if not any(isinstance(r.get(c), date) and not isinstance(r.get(c), datetime) for r in rows[:1] for c in columns):
        return rows
    return [{**r, **{c: _value(r.get(c)) for c in columns if isinstance(r.get(c), date)}} for r in rows]


def _safe_name(name: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in name)[:100] or "export"


def export_response(
    fmt: str,
    rows: Sequence[dict[str, Any]],
    columns: Sequence[str],
    *,
    json_body: dict[str, Any],
    filename: str | None = None,
    headers: dict[str, str] | None = None,
) -> Response:
    """The answer of a list endpoint in format ``fmt`` (``json`` or ``csv``, from ``response_format``).

    ``rows``/``columns``: what the tabular formats carry; ``json_body``:
    the JSON answer. ``filename`` (no extension): CSV is sent as an
    attachment named ``<filename>.csv``. ``headers`` are added to either
    (e.g. ``X-Total-Count``); answers are never cached.

    Raises:
        ValueError: an unknown ``fmt`` (callers pass a checked one).
    """
    extra = {**NO_STORE, **(headers or {})}
    if fmt == "csv":
        if filename:
            extra["Content-Disposition"] = f'attachment; filename="{_safe_name(filename)}.csv"'
        return Response(to_csv(_with_dates(rows, columns), columns), media_type="text/csv", headers=extra)
    if fmt == "json":
        return JSONResponse(json_body, headers=extra)
    raise ValueError(f"no export format {fmt!r}")
