"""Loading sessions and participant intervals for the attendance arithmetic (plain rows, in chunks).

Owns the columns read for :class:`receiver.reports.attendance.Interval`, the
``IN (...)`` chunk size (``CHUNK`` session ids), :func:`intervals_by_session`
(also used by the pages' timelines) and the row readers the precomputed
store and the reports build on.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session as OrmSession

from receiver.db.models import ParticipantInterval, Session
from receiver.reports.attendance import Interval

__all__ = ["CHUNK", "SESSION_ROW_COLUMNS", "interval_rows", "intervals_by_session", "sessions_by_id"]

# Columns read for arithmetic, in Interval's field order (plain rows, not ORM objects: 2x faster).
_INTERVAL_COLUMNS = (
    ParticipantInterval.peer_id,
    ParticipantInterval.participant_key,
    ParticipantInterval.joined_at,
    ParticipantInterval.left_at,
    ParticipantInterval.display_name,
    ParticipantInterval.custom_participant_id,
    ParticipantInterval.source,
    ParticipantInterval.closed_at_session_end,
)
SESSION_ROW_COLUMNS = (
    Session.session_id,
    Session.meeting_id,
    Session.started_at,
    Session.ended_at,
    Session.reconciled_at,
)
CHUNK = 500  # session ids per IN (...) list


def interval_rows(db: OrmSession | Connection, session_ids: Sequence[str]) -> dict[str, list[Any]]:
    """Interval rows (``_INTERVAL_COLUMNS`` order, tuple-like) of the sessions, grouped by session id, in row-id order."""
    grouped: dict[str, list[Any]] = {sid: [] for sid in session_ids}
    for chunk_start in range(0, len(session_ids), CHUNK):
        chunk = list(session_ids[chunk_start : chunk_start + CHUNK])
        rows = db.execute(
            select(ParticipantInterval.session_id, *_INTERVAL_COLUMNS)
            .where(ParticipantInterval.session_id.in_(chunk))
            .order_by(ParticipantInterval.session_id, ParticipantInterval.id)
        ).all()  # fetchall: iterating the result would fetch row by row (psycopg), 2x slower
        for row in rows:
            grouped[row[0]].append(row[1:])
    return grouped


def intervals_by_session(db: OrmSession | Connection, session_ids: Sequence[str]) -> dict[str, list[Interval]]:
    """Every stored interval of the given sessions, as :class:`Interval` values, grouped by session id.

    Within a session, intervals are in row-id (insertion) order: the tie-break
    of equal join times, as in the ``attendance`` view.
    """
    return {sid: [Interval(*row) for row in rows] for sid, rows in interval_rows(db, session_ids).items()}


def sessions_by_id(connection: Connection, session_ids: Sequence[str]) -> list[Any]:
    """Rows (session_id, meeting_id, started_at, ended_at, reconciled_at) of the given sessions that exist."""
    found: list[Any] = []
    for chunk_start in range(0, len(session_ids), CHUNK):
        chunk = list(session_ids[chunk_start : chunk_start + CHUNK])
        found += connection.execute(select(*SESSION_ROW_COLUMNS).where(Session.session_id.in_(chunk))).all()
    return found
