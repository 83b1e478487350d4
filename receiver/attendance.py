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
from datetime import datetime

__all__ = ["Interval", "AttendanceRow", "union_seconds", "attendance_rows", "peak_concurrency"]


@dataclass(frozen=True)
class Interval:
    """One peer's presence. ``left_at`` None means the leave was never seen."""

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
    by_person: dict[str, list[Interval]] = {}
    for interval in intervals:
        by_person.setdefault(interval.participant_key, []).append(interval)
    duration = None
    if session_start is not None and session_end is not None:
        duration = max((session_end - session_start).total_seconds(), 0.0)
    rows: list[AttendanceRow] = []
    for key, person in by_person.items():
        person = sorted(person, key=lambda i: _sort_time(i.joined_at))
        spans = [s for s in (_effective_span(i, session_start, session_end) for i in person) if s is not None]
        attended = union_seconds((start, end) for start, end, _ in spans)
        names: list[str] = []
        for interval in person:
            if interval.display_name and interval.display_name not in names:
                names.append(interval.display_name)
        joined = [i.joined_at for i in person if i.joined_at is not None]
        ends = [end for _, end, _ in spans]
        rows.append(
            AttendanceRow(
                session_id=session_id,
                meeting_id=meeting_id,
                participant_key=key,
                display_name=names[-1] if names else None,
                first_joined_at=min(joined) if joined else None,
                last_left_at=max(ends) if ends else None,
                attended_seconds=round(attended, 3),
                join_count=len(person),
                attendance_ratio=round(attended / duration, 4) if duration else None,
                closed_at_session_end=any(closed for _, _, closed in spans),
                display_names=tuple(names),
                sources=tuple(sorted({i.source for i in person})),
            )
        )
    rows.sort(key=lambda r: (_sort_time(r.first_joined_at), r.participant_key))
    return rows


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
