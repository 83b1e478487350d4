"""A recurring meeting (a series): who came to which occurrence, minutes per person, the trend (issue #21).

An occurrence is a session of the meeting. :func:`series_report` takes the
newest ``occurrences`` sessions started in the window (one ``LIMIT``
query), their attendance rows, and builds the matrix with
:func:`receiver.reports.trends.series_matrix`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.engine import Engine

from receiver.db.models import Meeting
from receiver.reports.attendance_queries import attendance_report
from receiver.reports.browse import sessions_page
from receiver.reports.rows import ReportFilter
from receiver.reports.trends import SeriesMatrix, series_matrix

__all__ = ["MAX_OCCURRENCES", "SERIES_CELL_COLUMNS", "SeriesReport", "series_cells", "series_report"]

#: Most occurrences one series report covers.
MAX_OCCURRENCES = 52
#: Columns of the long form of the matrix (one row per person x occurrence attended; CSV).
SERIES_CELL_COLUMNS: tuple[str, ...] = (
    "meeting_id",
    "session_id",
    "session_started_at",
    "participant_key",
    "display_name",
    "attended_minutes",
)


@dataclass
class SeriesReport:
    """``meeting_id``, its ``title``, ``total_occurrences`` (sessions in the window) and the ``matrix`` of the
    newest ones shown."""

    meeting_id: str
    title: str | None
    total_occurrences: int
    matrix: SeriesMatrix


def series_report(
    engine: Engine,
    meeting_id: str,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    occurrences: int = 12,
    as_of: datetime | None = None,
) -> SeriesReport | None:
    """The :class:`SeriesReport` of ``meeting_id`` over its newest ``occurrences`` sessions started in
    ``[since, until)`` (UTC). None when the meeting is unknown and has no session.

    Raises:
        ValueError: ``occurrences`` outside 1..``MAX_OCCURRENCES``.
    """
    if not 1 <= occurrences <= MAX_OCCURRENCES:
        raise ValueError(f"occurrences must be between 1 and {MAX_OCCURRENCES}")
    flt = ReportFilter(meeting_id=meeting_id, since=since, until=until)
    page = sessions_page(engine, flt, sort="-started_at", limit=occurrences, as_of=as_of)
    with engine.connect() as connection:
        title = connection.execute(select(Meeting.title).where(Meeting.meeting_id == meeting_id)).first()
    if title is None and page.total == 0:
        return None
    sessions = list(page.rows)
    rows = []
    if sessions:
        starts = [s["started_at"] for s in sessions if s["started_at"] is not None]
        window = ReportFilter(meeting_id=meeting_id, since=min(starts) if starts else since, until=until)
        wanted = {s["session_id"] for s in sessions}
        rows = [r for r in attendance_report(engine, window, as_of=as_of) if r["session_id"] in wanted]
    return SeriesReport(meeting_id, title[0] if title else None, page.total, series_matrix(sessions, rows))


def series_cells(report: SeriesReport) -> list[dict[str, object]]:
    """The matrix in long form (``SERIES_CELL_COLUMNS``): one row per person per occurrence attended."""
    result: list[dict[str, object]] = []
    occurrences = report.matrix.occurrences
    for person in report.matrix.people:
        for occurrence, cell in zip(occurrences, person.cells, strict=True):
            if cell is None:
                continue
            result.append(
                {
                    "meeting_id": report.meeting_id,
                    "session_id": occurrence["session_id"],
                    "session_started_at": occurrence["started_at"],
                    "participant_key": person.participant_key,
                    "display_name": person.display_name,
                    "attended_minutes": cell,
                }
            )
    return result
