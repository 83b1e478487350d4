"""The organisation overview: sessions, people and attended minutes per UTC day or ISO week (issue #21).

One ``GROUP BY`` over ``sessions`` joined to the ``attendance`` view
(docs/schema.md; the same numbers as ``receiver report attendance`` for
ended sessions, live sessions count the leaves known so far), so the
database does the sums; at most ``MAX_BUCKETS`` rows come back. A session
counts in the day/week it started (UTC); ``people`` is the number of
distinct participant keys in the bucket (not a sum of days).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import String, column, distinct, func, literal_column, select, table
from sqlalchemy.engine import Engine

from receiver.db.models import Session
from receiver.reports.trends import fill_buckets, minutes

__all__ = ["DEFAULT_SPAN_DAYS", "MAX_BUCKETS", "OVERVIEW_COLUMNS", "PERIODS", "overview_window", "usage_overview"]

PERIODS = ("day", "week")
#: Most days or weeks one overview covers.
MAX_BUCKETS = 400
OVERVIEW_COLUMNS: tuple[str, ...] = ("period_start", "sessions", "people", "attended_minutes")

#: The default window of each period, days back from ``until``.
DEFAULT_SPAN_DAYS = {"day": 90, "week": 7 * 26}


def overview_window(
    period: str, since: datetime | None, until: datetime | None, now: datetime
) -> tuple[datetime, datetime]:
    """The ``[since, until)`` an overview covers: ``until`` defaults to ``now``, ``since`` to ``until`` minus
    ``DEFAULT_SPAN_DAYS[period]``; checked as :func:`usage_overview` checks it.

    Raises:
        ValueError: an unknown ``period``, ``until`` not after ``since``, or more than ``MAX_BUCKETS`` buckets.
    """
    if period not in PERIODS:
        raise ValueError(f"period: use {' or '.join(PERIODS)}")
    end = until or now
    start = since or end - timedelta(days=DEFAULT_SPAN_DAYS[period])
    if end <= start:
        raise ValueError("until must be after since")
    if (end - start) / timedelta(days=1 if period == "day" else 7) > MAX_BUCKETS:
        raise ValueError(f"window too long: at most {MAX_BUCKETS} {period}s")
    return start, end


_ATTENDANCE = table("attendance", column("session_id"), column("participant_key"), column("attended_seconds"))


def _bucket_sql(dialect: str, period: str) -> str:
    """SQL text of the ``YYYY-MM-DD`` start of a session's UTC day or ISO week."""
    started = "sessions.started_at"
    if dialect == "postgresql":
        if period == "day":
            return f"to_char({started} AT TIME ZONE 'UTC', 'YYYY-MM-DD')"
        return f"to_char(date_trunc('week', {started} AT TIME ZONE 'UTC'), 'YYYY-MM-DD')"
    if period == "day":
        return f"substr({started}, 1, 10)"
    return f"date(substr({started}, 1, 10), 'weekday 0', '-6 days')"  # the Monday on or before


def usage_overview(engine: Engine, *, period: str, since: datetime, until: datetime) -> list[dict[str, Any]]:
    """Per ``period`` (``day`` or ``week``, UTC) of session start in ``[since, until)``: ``OVERVIEW_COLUMNS``.

    ``period_start`` is a :class:`datetime.date` (the day, or the Monday of
    the ISO week); ``attended_minutes`` is minutes (0.1). Buckets without
    sessions between the first and the last are filled with zeros.

    Raises:
        ValueError: an unknown ``period``, ``until`` not after ``since``, or
            a window of more than ``MAX_BUCKETS`` days/weeks.
    """
    overview_window(period, since, until, until)
    bucket = literal_column(_bucket_sql(engine.dialect.name, period), String())
    statement = (
        select(
            bucket.label("period_start"),
            func.count(distinct(Session.session_id)),
            func.count(distinct(_ATTENDANCE.c.participant_key)),
            func.sum(_ATTENDANCE.c.attended_seconds),
        )
        .select_from(Session)
        .outerjoin(_ATTENDANCE, _ATTENDANCE.c.session_id == Session.session_id)
        .where(Session.started_at >= since, Session.started_at < until)
        .group_by(bucket)
    )
    with engine.connect() as connection:
        found = connection.execute(statement).all()
    values = {
        datetime.strptime(str(day), "%Y-%m-%d").date(): {
            "sessions": int(sessions),
            "people": int(people),
            "attended_minutes": minutes(float(seconds) if seconds is not None else None),
        }
        for day, sessions, people, seconds in found
    }
    return fill_buckets(values, period, {"sessions": 0, "people": 0, "attended_minutes": 0.0})
