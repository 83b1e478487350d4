"""Request parameters of the reports API (``/api``) and pages (``/ui``): parsing and checks.

Owns the limits of every query and path parameter (text length, page size,
offsets, event ids), their parsing into Python values (aware UTC datetimes,
bounded integers, :class:`receiver.reports.queries.ReportFilter`), the
response format negotiation (``?format=`` / ``Accept``) and the unknown
parameter check. Every bad value raises a 400
:class:`receiver.errors.HTTPError` (``bad_request``), never a 500.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Mapping
from datetime import UTC, datetime, tzinfo
from typing import Any

from starlette.requests import Request

from receiver.db.models import EVENT_STATUSES
from receiver.errors import HTTPError
from receiver.reports.export import EXPORT_FORMATS
from receiver.reports.paging import SortError, parse_sort
from receiver.reports.queries import PageKey, ReportFilter
from receiver.timeparse import TimestampError, ZoneError, parse_timestamp, parse_zone

__all__ = [
    "DEFAULT_LIMIT",
    "MAX_CURSOR",
    "MAX_EVENT_ID",
    "MAX_LIMIT",
    "MAX_OFFSET",
    "MAX_TEXT",
    "MAX_TIME_TEXT",
    "check_known_params",
    "cursor_param",
    "encode_cursor",
    "event_id_param",
    "event_status_param",
    "export_format",
    "int_param",
    "page_params",
    "parse_time_param",
    "path_text",
    "report_filter",
    "response_format",
    "sort_param",
    "text_param",
    "zone_param",
]

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000
MAX_OFFSET = 1_000_000_000
#: Longest accepted filter or path identifier, characters.
MAX_TEXT = 200
#: Longest accepted ``since``/``until`` value, characters.
MAX_TIME_TEXT = 64
MAX_EVENT_ID = 2**63 - 1
#: Longest accepted ``cursor``, characters (an encoded :class:`PageKey`: start, session id, position).
MAX_CURSOR = 512
_MAX_POSITION = 2**31 - 1

_DATE_ONLY = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_DIGITS = re.compile(r"^[0-9]{1,19}$")


def _bad(detail: str) -> HTTPError:
    return HTTPError(400, "bad_request", detail)


def _check_text(name: str, value: str) -> str:
    if len(value) > MAX_TEXT:
        raise _bad(f"{name}: longer than {MAX_TEXT} characters")
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in value):
        raise _bad(f"{name}: control characters are not allowed")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise _bad(f"{name}: not valid UTF-8 text") from None
    return value


def text_param(request: Request, name: str) -> str | None:
    """Query parameter ``name`` as text (None when absent or empty); 400 when too long or with control characters."""
    value = request.query_params.get(name)
    if value is None or value == "":
        return None
    return _check_text(name, value)


def path_text(request: Request, name: str) -> str:
    """Path parameter ``name`` as text; 400 when too long or with control characters."""
    return _check_text(name, str(request.path_params[name]))


def parse_time_param(name: str, value: str | None) -> datetime | None:
    """A ``since``/``until`` value as an aware UTC datetime (``YYYY-MM-DD`` = midnight UTC); 400 when unreadable."""
    if value is None or value == "":
        return None
    if len(value) > MAX_TIME_TEXT:
        raise _bad(f"{name}: longer than {MAX_TIME_TEXT} characters")
    _check_text(name, value)
    text = value.strip()
    if _DATE_ONLY.match(text):
        text += "T00:00:00Z"
    try:
        return parse_timestamp(text)
    except (TimestampError, ValueError, OverflowError):
        raise _bad(f"{name}: not a date (YYYY-MM-DD) or ISO 8601 time: {value[:40]!r}") from None


def int_param(request: Request, name: str, default: int, minimum: int, maximum: int) -> int:
    """Query parameter ``name`` as an integer in ``[minimum, maximum]``; 400 otherwise."""
    raw = request.query_params.get(name)
    if raw is None:
        return default
    if not _DIGITS.match(raw):
        raise _bad(f"{name}: not a non-negative integer")
    value = int(raw)
    if value < minimum or value > maximum:
        raise _bad(f"{name}: must be between {minimum} and {maximum}")
    return value


def page_params(request: Request) -> tuple[int, int]:
    """``(limit, offset)`` from the query: limit 1..1000 (default 100), offset 0..1e9 (default 0)."""
    return (
        int_param(request, "limit", DEFAULT_LIMIT, 1, MAX_LIMIT),
        int_param(request, "offset", 0, 0, MAX_OFFSET),
    )


def _accept_prefers_csv(accept: str) -> bool:
    """True when ``Accept`` ranks ``text/csv`` above ``application/json`` (q-values honoured, ties: first listed)."""
    best: dict[str, tuple[float, int]] = {}
    for position, part in enumerate(accept.split(",")):
        media, *params = [p.strip() for p in part.split(";")]
        quality = 1.0
        for param in params:
            key, _, val = param.partition("=")
            if key.strip().lower() == "q":
                try:
                    quality = float(val)
                except ValueError:
                    quality = 0.0
        media = media.lower()
        if media in ("text/csv", "application/json") and media not in best:
            best[media] = (quality, -position)
    csv_rank = best.get("text/csv")
    if csv_rank is None or csv_rank[0] <= 0:
        return False
    json_rank = best.get("application/json")
    return json_rank is None or csv_rank > json_rank


def response_format(request: Request) -> str:
    """``json``, ``csv`` or ``xlsx``: ``?format=`` when given (400 if unknown), else ``csv`` or ``json`` from ``Accept``."""
    fmt = request.query_params.get("format")
    if fmt is not None:
        if fmt not in ("json", "csv", "xlsx"):
            raise _bad("format: use json, csv or xlsx")
        return fmt
    return "csv" if _accept_prefers_csv(request.headers.get("accept", "")) else "json"


def export_format(request: Request) -> str:
    """``?format=`` of an export: ``csv`` (absent: the default), ``json`` or ``xlsx``; 400 otherwise (empty included,
    as for the listings: the OpenAPI enum has no empty value)."""
    fmt = request.query_params.get("format", "csv")
    if fmt not in EXPORT_FORMATS:
        raise _bad(f"format: use {', '.join(EXPORT_FORMATS)}")
    return fmt


def zone_param(request: Request) -> tzinfo:
    """``?tz=``: an IANA time zone for the times of the answer (absent or empty: UTC); 400 when unknown."""
    try:
        return parse_zone(request.query_params.get("tz"))
    except ZoneError as exc:
        raise _bad(f"tz: {exc}") from None


def report_filter(request: Request, *names: str) -> ReportFilter:
    """The :class:`ReportFilter` of query parameters ``names`` (``since``/``until`` as times, the rest as text)."""
    values: dict[str, Any] = {}
    for name in names:
        if name in ("since", "until"):
            values[name] = parse_time_param(name, request.query_params.get(name))
        else:
            values[name] = text_param(request, name)
    return ReportFilter(**values)


def event_id_param(request: Request) -> int:
    """Path parameter ``event_id`` as an integer in ``[1, 2**63 - 1]``; 400 otherwise."""
    raw = str(request.path_params["event_id"])
    if not _DIGITS.match(raw):
        raise _bad("event_id: not a positive integer")
    value = int(raw)
    if value < 1 or value > MAX_EVENT_ID:
        raise _bad(f"event_id: must be between 1 and {MAX_EVENT_ID}")
    return value


def check_known_params(request: Request, known: frozenset[str]) -> None:
    """400 when the query has a parameter outside ``known`` (a misspelt filter must not silently match everything)."""
    unknown = sorted(set(request.query_params.keys()) - known)
    if unknown:
        raise _bad(f"unknown query parameter {unknown[0][:40]!r}; use {', '.join(sorted(known)) or 'none'}")


def event_status_param(request: Request) -> str | None:
    """Query parameter ``status`` (an event processing state of ``EVENT_STATUSES``) or None when absent; 400 otherwise."""
    status = request.query_params.get("status")
    if status is not None and status not in EVENT_STATUSES:
        raise _bad(f"status: use one of {', '.join(EVENT_STATUSES)}")
    return status


def sort_param(request: Request, allowed: Mapping[str, Any], default: str) -> str:
    """Query parameter ``sort`` (``key`` or ``-key``, ``key`` in ``allowed``) as text; ``default`` when absent.

    Raises:
        HTTPError: 400 when present but not a key of ``allowed`` (empty included; the detail lists them).
    """
    raw = request.query_params.get("sort")
    if raw is None:
        return default
    try:
        return parse_sort(raw or "?", allowed, default).text
    except SortError as exc:
        raise _bad(str(exc)) from None


def encode_cursor(key: PageKey) -> str:
    """The opaque ``cursor`` text of ``key``: URL-safe base64 (unpadded) of ``[start ISO 8601 | null, session id,
    position]``. Clients pass it back unchanged (``next_cursor``); its content is not part of the contract."""
    started = None if key.started_at is None else key.started_at.isoformat()
    data = json.dumps([started, key.session_id, key.position], separators=(",", ":"), ensure_ascii=False)
    return base64.urlsafe_b64encode(data.encode("utf-8")).decode("ascii").rstrip("=")


def cursor_param(request: Request) -> PageKey | None:
    """Query parameter ``cursor`` (a ``next_cursor`` this API gave) as a :class:`PageKey`; None when absent or
    empty; 400 when it is not one."""
    raw = request.query_params.get("cursor")
    if raw is None or raw == "":
        return None
    bad = _bad("cursor: not a cursor of this listing (pass next_cursor of the previous page unchanged)")
    if len(raw) > MAX_CURSOR:
        raise _bad(f"cursor: longer than {MAX_CURSOR} characters")
    try:
        data = json.loads(base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)).decode("utf-8"))
    except (binascii.Error, ValueError):  # UnicodeDecodeError and JSONDecodeError are ValueErrors
        raise bad from None
    if not (isinstance(data, list) and len(data) == 3):
        raise bad
    started, session_id, position = data
    if not isinstance(session_id, str) or type(position) is not int or not 0 <= position <= _MAX_POSITION:
        raise bad
    _check_text("cursor", session_id)
    if started is None:
        return PageKey(None, session_id, position)
    if not isinstance(started, str) or len(started) > MAX_TIME_TEXT:
        raise bad
    try:
        when = datetime.fromisoformat(started)
    except ValueError:
        raise bad from None
    if when.tzinfo is None:
        raise bad
    return PageKey(when.astimezone(UTC), session_id, position)
