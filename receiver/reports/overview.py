"""The organisation overview: sessions, people and attended minutes per UTC day or ISO week (issue #21).

The numbers are those of :func:`receiver.reports.queries.attendance_report`
(live sessions measured up to now). Ended sessions whose precomputed rows
are current are summed in the database: one ``GROUP BY`` over the sessions
started in the window (``ix_sessions_started_at``) joined to
``session_attendance`` (``pk_session_attendance``), so only the window's
rows are read. (Joining the ``attendance`` view instead reads every stored
row first: 90 days of a 300,000-interval database on PostgreSQL took 1.4 s
that way and 0.27 s this way, load average 11; ``receiver bench reports``.)
The window's other sessions (live, or changed since) are computed from
their intervals and stored, as a report does, and added in Python; for the
buckets they fall in, the stored people's keys are read so that ``people``
stays the number of distinct participant keys of the bucket (not a sum of
days). A session counts in the day/week it started (UTC). At most
``MAX_BUCKETS`` rows come back.
"""

from __future__ import annotations

from contextlib import ExitStack
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import String, distinct, func, literal_column, select, text
from sqlalchemy.engine import Connection, Engine

from receiver.db.models import Session, SessionAttendance, SessionAttendanceRefresh
from receiver.reports.precomputed import compute_stale
from receiver.reports.trends import bucket_start, fill_buckets, minutes

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


def _day(value: Any) -> date:
    return datetime.strptime(str(value), "%Y-%m-%d").date()


def _bucket_bounds(start: date, period: str) -> tuple[datetime, datetime]:
    first = datetime.combine(start, time.min, tzinfo=UTC)
    return first, first + timedelta(days=1 if period == "day" else 7)


def _stored(connection: Connection, period: str, since: datetime, until: datetime) -> dict[date, list[Any]]:
    """Per bucket: [sessions, people, seconds] of the window's sessions whose stored rows are current."""
    bucket = literal_column(_bucket_sql(connection.dialect.name, period), String())
    statement = (
        select(
            bucket,
            func.count(distinct(Session.session_id)),
            func.count(distinct(SessionAttendance.participant_key)),
            func.sum(SessionAttendance.attended_seconds),
        )
        .select_from(Session)
        .join(SessionAttendanceRefresh, SessionAttendanceRefresh.session_id == Session.session_id)
        .outerjoin(SessionAttendance, SessionAttendance.session_id == Session.session_id)
        .where(Session.started_at >= since, Session.started_at < until, Session.ended_at.is_not(None))
        .group_by(bucket)
    )
    return {
        _day(day): [int(sessions), int(people), float(seconds or 0.0)]
        for day, sessions, people, seconds in connection.execute(statement).all()
    }


def _stored_keys(connection: Connection, start: datetime, end: datetime) -> set[str]:
    """The participant keys of the current stored rows of sessions started in ``[start, end)``."""
    return set(
        connection.execute(
            select(SessionAttendance.participant_key)
            .distinct()
            .select_from(Session)
            .join(SessionAttendanceRefresh, SessionAttendanceRefresh.session_id == Session.session_id)
            .join(SessionAttendance, SessionAttendance.session_id == Session.session_id)
            .where(Session.started_at >= start, Session.started_at < end, Session.ended_at.is_not(None))
        ).scalars()
    )


def usage_overview(
    engine: Engine, *, period: str, since: datetime, until: datetime, as_of: datetime | None = None
) -> list[dict[str, Any]]:
    """Per ``period`` (``day`` or ``week``, UTC) of session start in ``[since, until)``: ``OVERVIEW_COLUMNS``.

    ``period_start`` is a :class:`datetime.date` (the day, or the Monday of
    the ISO week); ``attended_minutes`` is minutes (0.1). Buckets without
    sessions between the first and the last are filled with zeros. Live
    sessions are measured up to ``as_of`` (default now, UTC).

    Raises:
        ValueError: an unknown ``period``, ``until`` not after ``since``, or
            a window of more than ``MAX_BUCKETS`` days/weeks.
        sqlalchemy.exc.SQLAlchemyError: the database could not be read.
    """
    overview_window(period, since, until, until)
    as_of = as_of or datetime.now(UTC)
    postgres = engine.dialect.name == "postgresql"
    reader = engine.execution_options(isolation_level="REPEATABLE READ") if postgres else engine
    with ExitStack() as reading:  # stored sums and the list of the others from one snapshot
        connection = reading.enter_context(reader.connect())
        reading.enter_context(connection.begin())
        if postgres:
            connection.execute(text("SET LOCAL timezone = 'UTC'"))
        totals = _stored(connection, period, since, until)
        found = connection.execute(
            select(Session.session_id, Session.started_at, Session.ended_at)
            .outerjoin(SessionAttendanceRefresh, SessionAttendanceRefresh.session_id == Session.session_id)
            .where(
                Session.started_at >= since,
                Session.started_at < until,
                (SessionAttendanceRefresh.session_id.is_(None)) | (Session.ended_at.is_(None)),
            )
        ).all()
        # (session id, its bucket, ended) of the sessions to compute
        others = [
            (sid, bucket_start(started.date(), period), ended is not None)
            for sid, started, ended in found
            if started is not None
        ]
        keys = {
            bucket: _stored_keys(connection, *_bucket_bounds(bucket, period)) for bucket in {b for _, b, _ in others}
        }
    if others:
        _, computed = compute_stale(engine, [sid for sid, _, _ in others], {s for s, _, e in others if e}, as_of, True)
        for session_id, bucket, _ in others:
            people = computed.get(session_id, [])
            entry = totals.setdefault(bucket, [0, 0, 0.0])
            entry[0] += 1
            entry[2] += sum(p.attended_seconds for p in people)
            keys[bucket].update(p.participant_key for p in people)
        for bucket, bucket_keys in keys.items():
            totals[bucket][1] = len(bucket_keys)
    values = {
        bucket: {"sessions": sessions, "people": people, "attended_minutes": minutes(seconds)}
        for bucket, (sessions, people, seconds) in totals.items()
    }
    return fill_buckets(values, period, {"sessions": 0, "people": 0, "attended_minutes": 0.0})
