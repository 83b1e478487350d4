"""Fitting values to their columns: the write layer never sends a value the database cannot hold.

Authentic events and REST objects carry fields of any length (a 300-character
``roomName``, a 150-character ``reason``); PostgreSQL rejects a value longer
than its ``VARCHAR(n)`` (``StringDataRightTruncation``) and any text holding a
NUL character, and a string with a lone surrogate cannot be encoded at all.
Such a value used to fail the event's transaction on every retry until the
event was dead, and the session never got its end.

The rule, applied by :mod:`receiver.processing.writes` to every row it
writes: a string is cleaned (NUL characters removed, lone surrogates replaced
by U+FFFD) and cut to the column's length; the column's name is then added
to the row's ``truncated_fields`` (comma-separated, sorted; tables without
that column just get the cut value) and logged once per row and column.
Pure functions, no I/O besides the log line.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import structlog
from sqlalchemy import String
from sqlalchemy.sql.expression import FromClause

__all__ = ["column_limits", "fit_text", "fit_values", "fit_row", "merge_flags"]

log = structlog.get_logger("receiver.processing.columns")

_LIMITS: dict[str, dict[str, int | None]] = {}


def column_limits(table: FromClause) -> dict[str, int | None]:
    """``{column name: max characters}`` of ``table``'s string columns (None: unlimited ``TEXT``)."""
    limits = _LIMITS.get(table.description)
    if limits is None:
        limits = _LIMITS[table.description] = {
            column.name: column.type.length for column in table.columns if isinstance(column.type, String)
        }
    return limits


def fit_text(value: str, limit: int | None) -> tuple[str, bool]:
    """``value`` made storable: NULs removed, lone surrogates replaced, cut to ``limit`` characters.

    Returns ``(value, changed)``.
    """
    fitted = value
    if "\x00" in fitted:
        fitted = fitted.replace("\x00", "")
    try:
        fitted.encode("utf-8")
    except UnicodeEncodeError:  # lone surrogates (JSON "\\ud800")
        fitted = _no_surrogates(fitted)
    if limit is not None and len(fitted) > limit:
        fitted = fitted[:limit]
    return fitted, fitted != value


def _no_surrogates(value: str) -> str:
    return "".join("\ufffd" if "\ud800" <= ch <= "\udfff" else ch for ch in value)


def fit_values(table: FromClause, values: Mapping[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """``values`` (column -> value) with every string fitted to its column; and the names of the columns changed."""
    limits = column_limits(table)
    fitted = dict(values)
    changed: list[str] = []
    for name, value in values.items():
        if isinstance(value, str) and name in limits:
            new, cut = fit_text(value, limits[name])
            if cut:
                fitted[name] = new
                changed.append(name)
    return fitted, changed


def merge_flags(current: str | None, names: Iterable[str]) -> str | None:
    """``truncated_fields`` / ``invalid_fields`` text: ``current``'s names plus ``names``, sorted, comma-separated."""
    merged = {name for name in (current or "").split(",") if name} | set(names)
    return ",".join(sorted(merged)) or None


def fit_row(row: Any, table: FromClause | None = None, *, key: str | None = None) -> list[str]:
    """Fit the string attributes of ``row`` (an ORM row, or any object with the columns as attributes).

    ``table`` defaults to ``row.__table__``. Changed columns are added to
    ``row.truncated_fields`` when the table has it, and logged (table,
    ``key`` or the primary key, column, original length; never the value).
    Returns the names of the columns changed.
    """
    table = table if table is not None else row.__table__
    changed: list[str] = []
    for name, limit in column_limits(table).items():
        value = getattr(row, name, None)
        if not isinstance(value, str) or name == "truncated_fields":
            continue
        new, cut = fit_text(value, limit)
        if cut:
            setattr(row, name, new)
            changed.append(name)
            log.warning(
                "value_truncated", table=table.description, row=key or _key(row, table), column=name, length=len(value)
            )
    if changed and "truncated_fields" in table.columns:
        flags = merge_flags(getattr(row, "truncated_fields", None), changed)
        if getattr(row, "truncated_fields", None) != flags:
            row.truncated_fields = flags
    return changed


def _key(row: Any, table: FromClause) -> str:
    return ",".join(str(getattr(row, column.name, "")) for column in table.primary_key)[:120]
