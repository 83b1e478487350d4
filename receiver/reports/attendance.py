"""Attendance arithmetic: pure functions over participant intervals.

Vocabulary (Dyte's): a *peer* is one connection of a participant to a
session; a *person* is identified by ``participant_key`` (the custom
participant id when the app set one, else the peer id). A person who
rejoins, or joins from two devices at once, has several peers.

Rules:

* attended time is the length of the **union** of the person's intervals:
  time on two devices at once counts once;
* intervals are clipped to the session ``[started_at, ended_at]``;
* an interval with no leave is closed at the session end (or at ``as_of``
  for a live session) and the row is flagged ``closed_at_session_end``;
* ``attendance_ratio = attended_seconds / session duration seconds``.

All datetimes are timezone-aware UTC; durations are seconds (float).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, NamedTuple

__all__ = [
    "Interval",
    "AttendanceRow",
    "PersonAttendance",
    "union_seconds",
    "person_attendance",
    "attendance_rows",
    "peak_concurrency",
]


class Interval(NamedTuple):
    """One peer's presence. ``left_at`` None means the leave was never seen.

    A named tuple: the arithmetic reads fields by position, so any tuple (or
    database row) with these fields in this order is accepted where an
    :class:`Interval` is (``receiver.reports.queries`` passes rows straight through).
    """

    peer_id: str
    participant_key: str
    joined_at: datetime | None
    left_at: datetime | None
    display_name: str | None = None
    custom_participant_id: str | None = None
    source: str = "webhook"
    closed_at_session_end: bool = False


@dataclass(frozen=True)
class AttendanceRow:
    """One person in one session (the row of ``receiver report attendance``)."""

    session_id: str
    meeting_id: str | None
    participant_key: str
    display_name: str | None
    first_joined_at: datetime | None
    last_left_at: datetime | None
    attended_seconds: float
    join_count: int
    attendance_ratio: float | None
    closed_at_session_end: bool
    display_names: tuple[str, ...] = field(default=())
    sources: tuple[str, ...] = field(default=())

    @property
    def provenance(self) -> str:
        """``webhook``, ``api`` or ``both``: who reported this person's intervals."""
        kinds = set(self.sources)
        if kinds == {"webhook"}:
            return "webhook"
        if kinds == {"api"}:
            return "api"
        return "both"


def union_seconds(spans: Iterable[tuple[datetime, datetime]]) -> float:
    """Total seconds covered by ``spans`` (``(start, end)`` pairs), overlaps counted once.

    Empty or negative spans contribute nothing.

    >>> from datetime import datetime, timezone
    >>> t = lambda m: datetime(2026, 1, 1, 0, m, tzinfo=timezone.utc)
    >>> union_seconds([(t(0), t(10)), (t(5), t(15)), (t(20), t(25))])
    1200.0
    """
    ordered = sorted((start, end) for start, end in spans if end > start)
    total = 0.0
    current_start: datetime | None = None
    current_end: datetime | None = None
    for start, end in ordered:
        if current_end is None or start > current_end:
            if current_end is not None and current_start is not None:
                total += (current_end - current_start).total_seconds()
            current_start, current_end = start, end
        elif end > current_end:
            current_end = end
    if current_end is not None and current_start is not None:
        total += (current_end - current_start).total_seconds()
    return total


def _effective_span(
    interval: Interval, session_start: datetime | None, session_end: datetime | None
) -> tuple[datetime, datetime, bool] | None:
    """The interval as counted: clipped to the session, open ends closed at ``session_end``."""
    start = interval.joined_at
    if start is None:
        return None
    end = interval.left_at
    closed = interval.closed_at_session_end
    if end is None:
        if session_end is None:
            return None
        end, closed = session_end, True
    if session_start is not None and start < session_start:
        start = session_start
    if session_end is not None and end > session_end:
        end = session_end
    if end < start:
        end = start
    return start, end, closed


class PersonAttendance(NamedTuple):
    """One person's numbers in one session (what :func:`person_attendance` returns).

    Times are aware UTC datetimes, ``attended_seconds`` is seconds rounded to
    3 decimals, ``attendance_ratio`` a fraction rounded to 4 decimals (None
    when the session duration is unknown or 0). ``display_names`` are the
    distinct non-empty names in join order, ``sources`` the sorted distinct
    ``source`` values, ``provenance`` ``webhook``, ``api`` or ``both``.
    """

    participant_key: str
    display_name: str | None
    first_joined_at: datetime | None
    last_left_at: datetime | None
    attended_seconds: float
    join_count: int
    attendance_ratio: float | None
    closed_at_session_end: bool
    display_names: tuple[str, ...]
    sources: tuple[str, ...]
    provenance: str


_NEVER = datetime.min.replace(tzinfo=UTC)  # sort placeholder for an unknown time (sorted last by the flag before it)


def _provenance(sources: tuple[str, ...]) -> str:
    if sources == ("webhook",):
        return "webhook"
    if sources == ("api",):
        return "api"
    return "both"


def _join_order(interval: Sequence[Any]) -> tuple[bool, datetime]:
    joined = interval[2]
    return (joined is None, joined or _NEVER)


def person_attendance(
    session_start: datetime | None,
    session_end: datetime | None,
    intervals: Iterable[Sequence[Any]],
) -> list[PersonAttendance]:
    """The numbers of every person of one session, ordered by first join (unknown last), then key.

    The arithmetic of :func:`attendance_rows` (which wraps this), without
    building dataclasses: the report path of 10,000-person sessions calls
    it directly.

    Args:
        session_start, session_end: the session's bounds (aware UTC). For a
            live session pass ``as_of`` as ``session_end``; None means
            unknown: open intervals then count nothing.
        intervals: the session's intervals as :class:`Interval` values or
            any tuples/rows with the fields of :class:`Interval` in its order.

    Returns:
        One :class:`PersonAttendance` per distinct ``participant_key``.
    """
    by_person: dict[str, list[Sequence[Any]]] = {}
    for interval in intervals:
        group = by_person.get(interval[1])
        if group is None:
            by_person[interval[1]] = [interval]
        else:
            group.append(interval)
    duration = None
    if session_start is not None and session_end is not None:
        duration = max((session_end - session_start).total_seconds(), 0.0)
    rows: list[PersonAttendance] = []
    append = rows.append
    for key, person in by_person.items():
        if len(person) == 1:  # most people: one peer, no union to take
            peer_id, _, joined, left, name, _, source, closed = person[0][:8]
            attended = 0.0
            last = None
            flagged = False
            if joined is not None:
                if left is None and session_end is not None:
                    left, closed = session_end, True
                if left is not None:
                    start = joined if session_start is None or joined >= session_start else session_start
                    end = left if session_end is None or left <= session_end else session_end
                    if end > start:
                        attended = (end - start).total_seconds()
                    else:
                        end = start
                    last = end
                    flagged = bool(closed)
            names: tuple[str, ...] = (name,) if name else ()
            sources = (source,)
            append(
                PersonAttendance(
                    key,
                    name or None,
                    joined,
                    last,
                    round(attended, 3),
                    1,
                    round(attended / duration, 4) if duration else None,
                    flagged,
                    names,
                    sources,
                    _provenance(sources),
                )
            )
            continue
        person.sort(key=_join_order)
        spans = []
        name_list: list[str] = []
        first = None
        for interval in person:
            span = _effective_span(Interval(*interval[:8]), session_start, session_end)
            if span is not None:
                spans.append(span)
            name = interval[4]
            if name and name not in name_list:
                name_list.append(name)
            joined = interval[2]
            if joined is not None and (first is None or joined < first):
                first = joined
        attended = union_seconds((start, end) for start, end, _ in spans)
        sources = tuple(sorted({interval[6] for interval in person}))
        append(
            PersonAttendance(
                key,
                name_list[-1] if name_list else None,
                first,
                max(end for _, end, _ in spans) if spans else None,
                round(attended, 3),
                len(person),
                round(attended / duration, 4) if duration else None,
                any(closed for _, _, closed in spans),
                tuple(name_list),
                sources,
                _provenance(sources),
            )
        )
    rows.sort(key=_person_order)
    return rows


def _person_order(row: PersonAttendance) -> tuple[bool, datetime, str]:
    first = row.first_joined_at
    return (first is None, first or _NEVER, row.participant_key)


def attendance_rows(
    session_id: str,
    meeting_id: str | None,
    session_start: datetime | None,
    session_end: datetime | None,
    intervals: Sequence[Interval],
) -> list[AttendanceRow]:
    """One :class:`AttendanceRow` per person, ordered by first join then key.

    Args:
        session_start, session_end: the session's bounds (UTC). For a live
            session pass ``as_of`` (e.g. now) as ``session_end``; None means
            unknown: open intervals are then left out of the totals.
        intervals: every peer interval of the session.
    """
    return [
        AttendanceRow(
            session_id=session_id,
            meeting_id=meeting_id,
            participant_key=p.participant_key,
            display_name=p.display_name,
            first_joined_at=p.first_joined_at,
            last_left_at=p.last_left_at,
            attended_seconds=p.attended_seconds,
            join_count=p.join_count,
            attendance_ratio=p.attendance_ratio,
            closed_at_session_end=p.closed_at_session_end,
            display_names=p.display_names,
            sources=p.sources,
        )
        for p in person_attendance(session_start, session_end, intervals)
    ]


def _sort_time(value: datetime | None) -> float:
    """Sort key: epoch seconds, unknown times last."""
    return value.timestamp() if value is not None else float("inf")


def peak_concurrency(spans: Iterable[tuple[datetime, datetime]]) -> int:
    """Most peers connected at the same instant (a leave at t before a join at t)."""
    points: list[tuple[datetime, int]] = []
    for start, end in spans:
        if end > start:
            points.append((start, 1))
            points.append((end, -1))
    points.sort(key=lambda p: (p[0], p[1]))
    peak = current = 0
    for _, delta in points:
        current += delta
        peak = max(peak, current)
    return peak
