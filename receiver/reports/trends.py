"""Pure arithmetic of the person, series and overview reports: weekly buckets, a person's summary, the
occurrences x people matrix of a recurring meeting and its attendance trend.

No database access: the inputs are attendance rows (``ATTENDANCE_COLUMNS``:
``attended_seconds`` in seconds, ``attendance_ratio`` 0..1, times aware
UTC) and session rows (``SESSION_COLUMNS``). Weeks are ISO weeks starting
Monday 00:00 UTC; minutes are ``seconds / 60`` rounded to 0.1.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

__all__ = [
    "MatrixRow",
    "SeriesMatrix",
    "bucket_start",
    "fill_buckets",
    "minutes",
    "person_summary",
    "series_matrix",
    "weekly_minutes",
]


def minutes(seconds: float | None) -> float:
    """``seconds`` as minutes rounded to 0.1 (None counts as 0)."""
    return round((seconds or 0.0) / 60.0, 1)


def bucket_start(day: date, period: str) -> date:
    """The first day of ``day``'s ``period``: the day itself (``day``) or the Monday of its ISO week (``week``).

    Raises:
        ValueError: ``period`` is neither ``day`` nor ``week``.
    """
    if period == "day":
        return day
    if period == "week":
        return day - timedelta(days=day.weekday())
    raise ValueError(f"period: use day or week, not {period!r}")


def fill_buckets(values: dict[date, dict[str, Any]], period: str, zero: dict[str, Any]) -> list[dict[str, Any]]:
    """``values`` (bucket start -> numbers) as a list from the first to the last bucket, missing ones as ``zero``.

    Each item is ``{"period_start": date, **numbers}``; empty input gives [].
    """
    if not values:
        return []
    step = timedelta(days=1 if period == "day" else 7)
    first, last = min(values), max(values)
    result = []
    current = bucket_start(first, period)
    while current <= last:
        result.append({"period_start": current, **values.get(current, zero)})
        current += step
    return result


def _start_of(row: dict[str, Any]) -> datetime | None:
    value: datetime | None = row.get("session_started_at") or row.get("first_joined_at")
    return value


def weekly_minutes(rows: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Attended minutes and sessions per ISO week (Monday, UTC) of a person's attendance rows, gaps filled with 0.

    The week of a row is that of ``session_started_at`` when present, else
    of ``first_joined_at``; rows with neither are left out. Items:
    ``{"period_start": date, "sessions": int, "attended_minutes": float}``.
    """
    totals: dict[date, dict[str, Any]] = {}
    for row in rows:
        start = _start_of(row)
        if start is None:
            continue
        week = bucket_start(start.date(), "week")
        bucket = totals.setdefault(week, {"sessions": 0, "seconds": 0.0})
        bucket["sessions"] += 1
        bucket["seconds"] += row.get("attended_seconds") or 0.0
    shaped = {
        week: {"sessions": b["sessions"], "attended_minutes": minutes(b["seconds"])} for week, b in totals.items()
    }
    return fill_buckets(shaped, "week", {"sessions": 0, "attended_minutes": 0.0})


def person_summary(participant_key: str, rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """A person's totals over their attendance rows (one per session attended).

    Keys: ``participant_key``, ``display_names`` (distinct, first seen
    first), ``sessions`` (count), ``meetings`` (distinct meeting ids),
    ``attended_seconds`` (sum), ``first_seen_at`` (earliest first join),
    ``last_seen_at`` (latest last leave, else latest first join), UTC.
    """
    names: list[str] = []
    for row in rows:
        for name in row.get("display_names") or ([row["display_name"]] if row.get("display_name") else []):
            if name not in names:
                names.append(name)
    joins = [r["first_joined_at"] for r in rows if r.get("first_joined_at") is not None]
    leaves = [r.get("last_left_at") or r.get("first_joined_at") for r in rows]
    seen = [t for t in leaves if t is not None]
    return {
        "participant_key": participant_key,
        "display_names": names,
        "sessions": len(rows),
        "meetings": len({r.get("meeting_id") for r in rows if r.get("meeting_id")}),
        "attended_seconds": round(sum(r.get("attended_seconds") or 0.0 for r in rows), 3),
        "first_seen_at": min(joins) if joins else None,
        "last_seen_at": max(seen) if seen else None,
    }


@dataclass
class MatrixRow:
    """One person of a series: ``cells[i]`` = minutes attended at occurrence ``i`` (None: absent)."""

    participant_key: str
    display_name: str | None
    cells: list[float | None]
    attended: int = 0
    average_ratio: float | None = None


@dataclass
class SeriesMatrix:
    """Occurrences (session rows, oldest first) x people (most occurrences attended first, then name).

    ``trend[i]``: ``{"session_id", "started_at", "people", "attended_minutes",
    "average_ratio"}`` of occurrence ``i``; ``average_ratio`` is the mean of
    the attendance ratios (0..1, 4 decimals) over every attendance row of
    the series (None without any ratio).
    """

    occurrences: list[dict[str, Any]]
    people: list[MatrixRow] = field(default_factory=list)
    trend: list[dict[str, Any]] = field(default_factory=list)
    average_ratio: float | None = None


def _mean(values: Sequence[float]) -> float | None:
    return round(sum(values) / len(values), 4) if values else None


def series_matrix(sessions: Sequence[dict[str, Any]], rows: Iterable[dict[str, Any]]) -> SeriesMatrix:
    """The :class:`SeriesMatrix` of a recurring meeting's ``sessions`` (any order) and their attendance ``rows``.

    Rows of sessions not in ``sessions`` are ignored. A person is a
    ``participant_key``; their name is the latest ``display_name`` seen.
    """
    ordered = sorted(sessions, key=lambda s: (s.get("started_at") is None, s.get("started_at"), s["session_id"]))
    index = {s["session_id"]: i for i, s in enumerate(ordered)}
    people: dict[str, MatrixRow] = {}
    ratios: dict[str, list[float]] = {}
    per_occurrence: list[list[dict[str, Any]]] = [[] for _ in ordered]
    for row in rows:
        position = index.get(row["session_id"])
        if position is None:
            continue
        key = row["participant_key"]
        person = people.get(key)
        if person is None:
            person = people[key] = MatrixRow(key, row.get("display_name"), [None] * len(ordered))
        elif row.get("display_name"):
            person.display_name = row["display_name"]
        person.cells[position] = round((person.cells[position] or 0.0) + minutes(row.get("attended_seconds")), 1)
        if row.get("attendance_ratio") is not None:
            ratios.setdefault(key, []).append(float(row["attendance_ratio"]))
        per_occurrence[position].append(row)
    for key, person in people.items():
        person.attended = sum(cell is not None for cell in person.cells)
        person.average_ratio = _mean(ratios.get(key, []))
    trend = []
    for session, attended in zip(ordered, per_occurrence, strict=True):
        trend.append(
            {
                "session_id": session["session_id"],
                "started_at": session.get("started_at"),
                "people": len({r["participant_key"] for r in attended}),
                "attended_minutes": minutes(sum(r.get("attended_seconds") or 0.0 for r in attended)),
                "average_ratio": _mean(
                    [float(r["attendance_ratio"]) for r in attended if r.get("attendance_ratio") is not None]
                ),
            }
        )
    return SeriesMatrix(
        occurrences=list(ordered),
        people=sorted(people.values(), key=lambda p: (-p.attended, (p.display_name or "").lower(), p.participant_key)),
        trend=trend,
        average_ratio=_mean([ratio for values in ratios.values() for ratio in values]),
    )
