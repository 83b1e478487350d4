"""What the paged listings share: a page of rows, the sort whitelist, and search patterns.

Owns :class:`Page` (one ``LIMIT``/``OFFSET`` slice and the total count),
:func:`parse_sort` (a sort key such as ``-started_at`` checked against a
whitelist of columns) and :func:`contains_pattern` (a ``LIKE`` pattern with
the user's ``%`` and ``_`` taken literally). Pure: no database access.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["LIKE_ESCAPE", "Page", "SortError", "Sort", "contains_pattern", "parse_sort"]

#: The escape character of :func:`contains_pattern` (pass as ``escape=`` to ``like``/``ilike``).
LIKE_ESCAPE = "\\"


class SortError(ValueError):
    """A sort key outside the listing's whitelist (the API answers 400; pages ignore it with a notice)."""


@dataclass(frozen=True)
class Sort:
    """A checked sort: ``key`` (a whitelisted column name) and the direction."""

    key: str
    descending: bool

    @property
    def text(self) -> str:
        """The sort as written in a query string: ``key`` or ``-key``."""
        return f"-{self.key}" if self.descending else self.key


@dataclass(frozen=True)
class Page:
    """Rows ``[offset, offset + limit)`` of a listing and ``total``, the number of rows matching (not the page)."""

    rows: Sequence[dict[str, Any]]
    total: int
    limit: int
    offset: int


def parse_sort(text: str | None, allowed: Mapping[str, Any], default: str) -> Sort:
    """The :class:`Sort` of ``text`` (``key`` ascending, ``-key`` descending); ``default`` when empty.

    Raises:
        SortError: the key is not in ``allowed`` (the message lists the allowed keys).
    """
    raw = (text or "").strip() or default
    descending = raw.startswith("-")
    key = raw[1:] if descending else raw
    if key not in allowed:
        raise SortError(f"sort: use one of {', '.join(sorted(allowed))} (prefix - for descending)")
    return Sort(key, descending)


def contains_pattern(text: str) -> str:
    """A ``LIKE`` pattern matching values that contain ``text`` (``%``, ``_`` and ``\\`` taken literally)."""
    escaped = text.replace(LIKE_ESCAPE, LIKE_ESCAPE * 2).replace("%", LIKE_ESCAPE + "%").replace("_", LIKE_ESCAPE + "_")
    return f"%{escaped}%"
