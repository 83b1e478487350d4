"""Attendance arithmetic, without a database: unions, clipping, open intervals, ratios."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

from receiver.reports.attendance import (
    Interval,
    attendance_rows,
    peak_concurrency,
    person_attendance,
    union_seconds,
)

T0 = datetime(2026, 1, 1, 10, 0, tzinfo=UTC)


def t(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def test_union_counts_overlap_once():
    """Two overlapping spans and a separate one: 15 + 5 minutes."""
    assert union_seconds([(t(0), t(10)), (t(5), t(15)), (t(20), t(25))]) == 20 * 60


def test_union_of_nested_and_touching_spans():
    """A span inside another adds nothing; touching spans join without double counting."""
    assert union_seconds([(t(0), t(30)), (t(10), t(20)), (t(30), t(40))]) == 40 * 60


def test_union_ignores_empty_and_inverted_spans():
    """Zero-length and end-before-start spans contribute nothing."""
    assert union_seconds([(t(5), t(5)), (t(10), t(2))]) == 0


def test_rows_per_person_with_rejoin_two_devices_and_open_interval():
    """Rejoin adds, devices overlap once, an open interval closes at the session end and is flagged."""
    intervals = [
        Interval("a1", "alice", t(0), t(30), "Alice"),
        Interval("a2", "alice", t(40), t(60), "Alice B."),
        Interval("b1", "bob", t(10), t(50), "Bob"),
        Interval("b2", "bob", t(20), t(55), "Bob"),
        Interval("c1", "c1", t(15), None, "Carol"),
    ]
    rows = {r.participant_key: r for r in attendance_rows("s", "m", t(0), t(60), intervals)}
    assert rows["alice"].attended_seconds == 3000 and rows["alice"].join_count == 2
    assert rows["alice"].display_name == "Alice B." and rows["alice"].display_names == ("Alice", "Alice B.")
    assert rows["bob"].attended_seconds == 2700 and rows["bob"].attendance_ratio == 0.75
    assert rows["c1"].attended_seconds == 2700 and rows["c1"].closed_at_session_end
    assert rows["c1"].last_left_at == t(60)
    assert not rows["alice"].closed_at_session_end


def test_intervals_are_clipped_to_the_session():
    """Time before the session start or after its end does not count."""
    rows = attendance_rows("s", None, t(0), t(10), [Interval("p", "p", t(-5), t(20))])
    assert rows[0].attended_seconds == 600 and rows[0].attendance_ratio == 1.0


def test_unknown_session_bounds_give_no_ratio():
    """Without a session end, open intervals are left out and the ratio is None."""
    rows = attendance_rows("s", None, None, None, [Interval("p", "p", t(0), None), Interval("q", "q", t(0), t(1))])
    by_key = {r.participant_key: r for r in rows}
    assert by_key["p"].attended_seconds == 0 and by_key["p"].attendance_ratio is None
    assert by_key["q"].attended_seconds == 60


def test_peak_concurrency_counts_a_leave_before_a_join_at_the_same_instant():
    """A hand-over at the same second is not an overlap."""
    assert peak_concurrency([(t(0), t(10)), (t(10), t(20))]) == 1
    assert peak_concurrency([(t(0), t(10)), (t(5), t(20)), (t(6), t(7))]) == 3


def test_rows_accept_plain_tuples_in_interval_order():
    """person_attendance takes any tuples with Interval's fields in order (database rows) and Interval values alike."""
    values = [
        ("a1", "alice", t(0), t(30), "Alice", "alice", "webhook", False),
        ("b1", "b1", t(5), None, None, None, "api", False),
    ]
    from_tuples = person_attendance(t(0), t(60), values)
    from_intervals = person_attendance(t(0), t(60), [Interval(*v) for v in values])
    assert from_tuples == from_intervals
    assert [(p.participant_key, p.attended_seconds, p.provenance, p.closed_at_session_end) for p in from_tuples] == [
        ("alice", 1800.0, "webhook", False),
        ("b1", 3300.0, "api", True),
    ]


def test_rows_match_a_brute_force_count_on_random_intervals():
    """Attended seconds equal a second-by-second count of covered instants; order and names follow the rules."""
    rng = random.Random(42)
    start, end = t(0), t(20)
    for _ in range(300):
        intervals = []
        for number in range(rng.randint(1, 12)):
            joined = None if rng.random() < 0.05 else start + timedelta(seconds=rng.randint(-120, 1300))
            left = None if rng.random() < 0.2 or joined is None else joined + timedelta(seconds=rng.randint(-30, 600))
            intervals.append(
                Interval(
                    f"p{number}",
                    f"k{rng.randint(0, 3)}",
                    joined,
                    left,
                    rng.choice(["A", "B", "", None]),
                    source=rng.choice(["webhook", "api", "both"]),
                )
            )
        rows = attendance_rows("s", "m", start, end, intervals)
        for row in rows:
            covered: set[int] = set()
            for i in intervals:
                if i.participant_key != row.participant_key or i.joined_at is None:
                    continue
                stop = min(i.left_at or end, end)
                first = max(i.joined_at, start)
                covered.update(range(int((first - start).total_seconds()), int((stop - start).total_seconds())))
            assert row.attended_seconds == len(covered), (row, intervals)
            mine = sorted(
                (i for i in intervals if i.participant_key == row.participant_key),
                key=lambda i: (i.joined_at is None, i.joined_at or start),
            )
            names = list(dict.fromkeys(i.display_name for i in mine if i.display_name))
            assert list(row.display_names) == names and row.display_name == (names[-1] if names else None)
            assert row.join_count == len(mine)
        keys = [(r.first_joined_at is None, r.first_joined_at or start, r.participant_key) for r in rows]
        assert keys == sorted(keys)
