"""Timestamp renderings used by Dyte, shared by the sandbox's webhooks and REST API.

* :func:`iso_ms` - ISO 8601 with ``T`` and milliseconds, ``2022-12-13T06:57:09.736Z``
  (webhook meeting/participant fields and REST fields);
* :func:`recording_ts` - space separated with microseconds,
  ``2023-01-25 04:51:35.903816Z`` (webhook recording fields and URL expiries).

Both take aware datetimes, convert to UTC, and map ``None`` to ``None``.
"""

from __future__ import annotations

from datetime import UTC, datetime

__all__ = ["iso_ms", "recording_ts"]


def iso_ms(value: datetime | None) -> str | None:
    """``2022-12-13T06:57:09.736Z`` (UTC, milliseconds truncated), or ``None``."""
    if value is None:
        return None
    value = value.astimezone(UTC)
    return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"


def recording_ts(value: datetime | None) -> str | None:
    """``2023-01-25 04:51:35.903816Z`` (UTC, microseconds), or ``None``."""
    if value is None:
        return None
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%fZ")
