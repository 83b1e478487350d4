"""The analysts' attendance columns (issue #21 items 1 and 6): each column against hand-computed values.

Session s-1 of meeting m-1 ("Weekly sync"), 10:00-11:00 UTC, ended:

  alice (custom id, user u-a): a1 host 10:00-10:30, a2 participant 10:20-10:50, a3 host 10:55-11:00
        -> role host (2 of 3 peers), union 10:00-10:50 + 10:55-11:00 = 3300 s = 55.0 min, not a guest
  bob   (no custom id: a guest, key = peer id): peer-b participant 10:00:00-10:01:15
        -> 75 s = 1.3 min (half up; banker's rounding would give 1.2)
  carol (custom id): c1 viewer 10:00-10:10 (user u-c1), c2 participant 10:10-10:20 (no user id)
        -> role participant (a 1-1 tie goes to the later peer), user u-c1, 1200 s = 20.0 min

Session s-2 of meeting m-2 (no title stored), 12:00-12:30: dave 12:00-12:30 (1800 s).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.orm import Session as OrmSession

from receiver.db.models import Meeting, ParticipantInterval, Session
from receiver.reports.analyst_columns import PersonDetails, attended_minutes, most_frequent, person_details
from receiver.reports.attendance_stream import batches
from receiver.reports.queries import (
    ATTENDANCE_COLUMNS,
    ReportFilter,
    attendance_report,
    iter_attendance,
    refresh_session_attendance,
)

T0 = datetime(2026, 5, 4, 10, 0, tzinfo=UTC)


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


PEERS = [
    # session, peer, key, custom id, user id, preset, join (min), leave (min)
    ("s-1", "a1", "alice", "alice", "u-a", "host", 0, 30),
    ("s-1", "a2", "alice", "alice", "u-a", "participant", 20, 50),
    ("s-1", "a3", "alice", "alice", "u-a", "host", 55, 60),
    ("s-1", "peer-b", "peer-b", None, None, "participant", 0, 1.25),
    ("s-1", "c1", "carol", "carol", "u-c1", "viewer", 0, 10),
    ("s-1", "c2", "carol", "carol", None, "participant", 10, 20),
    ("s-2", "d1", "dave", "dave", "u-d", "host", 120, 150),
]

EXPECTED = {
    ("s-1", "alice"): {
        "meeting_title": "Weekly sync",
        "preset_name": "host",
        "is_guest": False,
        "custom_participant_id": "alice",
        "user_id": "u-a",
        "attended_seconds": 3300.0,
        "attended_minutes": 55.0,
    },
    ("s-1", "peer-b"): {
        "meeting_title": "Weekly sync",
        "preset_name": "participant",
        "is_guest": True,
        "custom_participant_id": None,
        "user_id": None,
        "attended_seconds": 75.0,
        "attended_minutes": 1.3,
    },
    ("s-1", "carol"): {
        "meeting_title": "Weekly sync",
        "preset_name": "participant",
        "is_guest": False,
        "custom_participant_id": "carol",
        "user_id": "u-c1",
        "attended_seconds": 1200.0,
        "attended_minutes": 20.0,
    },
    ("s-2", "dave"): {
        "meeting_title": None,
        "preset_name": "host",
        "is_guest": False,
        "custom_participant_id": "dave",
        "user_id": "u-d",
        "attended_seconds": 1800.0,
        "attended_minutes": 30.0,
    },
}


@pytest.fixture
def world(engine):
    """The two sessions above, stored directly."""
    now = datetime.now(UTC)
    with OrmSession(engine) as db:
        db.add(Meeting(meeting_id="m-1", title="Weekly sync", updated_at=now))
        db.add(
            Session(
                session_id="s-1", meeting_id="m-1", started_at=at(0), ended_at=at(60), status="ended", updated_at=now
            )
        )
        db.add(
            Session(
                session_id="s-2", meeting_id="m-2", started_at=at(120), ended_at=at(150), status="ended", updated_at=now
            )
        )
        for sid, peer, key, custom, user, preset, joined, left in PEERS:
            db.add(
                ParticipantInterval(
                    session_id=sid,
                    meeting_id="m-1" if sid == "s-1" else "m-2",
                    peer_id=peer,
                    participant_key=key,
                    custom_participant_id=custom,
                    user_id=user,
                    display_name=key.title(),
                    preset_name=preset,
                    joined_at=at(joined),
                    left_at=at(left),
                    source="webhook",
                    updated_at=now,
                )
            )
        db.commit()
    return engine


def _analyst_values(rows):
    return {(r["session_id"], r["participant_key"]): {k: r[k] for k in EXPECTED[("s-1", "alice")]} for r in rows}


def test_columns_match_hand_computed_values_computed_and_stored(world):
    """Computed from intervals (first report) and read from session_attendance (after a refresh): same values."""
    computed = list(iter_attendance(world, store=False))
    assert _analyst_values(computed) == EXPECTED
    refresh_session_attendance(world)
    stored = list(iter_attendance(world))
    assert _analyst_values(stored) == EXPECTED


def test_stream_has_the_report_rows_in_report_order_across_batches(world):
    """Batches of one row still give attendance_report's rows, in its order, with the base columns unchanged."""
    report = attendance_report(world)
    streamed = list(iter_attendance(world, rows_per_batch=1))
    assert [{c: r[c] for c in ATTENDANCE_COLUMNS} for r in streamed] == [
        {c: r[c] for c in ATTENDANCE_COLUMNS} for r in report
    ]
    assert [r["participant_key"] for r in streamed] == ["alice", "carol", "peer-b", "dave"]  # first join, then key


def test_filters_apply_to_the_stream(world):
    """A participant filter keeps only that person; a session filter only that session."""
    only_carol = list(iter_attendance(world, ReportFilter(participant="carol")))
    assert [(r["session_id"], r["participant_key"]) for r in only_carol] == [("s-1", "carol")]
    only_s2 = list(iter_attendance(world, ReportFilter(session_id="s-2")))
    assert [r["participant_key"] for r in only_s2] == ["dave"]


def test_attended_minutes_rounds_half_up_to_one_decimal():
    """75 s is 1.25 min -> 1.3; 89.999 s -> 1.5; 0 -> 0.0; None stays None."""
    assert attended_minutes(75.0) == 1.3
    assert attended_minutes(89.999) == 1.5
    assert attended_minutes(86.999) == 1.4
    assert attended_minutes(0.0) == 0.0
    assert attended_minutes(None) is None


def test_most_frequent_breaks_ties_by_the_later_value():
    """Most frequent non-empty value; a tie goes to the value seen last; empties never win."""
    assert most_frequent(["host", "participant", "host"]) == "host"
    assert most_frequent(["viewer", "participant"]) == "participant"
    assert most_frequent([None, "", None]) is None
    assert person_details([(None, None, None)]) == PersonDetails(None, None, None)
    assert person_details([(None, None, None)]).is_guest


def test_batches_close_at_the_row_budget_and_keep_big_sessions_whole():
    """Sessions stay in order; a batch closes before exceeding the budget; a session over it is alone."""
    weights = [("a", 3), ("b", 3), ("c", 10), ("d", 1), ("e", 1)]
    assert list(batches(weights, rows_per_batch=6)) == [["a", "b"], ["c"], ["d", "e"]]
    assert list(batches([], rows_per_batch=6)) == []


def test_attendance_view_has_the_same_analyst_columns(world):
    """The SQL view `attendance` (docs/schema.md) gives the hand-computed values too, computed and precomputed."""
    from sqlalchemy import text

    from receiver.db.views import create_views

    with world.begin() as connection:
        create_views(connection)

    def view() -> dict:
        with world.connect() as connection:
            found = connection.execute(text("SELECT * FROM attendance")).mappings().all()
        return {
            (r["session_id"], r["participant_key"]): {
                k: (bool(r[k]) if k == "is_guest" else r[k]) for k in EXPECTED[("s-1", "alice")]
            }
            for r in found
        }

    assert view() == EXPECTED
    refresh_session_attendance(world)  # now read from session_attendance
    assert view() == EXPECTED
