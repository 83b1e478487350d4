"""Breakout rooms (issue #18, point 5): linked to their main session by reconciliation, optionally folded into its report.

Main session s-main 10:00-11:00 with one breakout room s-room (10:20-10:40,
its own meeting m-room), from the fake REST API's ``breakout_rooms``:

  alice (custom id) main 10:00-10:20 and 10:40-11:00, room 10:20-10:40 -> 2400 s alone, 3600 s with the room
  bob   (custom id) main 10:00-11:00, room 10:25-10:35 (on a second device) -> 3600 s either way (union)
  carol (custom id) only in the room 10:20-10:40                         -> 0 s / 1200 s (ratio 1/3)
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from click.testing import CliRunner
from fake_dyte import FakeDyte
from sqlalchemy.orm import Session as OrmSession
from test_reconcile_unfriendly import arm, reconcile

from receiver.cli.main import cli
from receiver.db.models import ReconcileTask, Session
from receiver.reports.queries import (
    BREAKOUT_ATTENDANCE_COLUMNS,
    ReportFilter,
    attendance_report,
    attendance_with_breakouts,
    sessions_report,
)

T0 = datetime(2026, 4, 1, 10, 0, tzinfo=UTC)


def iso(minutes: float) -> str:
    return (T0 + timedelta(minutes=minutes)).isoformat().replace("+00:00", "Z")


def session(session_id: str, meeting_id: str, start: float, end: float, **extra) -> dict:
    return {
        "id": session_id,
        "associated_id": meeting_id,
        "status": "ENDED",
        "started_at": iso(start),
        "ended_at": iso(end),
        **extra,
    }


def peer(peer_id: str, custom: str, start: float, end: float) -> dict:
    return {"id": peer_id, "custom_participant_id": custom, "joined_at": iso(start), "left_at": iso(end)}


@pytest.fixture
def breakout_world(engine):
    """The main session and its breakout room, reconciled from the fake API (only the main session was armed)."""
    room = session("s-room", "m-room", 20, 40)
    fake = FakeDyte(sessions={"s-main": session("s-main", "m-main", 0, 60, breakout_rooms=[room]), "s-room": room})
    fake.participants["s-main"] = [peer("a1", "alice", 0, 20), peer("a3", "alice", 40, 60), peer("b1", "bob", 0, 60)]
    fake.participants["s-room"] = [peer("a2", "alice", 20, 40), peer("b2", "bob", 25, 35), peer("c1", "carol", 20, 40)]
    arm(engine, "session", "s-main")
    reconcile(engine, fake)
    return engine


def test_reconciliation_links_and_reconciles_the_breakout_room(breakout_world):
    """The room's session is linked to the main one, reconciled in turn, and the link is in the sessions report."""
    with OrmSession(breakout_world) as db:
        room = db.get(Session, "s-room")
        task = db.query(ReconcileTask).filter_by(kind="session", object_id="s-room").one()
    assert (room.parent_session_id, room.meeting_id, room.reconciled_at is not None) == ("s-main", "m-room", True)
    assert task.status == "done"
    links = {row["session_id"]: row["parent_session_id"] for row in sessions_report(breakout_world)}
    assert links == {"s-main": None, "s-room": "s-main"}


def test_by_default_each_room_is_its_own_session(breakout_world):
    """Without the flag, the main session counts only the main room."""
    seconds = {
        (r["session_id"], r["participant_key"]): r["attended_seconds"] for r in attendance_report(breakout_world)
    }
    assert seconds == {
        ("s-main", "alice"): 2400.0,
        ("s-main", "bob"): 3600.0,
        ("s-room", "alice"): 1200.0,
        ("s-room", "bob"): 600.0,
        ("s-room", "carol"): 1200.0,
    }


def test_breakout_time_is_folded_into_the_main_session(breakout_world):
    """With breakouts: union over both rooms, ratio against the main session, the room's rows left out."""
    rows = attendance_with_breakouts(breakout_world)
    got = {
        r["participant_key"]: (r["session_id"], r["attended_seconds"], r["breakout_seconds"], r["attendance_ratio"])
        for r in rows
    }
    assert got == {
        "alice": ("s-main", 3600.0, 1200.0, 1.0),
        "bob": ("s-main", 3600.0, 0.0, 1.0),
        "carol": ("s-main", 1200.0, 1200.0, 0.3333),
    }
    assert [
        r["participant_key"] for r in attendance_with_breakouts(breakout_world, ReportFilter(participant="carol"))
    ] == ["carol"]
    only_room = attendance_with_breakouts(breakout_world, ReportFilter(session_id="s-room"))
    assert {r["session_id"] for r in only_room} == {"s-room"}  # its main session is not in this report


def test_cli_include_breakouts(breakout_world, db_url):
    """`receiver report attendance --include-breakouts --format csv` has the breakout_seconds column."""
    result = CliRunner().invoke(
        cli,
        ["report", "attendance", "--session-id", "s-main", "--include-breakouts", "--format", "csv"],
        env={"DATABASE_URL": db_url},
    )
    assert result.exit_code == 0, result.output
    header, *lines = result.output.strip().splitlines()
    assert header.split(",") == list(BREAKOUT_ATTENDANCE_COLUMNS)
    # s-main,m-main,<meeting title: none stored>,carol,...
    assert len(lines) == 3 and any(line.startswith("s-main,m-main,,carol,") for line in lines)
