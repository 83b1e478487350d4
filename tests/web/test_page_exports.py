"""The list pages' CSV/XLSX buttons (issue #21 item 2): /ui/export/{attendance,sessions,recordings}."""

from __future__ import annotations

import html
import io
import re

import pytest
from openpyxl import load_workbook
from pydantic import SecretStr
from starlette.testclient import TestClient
from test_api import AUTH, TOKEN, analyst_client, build_dataset

from receiver.db.engine import make_engine
from receiver.settings import Settings


@pytest.fixture
def client(settings: Settings):
    """A page client on test_api's scripted meetings."""
    pages = settings.model_copy(update={"api_tokens": SecretStr(f"ops:operator:{TOKEN}")})
    engine = make_engine(pages.database_url)
    build_dataset(engine)
    with analyst_client(pages) as c:
        yield c
    engine.dispose()


def _links(page: str) -> list[str]:
    return [html.unescape(href) for href in re.findall(r'href="(/ui/export/[^"]+)"', page)]


def test_each_list_page_links_csv_and_xlsx_downloads_that_work(client: TestClient) -> None:
    """Sessions, recordings and a session's attendance each offer CSV and XLSX; both links download the rows."""
    expected_rows = {"/ui/sessions": 3, "/ui/recordings": 2, "/ui/sessions/s-1": 3}
    for page, rows in expected_rows.items():
        links = _links(client.get(page, headers=AUTH).text)
        assert [re.search(r"format=(\w+)", link).group(1) for link in links] == ["csv", "xlsx"], page
        as_csv = client.get(links[0], headers=AUTH)
        assert as_csv.status_code == 200 and as_csv.headers["content-type"].startswith("text/csv"), page
        assert len(as_csv.text.strip().splitlines()) == rows + 1, page
        as_xlsx = client.get(links[1], headers=AUTH)
        assert as_xlsx.headers["content-disposition"].endswith('.xlsx"'), page
        sheet = load_workbook(io.BytesIO(as_xlsx.content)).active
        assert sheet.max_row == rows + 1, page


def test_filters_reach_the_download(client: TestClient) -> None:
    """The sessions page of meeting m-2 downloads only that meeting's session."""
    (csv_link, _) = _links(client.get("/ui/sessions?meeting_id=m-2", headers=AUTH).text)
    lines = client.get(csv_link, headers=AUTH).text.strip().splitlines()
    assert len(lines) == 2 and lines[1].startswith("s-3,m-2,")


def test_bad_download_parameters_are_400_pages(client: TestClient) -> None:
    """Unknown format, zone or parameter: a 400 page, never a 500; no sign-in: the login page."""
    for path in (
        "/ui/export/sessions?format=pdf",
        "/ui/export/attendance?tz=Nowhere/City",
        "/ui/export/recordings?x=1",
    ):
        assert client.get(path, headers=AUTH).status_code == 400, path
    assert client.get("/ui/export/sessions").status_code == 401
