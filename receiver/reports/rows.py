"""What the report queries share: row columns, the report filter, and two helpers of the arithmetic.

Owns ``ATTENDANCE_COLUMNS``, ``SESSION_COLUMNS`` and ``RECORDING_COLUMNS``
(the keys of the rows every report returns; see :mod:`receiver.reports.queries`
for their meaning), the columns of the issue #18 reports
(``BREAKOUT_ATTENDANCE_COLUMNS``, ``RECORDING_DETAIL_COLUMNS``,
``LIVESTREAM_COLUMNS``), :class:`ReportFilter`, :func:`display_names_of`,
:func:`session_end` (the end a live session is measured to) and
:func:`gc_paused` (building many rows without the cyclic collector).
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from receiver.db.models import Session

__all__ = [
    "ATTENDANCE_COLUMNS",
    "ATTENDANCE_REPORT_COLUMNS",
    "BREAKOUT_ATTENDANCE_COLUMNS",
    "LIVESTREAM_COLUMNS",
    "RECORDING_COLUMNS",
    "RECORDING_DETAIL_COLUMNS",
    "SESSION_COLUMNS",
    "ReportFilter",
    "display_names_of",
    "gc_paused",
    "session_end",
]

ATTENDANCE_COLUMNS = (
    "session_id",
    "meeting_id",
    "participant_key",
    "display_name",
    "first_joined_at",
    "last_left_at",
    "attended_seconds",
    "join_count",
    "attendance_ratio",
    "closed_at_session_end",
    "provenance",
    "session_reconciled",
)
#: The rows of ``receiver report attendance``, ``/api/attendance`` and their CSV/JSON/XLSX exports: the
#: ``attendance`` view's columns (``ATTENDANCE_COLUMNS``) with the analysts' columns of
#: :mod:`receiver.reports.analyst_columns` (issue #21) beside the ones they describe.
ATTENDANCE_REPORT_COLUMNS = (
    "session_id",
    "meeting_id",
    "meeting_title",
    "participant_key",
    "display_name",
    "preset_name",
    "is_guest",
    "custom_participant_id",
    "user_id",
    "first_joined_at",
    "last_left_at",
    "attended_seconds",
    "attended_minutes",
    "join_count",
    "attendance_ratio",
    "closed_at_session_end",
    "provenance",
    "session_reconciled",
)
RECORDING_COLUMNS = (
    "recording_id",
    "meeting_id",
    "session_id",
    "status",
    "started_at",
    "stopped_at",
    "duration_seconds",
    "file_size_bytes",
    "output_file_name",
    "download_url",
    "download_url_expires_at",
    "audio_download_url",
)
SESSION_COLUMNS = (
    "session_id",
    "meeting_id",
    "meeting_title",
    "started_at",
    "ended_at",
    "duration_seconds",
    "end_reason",
    "status",
    "participants",
    "peers",
    "peak_concurrency",
    "reconciled",
    "end_inferred",
    "parent_session_id",
    "api_meeting_id",
)
#: The attendance report columns plus ``breakout_seconds`` (seconds added by the session's breakout rooms).
BREAKOUT_ATTENDANCE_COLUMNS = (*ATTENDANCE_REPORT_COLUMNS, "breakout_seconds")
#: ``RECORDING_COLUMNS`` plus the REST reasons and the API confirmation time.
RECORDING_DETAIL_COLUMNS = (*RECORDING_COLUMNS, "start_reason", "stop_reason", "reconciled_at")
LIVESTREAM_COLUMNS = (
    "livestream_id",
    "meeting_id",
    "session_id",
    "name",
    "status",
    "status_at",
    "runs",
    "first_started_at",
    "last_stopped_at",
    "ingest_seconds",
    "viewer_seconds",
    "linked_at",
)


class ReportFilter:
    """Common filters: session, meeting, participant key, and a UTC time window on session start."""

    def __init__(
        self,
        *,
        session_id: str | None = None,
        meeting_id: str | None = None,
        participant: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> None:
        self.session_id = session_id
        self.meeting_id = meeting_id
        self.participant = participant
        self.since = since
        self.until = until

    def session_conditions(self) -> list[Any]:
        """SQL conditions on :class:`Session`."""
        conditions: list[Any] = []
        if self.session_id:
            conditions.append(Session.session_id == self.session_id)
        if self.meeting_id:
            conditions.append(Session.meeting_id == self.meeting_id)
        if self.since:
            conditions.append(Session.started_at >= self.since)
        if self.until:
            conditions.append(Session.started_at < self.until)
        return conditions


@contextmanager
def gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector while building many acyclic objects (rows, tuples, dicts).

    Allocating ~10^4-10^6 objects triggers repeated full collections that
    cost more than the work itself (measured: 2x on a 10,000-person session).
    Reference counting still frees everything; the collector is re-enabled
    afterwards if it was enabled before (threads doing the same never leave
    it disabled).
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def session_end(row: Any, as_of: datetime) -> datetime | None:
    """End used for arithmetic: the real end, else ``as_of`` for a session still live."""
    ended: datetime | None = row.ended_at
    if ended is not None:
        return ended
    return as_of if row.started_at is not None else None


def display_names_of(row: dict[str, Any]) -> list[str]:
    """Every distinct display name of an attendance row's person, in join order (``[]`` when none was seen).

    Rows carry ``display_names`` only when there are several (else None: the
    one name is ``display_name``), as ``session_attendance`` stores them:
    a list per row would make every row a container that Python's garbage
    collector traverses, about 0.7 s per 850,000 rows.
    """
    names = row.get("display_names")
    if names:
        return list(names)
    return [row["display_name"]] if row.get("display_name") else []
