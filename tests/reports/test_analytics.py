"""Issue #21 reports: paged/sorted/searched listings, the event log and payload view, a person across sessions,
a recurring meeting's matrix, the organisation overview; pure arithmetic first, then both databases.

Data: :func:`test_api.build_dataset` (see that module's docstring): meeting m-1 with sessions s-1 (alice 60 min on
two devices, bob 20 min, carol 50 min) and s-2 (alice 30 min), meeting m-2 with the live s-3 (frank 10 min).
"""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
from sqlalchemy import update
from sqlalchemy.engine import Engine
from test_api import SECRET_IN_BODY, build_dataset

from receiver.db.models import WebhookEvent
from receiver.reports.browse import recordings_page, sessions_page
from receiver.reports.event_log import EventFilter, event_detail, event_page, pretty_payload
from receiver.reports.overview import usage_overview
from receiver.reports.paging import SortError, contains_pattern, parse_sort
from receiver.reports.people import person_report
from receiver.reports.rows import ReportFilter
from receiver.reports.series import series_cells, series_report
from receiver.reports.trends import bucket_start, fill_buckets, series_matrix, weekly_minutes

# --------------------------------------------------------------------------
# Pure
# --------------------------------------------------------------------------


def test_sort_keys_are_whitelisted() -> None:
    """A known key sorts either way; an unknown one (or SQL) is refused with the allowed keys listed."""
    allowed = {"started_at": 1, "status": 2}
    assert parse_sort("-started_at", allowed, "status").descending is True
    assert parse_sort(None, allowed, "status").key == "status"
    with pytest.raises(SortError, match="started_at, status"):
        parse_sort("started_at; DROP TABLE sessions", allowed, "status")


def test_search_takes_wildcards_literally() -> None:
    """A user's % and _ match themselves, not anything."""
    assert contains_pattern("50%_off") == "%50\\%\\_off%"


def test_weeks_start_on_monday_and_gaps_are_zero() -> None:
    """Minutes are summed per ISO week (Monday, UTC) of the session start; a week without sessions shows 0."""
    assert bucket_start(date(2026, 3, 8), "week") == date(2026, 3, 2)  # a Sunday
    rows = [
        {"session_started_at": datetime(2026, 3, 2, 10, tzinfo=UTC), "attended_seconds": 3600.0},
        {"session_started_at": datetime(2026, 3, 8, 23, tzinfo=UTC), "attended_seconds": 90.0},
        {"session_started_at": datetime(2026, 3, 17, 9, tzinfo=UTC), "attended_seconds": 600.0},
    ]
    assert weekly_minutes(rows) == [
        {"period_start": date(2026, 3, 2), "sessions": 2, "attended_minutes": 61.5},
        {"period_start": date(2026, 3, 9), "sessions": 0, "attended_minutes": 0.0},
        {"period_start": date(2026, 3, 16), "sessions": 1, "attended_minutes": 10.0},
    ]
    assert fill_buckets({}, "day", {}) == []


def test_series_matrix_orders_occurrences_and_people() -> None:
    """Occurrences oldest first; the most regular person first; an absence is None; trend and ratios per occurrence."""
    sessions = [
        {"session_id": "b", "started_at": datetime(2026, 3, 9, tzinfo=UTC)},
        {"session_id": "a", "started_at": datetime(2026, 3, 2, tzinfo=UTC)},
    ]
    rows = [
        {"session_id": "a", "participant_key": "p2", "display_name": "Zed", "attended_seconds": 600.0,
         "attendance_ratio": 0.5},
        {"session_id": "a", "participant_key": "p1", "display_name": "Ann", "attended_seconds": 1200.0,
         "attendance_ratio": 1.0},
        {"session_id": "b", "participant_key": "p2", "display_name": "Zed", "attended_seconds": 300.0,
         "attendance_ratio": 0.25},
        {"session_id": "other", "participant_key": "p3", "display_name": "Out", "attended_seconds": 1.0,
         "attendance_ratio": 1.0},
    ]  # fmt: skip
    matrix = series_matrix(sessions, rows)
    assert [o["session_id"] for o in matrix.occurrences] == ["a", "b"]
    assert [(p.participant_key, p.cells, p.attended) for p in matrix.people] == [
        ("p2", [10.0, 5.0], 2),
        ("p1", [20.0, None], 1),
    ]
    assert [(t["people"], t["attended_minutes"], t["average_ratio"]) for t in matrix.trend] == [
        (2, 30.0, 0.75),
        (1, 5.0, 0.25),
    ]
    assert matrix.average_ratio == round((0.5 + 1.0 + 0.25) / 3, 4)


def test_payload_view_redacts_secrets_and_survives_non_json() -> None:
    """Stream keys and tokens inside a stored body are replaced; a body that is not JSON is shown as text."""
    shown = pretty_payload(b'{"livestream": {"streamKey": "sk-123456", "name": "n"}, "token": "t-999999"}')
    assert "sk-123456" not in shown and "t-999999" not in shown and '"name": "n"' in shown
    assert "[redacted]" in shown and "\n  " in shown  # indented
    assert pretty_payload(b"not json \xff") == "not json \ufffd"
    storage = pretty_payload(
        b'{"storage_config": [{"type": "aws", "access_key": "AKIAEXAMPLE", "secret": "s3cr3t-value",'
        b' "private_key": "-----BEGIN", "bucket": "rec"}]}'
    )
    assert not any(v in storage for v in ("AKIAEXAMPLE", "s3cr3t-value", "BEGIN")) and '"bucket": "rec"' in storage


# --------------------------------------------------------------------------
# Both databases
# --------------------------------------------------------------------------


@pytest.fixture
def data(engine: Engine) -> Engine:
    """The test database with the scripted data."""
    build_dataset(engine)
    return engine


def test_sessions_page_filters_searches_sorts_and_pages(data: Engine) -> None:
    """Search by person name or key, by meeting title; sort both ways; the total counts every match, not the page."""
    assert [r["session_id"] for r in sessions_page(data, ReportFilter(), q="bob", limit=10).rows] == ["s-1"]
    assert [r["session_id"] for r in sessions_page(data, ReportFilter(), q="alice", limit=10).rows] == ["s-1", "s-2"]
    assert [r["session_id"] for r in sessions_page(data, ReportFilter(), q="TOWN <h", limit=10).rows] == ["s-3"]
    assert sessions_page(data, ReportFilter(), q="%", limit=10).total == 0
    page = sessions_page(data, ReportFilter(), sort="-started_at", limit=2, offset=1)
    assert page.total == 3 and [r["session_id"] for r in page.rows] == ["s-2", "s-1"]
    window = ReportFilter(since=datetime(2026, 3, 3, tzinfo=UTC), until=datetime(2026, 3, 4, tzinfo=UTC))
    assert [r["session_id"] for r in sessions_page(data, window, limit=10).rows] == ["s-2"]
    assert sessions_page(data, ReportFilter(), limit=10).rows[0]["participants"] == 3  # full session rows
    with pytest.raises(SortError):
        sessions_page(data, ReportFilter(), sort="peers", limit=10)


def test_recordings_page_search_and_sort(data: Engine) -> None:
    """Recordings match by file name or meeting title and sort by size or start."""
    assert [r["recording_id"] for r in recordings_page(data, ReportFilter(), q="r-2.MP4", limit=10).rows] == ["r-2"]
    assert recordings_page(data, ReportFilter(), q="weekly", limit=10).total == 2
    assert [r["recording_id"] for r in recordings_page(data, ReportFilter(), sort="started_at", limit=1).rows] == [
        "r-1"
    ]


def test_event_log_filters_and_payload(data: Engine) -> None:
    """Filter by type, session and delivery id; the payload view redacts the stream key; a purged body says so."""
    assert event_page(data, EventFilter(event_name="meeting.unknownThing"), limit=10).total == 1
    assert [r["id"] for r in event_page(data, EventFilter(session_id="s-1"), limit=10).rows] == [2, 1]
    assert [r["id"] for r in event_page(data, EventFilter(delivery_id="delivery-3"), limit=10).rows] == [3]
    assert [r["id"] for r in event_page(data, sort="attempts", limit=2).rows] == [4, 1]  # 0 attempts; ties by id
    detail = event_detail(data, 1)
    assert detail is not None and detail["payload_state"] == "stored"
    assert SECRET_IN_BODY not in detail["payload"] and "ls-1" in detail["payload"]
    with data.begin() as connection:
        connection.execute(
            update(WebhookEvent).where(WebhookEvent.id == 2).values(raw_body=b"", purged_at=datetime.now(UTC))
        )
    purged = event_detail(data, 2)
    assert purged is not None and purged["payload_state"] == "purged" and purged["payload"] is None
    assert event_detail(data, 999) is None


def test_person_across_sessions(data: Engine) -> None:
    """Alice: two sessions, 90 minutes in the week of 2 March, first seen 10:00 on the 2nd, last 09:30 on the 3rd."""
    report = person_report(data, "alice", limit=1)
    assert report is not None
    assert report.summary["sessions"] == 2 and report.summary["attended_seconds"] == 5400.0
    assert report.summary["display_names"] == ["Alice", "Alice (phone)"]
    assert report.summary["first_seen_at"] == datetime(2026, 3, 2, 10, tzinfo=UTC)
    assert report.summary["last_seen_at"] == datetime(2026, 3, 3, 9, 30, tzinfo=UTC)
    assert report.weeks == [{"period_start": date(2026, 3, 2), "sessions": 2, "attended_minutes": 90.0}]
    assert report.sessions.total == 2 and [r["session_id"] for r in report.sessions.rows] == ["s-2"]  # newest first
    assert report.sessions.rows[0]["meeting_title"] == "Weekly sync"
    assert person_report(data, "nobody", limit=10) is None


def test_series_of_a_recurring_meeting(data: Engine) -> None:
    """m-1: two occurrences; alice came to both, bob and carol to the first; long form has one row per cell."""
    report = series_report(data, "m-1")
    assert report is not None and report.title == "Weekly sync" and report.total_occurrences == 2
    cells = {(p.participant_key, tuple(p.cells)) for p in report.matrix.people}
    assert cells == {("alice", (60.0, 30.0)), ("bob", (20.0, None)), ("c1", (50.0, None))}
    assert [t["people"] for t in report.matrix.trend] == [3, 1]
    assert len(series_cells(report)) == 4
    only_last = series_report(data, "m-1", occurrences=1)
    assert only_last is not None and [o["session_id"] for o in only_last.matrix.occurrences] == ["s-2"]
    assert series_report(data, "nope") is None


def test_overview_per_day_and_week(data: Engine) -> None:
    """Per day: one session a day with its people and minutes, the same when computed (first call, which stores the
    ended sessions) and when read from the stored rows; per week: distinct people, not a sum of days."""
    since, until = datetime(2026, 3, 1, tzinfo=UTC), datetime(2026, 3, 10, tzinfo=UTC)
    days = usage_overview(data, period="day", since=since, until=until)
    assert [(d["period_start"], d["sessions"], d["people"], d["attended_minutes"]) for d in days] == [
        (date(2026, 3, 2), 1, 3, 130.0),
        (date(2026, 3, 3), 1, 1, 30.0),
        (date(2026, 3, 4), 1, 1, 10.0),
    ]
    assert usage_overview(data, period="day", since=since, until=until) == days  # now from the stored rows
    [week] = usage_overview(data, period="week", since=since, until=until)
    assert (week["period_start"], week["sessions"], week["people"]) == (date(2026, 3, 2), 3, 4)
    with pytest.raises(ValueError, match="at most"):
        usage_overview(data, period="day", since=datetime(2020, 1, 1, tzinfo=UTC), until=until)
