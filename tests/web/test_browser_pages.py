"""Headless Chromium on the issue #21 pages: filters, sort, the payload view, the person and series pages, with
screenshots checked for their key elements.

Reuses ``test_login.py``'s uvicorn ``live_server`` (scripted data of :func:`test_api.build_dataset`) and its DevTools
``Browser``; skips with the reason when ``/usr/bin/chromium`` is missing (CI installs it). Screenshots are written
under ``tmp_path``; each is read back (Pillow) and must have the expected size and show the element's colour: the
chart bars (#2f6fdf), the matrix's attended cells (#e7f0fd). The DOM is checked through DevTools evaluation.
"""

from __future__ import annotations

import base64
import csv
import io
import json
from pathlib import Path
from typing import Any

import httpx
import pytest
import test_login
from test_api import SECRET_IN_BODY
from test_login import CHROMIUM, OPS, Browser

from receiver.web.login import COOKIE_NAME

Image = pytest.importorskip("PIL.Image", reason="pillow is not installed (pip install -e .[test])")

# The uvicorn server with the scripted data (and its settings) of test_login.py.
live_server = test_login.live_server

VIEWPORT = (1300, 1000)
BAR_BLUE = (0x2F, 0x6F, 0xDF)
CELL_BLUE = (0xE7, 0xF0, 0xFD)


def _signed_in(browser: Browser, url: str) -> None:
    """Open ``url``; sign in through the login form it answers with; land on ``url``."""
    browser.call(
        "Emulation.setDeviceMetricsOverride", width=VIEWPORT[0], height=VIEWPORT[1], deviceScaleFactor=1, mobile=False
    )
    browser.goto(url)
    assert browser.run("document.title").startswith("Sign in")
    browser.run(
        f"document.querySelector('input[name=token]').value = {json.dumps(OPS)};"
        "document.querySelector('form.login').submit()",
        navigates=True,
    )


def _count(browser: Browser, selector: str) -> int:
    return int(browser.run(f"document.querySelectorAll({json.dumps(selector)}).length"))


def _screenshot(browser: Browser, path: Path, selector: str | None = None) -> Any:
    """Save a PNG of the viewport (or of the element ``selector``, whole) to ``path``; return it as a Pillow image."""
    params: dict[str, Any] = {"format": "png"}
    if selector is not None:
        box = browser.run(
            f"(() => {{ const r = document.querySelector({json.dumps(selector)}).getBoundingClientRect();"
            " return [r.x + window.scrollX, r.y + window.scrollY, r.width, r.height]; })()"
        )
        x, y, width, height = box
        assert width > 0 and height > 0, selector
        params.update(clip={"x": x, "y": y, "width": width, "height": height, "scale": 1}, captureBeyondViewport=True)
    data = base64.b64decode(browser.call("Page.captureScreenshot", **params)["data"])
    path.write_bytes(data)
    image = Image.open(io.BytesIO(data)).convert("RGB")
    image.load()
    return image


def _pixels_near(image: Any, colour: tuple[int, int, int], tolerance: int = 10) -> int:
    """How many pixels of ``image`` are within ``tolerance`` of ``colour`` on every channel."""
    return sum(
        count
        for count, pixel in image.getcolors(maxcolors=image.width * image.height)
        if all(abs(a - b) <= tolerance for a, b in zip(pixel, colour, strict=True))
    )


@pytest.mark.skipif(not CHROMIUM.exists(), reason="needs /usr/bin/chromium (apt-get install chromium); CI installs it")
def test_chromium_filters_sorts_and_reads_a_payload(live_server: str, tmp_path: Path) -> None:
    """Sessions: the search form narrows to bob's session and keeps the text; a header link sorts; a bad sort shows
    a notice; the CSV link downloads the filtered rows. Events: the type filter, then the payload page, redacted."""
    browser = Browser(tmp_path / "profile")
    try:
        _signed_in(browser, f"{live_server}/ui/sessions")
        assert browser.run("location.pathname") == "/ui/sessions" and _count(browser, "tr.session") == 3
        browser.run(
            "document.querySelector('form.filter-form input[name=q]').value = 'bob';"
            "document.querySelector('form.filter-form').submit()",
            navigates=True,
        )
        assert browser.run("new URLSearchParams(location.search).get('q')") == "bob"  # empty dates: no filter
        assert browser.run("[...document.querySelectorAll('tr.session')].map(r => r.dataset.sessionId)") == ["s-1"]
        shot = _screenshot(browser, tmp_path / "sessions-filtered.png")
        assert shot.size == VIEWPORT and len(shot.getcolors(maxcolors=1 << 20)) > 20  # a rendered page, not blank
        assert browser.run("document.querySelector('form.filter-form input[name=q]').value") == "bob"

        browser.goto(f"{live_server}/ui/sessions")
        rows = "[...document.querySelectorAll('tr.session')].map(r => r.dataset.sessionId)"
        browser.run("document.querySelector('th a.sort').click()", navigates=True)  # "Started", sorted newest first
        assert browser.run("new URLSearchParams(location.search).get('sort')") == "started_at"
        assert browser.run(rows) == ["s-1", "s-2", "s-3"]  # flipped: oldest first
        browser.run("document.querySelector('th a.sort').click()", navigates=True)
        assert browser.run(rows) == ["s-3", "s-2", "s-1"]
        browser.goto(f"{live_server}/ui/sessions?sort=bogus")
        assert "Sort ignored" in browser.run("document.querySelector('.sort-notice').textContent")

        browser.goto(f"{live_server}/ui/sessions?q=alice")
        href = browser.run("document.querySelector('a.download-csv').href")
        [cookie] = [c for c in browser.cookies() if c["name"] == COOKIE_NAME]
        download = httpx.get(href, cookies={COOKIE_NAME: cookie["value"]})
        assert download.status_code == 200 and download.headers["content-type"].startswith("text/csv")
        assert [r["session_id"] for r in csv.DictReader(io.StringIO(download.text))] == ["s-2", "s-1"]

        browser.goto(f"{live_server}/ui/events")
        browser.run(
            "document.querySelector('form.filter-form input[name=session_id]').value = 's-1';"
            "document.querySelector('form.filter-form').submit()",
            navigates=True,
        )
        assert _count(browser, "tr.event") == 2
        browser.run("document.querySelector('a.event-link[href=\"/ui/events/1\"]').click()", navigates=True)
        assert browser.run("location.pathname") == "/ui/events/1"
        payload = browser.run("document.querySelector('pre#payload').textContent")
        assert '"streamId": "ls-1"' in payload and "[redacted]" in payload
        assert SECRET_IN_BODY not in browser.run("document.documentElement.outerHTML")
        shot = _screenshot(browser, tmp_path / "payload.png", "pre#payload")
        assert shot.width > 200 and shot.height > 40
    finally:
        browser.close()


@pytest.mark.skipif(not CHROMIUM.exists(), reason="needs /usr/bin/chromium (apt-get install chromium); CI installs it")
def test_chromium_person_and_series_pages(live_server: str, tmp_path: Path) -> None:
    """The person page shows alice's two sessions and one weekly bar (drawn: the screenshot has the bar colour); the
    series page's matrix has four attended cells (drawn in the cell colour) and a two-point trend; the overview
    draws its bars."""
    browser = Browser(tmp_path / "profile")
    try:
        _signed_in(browser, f"{live_server}/ui/sessions/s-1")
        browser.run("document.querySelector('a.person-link[href=\"/ui/people/alice\"]').click()", navigates=True)
        assert browser.run("location.pathname") == "/ui/people/alice"
        assert _count(browser, "tr.person-session") == 2 and _count(browser, "#weekly-minutes rect.chart-bar") == 1
        assert browser.run("document.querySelector('.first-seen').textContent") == "2026-03-02 10:00:00Z"
        page = _screenshot(browser, tmp_path / "person.png")
        assert page.size == VIEWPORT
        chart = _screenshot(browser, tmp_path / "person-weeks.png", "#weekly-minutes")
        assert _pixels_near(chart, BAR_BLUE) > 500  # the 90-minute bar, about 580 x 63 px

        browser.goto(f"{live_server}/ui/meetings")
        browser.run("document.querySelector('a.series-link[href=\"/ui/meetings/m-1/series\"]').click()", navigates=True)
        assert browser.run("location.pathname") == "/ui/meetings/m-1/series"
        people = browser.run("[...document.querySelectorAll('tr.series-person')].map(r => r.dataset.participant)")
        assert people == ["alice", "bob", "c1"]
        assert _count(browser, "td.cell.present") == 4 and _count(browser, "td.cell.absent") == 2
        assert _count(browser, "#series-trend circle.trend-point") == 2
        matrix = _screenshot(browser, tmp_path / "series-matrix.png", "#series-matrix")
        assert _pixels_near(matrix, CELL_BLUE, 4) > 4 * 400  # four attended cells, each well over 400 px
        trend = _screenshot(browser, tmp_path / "series-trend.png", "#series-trend")
        assert _pixels_near(trend, BAR_BLUE, 30) > 100  # the line and its points

        browser.goto(f"{live_server}/ui/overview?since=2026-03-01&until=2026-03-08")
        assert _count(browser, "#overview-sessions rect.chart-bar") == 3
        overview = _screenshot(browser, tmp_path / "overview-sessions.png", "#overview-sessions")
        assert _pixels_near(overview, BAR_BLUE) > 1000
        assert all((tmp_path / name).stat().st_size > 1000 for name in ("person.png", "series-matrix.png"))
    finally:
        browser.close()
