"""The issue #21 pages (TestClient, both databases): filters, search, sort notices, pagination, downloads, the
person, series, overview and payload pages; and the chart geometry (pure).

Data: :func:`test_api.build_dataset` (see that module's docstring). The headless Chromium test of the same pages is
``test_browser_pages.py``.
"""

from __future__ import annotations

import csv
import io
import re
from datetime import UTC, datetime

import pytest
import test_pages
from sqlalchemy import update
from sqlalchemy.engine import Engine
from starlette.testclient import TestClient
from test_api import AUTH, SECRET_IN_BODY, TOKEN

from receiver.db.models import WebhookEvent
from receiver.web.pages.charts import bar_chart, line_chart, nice_max

# The scripted data and the page client of test_pages.py.
page_settings = test_pages.page_settings
data_engine = test_pages.data_engine
client = test_pages.client


# --------------------------------------------------------------------------
# Chart geometry (no server)
# --------------------------------------------------------------------------


def test_nice_axis_tops() -> None:
    """The value axis ends at 1, 2 or 5 x 10^k at or above the largest value."""
    assert [nice_max(v) for v in (0, 0.3, 1, 1.2, 3, 7, 130, 1000)] == [1, 0.5, 1, 2, 5, 10, 200, 1000]


def test_bar_chart_scales_bars_to_the_axis() -> None:
    """Bars sit on the baseline, heights proportional to the value over the axis top, left to right, none negative."""
    chart = bar_chart([("a", 130.0), ("b", 30.0), ("c", 0.0), ("d", -5.0)], width=400, height=100)
    assert chart.top == 200
    assert [b.height for b in chart.bars] == [65.0, 15.0, 0.0, 0.0]
    assert all(round(b.y + b.height, 2) == 100 for b in chart.bars)
    assert [b.x for b in chart.bars] == sorted(b.x for b in chart.bars) and chart.bars[0].x == 10.0
    assert [g.label for g in chart.grid] == ["0", "50", "100", "150", "200"]


def test_many_bars_keep_labels_apart() -> None:
    """With 400 daily bars only every n-th is labelled, and every bar stays at least 1 px wide."""
    chart = bar_chart([(f"d{i}", 1.0) for i in range(400)], width=720)
    labelled = [b for b in chart.bars if b.show_label]
    assert 5 < len(labelled) < 20 and all(b.width >= 1 for b in chart.bars)


def test_line_chart_points() -> None:
    """One point per value, centred in its slot, y from the top; svg_points feeds the polyline."""
    chart = line_chart([("x", 3.0), ("y", 1.0)], width=200, height=100)
    assert [(p.x, p.y) for p in chart.points] == [(50.0, 40.0), (150.0, 80.0)]
    assert chart.svg_points == "50.00,40.00 150.00,80.00"
    assert line_chart([]).points == []
    assert [g.label for g in chart.grid] == ["0", "1", "2", "3", "4", "5"]  # whole people, not 1.25


# --------------------------------------------------------------------------
# Pages
# --------------------------------------------------------------------------


def _rows(html: str, cls: str) -> list[str]:
    return re.findall(rf'<tr class="{cls}" data-[a-z-]+="([^"]+)"', html)


def test_sessions_filters_search_sort_and_pages(client: TestClient) -> None:
    """Search by person, a date range, sort both ways; the pager keeps the filters; a bad sort is a notice, not 500."""
    assert _rows(client.get("/ui/sessions?q=bob", headers=AUTH).text, "session") == ["s-1"]
    assert _rows(client.get("/ui/sessions?since=2026-03-03&until=2026-03-04", headers=AUTH).text, "session") == ["s-2"]
    assert _rows(client.get("/ui/sessions", headers=AUTH).text, "session") == ["s-3", "s-2", "s-1"]
    assert _rows(client.get("/ui/sessions?sort=started_at", headers=AUTH).text, "session") == ["s-1", "s-2", "s-3"]
    html = client.get("/ui/sessions?sort=peers;drop", headers=AUTH).text
    assert "Sort ignored: sort: use one of" in html and _rows(html, "session") == ["s-3", "s-2", "s-1"]
    assert 'value="bob"' in client.get("/ui/sessions?q=bob", headers=AUTH).text  # the form keeps the search
    assert client.get("/ui/sessions?since=yesterday", headers=AUTH).status_code == 400


def test_pager_links_keep_filters(client: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    """With two rows a page, the next link carries the search and sort and shows the rest."""
    monkeypatch.setattr("receiver.web.pages.listings.PAGE_SIZE", 2)
    html = client.get("/ui/sessions?q=m-&sort=started_at", headers=AUTH).text
    assert "1–2 of 3" in html
    [next_url] = re.findall(r'<a class="next" href="([^"]+)"', html)
    assert next_url.replace("&amp;", "&") == "/ui/sessions?q=m-&sort=started_at&offset=2"
    assert _rows(client.get(next_url.replace("&amp;", "&"), headers=AUTH).text, "session") == ["s-3"]


def test_downloads_mirror_the_api_rows(client: TestClient) -> None:
    """The page's CSV link downloads the filtered rows with the API mirror's columns, as an attachment."""
    html = client.get("/ui/sessions?q=alice", headers=AUTH).text
    [url] = re.findall(r'<a class="download-csv" href="([^"]+)"', html)
    response = client.get(url.replace("&amp;", "&"), headers=AUTH)
    assert response.headers["content-type"].startswith("text/csv")
    assert 'filename="sessions.csv"' in response.headers["content-disposition"]
    rows = list(csv.DictReader(io.StringIO(response.text)))
    api = client.get("/api/sessions?q=alice&sort=-started_at&format=csv", headers=AUTH).text
    assert response.text == api and [r["session_id"] for r in rows] == ["s-2", "s-1"]
    assert client.get("/ui/sessions?format=pdf", headers=AUTH).status_code == 400


def test_recordings_and_events_filters(client: TestClient) -> None:
    """Recordings by file name; events by type, session and delivery id, each linking to its payload page."""
    html = client.get("/ui/recordings?q=r-2.mp4", headers=AUTH).text
    assert "r-2.mp4" in html and "r-1.mp4" not in html
    assert _rows(client.get("/ui/events?event_name=meeting.unknownThing", headers=AUTH).text, "event") == ["4"]
    assert _rows(client.get("/ui/events?session_id=s-1", headers=AUTH).text, "event") == ["2", "1"]
    html = client.get("/ui/events?delivery_id=delivery-3&status=dead", headers=AUTH).text
    assert _rows(html, "event") == ["3"] and 'href="/ui/events/3"' in html
    assert client.get("/ui/events?status=zombie", headers=AUTH).status_code == 400


def test_payload_page_redacts_and_marks_purged(client: TestClient, data_engine: Engine) -> None:
    """The payload is pretty-printed without the stream key; a purged body says purged; unknown ids are 404."""
    html = client.get("/ui/events/1", headers=AUTH).text
    assert 'id="payload"' in html and "&#34;streamId&#34;: &#34;ls-1&#34;" in html and "[redacted]" in html
    assert SECRET_IN_BODY not in html and TOKEN not in html and "<script" not in html
    with data_engine.begin() as connection:
        connection.execute(
            update(WebhookEvent).where(WebhookEvent.id == 3).values(raw_body=b"", purged_at=datetime.now(UTC))
        )
    purged = client.get("/ui/events/3", headers=AUTH).text
    assert 'data-state="purged"' in purged and "purged" in purged and "boom &lt;script&gt;" in purged
    assert client.get("/ui/events/999", headers=AUTH).status_code == 404


def test_person_page(client: TestClient) -> None:
    """Alice's page: both sessions newest first, one weekly bar of 90 minutes, first and last seen; 404 for nobody."""
    html = client.get("/ui/people/alice", headers=AUTH).text
    assert _rows(html, "person-session") == ["s-2", "s-1"]
    assert re.findall(r'<rect class="chart-bar" data-label="([^"]+)" data-value="([^"]+)"', html) == [
        ("2026-03-02", "90.0")
    ]
    assert "2026-03-02 10:00:00Z" in html and "2026-03-03 09:30:00Z" in html and "Alice, Alice (phone)" in html
    assert client.get("/ui/people/nobody", headers=AUTH).status_code == 404
    assert 'href="/ui/people/alice"' in client.get("/ui/sessions/s-1", headers=AUTH).text
    found = client.get("/ui/people?participant=a/b c", headers=AUTH, follow_redirects=False)  # the sessions page's form
    assert found.status_code == 303 and found.headers["location"] == "/ui/people/a%2Fb%20c"
    assert client.get("/ui/people?participant=", headers=AUTH).status_code == 400


def test_series_page(client: TestClient) -> None:
    """m-1: the matrix has alice in both occurrences, bob and carol in the first; trend points; average ratio."""
    html = client.get("/ui/meetings/m-1/series", headers=AUTH).text
    assert _rows(html, "series-person") == ["alice", "bob", "c1"]  # most regular first, then by name
    alice = re.search(r'data-participant="alice">(.*?)</tr>', html, re.S)
    assert alice is not None and re.findall(r'class="num cell present">([^<]+)<', alice.group(1)) == ["60", "30"]
    assert len(re.findall(r'class="num cell absent"', html)) == 2
    assert re.findall(r'<circle class="trend-point" data-label="[^"]+" data-value="(\d+)"', html) == ["3", "1"]
    assert "79%" in html  # mean of 1.0, 0.3333, 0.8333, 1.0
    assert client.get("/ui/meetings/nope/series", headers=AUTH).status_code == 404
    assert client.get("/ui/meetings/m-1/series?occurrences=0", headers=AUTH).status_code == 400
    assert 'href="/ui/meetings/m-1/series"' in client.get("/ui/meetings", headers=AUTH).text


def test_overview_page(client: TestClient) -> None:
    """Per day: three bars in each chart; per week one; bad windows are 400 pages."""
    html = client.get("/ui/overview?since=2026-03-01&until=2026-03-08", headers=AUTH).text
    for chart in ("overview-sessions", "overview-people", "overview-minutes"):
        assert re.search(rf'id="{chart}"[^>]*data-bars="3"', html), chart
    assert 'data-label="2026-03-02" data-value="130.0"' in html
    weekly = client.get("/ui/overview?period=week&since=2026-03-01&until=2026-03-08", headers=AUTH).text
    assert re.search(r'id="overview-people"[^>]*data-bars="1"', weekly) and 'data-value="4"' in weekly
    assert client.get("/ui/overview?since=2026-03-08&until=2026-03-01", headers=AUTH).status_code == 400
    assert client.get("/ui/overview?period=year", headers=AUTH).status_code == 400
    assert client.get("/ui/overview", headers=AUTH).status_code == 200  # default window: the last 90 days


def test_new_pages_need_a_sign_in(client: TestClient) -> None:
    """The new pages are behind the same sign-in as the others."""
    for path in ("/ui/overview", "/ui/people/alice", "/ui/meetings/m-1/series", "/ui/events/1"):
        response = client.get(path, follow_redirects=False)
        assert response.status_code == 401 and 'action="/ui/login"' in response.text, path
