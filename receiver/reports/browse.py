"""The paged, searchable, sortable session and recording listings of the pages and the API (issue #21).

Owns :func:`sessions_page` and :func:`recordings_page`: the filter of
:class:`~receiver.reports.rows.ReportFilter` (meeting, ``since``/``until``
on the start, UTC), a free-text search ``q``, a sort from a whitelist
(``SESSION_SORTS``, ``RECORDING_SORTS``) and one ``LIMIT``/``OFFSET`` page
with the total count (one ``COUNT(*)``): only the page's rows are built,
never every row.

Search ``q`` (case-insensitive, ``%``/``_`` literal):

* sessions: the session id, meeting id or meeting title contains ``q``,
  or a person of the session has ``q`` as participant key or a display
  name containing ``q``;
* recordings: the recording id, file name, meeting id, session id or
  meeting title contains ``q``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import exists, func, or_, select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session as OrmSession

from receiver.db.models import Meeting, ParticipantInterval, Recording, Session
from receiver.reports.intervals import intervals_by_session
from receiver.reports.listings import recording_conditions, session_rows
from receiver.reports.paging import LIKE_ESCAPE, Page, Sort, contains_pattern, parse_sort
from receiver.reports.rows import RECORDING_COLUMNS, ReportFilter

__all__ = [
    "RECORDING_SORTS",
    "SESSION_SORTS",
    "recordings_page",
    "session_search",
    "sessions_page",
]

#: Sort keys of the session listing and their columns (ties broken by session id).
SESSION_SORTS: dict[str, Any] = {
    "started_at": Session.started_at,
    "ended_at": Session.ended_at,
    "meeting_id": Session.meeting_id,
    "status": Session.status,
    "session_id": Session.session_id,
}
#: Sort keys of the recording listing and their columns (ties broken by recording id).
RECORDING_SORTS: dict[str, Any] = {
    "started_at": Recording.started_at,
    "duration_seconds": Recording.duration_seconds,
    "file_size_bytes": Recording.file_size_bytes,
    "status": Recording.status,
    "recording_id": Recording.recording_id,
}


def _order(column: Any, sort: Sort) -> Any:
    """``column`` in the sort's direction, NULLs last either way (same on SQLite and PostgreSQL)."""
    return (column.is_(None), column.desc() if sort.descending else column.asc())


def session_search(q: str) -> Any:
    """The SQL condition of the session search ``q`` (see the module docstring)."""
    pattern = contains_pattern(q)
    person = exists().where(
        ParticipantInterval.session_id == Session.session_id,
        or_(
            ParticipantInterval.participant_key == q,
            ParticipantInterval.display_name.ilike(pattern, escape=LIKE_ESCAPE),
        ),
    )
    return or_(
        Session.session_id.ilike(pattern, escape=LIKE_ESCAPE),
        Session.meeting_id.ilike(pattern, escape=LIKE_ESCAPE),
        Meeting.title.ilike(pattern, escape=LIKE_ESCAPE),
        person,
    )


def sessions_page(
    engine: Engine,
    flt: ReportFilter,
    *,
    q: str | None = None,
    sort: str | None = None,
    limit: int,
    offset: int = 0,
    as_of: datetime | None = None,
) -> Page:
    """One page of ``SESSION_COLUMNS`` rows (as :func:`receiver.reports.listings.sessions_report`) and the total.

    ``sort``: a key of ``SESSION_SORTS``, ``-`` for descending (default
    ``started_at``, oldest first). Live sessions are measured up to
    ``as_of`` (default now, UTC).

    Raises:
        SortError: ``sort`` is not a key of ``SESSION_SORTS``.
        ValueError: ``limit`` < 1 or ``offset`` < 0.
    """
    if limit < 1 or offset < 0:
        raise ValueError("limit must be at least 1 and offset at least 0")
    order = parse_sort(sort, SESSION_SORTS, "started_at")
    conditions = list(flt.session_conditions())
    if q:
        conditions.append(session_search(q))
    base = select(Session, Meeting.title).join(Meeting, Meeting.meeting_id == Session.meeting_id, isouter=True)
    with OrmSession(engine) as db:
        total = db.execute(
            select(func.count())
            .select_from(Session)
            .join(Meeting, Meeting.meeting_id == Session.meeting_id, isouter=True)
            .where(*conditions)
        ).scalar_one()
        found = db.execute(
            base.where(*conditions)
            .order_by(*_order(SESSION_SORTS[order.key], order), Session.session_id)
            .limit(limit)
            .offset(offset)
        ).all()
        intervals = intervals_by_session(db, [s.session_id for s, _ in found])
    return Page(session_rows(found, intervals, as_of or datetime.now(UTC)), int(total), limit, offset)


def recordings_page(
    engine: Engine,
    flt: ReportFilter,
    *,
    q: str | None = None,
    sort: str | None = None,
    limit: int,
    offset: int = 0,
) -> Page:
    """One page of ``RECORDING_COLUMNS`` rows and the total matching.

    ``sort``: a key of ``RECORDING_SORTS``, ``-`` for descending (default
    ``-started_at``, newest first, as :func:`receiver.reports.listings.recordings_report`).

    Raises:
        SortError: ``sort`` is not a key of ``RECORDING_SORTS``.
        ValueError: ``limit`` < 1 or ``offset`` < 0.
    """
    if limit < 1 or offset < 0:
        raise ValueError("limit must be at least 1 and offset at least 0")
    order = parse_sort(sort, RECORDING_SORTS, "-started_at")
    conditions = recording_conditions(flt)
    joined = select(Recording).join(Meeting, Meeting.meeting_id == Recording.meeting_id, isouter=True)
    if q:
        pattern = contains_pattern(q)
        conditions.append(
            or_(
                *(
                    column.ilike(pattern, escape=LIKE_ESCAPE)
                    for column in (
                        Recording.recording_id,
                        Recording.output_file_name,
                        Recording.meeting_id,
                        Recording.session_id,
                        Meeting.title,
                    )
                )
            )
        )
    with OrmSession(engine) as db:
        total = db.execute(
            select(func.count())
            .select_from(Recording)
            .join(Meeting, Meeting.meeting_id == Recording.meeting_id, isouter=True)
            .where(*conditions)
        ).scalar_one()
        found = db.execute(
            joined.where(*conditions)
            .order_by(*_order(RECORDING_SORTS[order.key], order), Recording.recording_id)
            .limit(limit)
            .offset(offset)
        ).scalars()
        rows = [{column: getattr(row, column) for column in RECORDING_COLUMNS} for row in found]
    return Page(rows, int(total), limit, offset)
