"""What the list pages share: their filter form values, sort (a bad key is ignored with a notice), offset,
download format, and the links that keep the filters (pager, sort headers, downloads).

A page's ``?format=csv`` (or another of :data:`receiver.web.exports.TABLE_FORMATS`)
answers the same rows as its API mirror through
:func:`receiver.web.exports.export_response`, under the page's sign-in
(the API itself takes only bearer tokens): at most ``EXPORT_LIMIT`` rows
from the page's offset, with ``X-Total-Count``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import Response

from receiver.errors import HTTPError
from receiver.reports.paging import SortError, parse_sort
from receiver.web.exports import TABLE_FORMATS, export_response
from receiver.web.params import MAX_LIMIT, MAX_OFFSET, int_param, parse_time_param, text_param
from receiver.web.templating import SECURITY_HEADERS

__all__ = ["EXPORT_LIMIT", "ListingQuery", "listing_query", "page_export", "page_format"]

#: Most rows one page download carries (the API's page limit).
EXPORT_LIMIT = MAX_LIMIT


def page_format(request: Request) -> str:
    """``html`` (no ``format``) or a download format of ``TABLE_FORMATS``; 400 for anything else."""
    fmt = request.query_params.get("format")
    if fmt is None or fmt == "html":
        return "html"
    if fmt not in TABLE_FORMATS:
        raise HTTPError(400, "bad_request", f"format: use html or {' or '.join(TABLE_FORMATS)}")
    return fmt


@dataclass
class ListingQuery:
    """A list page's query: ``values`` (the filter texts, for the form and links), parsed ``since``/``until``
    (aware UTC), the checked ``sort`` text, ``notice`` (why a sort was ignored), ``offset`` and ``fmt``."""

    path: str
    values: dict[str, str]
    since: datetime | None
    until: datetime | None
    sort: str
    default_sort: str
    offset: int
    fmt: str
    notice: str | None = None
    extra: dict[str, str] = field(default_factory=dict)

    def text(self, name: str) -> str | None:
        """The filter ``name`` as given, None when empty."""
        return self.values.get(name) or None

    def url(self, **changes: Any) -> str:
        """This page's URL with the filters, sort and offset kept, ``changes`` applied (None removes a key)."""
        params: dict[str, Any] = {**self.values, "sort": self.sort if self.sort != self.default_sort else None}
        params["offset"] = self.offset or None
        params.update(changes)
        query = urlencode({k: v for k, v in params.items() if v not in (None, "")})
        return f"{self.path}?{query}" if query else self.path

    def sort_url(self, key: str) -> str:
        """The URL sorting by ``key``: descending first, ascending when already descending by it; offset reset."""
        return self.url(sort=key if self.sort == f"-{key}" else f"-{key}", offset=None)

    def sort_mark(self, key: str) -> str:
        """``▼``/``▲`` when the page is sorted by ``key`` (descending/ascending), else empty."""
        if self.sort == f"-{key}":
            return "▼"
        return "▲" if self.sort == key else ""

    def download_urls(self) -> dict[str, str]:
        """Download links of the listing (format -> URL), with the filters and sort kept."""
        return {fmt: self.url(format=fmt) for fmt in TABLE_FORMATS}


def listing_query(request: Request, fields: Sequence[str], sorts: Mapping[str, Any], default_sort: str) -> ListingQuery:
    """The :class:`ListingQuery` of ``request``: text ``fields`` (``since``/``until`` parsed as times).

    Raises:
        HTTPError: 400 for a bad time, offset or format, or text with control characters; a bad sort is
            not an error on a page: the default applies and ``notice`` says why.
    """
    values: dict[str, str] = {}
    for name in fields:
        value = text_param(request, name)
        if value is not None:
            values[name] = value
    since = parse_time_param("since", values.get("since"))
    until = parse_time_param("until", values.get("until"))
    notice = None
    try:
        sort = parse_sort(request.query_params.get("sort"), sorts, default_sort).text
    except SortError as exc:
        sort, notice = default_sort, f"Sort ignored: {exc}."
    return ListingQuery(
        path=request.url.path,
        values=values,
        since=since,
        until=until,
        sort=sort,
        default_sort=default_sort,
        offset=int_param(request, "offset", 0, 0, MAX_OFFSET),
        fmt=page_format(request),
        notice=notice,
    )


def page_export(
    fmt: str, rows: Sequence[dict[str, Any]], columns: Sequence[str], filename: str, total: int | None = None
) -> Response:
    """A page's download (:func:`receiver.web.exports.export_response`) with the pages' security headers."""
    headers = {**SECURITY_HEADERS}
    if total is not None:
        headers["X-Total-Count"] = str(total)
    return export_response(fmt, rows, columns, json_body={}, filename=filename, headers=headers)
