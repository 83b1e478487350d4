"""Precomputed attendance (session_attendance, migration 0004) on SQLite and PostgreSQL: never stale.

The report path reads an ended session's stored rows only while its refresh
marker exists (database triggers delete it on every change); everything
else is computed from the intervals. These
tests change sessions in every way the worker and the reconciler do (late
leaves, new peers, corrected times, deletions, a moved session end) and
check that the report and the ``attendance`` view always equal a fresh
computation.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import delete, func, insert, select, text, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import OperationalError
from test_views import EXPECTED_ATTENDANCE, Script, rows_of, script_meetings, sort_rows, ts

import receiver.reports.precomputed as precomputed
from receiver.db.engine import writer
from receiver.db.models import ParticipantInterval, Session, SessionAttendance, SessionAttendanceRefresh
from receiver.reports.queries import (
    ATTENDANCE_COLUMNS,
    ReportFilter,
    attendance_page,
    attendance_report,
    display_names_of,
    refresh_session_attendance,
)

UTC = UTC
AS_OF = datetime(2026, 3, 3, 12, 30, tzinfo=UTC)  # s-3 is live: measured up to here


def computed(engine: Engine, flt: ReportFilter | None = None) -> list[dict[str, Any]]:
    """The report computed from the intervals only (stored rows ignored, nothing stored)."""
    with engine.begin() as connection:
        connection.execute(delete(SessionAttendanceRefresh))
    return attendance_report(engine, flt, as_of=AS_OF, store=False)


def report(engine: Engine, flt: ReportFilter | None = None) -> list[dict[str, Any]]:
    return attendance_report(engine, flt, as_of=AS_OF)


def stored_sessions(engine: Engine) -> dict[str, int]:
    """session id -> number of stored rows, for sessions with a refresh marker."""
    with engine.connect() as connection:
        markers = {sid for (sid,) in connection.execute(select(SessionAttendanceRefresh.session_id))}
        counts = dict(
            connection.execute(
                select(SessionAttendance.session_id, func.count()).group_by(SessionAttendance.session_id)
            ).all()
        )
    return {sid: counts.get(sid, 0) for sid in markers}


def marked(engine: Engine, session_id: str) -> bool:
    """Does the session have a refresh marker (its stored rows are current)?"""
    with engine.connect() as connection:
        return (
            connection.execute(
                select(func.count()).where(SessionAttendanceRefresh.session_id == session_id)
            ).scalar_one()
            == 1
        )


def view_rows(engine: Engine, where: str = "") -> list[dict[str, Any]]:
    return rows_of(engine, "attendance", where, ATTENDANCE_COLUMNS)


def report_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return sort_rows([{column: row[column] for column in ATTENDANCE_COLUMNS} for row in rows])


@pytest.fixture
def scripted(engine: Engine) -> Engine:
    """The scripted meetings of tests/db/test_views.py, applied through the worker's apply_event."""
    script_meetings(engine)
    return engine


def test_first_report_stores_ended_sessions_and_the_next_reads_them(scripted: Engine) -> None:
    """Ended sessions are stored by the first report (live ones never); both reports equal the computed one."""
    expected = computed(scripted)
    assert stored_sessions(scripted) == {}
    first = report(scripted)
    assert stored_sessions(scripted) == {"s-1": 5, "s-2": 1}
    second = report(scripted)
    assert first == expected and second == expected  # same rows, same order, display_names included
    assert [r["participant_key"] for r in second if r["session_id"] == "s-1"] == [
        "dave",
        "alice",
        "bob",
        "peer-c1",
        "erin",
    ]
    bob = next(r for r in second if r["participant_key"] == "bob")
    assert bob["display_names"] == ["Bob", "Robert"] and bob["display_name"] == "Robert"
    assert report_rows([r for r in second if r["session_id"] != "s-3"]) == sort_rows(EXPECTED_ATTENDANCE[:-2])


def test_stored_rows_are_the_ones_read(scripted: Engine) -> None:
    """With a current marker the report returns what is stored (proof that it reads the table)."""
    report(scripted)
    with scripted.begin() as connection:
        connection.execute(
            update(SessionAttendance).where(SessionAttendance.session_id == "s-2").values(attended_seconds=1.5)
        )
    assert next(r for r in report(scripted) if r["session_id"] == "s-2")["attended_seconds"] == 1.5


def test_late_leave_after_the_report_is_seen(scripted: Engine) -> None:
    """Events arriving after s-1 was stored (through apply_event) make s-1 stale; report and view show them."""
    report(scripted)
    assert marked(scripted, "s-1")
    s = Script(scripted)
    s.event_id = 1000
    # Fay's join and leave are delivered only now, after meeting.ended and the first report.
    s.joined("s-1", "2026-03-02 10:00:00", "peer-f9", "Fay", "2026-03-02 10:50:00", "fay")
    assert not marked(scripted, "s-1")
    assert (
        next(r for r in report(scripted) if r["participant_key"] == "fay")["attended_seconds"] == 600.0
    )  # open: closed at the end
    s.left("s-1", "2026-03-02 10:00:00", "peer-f9", "Fay", "2026-03-02 10:50:00", "2026-03-02 10:55:00", "fay")
    rows = report(scripted)
    fay = next(r for r in rows if r["participant_key"] == "fay")
    assert fay["attended_seconds"] == 300.0 and not fay["closed_at_session_end"]
    assert rows == computed(scripted)
    assert report_rows([r for r in rows if r["session_id"] != "s-3"]) == view_rows(
        scripted, "WHERE session_id <> 's-3'"
    )


def test_new_peer_correction_deletion_and_moved_end_are_seen(scripted: Engine) -> None:
    """Every kind of write to intervals or session bounds after storing shows in the next report and the view."""
    report(scripted)
    now = datetime(2026, 3, 5, tzinfo=UTC)
    changes = [
        insert(ParticipantInterval).values(
            session_id="s-2",
            meeting_id="m-1",
            peer_id="peer-z",
            participant_key="zed",
            display_name="Zed",
            joined_at=ts("2026-03-03 09:10"),
            left_at=ts("2026-03-03 09:20"),
            closed_at_session_end=False,
            source="api",
            updated_at=now,
        ),
        update(ParticipantInterval)
        .where(ParticipantInterval.peer_id == "peer-b2")
        .values(left_at=ts("2026-03-02 10:35")),
        delete(ParticipantInterval).where(ParticipantInterval.peer_id == "peer-d1"),
        update(Session).where(Session.session_id == "s-1").values(ended_at=ts("2026-03-02 10:50")),
        update(ParticipantInterval)
        .where(ParticipantInterval.peer_id == "peer-a3")
        .values(display_name="Alicia", source="both"),
    ]
    for change in changes:
        with scripted.begin() as connection:
            connection.execute(change)
        rows = report(scripted)
        assert rows == computed(scripted), change
        assert report_rows([r for r in rows if r["session_id"] != "s-3"]) == view_rows(
            scripted, "WHERE session_id <> 's-3'"
        )
        report(scripted)  # stores again for the next change
    keys = {(r["session_id"], r["participant_key"]): r for r in report(scripted)}
    assert ("s-1", "dave") not in keys and keys[("s-2", "zed")]["attended_seconds"] == 600.0
    assert keys[("s-1", "bob")]["attended_seconds"] == 1500.0
    assert keys[("s-1", "alice")]["attended_seconds"] == 3000.0  # the end moved to 10:50
    assert keys[("s-2", "alice")]["display_name"] == "Alicia" and keys[("s-2", "alice")]["provenance"] == "both"


def test_irrelevant_session_updates_do_not_invalidate(scripted: Engine) -> None:
    """last_event_at, updated_at, reconciled_at and meeting_id are read live: no recomputation needed."""
    report(scripted)
    assert marked(scripted, "s-1")
    with scripted.begin() as connection:
        connection.execute(
            update(Session)
            .where(Session.session_id == "s-1")
            .values(
                last_event_at=datetime(2026, 3, 6, tzinfo=UTC),
                updated_at=datetime(2026, 3, 6, tzinfo=UTC),
                reconciled_at=None,
                meeting_id="m-2",
            )
        )
    assert marked(scripted, "s-1")
    rows = [r for r in report(scripted) if r["session_id"] == "s-1"]
    assert {(r["meeting_id"], r["session_reconciled"]) for r in rows} == {("m-2", False)}
    assert rows == [r for r in computed(scripted) if r["session_id"] == "s-1"]
    assert {r["meeting_id"] for r in rows_of(scripted, "attendance", "WHERE session_id = 's-1'")} == {"m-2"}


def test_a_change_after_storing_in_the_same_refresh_invalidates(scripted: Engine) -> None:
    """Rows stored by a refresh are invalidated by any later write, even one in the very next transaction."""
    with writer(scripted).begin() as connection:
        _, people, stored = precomputed._compute(connection, ["s-2"], AS_OF, store=True, now=AS_OF)
        assert stored == 1 and people["s-2"][0].attended_seconds == 1800.0
        # A write in the same transaction after the rows were computed (as a worker's would be after the commit).
        connection.execute(
            update(ParticipantInterval)
            .where(ParticipantInterval.peer_id == "peer-a3")
            .values(left_at=ts("2026-03-03 09:15"))
        )
    assert not marked(scripted, "s-2")
    assert report(scripted, ReportFilter(session_id="s-2"))[0]["attended_seconds"] == 900.0
    assert rows_of(scripted, "attendance", "WHERE session_id = 's-2'")[0]["attended_seconds"] == 900.0


@pytest.mark.postgres
def test_a_session_being_written_is_not_stored(pg_url: str) -> None:
    """PostgreSQL: while a transaction that changed a session is open, a refresh skips it (the trigger's lock)."""
    from receiver.db.engine import make_engine

    engine = make_engine(pg_url)
    try:
        script_meetings(engine)
        with engine.begin() as worker:  # uncommitted change of s-2 holds its lock shared
            worker.execute(
                update(ParticipantInterval)
                .where(ParticipantInterval.peer_id == "peer-a3")
                .values(left_at=ts("2026-03-03 09:15"))
            )
            assert refresh_session_attendance(engine, ["s-1", "s-2"]) == 1
            assert marked(engine, "s-1") and not marked(engine, "s-2")
            # The report computes s-2 from what is committed (the old leave) and does not store it.
            assert report(engine, ReportFilter(session_id="s-2"))[0]["attended_seconds"] == 1800.0
        assert not marked(engine, "s-2")
        assert report(engine, ReportFilter(session_id="s-2"))[0]["attended_seconds"] == 900.0
        assert marked(engine, "s-2")
    finally:
        engine.dispose()


def test_live_session_is_measured_up_to_as_of_and_never_stored(scripted: Engine) -> None:
    """s-3 (live) is computed with as_of every time; it is stored once it has ended."""
    rows = [r for r in report(scripted) if r["session_id"] == "s-3"]
    gina = next(r for r in rows if r["participant_key"] == "gina")
    assert gina["attended_seconds"] == 1500.0 and gina["closed_at_session_end"]  # 12:05 to as_of 12:30
    assert "s-3" not in stored_sessions(scripted)
    s = Script(scripted)
    s.event_id = 2000
    s.ended("s-3", "2026-03-03 12:00:00", "2026-03-03 12:20:00")
    report(scripted)
    assert stored_sessions(scripted)["s-3"] == 2
    gina = next(r for r in report(scripted) if r["participant_key"] == "gina")
    assert gina["attended_seconds"] == 900.0 and gina["attendance_ratio"] == 0.75


def test_filters_from_stored_and_computed_rows(scripted: Engine) -> None:
    """participant, meeting and time filters give the same rows whether stored or computed."""
    filters = [
        ReportFilter(participant="alice"),
        ReportFilter(meeting_id="m-1", since=ts("2026-03-03 00:00")),
        ReportFilter(until=ts("2026-03-03 00:00")),
        ReportFilter(session_id="s-1", participant="bob"),
        ReportFilter(session_id="nope"),
    ]
    expected = [computed(scripted, flt) for flt in filters]
    refresh = [report(scripted) for _ in range(2)]  # everything ended is stored now
    assert refresh[0] == refresh[1]
    assert [report(scripted, flt) for flt in filters] == expected
    assert [len(rows) for rows in expected] == [2, 3, 5, 1, 0]


def test_org_wide_scan_streamed_in_small_chunks_reads_the_same_rows(
    scripted: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The org-wide path (one scan of session_attendance, on PostgreSQL streamed in chunks) gives the same rows.

    Two rows a chunk split s-1's five people across chunks; a stored row
    rewritten after storing (PostgreSQL puts the new version at the end of
    the table) comes out of the scan late and must still land in its place.
    """
    filters = [None, ReportFilter(participant="bob"), ReportFilter(meeting_id="m-1")]
    expected = [computed(scripted, flt) for flt in filters]
    report(scripted)
    assert stored_sessions(scripted) == {"s-1": 5, "s-2": 1}
    monkeypatch.setattr(precomputed, "_FEW_SESSIONS", 0)
    monkeypatch.setattr(precomputed, "_STREAM_ROWS", 2)
    assert [report(scripted, flt) for flt in filters] == expected
    with scripted.begin() as connection:  # same values, new row version (no trigger: stored rows stay current)
        connection.execute(
            update(SessionAttendance)
            .where(SessionAttendance.session_id == "s-1", SessionAttendance.position == 1)
            .values(provenance=SessionAttendance.provenance)
        )
    assert marked(scripted, "s-1")
    assert [report(scripted, flt) for flt in filters] == expected


@pytest.mark.parametrize("one_scan", [False, True], ids=["by-session", "org-wide-scan"])
def test_pages_are_slices_of_the_report_whatever_is_stored(
    scripted: Engine, monkeypatch: pytest.MonkeyPatch, one_scan: bool
) -> None:
    """Every page (API paging) equals the same slice of the whole report, with the whole report's total: when nothing
    is stored yet, when some sessions are stored and others stale or live, and when all ended ones are stored."""
    if one_scan:
        monkeypatch.setattr(precomputed, "_FEW_SESSIONS", 0)
    filters = [None, ReportFilter(participant="bob"), ReportFilter(meeting_id="m-1"), ReportFilter(session_id="nope")]

    def check_pages() -> None:
        for flt in filters:
            whole = computed(scripted, flt)
            for limit in (1, 2, 3, 4, 7, 1000):
                for offset in range(0, len(whole) + 2):
                    assert attendance_page(scripted, flt, limit=limit, offset=offset, as_of=AS_OF) == (
                        whole[offset : offset + limit],
                        len(whole),
                    ), (flt, limit, offset)

    check_pages()  # computed() drops the markers first: every page computes (and stores) what it needs
    report(scripted)
    assert stored_sessions(scripted) == {"s-1": 5, "s-2": 1}
    first = attendance_page(scripted, limit=2, offset=1, as_of=AS_OF)
    assert first == (computed(scripted)[1:3], len(computed(scripted)))
    report(scripted)
    s = Script(scripted)  # s-2 stale again, s-1 stays stored, s-3 live
    s.event_id = 3000
    s.ended("s-2", "2026-03-03 09:00:00", "2026-03-03 09:45:00")  # a moved end
    assert "s-2" not in stored_sessions(scripted) and "s-1" in stored_sessions(scripted)
    whole = report(scripted)
    report(scripted)
    for offset in range(len(whole) + 1):
        assert attendance_page(scripted, limit=3, offset=offset, as_of=AS_OF) == (
            whole[offset : offset + 3],
            len(whole),
        )
    with pytest.raises(ValueError):
        attendance_page(scripted, limit=0)


def test_display_names_only_when_several(scripted: Engine) -> None:
    """Rows carry display_names only for people with several names; display_names_of always gives every name."""
    for rows in (computed(scripted), report(scripted), report(scripted)):  # computed, computed and stored, read back
        by_key = {(r["session_id"], r["participant_key"]): r for r in rows}
        bob, dave = by_key[("s-1", "bob")], by_key[("s-1", "dave")]
        assert bob["display_names"] == ["Bob", "Robert"] and display_names_of(bob) == ["Bob", "Robert"]
        assert dave["display_names"] is None and display_names_of(dave) == ["Dave"]
        assert display_names_of({**dave, "display_name": None}) == []


def test_refresh_session_attendance(scripted: Engine) -> None:
    """refresh_session_attendance stores stale ended sessions (all, or the given ones) and skips live ones."""
    assert refresh_session_attendance(scripted, ["s-2", "s-3", "unknown"]) == 1
    assert stored_sessions(scripted) == {"s-2": 1}
    assert refresh_session_attendance(scripted) == 1  # s-1; s-2 is current, s-3 live
    assert refresh_session_attendance(scripted) == 0
    assert refresh_session_attendance(scripted, ["s-2"]) == 1  # forced
    assert stored_sessions(scripted) == {"s-1": 5, "s-2": 1}
    # The view now reads the stored rows of s-1 and s-2: still the hand-computed numbers.
    assert view_rows(scripted) == sort_rows(EXPECTED_ATTENDANCE)
    assert rows_of(scripted, "daily_usage")[0]["participant_minutes"] == 145.996


def test_report_survives_a_failed_store(scripted: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    """A store that fails (e.g. database locked, read-only user) leaves the report's rows correct and nothing stored."""
    expected = computed(scripted)

    def failing(*_args: Any, **_kwargs: Any) -> None:
        raise OperationalError("INSERT", {}, Exception("database is locked"))

    monkeypatch.setattr(precomputed, "_store", failing)
    assert report(scripted) == expected
    assert stored_sessions(scripted) == {}


def test_every_interval_and_bound_write_invalidates(engine: Engine) -> None:
    """Inserts, updates (old and new session), deletes of intervals and session bound changes delete the markers."""
    now = datetime(2026, 3, 5, tzinfo=UTC)
    start = ts("2026-03-05 09:00")
    with engine.begin() as connection:
        for sid in ("a", "b"):
            connection.execute(
                insert(Session).values(
                    session_id=sid,
                    status="ended",
                    started_at=start,
                    ended_at=start + timedelta(hours=1),
                    updated_at=now,
                )
            )
        connection.execute(
            insert(ParticipantInterval),
            [
                {
                    "session_id": "a",
                    "peer_id": f"p{n}",
                    "participant_key": f"k{n}",
                    "closed_at_session_end": False,
                    "source": "webhook",
                    "joined_at": start,
                    "updated_at": now,
                }
                for n in range(3)
            ],
        )

    def refreshed_then(change: Any) -> tuple[bool, bool]:
        assert refresh_session_attendance(engine, ["a", "b"]) == 2
        with engine.begin() as connection:
            connection.execute(change)
        return marked(engine, "a"), marked(engine, "b")

    interval = ParticipantInterval
    assert refreshed_then(
        insert(interval).values(
            session_id="a",
            peer_id="p9",
            participant_key="k9",
            closed_at_session_end=False,
            source="webhook",
            updated_at=now,
        )
    ) == (False, True)
    assert refreshed_then(update(interval).where(interval.peer_id == "p0").values(left_at=now)) == (False, True)
    assert refreshed_then(update(interval).where(interval.peer_id == "p1").values(session_id="b")) == (False, False)
    assert refreshed_then(delete(interval).where(interval.peer_id == "p1")) == (True, False)
    assert refreshed_then(update(interval).where(interval.peer_id == "nobody").values(left_at=now)) == (True, True)
    assert refreshed_then(update(Session).where(Session.session_id == "b").values(ended_at=now)) == (True, False)
    assert refreshed_then(
        update(Session).where(Session.session_id == "b").values(last_event_at=now, meeting_id="m")
    ) == (True, True)
    assert refreshed_then(delete(Session).where(Session.session_id == "b")) == (True, False)


@pytest.mark.postgres
def test_truncate_forgets_every_refresh(pg_url: str) -> None:
    """TRUNCATE (which row triggers do not see) marks every session stale on PostgreSQL."""
    from receiver.db.engine import make_engine

    engine = make_engine(pg_url)
    try:
        script_meetings(engine)
        report(engine)
        assert stored_sessions(engine)
        with engine.begin() as connection:
            connection.execute(text("TRUNCATE participant_intervals"))
        assert stored_sessions(engine) == {}
        assert {r["participant_key"] for r in report(engine)} == set()
    finally:
        engine.dispose()


def test_equal_join_times_take_the_later_row_name_like_the_view(engine: Engine) -> None:
    """The report loads intervals in row-id order, so name ties break as in the view (and stay stable once stored)."""
    now = datetime(2026, 5, 1, 12, tzinfo=UTC)
    start = ts("2026-05-01 09:00")
    with engine.begin() as connection:
        connection.execute(
            insert(Session).values(
                session_id="tie", started_at=start, ended_at=start + timedelta(hours=1), status="ended", updated_at=now
            )
        )
        for peer, name in (("z-first", "First"), ("a-second", "Second")):  # peer ids sort the other way
            connection.execute(
                insert(ParticipantInterval).values(
                    session_id="tie",
                    peer_id=peer,
                    participant_key="tied",
                    display_name=name,
                    joined_at=start,
                    left_at=start + timedelta(minutes=1),
                    closed_at_session_end=False,
                    source="webhook",
                    updated_at=now,
                )
            )
    for _ in range(2):  # computed, then stored
        row = report(engine, ReportFilter(session_id="tie"))[0]
        assert row["display_name"] == "Second" and row["display_names"] == ["First", "Second"]
    assert rows_of(engine, "attendance", "WHERE session_id = 'tie'")[0]["display_name"] == "Second"
