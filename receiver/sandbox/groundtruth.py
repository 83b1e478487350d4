"""Comparing what the receiver built with a sandbox world's ground truth (pure functions).

Used by ``receiver demo``, the end-to-end tests and ``receiver bench chaos``:
the expected attendance is computed with the same arithmetic
(:func:`receiver.reports.attendance.attendance_rows`) from the world's true peer
intervals and session bounds, then compared field by field.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from receiver.reports.attendance import Interval, attendance_rows

__all__ = ["expected_attendance", "compare_attendance", "compare_recordings"]

# Seconds of disagreement tolerated: the REST API has millisecond timestamps.
TOLERANCE_SECONDS = 0.01


def expected_attendance(world: Any) -> dict[tuple[str, str], dict[str, Any]]:
    """``{(session_id, participant_key): row}`` from the sandbox world's true intervals."""
    expected: dict[tuple[str, str], dict[str, Any]] = {}
    for session in world.sessions:
        intervals = [
            Interval(
                peer_id=i["peer_id"],
                participant_key=i["participant_key"],
                joined_at=i["joined_at"],
                left_at=i["left_at"],
                display_name=i["display_name"],
            )
            for i in world.expected_intervals(session.id)
        ]
        for row in attendance_rows(session.id, session.meeting_id, session.started_at, session.ended_at, intervals):
            expected[(session.id, row.participant_key)] = {
                "attended_seconds": row.attended_seconds,
                "join_count": row.join_count,
                "first_joined_at": row.first_joined_at,
                "last_left_at": row.last_left_at,
                "attendance_ratio": row.attendance_ratio,
                "display_name": row.display_name,
            }
    return expected


def _close(a: Any, b: Any) -> bool:
    if a is None or b is None:
        return a is b
    if hasattr(a, "timestamp") and hasattr(b, "timestamp"):
        return abs(a.timestamp() - b.timestamp()) <= TOLERANCE_SECONDS
    if isinstance(a, float) or isinstance(b, float):
        return abs(float(a) - float(b)) <= max(TOLERANCE_SECONDS, 1e-3 * abs(float(b)))
    return a == b


def compare_attendance(
    actual_rows: Iterable[dict[str, Any]], expected: dict[tuple[str, str], dict[str, Any]]
) -> list[str]:
    """Differences between report rows and ground truth, as readable lines (empty: equal)."""
    problems: list[str] = []
    seen: set[tuple[str, str]] = set()
    for row in actual_rows:
        key = (row["session_id"], row["participant_key"])
        if key not in expected:
            problems.append(f"unexpected person {key[1]} in session {key[0]}")
            continue
        seen.add(key)
        for field in ("attended_seconds", "join_count", "first_joined_at", "last_left_at"):
            if not _close(row[field], expected[key][field]):
                problems.append(
                    f"session {key[0]} person {key[1]}: {field} {row[field]} != expected {expected[key][field]}"
                )
    for key in expected.keys() - seen:
        problems.append(f"missing person {key[1]} in session {key[0]}")
    return problems


def compare_recordings(actual_rows: Iterable[dict[str, Any]], world: Any) -> list[str]:
    """Differences between the recording index and the world's final recordings."""
    problems: list[str] = []
    actual = {row["recording_id"]: row for row in actual_rows}
    for truth in world.recordings_final():
        row = actual.get(truth["id"])
        if row is None:
            problems.append(f"missing recording {truth['id']}")
            continue
        pairs = {
            "status": truth["status"],
            "session_id": truth["session_id"],
            "file_size_bytes": truth["file_size"],
            "download_url": truth["download_url"],
        }
        for field, value in pairs.items():
            if value is not None and not _close(row[field], value):
                problems.append(f"recording {truth['id']}: {field} {row[field]!r} != expected {value!r}")
    return problems
