"""Keyset pages of the attendance report (GET /api/attendance cursors) on SQLite and PostgreSQL.

Walking the pages from the start, whatever the page size, gives exactly the
report's rows in the report's order, whether the sessions are stored,
stale or live; totals are exact below the estimate threshold and flagged
when estimated.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import insert
from sqlalchemy.engine import Engine
from test_reports_summary import AS_OF, computed, report, stored_sessions
from test_views import Script, script_meetings

import receiver.reports.attendance_keyset as keyset
from receiver.db.models import ParticipantInterval, Session
from receiver.reports.attendance_keyset import PageKey, attendance_after, attendance_total
from receiver.reports.queries import ReportFilter

FILTERS = [None, ReportFilter(participant="bob"), ReportFilter(meeting_id="m-1"), ReportFilter(session_id="nope")]


@pytest.fixture
def scripted(engine: Engine) -> Engine:
    """The scripted meetings of tests/db/test_views.py (s-1, s-2 ended; s-3 live)."""
    script_meetings(engine)
    return engine


def walk(engine: Engine, flt: ReportFilter | None, limit: int) -> list[dict[str, Any]]:
    """Every row, page by page from the start; each page but the last is full and hands on a key."""
    rows: list[dict[str, Any]] = []
    after: PageKey | None = None
    for _ in range(100):
        page, after = attendance_after(engine, flt, limit=limit, after=after, as_of=AS_OF)
        rows += page
        if after is None:
            return rows
        assert len(page) == limit
    raise AssertionError("the pages never ended")


def test_pages_walk_the_whole_report_whatever_is_stored(scripted: Engine) -> None:
    """Nothing stored, all ended sessions stored, one stale again: the walked pages equal the report, totals exact."""

    def check() -> None:
        for flt in FILTERS:
            whole = computed(scripted, flt) if flt is None else report(scripted, flt)
            for limit in (1, 2, 3, 7, 1000):
                assert walk(scripted, flt, limit) == whole, (flt, limit)
            assert attendance_total(scripted, flt) == (len(whole), True), flt

    check()  # computed() drops the markers: the pages compute and store what they read
    report(scripted)
    assert stored_sessions(scripted) == {"s-1": 5, "s-2": 1}
    check_stored = walk(scripted, None, 2)
    assert check_stored == report(scripted)
    s = Script(scripted)
    s.event_id = 3000
    s.ended("s-2", "2026-03-03 09:00:00", "2026-03-03 09:45:00")  # a moved end: s-2 stale, s-1 stored, s-3 live
    assert "s-2" not in stored_sessions(scripted) and "s-1" in stored_sessions(scripted)
    whole = report(scripted)
    assert attendance_total(scripted) == (len(whole), True)
    for limit in (1, 2, 4):
        assert walk(scripted, None, limit) == whole


def test_a_page_starts_after_its_key_even_when_that_row_is_gone(scripted: Engine) -> None:
    """The key of the last row of a page gives the rows after it; a key between rows gives the next row."""
    whole = report(scripted)
    report(scripted)
    first, after = attendance_after(scripted, limit=2, as_of=AS_OF)
    assert first == whole[:2] and after is not None
    assert (after.session_id, after.position) == ("s-1", 1)
    second, _ = attendance_after(scripted, limit=2, after=after, as_of=AS_OF)
    assert second == whole[2:4]
    gone = PageKey(after.started_at, "s-1-deleted", 0)  # sorts after s-1, before s-2
    rest, _ = attendance_after(scripted, limit=10, after=gone, as_of=AS_OF)
    assert rest == [row for row in whole if row["session_id"] != "s-1"]
    with pytest.raises(ValueError):
        attendance_after(scripted, limit=0)


def test_sessions_without_a_start_come_last(scripted: Engine) -> None:
    """A session with no known start is listed after every started one, on both databases."""
    with scripted.begin() as connection:
        connection.execute(
            insert(Session).values(
                session_id="a-no-start", meeting_id="m-1", status="live", updated_at=datetime(2026, 3, 4, tzinfo=UTC)
            )
        )
        connection.execute(
            insert(ParticipantInterval).values(
                session_id="a-no-start",
                peer_id="peer-z",
                participant_key="zoe",
                display_name="Zoe",
                joined_at=datetime(2026, 3, 4, 9, tzinfo=UTC),
                source="webhook",
                updated_at=datetime(2026, 3, 4, tzinfo=UTC),
            )
        )
    rows = walk(scripted, None, 2)
    assert rows[-1]["participant_key"] == "zoe"
    started = [row for row in report(scripted) if row["session_id"] != "a-no-start"]
    assert rows[:-1] == started
    assert attendance_total(scripted) == (len(rows), True)


def test_large_totals_are_estimated_on_postgresql(scripted: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    """Above the threshold PostgreSQL answers the planner's estimate, flagged as not exact; SQLite always counts."""
    report(scripted)
    monkeypatch.setattr(keyset, "ESTIMATE_ABOVE", -1)
    total, exact = attendance_total(scripted)
    if scripted.dialect.name == "postgresql":
        assert not exact and total >= 0
    else:
        assert (total, exact) == (len(report(scripted)), True)
