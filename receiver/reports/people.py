"""One person across sessions: every session they attended, minutes per week, first and last seen (issue #21).

A person is a ``participant_key`` (the custom participant id, else the
peer id; see :mod:`receiver.reports.queries`). The rows are those of
:func:`receiver.reports.queries.attendance_report` filtered to the person
(one per session attended), with the session's start and meeting title
added; the arithmetic is :mod:`receiver.reports.trends`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.engine import Engine

from receiver.db.models import Meeting, Session
from receiver.reports.attendance_queries import attendance_report
from receiver.reports.intervals import CHUNK
from receiver.reports.paging import Page
from receiver.reports.rows import ATTENDANCE_COLUMNS, ReportFilter
from receiver.reports.trends import person_summary, weekly_minutes

__all__ = ["PERSON_SESSION_COLUMNS", "PersonReport", "person_report"]

#: Columns of a person's session rows: the attendance columns plus the session start and meeting title.
PERSON_SESSION_COLUMNS: tuple[str, ...] = (*ATTENDANCE_COLUMNS, "session_started_at", "meeting_title")


class PersonReport:
    """A person's report: ``summary`` (:func:`receiver.reports.trends.person_summary`), ``weeks``
    (:func:`receiver.reports.trends.weekly_minutes`) and ``sessions``, one page of their session rows
    (``PERSON_SESSION_COLUMNS``, newest session first)."""

    def __init__(self, summary: dict[str, Any], weeks: list[dict[str, Any]], sessions: Page) -> None:
        self.summary = summary
        self.weeks = weeks
        self.sessions = sessions


def _session_facts(engine: Engine, session_ids: list[str]) -> dict[str, tuple[Any, Any]]:
    facts: dict[str, tuple[Any, Any]] = {}
    with engine.connect() as connection:
        for start in range(0, len(session_ids), CHUNK):
            chunk = session_ids[start : start + CHUNK]
            for session_id, started_at, title in connection.execute(
                select(Session.session_id, Session.started_at, Meeting.title)
                .join(Meeting, Meeting.meeting_id == Session.meeting_id, isouter=True)
                .where(Session.session_id.in_(chunk))
            ).all():
                facts[session_id] = (started_at, title)
    return facts


def person_report(
    engine: Engine,
    participant_key: str,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: int,
    offset: int = 0,
    as_of: datetime | None = None,
) -> PersonReport | None:
    """The :class:`PersonReport` of ``participant_key`` over sessions started in ``[since, until)`` (UTC).

    The person's rows (one per session attended) are loaded to total them
    by week; only ``[offset, offset + limit)`` of them are returned as rows.
    None when the person attended no session in the window.

    Raises:
        ValueError: ``limit`` < 1 or ``offset`` < 0.
    """
    if limit < 1 or offset < 0:
        raise ValueError("limit must be at least 1 and offset at least 0")
    rows = attendance_report(engine, ReportFilter(participant=participant_key, since=since, until=until), as_of=as_of)
    if not rows:
        return None
    facts = _session_facts(engine, sorted({r["session_id"] for r in rows}))
    for row in rows:
        row["session_started_at"], row["meeting_title"] = facts.get(row["session_id"], (None, None))
    newest_first = sorted(
        rows,
        key=lambda r: (r["session_started_at"] is not None, r["session_started_at"] or 0, r["session_id"]),
        reverse=True,
    )
    return PersonReport(
        person_summary(participant_key, rows),
        weekly_minutes(rows),
        Page(newest_first[offset : offset + limit], len(rows), limit, offset),
    )
