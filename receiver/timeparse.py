"""Parsing of Dyte timestamps into timezone-aware UTC datetimes.

Dyte sends two timestamp formats (see ``shared/dyte/FACTS.md``):

* ISO 8601 with ``T``: ``2022-12-13T06:57:09.736Z`` (meeting and participant
  fields, most REST fields);
* space separated with microseconds: ``2023-01-25 04:51:35.903816Z``
  (recording fields, download URL expiries).

The REST API also returns ``null``, the string ``"null"`` or an empty string
where a timestamp is absent; :func:`is_nullish` is that rule, shared by every
Dyte field (:mod:`receiver.providers.dyte.coercion`). Every function here is
pure.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from receiver.errors import ReceiverError

__all__ = [
    "NULL_TEXTS",
    "TimestampError",
    "ZoneError",
    "is_nullish",
    "parse_timestamp",
    "parse_optional_timestamp",
    "parse_zone",
    "to_iso",
    "to_local_iso",
]

#: Texts that mean "absent" where Dyte sends a value (compared stripped and lower-cased): the REST API
#: and webhook payloads send ``null``, ``"null"``, ``""`` and ``"undefined"`` for missing fields (FACTS.md).
NULL_TEXTS = frozenset({"", "null", "none", "undefined"})
# Characters that may legitimately appear in a Dyte timestamp.
_ALLOWED = re.compile(r"^[0-9T:\-+. Zz]+$")


class TimestampError(ReceiverError, ValueError):
    """A value that should be a timestamp cannot be read as one."""


class ZoneError(ReceiverError, ValueError):
    """A time zone name that is not an IANA zone (``Europe/Berlin``, ``America/New_York``, ``UTC``)."""


_ZONE_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_+\-]*(/[A-Za-z0-9_+\-]+)*$")


def parse_zone(name: str | None) -> tzinfo:
    """The IANA time zone ``name`` (``Europe/Berlin``); None, ``""``, ``UTC`` and ``Z`` give UTC.

    Zones come from the system's zone database, else the ``tzdata`` package.
    Only zone names are accepted: no offsets (``+02:00`` would ignore summer
    time) and no paths.

    Raises:
        ZoneError: not a known zone name.
    """
    if name is None or name.strip() in ("", "UTC", "Z", "utc", "z"):
        return UTC
    text = name.strip()
    if len(text) > 64 or not _ZONE_NAME.match(text) or ".." in text:
        raise ZoneError(f"not an IANA time zone name: {text[:64]!r} (e.g. Europe/Berlin, America/New_York, UTC)")
    try:
        return ZoneInfo(text)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise ZoneError(f"unknown time zone {text!r} (an IANA name such as Europe/Berlin or UTC)") from None


def to_local_iso(value: datetime | None, zone: tzinfo = UTC) -> str | None:
    """ISO 8601 text of ``value`` in ``zone``: ``...Z`` for UTC (as :func:`to_iso`), else with the zone's offset
    at that instant (``2026-03-02T11:00:00+01:00``). Naive datetimes are taken as UTC; None passes through."""
    if zone is UTC or value is None:
        return to_iso(value)
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(zone).isoformat()


def is_nullish(value: object) -> bool:
    """True for ``None`` and for a string in :data:`NULL_TEXTS` (surrounding spaces and case ignored)."""
    return value is None or (isinstance(value, str) and value.strip().lower() in NULL_TEXTS)


def parse_timestamp(value: object) -> datetime:
    """Parse one Dyte timestamp into an aware UTC ``datetime``.

    Accepts ``datetime`` (naive values are taken as UTC), ISO 8601 strings
    with ``T`` or a space between date and time, a trailing ``Z`` or an
    offset, and any number of fractional digits (truncated to microseconds).
    Epoch numbers are taken as seconds, or milliseconds when larger than
    1e11.

    Raises:
        TimestampError: the value is empty, null-like or malformed (for
            example a stray character such as ``2023-01-25X04:51:35Z``).
    """
    if isinstance(value, datetime):
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    if isinstance(value, bool):
        raise TimestampError(f"not a timestamp: {value!r}")
    if isinstance(value, (int, float)):
        seconds = value / 1000 if value > 1e11 else value
        try:
            return datetime.fromtimestamp(seconds, tz=UTC)
        except (OverflowError, OSError, ValueError) as exc:
            raise TimestampError(f"epoch out of range: {value!r}") from exc
    if not isinstance(value, str):
        raise TimestampError(f"not a timestamp: {value!r}")
    text = value.strip()
    if text.lower() in NULL_TEXTS:
        raise TimestampError("empty timestamp")
    if not _ALLOWED.match(text):
        raise TimestampError(f"malformed timestamp: {value!r}")
    try:  # the common case: Python 3.11+ reads "Z" and any number of fractional digits itself
        parsed = datetime.fromisoformat(text)
    except ValueError:
        if text[-1] in "Zz":
            text = text[:-1] + "+00:00"
        # Older spellings: trim fractions longer than microseconds.
        text = re.sub(r"(\.\d{6})\d+", r"\1", text)
        try:
            parsed = datetime.fromisoformat(text)
        except ValueError as exc:
            raise TimestampError(f"malformed timestamp: {value!r}") from exc
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def parse_optional_timestamp(value: object) -> datetime | None:
    """Like :func:`parse_timestamp`, but ``None``, ``""`` and ``"null"`` give ``None``.

    Raises:
        TimestampError: the value is present but malformed.
    """
    if is_nullish(value):
        return None
    return parse_timestamp(value)


def to_iso(value: datetime | None) -> str | None:
    """Format an aware datetime as ISO 8601 UTC with a ``Z`` suffix (``None`` passes through).

    Naive datetimes (as SQLite returns them) are taken as UTC.
    """
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    text = value.astimezone(UTC).isoformat()
    return text.replace("+00:00", "Z")
