"""The pages under /ui: timeline and curve geometry (pure), rendering, the guard and the retry form.

Data: :func:`test_api.build_dataset` (see that module's docstring). Sign-in,
sessions, roles, CSRF, the audit log and the headless Chromium test are in
``test_login.py``.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from pydantic import SecretStr
from sqlalchemy import select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session as OrmSession
from starlette.testclient import TestClient
from test_api import AUTH, SECRET_IN_BODY, TOKEN, analyst_client, build_dataset

from receiver.db.engine import make_engine
from receiver.db.models import WebhookEvent
from receiver.reports.attendance import Interval, peak_concurrency
from receiver.settings import Settings
from receiver.web.pages import (
    MIN_BAR_WIDTH,
    concurrency_curve,
    time_ticks,
    timeline_bounds,
    timeline_layout,
)

CHROMIUM = Path("/usr/bin/chromium")
T0 = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)


def at(minutes: float) -> datetime:
    """T0 (2026-03-02 10:00 UTC) plus ``minutes``."""
    return T0 + timedelta(minutes=minutes)


def iv(
    peer: str, key: str, start: float | None, end: float | None, name: str | None = None, closed: bool = False
) -> Interval:
    """An interval of ``peer`` (person ``key``) from minute ``start`` to minute ``end`` after T0 (None: unknown)."""
    return Interval(
        peer_id=peer,
        participant_key=key,
        joined_at=at(start) if start is not None else None,
        left_at=at(end) if end is not None else None,
        display_name=name,
        closed_at_session_end=closed,
    )


# --------------------------------------------------------------------------
# Geometry (no server)
# --------------------------------------------------------------------------


def test_timeline_one_row_per_person_one_bar_per_interval() -> None:
    """Rows are people in first-join order with one bar per peer, x and width proportional to time over the width in px."""
    rows = timeline_layout(
        at(0),
        at(60),
        [iv("b1", "bob", 5, 15, "Bob"), iv("a1", "alice", 0, 40, "Alice"), iv("b2", "bob", 20, 30, "Robert")],
        600,
    )
    assert [r.participant_key for r in rows] == ["alice", "bob"]
    assert [r.label for r in rows] == ["Alice", "Robert"]  # the latest display name
    alice, bob = rows
    assert [(b.x, b.width) for b in alice.bars] == [(0.0, 400.0)]
    assert [(b.peer_id, b.x, b.width) for b in bob.bars] == [
        ("b1", 50.0, 100.0),
        ("b2", 200.0, 100.0),
    ]  # the gap shows the rejoin
    assert not any(b.overlaps or b.open_end for r in rows for b in r.bars)


def test_timeline_flags_overlapping_devices_and_open_ends() -> None:
    """Two devices at once are flagged as overlapping; a missing leave is drawn to the axis end and flagged open."""
    rows = timeline_layout(
        at(0), at(60), [iv("a1", "alice", 0, 40), iv("a2", "alice", 30, None), iv("a3", "alice", 50, 55)], 600
    )
    bars = {b.peer_id: b for b in rows[0].bars}
    assert bars["a1"].overlaps and bars["a2"].overlaps and bars["a3"].overlaps  # a3 lies inside the open a2
    assert bars["a2"].open_end and bars["a2"].end == at(60) and bars["a2"].x + bars["a2"].width == 600.0
    touching = timeline_layout(at(0), at(60), [iv("p1", "k", 0, 10), iv("p2", "k", 10, 20)], 600)
    assert not any(b.overlaps for b in touching[0].bars)  # a leave and a rejoin at the same instant do not overlap


def test_timeline_clips_and_keeps_instants_visible() -> None:
    """Bars are clipped to the axis, an instant gets the minimum width, and intervals without a join are left out."""
    rows = timeline_layout(
        at(0),
        at(60),
        [iv("early", "e", -10, 5), iv("late", "l", 55, 90), iv("blink", "b", 30, 30), iv("ghost", "g", None, 20)],
        600,
    )
    bars = {b.peer_id: b for r in rows for b in r.bars}
    assert set(bars) == {"early", "late", "blink"}
    assert (bars["early"].x, bars["early"].width, bars["early"].start) == (0.0, 50.0, at(0))
    assert (bars["late"].x, bars["late"].width, bars["late"].end) == (550.0, 50.0, at(60))
    assert bars["blink"].width == MIN_BAR_WIDTH and bars["blink"].x == 300.0
    assert all(0 <= b.x and b.x + b.width <= 600 for b in bars.values())


def test_timeline_of_a_zero_length_axis() -> None:
    """A session whose start equals its end draws every bar at x=0 with the minimum width instead of dividing by zero."""
    rows = timeline_layout(at(0), at(0), [iv("p", "k", 0, 0)], 600)
    assert [(b.x, b.width) for b in rows[0].bars] == [(0.0, MIN_BAR_WIDTH)]


def test_concurrency_curve_steps_and_peak() -> None:
    """The curve steps at every join and leave, its peak matches peak_concurrency, and y runs from height (0) to 0 (peak) in px."""
    intervals = [
        iv("a1", "alice", 0, 40),
        iv("a2", "alice", 30, 60),
        iv("b1", "bob", 5, 15),
        iv("b2", "bob", 20, 30),
        iv("c1", "c1", 10, None),
    ]
    curve = concurrency_curve(at(0), at(60), intervals, 600, 120)
    assert curve.peak == 3
    spans = [(i.joined_at, i.left_at or at(60)) for i in intervals]
    assert curve.peak == peak_concurrency(spans)
    assert [(t, n) for t, n in curve.steps] == [
        (at(0), 1),
        (at(5), 2),
        (at(10), 3),
        (at(15), 2),
        (at(20), 3),
        (at(40), 2),
    ]  # at 10:30 bob's leave and alice's second join cancel out: no step
    assert curve.points[0] == (0.0, 80.0) and curve.points[-1] == (600.0, 40.0)
    xs = [x for x, _ in curve.points]
    assert xs == sorted(xs)  # a step path: time never runs backwards
    for (x1, y1), (x2, y2) in zip(curve.points, curve.points[1:], strict=False):
        assert x1 == x2 or y1 == y2  # only horizontal and vertical segments
    assert curve.svg_points.startswith("0.00,80.00 50.00,80.00 50.00,40.00")


def test_concurrency_curve_without_people_is_flat() -> None:
    """No intervals: peak 0 and a flat line along the bottom of the box."""
    curve = concurrency_curve(at(0), at(60), [], 600, 120)
    assert curve.peak == 0 and curve.points == ((0.0, 120.0), (600.0, 120.0))


def test_timeline_bounds_of_live_and_unknown_sessions() -> None:
    """A live session's axis ends at as_of; an unknown start falls back to the first join; the end never precedes the start."""
    now = at(90)
    assert timeline_bounds(at(0), None, [iv("p", "k", 5, None)], now) == (at(0), now)
    assert timeline_bounds(None, at(60), [iv("p", "k", 5, 50)], now) == (at(5), at(60))
    assert timeline_bounds(at(10), at(5), [], now) == (at(10), at(10))


def test_time_ticks_are_round_and_inside_the_axis() -> None:
    """Ticks fall on round UTC times inside the axis, at most the requested number, with x in px."""
    ticks = time_ticks(at(0), at(60), 600, max_ticks=8)
    assert [t.label for t in ticks] == ["10:00", "10:10", "10:20", "10:30", "10:40", "10:50", "11:00"]
    assert [t.x for t in ticks] == [0.0, 100.0, 200.0, 300.0, 400.0, 500.0, 600.0]
    odd = time_ticks(at(0.5), at(3), 300, max_ticks=6)
    assert 1 <= len(odd) <= 6 and all(0 <= t.x <= 300 for t in odd)


# --------------------------------------------------------------------------
# Rendering (TestClient, both databases)
# --------------------------------------------------------------------------


@pytest.fixture
def page_settings(settings: Settings) -> Settings:
    """The test settings with an API token."""
    return settings.model_copy(update={"api_tokens": SecretStr(f"ops:operator:{TOKEN}")})


@pytest.fixture
def data_engine(page_settings: Settings):
    """An engine on the test database holding the scripted data."""
    engine = make_engine(page_settings.database_url)
    build_dataset(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def client(page_settings: Settings, data_engine: Engine):
    """A page client on the scripted data (no credentials set)."""
    with analyst_client(page_settings) as c:
        yield c


def test_pages_render_with_names_escaped(client: TestClient) -> None:
    """Every page answers 200 with its content, HTML-escaped, under a strict CSP and without any raw body or secret."""
    pages = {
        "/ui/meetings": ["Weekly sync", "Town &lt;hall&gt; &amp; co", "m-2"],
        "/ui/sessions": ["s-1", "s-2", "s-3", "Weekly sync", "live"],
        "/ui/sessions?meeting_id=m-2": ["s-3"],
        "/ui/sessions/s-1": [
            "Alice (phone)",
            "Bob",
            "Carol",
            "closed at session end",
            'id="timeline"',
            'id="concurrency-curve"',
        ],
        "/ui/sessions/s-3": ["Frank &lt;b&gt;", "still live"],
        "/ui/recordings": ["r-1.mp4", "r-2.mp4", "https://recordings.example.com/r-2.mp4?sig=abc"],
        "/ui/events": ["livestreaming.statusUpdate", "boom &lt;script&gt;", "dead", "unknown_event"],
    }
    for path, needles in pages.items():
        response = client.get(path, headers=AUTH)
        assert response.status_code == 200, path
        assert response.headers["content-type"].startswith("text/html")
        assert "default-src 'none'" in response.headers["content-security-policy"]
        for needle in needles:
            assert needle in response.text, (path, needle)
        assert SECRET_IN_BODY not in response.text and TOKEN not in response.text
        assert "<script" not in response.text and "Frank <b>" not in response.text
    assert "/ui/sessions?meeting_id=m-2" in client.get("/ui/meetings", headers=AUTH).text
    assert "s-1" not in client.get("/ui/sessions?meeting_id=m-2", headers=AUTH).text


def test_session_page_timeline_and_curve(client: TestClient) -> None:
    """The session page draws one timeline-bar per interval with data-participant, pale overlaps, and the step curve."""
    html = client.get("/ui/sessions/s-1", headers=AUTH).text
    bars = re.findall(r'<rect class="(timeline-bar[^"]*)"\s+data-participant="([^"]+)"', html)
    assert sorted(p for _, p in bars) == ["alice", "alice", "bob", "bob", "c1"]
    assert sum("overlap" in cls for cls, _ in bars) == 2  # alice's two devices
    assert sum("open-end" in cls for cls, _ in bars) == 1  # carol, closed at the session end
    curve = re.search(r'<polyline id="concurrency-curve" data-peak="(\d+)" points="([^"]+)"', html)
    assert curve is not None and curve.group(1) == "3"
    assert curve.group(2).startswith("0.00,80.00 60.00,80.00 60.00,40.00")


def test_recordings_page_marks_expired_links(client: TestClient) -> None:
    """The recording whose link expired is marked expired and struck through; the valid one is a plain link."""
    html = client.get("/ui/recordings", headers=AUTH).text
    rows = {
        m.group(1): m.group(0) for m in re.finditer(r'<tr class="recording[^"]*">.*?(r-\d)\.mp4.*?</tr>', html, re.S)
    }
    assert 'class="download expired-link"' in rows["r-1"] and "expired</span>" in rows["r-1"]
    assert "expired" not in rows["r-2"]


def test_attendance_csv_download(client: TestClient) -> None:
    """The session page's CSV link downloads the attendance rows as an attachment."""
    response = client.get("/ui/sessions/s-1/attendance.csv", headers=AUTH)
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/csv")
    assert 'filename="attendance-s-1.csv"' in response.headers["content-disposition"]
    assert len(response.text.strip().splitlines()) == 4  # header + alice, bob, c1


def test_unknown_session_and_bad_status_pages(client: TestClient) -> None:
    """An unknown session is a 404 page and an unknown event status a 400 page, never a 500."""
    assert client.get("/ui/sessions/nope", headers=AUTH).status_code == 404
    assert client.get("/ui/events?status=zombie", headers=AUTH).status_code == 400
    assert client.get("/ui/sessions?offset=-1", headers=AUTH).status_code == 400
    assert client.get("/ui/sessions/a%00b", headers=AUTH).status_code == 400


def test_pages_need_a_sign_in(client: TestClient) -> None:
    """Without a sign-in or bearer header, or with a wrong bearer token, every page is a 401 with a Bearer challenge
    whose body is the sign-in form."""
    for path in (
        "/ui",
        "/ui/meetings",
        "/ui/sessions",
        "/ui/sessions/s-1",
        "/ui/recordings",
        "/ui/events",
        "/ui/audit",
    ):
        response = client.get(path, follow_redirects=False)
        assert response.status_code == 401, path
        assert response.headers["www-authenticate"].startswith("Bearer")
        assert 'action="/ui/login"' in response.text
        assert client.get(path, headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert client.post("/ui/events/2/retry").status_code == 401


def test_a_token_in_the_url_is_refused(client: TestClient) -> None:
    """?token= is never accepted: 400, no cookie, no redirect carrying it, the token not echoed; with or without a
    valid sign-in."""
    for headers in ({}, AUTH):
        response = client.get(f"/ui/sessions?meeting_id=m-1&token={TOKEN}", headers=headers, follow_redirects=False)
        assert response.status_code == 400
        assert "set-cookie" not in response.headers and "location" not in response.headers
        assert TOKEN not in response.text and "/ui/login" in response.text


def test_pages_unconfigured_answer_503(settings: Settings) -> None:
    """Without API_TOKENS the pages and the sign-in answer 503 whatever the credentials."""
    with analyst_client(settings) as c:
        assert c.get("/ui/sessions", headers=AUTH).status_code == 503
        assert c.get(f"/ui/sessions?token={TOKEN}", follow_redirects=False).status_code == 503
        assert c.post("/ui/login", data={"token": TOKEN}).status_code == 503


def _status(engine: Engine, event_id: int) -> tuple[str, int]:
    with OrmSession(engine) as db:
        row = db.execute(select(WebhookEvent).where(WebhookEvent.id == event_id)).scalar_one()
        return row.status, row.attempts


def test_event_log_retry_buttons(client: TestClient) -> None:
    """For an operator, failed and dead events get a Retry button and done ones a Replay link (to a confirmation);
    processing and ignored events get none."""
    html = client.get("/ui/events", headers=AUTH).text
    forms = set(re.findall(r'action="/ui/events/(\d+)/retry"', html))
    assert forms == {"2", "3"}
    assert set(re.findall(r'href="/ui/events/(\d+)/replay"', html)) == {"1"}
    assert 'href="/ui/events/retry-dead"' in html


def test_retry_form_with_bearer_header(client: TestClient, data_engine: Engine) -> None:
    """A retry with the bearer header needs no CSRF field; an ignored event is a 409 page and an unknown one a 404 page."""
    assert client.post("/ui/events/2/retry", headers=AUTH, follow_redirects=False).status_code == 303
    assert _status(data_engine, 2) == ("pending", 0)
    assert client.post("/ui/events/4/retry", headers=AUTH).status_code == 409
    assert client.post("/ui/events/999/retry", headers=AUTH).status_code == 404
    assert client.post("/ui/events/x/retry", headers=AUTH).status_code == 400
