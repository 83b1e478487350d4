"""The analyst views (receiver/views.py) on SQLite and PostgreSQL, against hand-computed numbers and the reports.

The scripted data (applied as webhook events through ``apply_event``, plus
what reconciliation would write):

* meeting ``m-1`` "Weekly sync", session ``s-1`` 2026-03-02 10:00-11:00 (3600 s):
  alice on two devices (10:00-10:40 and 10:30-11:00:30, the second leave
  after the session end), bob rejoining (10:05-10:15, 10:20-10:30, renamed
  to "Robert"), carol (no custom id: keyed by peer id) never leaving (closed
  at the end by meeting.ended), dave joining before the session start
  (09:59:30-10:01), erin known only to the REST API with no leave (closed
  by the views); a recording 10:05:00.5-10:55 of 2999.5 s;
* session ``s-2`` 2026-03-03 09:00-09:30: alice throughout; a 600 s recording;
* session ``s-3`` 2026-03-03 from 12:00, still live: frank 12:00-12:10, gina open.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from sqlalchemy import insert, inspect, text, update
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session as OrmSession

from receiver.db.engine import (
    alembic_config,
    current_revision,
    head_revision,
    make_engine,
    migrate,
)
from receiver.db.models import ParticipantInterval, Session
from receiver.db.views import (
    VIEW_NAMES,
    create_views,
    drop_statements,
    drop_views,
    view_statements,
)
from receiver.processing.apply import apply_event
from receiver.providers.dyte.events import parse_event
from receiver.reports.attendance import Interval, attendance_rows
from receiver.reports.queries import (
    ANALYST_COLUMNS,
    ATTENDANCE_COLUMNS,
    RECORDING_COLUMNS,
    ReportFilter,
    attendance_report,
    recordings_report,
    sessions_report,
)

UTC = UTC

INTERVAL_COLUMNS = [
    "session_id",
    "meeting_id",
    "participant_key",
    "peer_id",
    "display_name",
    "joined_at",
    "left_at",
    "duration_seconds",
    "source",
    "closed_at_session_end",
]
SUMMARY_COLUMNS = [
    "meeting_id",
    "meeting_title",
    "session_id",
    "started_at",
    "ended_at",
    "duration_seconds",
    "participants",
    "peers",
    "peak_concurrency",
    "reconciled",
]
DAILY_COLUMNS = ["day", "sessions", "participant_minutes", "recorded_minutes"]
BOOLEAN_COLUMNS = {"closed_at_session_end", "session_reconciled", "reconciled"}


# --------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------


def ts(value: str) -> datetime:
    """``'2026-03-02 10:00:00.5'`` as an aware UTC datetime."""
    return datetime.fromisoformat(value).replace(tzinfo=UTC)


def iso(value: datetime | None) -> str | None:
    """The views' timestamp text for ``value``."""
    return None if value is None else value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def z(value: str) -> str:
    """Dyte's webhook timestamp text for ``'2026-03-02 10:00:00.5'``."""
    return ts(value).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def normalise(row: dict[str, Any]) -> dict[str, Any]:
    """Floats rounded to 3 decimals, datetimes as view text, SQLite 0/1 flags as booleans."""
    out: dict[str, Any] = {}
    for key, value in row.items():
        if isinstance(value, datetime):
            value = iso(value)
        elif isinstance(value, float):
            value = round(value, 3)
        elif key in BOOLEAN_COLUMNS and value is not None:
            value = bool(value)
        out[key] = value
    return out


def rows_of(engine: Engine, view: str, where: str = "", columns: Sequence[str] | None = None) -> list[dict[str, Any]]:
    """Every row of ``view`` (normalised), sorted; only ``columns`` when given (default: all)."""
    selected = ", ".join(columns) if columns else "*"
    with engine.connect() as connection:
        raw = [dict(r) for r in connection.execute(text(f"SELECT {selected} FROM {view} {where}")).mappings()]
    for row in raw:  # the views themselves give text times and plain numbers on both databases
        assert all(v is None or isinstance(v, (str, int, float)) for v in row.values()), row
    rows = [normalise(row) for row in raw]
    return sorted(rows, key=lambda r: [str(v) for v in r.values()])


def columns_of(engine: Engine, view: str) -> list[str]:
    """The column names of ``view``, in order."""
    with engine.connect() as connection:
        return list(connection.execute(text(f"SELECT * FROM {view} WHERE 1 = 0")).keys())


def sort_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Normalised and sorted like :func:`rows_of`."""
    return sorted((normalise(r) for r in rows), key=lambda r: [str(v) for v in r.values()])


MEETING = {"id": "m-1", "title": "Weekly sync", "roomName": "weekly-sync", "status": "LIVE"}


def meeting(session_id: str, started: str, ended: str | None = None) -> dict[str, Any]:
    """The ``meeting`` object of an event in ``session_id``."""
    body: dict[str, Any] = {
        **MEETING,
        "sessionId": session_id,
        "createdAt": z("2026-03-01 08:00"),
        "startedAt": z(started),
    }
    if ended:
        body["endedAt"] = z(ended)
    return body


class Script:
    """Applies webhook payloads to the database, one transaction each, as the worker does."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.event_id = 0

    def apply(self, payload: dict[str, Any]) -> None:
        self.event_id += 1
        event = parse_event(payload)
        with OrmSession(self.engine) as db, db.begin():
            apply_event(db, event, event_id=self.event_id, received_at=datetime(2026, 3, 4, tzinfo=UTC))

    def started(self, session_id: str, started: str) -> None:
        self.apply({"event": "meeting.started", "meeting": meeting(session_id, started)})

    def joined(self, session_id: str, started: str, peer: str, name: str, at: str, key: str | None) -> None:
        participant = {"peerId": peer, "userDisplayName": name, "joinedAt": z(at)}
        if key:
            participant["customParticipantId"] = key
        self.apply(
            {"event": "meeting.participantJoined", "meeting": meeting(session_id, started), "participant": participant}
        )

    def left(self, session_id: str, started: str, peer: str, name: str, joined: str, at: str, key: str | None) -> None:
        participant = {"peerId": peer, "userDisplayName": name, "joinedAt": z(joined), "leftAt": z(at)}
        if key:
            participant["customParticipantId"] = key
        self.apply(
            {"event": "meeting.participantLeft", "meeting": meeting(session_id, started), "participant": participant}
        )

    def ended(self, session_id: str, started: str, ended: str) -> None:
        self.apply(
            {"event": "meeting.ended", "meeting": meeting(session_id, started, ended), "reason": "HOST_ENDED_MEETING"}
        )

    def recording(self, session_id: str, started: str, recording: dict[str, Any]) -> None:
        self.apply({"event": "recording.statusUpdate", "meeting": meeting(session_id, started), "recording": recording})


def script_meetings(engine: Engine) -> None:
    """Write the scripted sessions of the module docstring."""
    s = Script(engine)
    s1 = "2026-03-02 10:00:00"
    s.started("s-1", s1)
    s.joined("s-1", s1, "peer-d1", "Dave", "2026-03-02 09:59:30", "dave")
    s.joined("s-1", s1, "peer-a1", "Alice", "2026-03-02 10:00:00", "alice")
    s.left("s-1", s1, "peer-d1", "Dave", "2026-03-02 09:59:30", "2026-03-02 10:01:00", "dave")
    s.joined("s-1", s1, "peer-b1", "Bob", "2026-03-02 10:05:00", "bob")
    s.joined("s-1", s1, "peer-c1", "Carol", "2026-03-02 10:10:00.250", None)
    s.left("s-1", s1, "peer-b1", "Bob", "2026-03-02 10:05:00", "2026-03-02 10:15:00", "bob")
    s.joined("s-1", s1, "peer-b2", "Robert", "2026-03-02 10:20:00", "bob")
    s.joined("s-1", s1, "peer-a2", "Alice (phone)", "2026-03-02 10:30:00", "alice")
    s.left("s-1", s1, "peer-b2", "Robert", "2026-03-02 10:20:00", "2026-03-02 10:30:00", "bob")
    s.left("s-1", s1, "peer-a1", "Alice", "2026-03-02 10:00:00", "2026-03-02 10:40:00", "alice")
    s.recording(
        "s-1",
        s1,
        {
            "id": "rec-1",
            "status": "UPLOADED",
            "fileSize": 123456789,
            "downloadUrl": "https://example.invalid/rec-1.mp4",
            "audioDownloadUrl": "https://example.invalid/rec-1.mp3",
            "downloadUrlExpiry": "2026-03-09 10:55:00.000000Z",
            "startedTime": "2026-03-02 10:05:00.500000Z",
            "stoppedTime": "2026-03-02 10:55:00.000000Z",
            "outputFileName": "weekly-sync_1.mp4",
            "recordingDuration": 2999.5,
        },
    )
    s.ended("s-1", s1, "2026-03-02 11:00:00")
    # Alice's phone leave arrives after meeting.ended and after the end itself.
    s.left("s-1", s1, "peer-a2", "Alice (phone)", "2026-03-02 10:30:00", "2026-03-02 11:00:30", "alice")

    s2 = "2026-03-03 09:00:00"
    s.started("s-2", s2)
    s.joined("s-2", s2, "peer-a3", "Alice", "2026-03-03 09:00:00", "alice")
    s.left("s-2", s2, "peer-a3", "Alice", "2026-03-03 09:00:00", "2026-03-03 09:30:00", "alice")
    s.ended("s-2", s2, "2026-03-03 09:30:00")
    s.recording(
        "s-2",
        s2,
        {
            "id": "rec-2",
            "status": "UPLOADED",
            "fileSize": "2048",
            "startedTime": "2026-03-03 09:01:00.000000Z",
            "stoppedTime": "2026-03-03 09:11:00.000000Z",
            "recordingDuration": 600,
        },
    )

    s3 = "2026-03-03 12:00:00"
    s.started("s-3", s3)
    s.joined("s-3", s3, "peer-f1", "Frank", "2026-03-03 12:00:00", "frank")
    s.joined("s-3", s3, "peer-g1", "Gina", "2026-03-03 12:05:00", "gina")
    s.left("s-3", s3, "peer-f1", "Frank", "2026-03-03 12:00:00", "2026-03-03 12:10:00", "frank")

    # What reconciliation of s-1 writes: the API confirmed alice's laptop and
    # knew a peer the webhooks never reported (erin, no leave).
    now = datetime(2026, 3, 2, 11, 5, tzinfo=UTC)
    with OrmSession(engine) as db, db.begin():
        db.execute(update(Session).where(Session.session_id == "s-1").values(reconciled_at=now, reconcile_added=1))
        db.execute(
            update(ParticipantInterval)
            .where(ParticipantInterval.session_id == "s-1", ParticipantInterval.peer_id == "peer-a1")
            .values(source="both")
        )
        db.execute(
            insert(ParticipantInterval).values(
                session_id="s-1",
                meeting_id="m-1",
                peer_id="peer-e1",
                participant_key="erin",
                custom_participant_id="erin",
                display_name="Erin",
                joined_at=ts("2026-03-02 10:45:00"),
                left_at=None,
                closed_at_session_end=False,
                source="api",
                updated_at=now,
            )
        )


@pytest.fixture
def views(engine: Engine) -> Engine:
    """The test database with the views (re)created and the scripted meetings applied."""
    with engine.begin() as connection:
        create_views(connection)
    script_meetings(engine)
    return engine


def person(
    session_id: str,
    key: str,
    name: str,
    first: str,
    last: str | None,
    seconds: float,
    joins: int,
    ratio: float | None,
    closed: bool,
    provenance: str,
    reconciled: bool,
) -> dict[str, Any]:
    """An expected ``attendance`` row (times as ``'2026-03-02 10:00:00'``)."""
    return {
        "session_id": session_id,
        "meeting_id": "m-1",
        "participant_key": key,
        "display_name": name,
        "first_joined_at": iso(ts(first)),
        "last_left_at": iso(ts(last)) if last else None,
        "attended_seconds": seconds,
        "join_count": joins,
        "attendance_ratio": ratio,
        "closed_at_session_end": closed,
        "provenance": provenance,
        "session_reconciled": reconciled,
    }


EXPECTED_ATTENDANCE = [
    person(
        "s-1",
        "alice",
        "Alice (phone)",
        "2026-03-02 10:00:00",
        "2026-03-02 11:00:00",
        3600.0,
        2,
        1.0,
        False,
        "both",
        True,
    ),
    person(
        "s-1", "bob", "Robert", "2026-03-02 10:05:00", "2026-03-02 10:30:00", 1200.0, 2, 0.333, False, "webhook", True
    ),
    person(
        "s-1",
        "peer-c1",
        "Carol",
        "2026-03-02 10:10:00.250",
        "2026-03-02 11:00:00",
        2999.75,
        1,
        0.833,
        True,
        "webhook",
        True,
    ),
    person("s-1", "dave", "Dave", "2026-03-02 09:59:30", "2026-03-02 10:01:00", 60.0, 1, 0.017, False, "webhook", True),
    person("s-1", "erin", "Erin", "2026-03-02 10:45:00", "2026-03-02 11:00:00", 900.0, 1, 0.25, True, "api", True),
    person(
        "s-2", "alice", "Alice", "2026-03-03 09:00:00", "2026-03-03 09:30:00", 1800.0, 1, 1.0, False, "webhook", False
    ),
    person(
        "s-3", "frank", "Frank", "2026-03-03 12:00:00", "2026-03-03 12:10:00", 600.0, 1, None, False, "webhook", False
    ),
    person("s-3", "gina", "Gina", "2026-03-03 12:05:00", None, 0.0, 1, None, False, "webhook", False),
]


# --------------------------------------------------------------------------
# Tests
# --------------------------------------------------------------------------


def test_view_columns_are_the_documented_ones(views: Engine) -> None:
    """Every view has exactly the documented columns, in order."""
    assert columns_of(views, "attendance_intervals") == INTERVAL_COLUMNS
    assert columns_of(views, "attendance") == [*ATTENDANCE_COLUMNS, *ANALYST_COLUMNS]
    assert columns_of(views, "sessions_summary") == SUMMARY_COLUMNS
    assert columns_of(views, "recording_index") == list(RECORDING_COLUMNS)
    assert columns_of(views, "daily_usage") == DAILY_COLUMNS


def test_attendance_intervals_rows(views: Engine) -> None:
    """attendance_intervals has one row per peer with effective leaves, counted durations and flags."""

    def interval(session_id, key, peer, name, joined, left, seconds, source, closed):
        return {
            "session_id": session_id,
            "meeting_id": "m-1",
            "participant_key": key,
            "peer_id": peer,
            "display_name": name,
            "joined_at": iso(ts(joined)),
            "left_at": iso(ts(left)) if left else None,
            "duration_seconds": seconds,
            "source": source,
            "closed_at_session_end": closed,
        }

    expected = [
        interval("s-1", "alice", "peer-a1", "Alice", "2026-03-02 10:00", "2026-03-02 10:40", 2400.0, "both", False),
        # Left after the session end: left_at as reported, duration clipped at the end.
        interval(
            "s-1",
            "alice",
            "peer-a2",
            "Alice (phone)",
            "2026-03-02 10:30",
            "2026-03-02 11:00:30",
            1800.0,
            "webhook",
            False,
        ),
        interval("s-1", "bob", "peer-b1", "Bob", "2026-03-02 10:05", "2026-03-02 10:15", 600.0, "webhook", False),
        interval("s-1", "bob", "peer-b2", "Robert", "2026-03-02 10:20", "2026-03-02 10:30", 600.0, "webhook", False),
        interval(
            "s-1",
            "peer-c1",
            "peer-c1",
            "Carol",
            "2026-03-02 10:10:00.250",
            "2026-03-02 11:00",
            2999.75,
            "webhook",
            True,
        ),
        # Joined before the session start: duration clipped at the start.
        interval("s-1", "dave", "peer-d1", "Dave", "2026-03-02 09:59:30", "2026-03-02 10:01", 60.0, "webhook", False),
        # Open in the database: the view closes it at the session end.
        interval("s-1", "erin", "peer-e1", "Erin", "2026-03-02 10:45", "2026-03-02 11:00", 900.0, "api", True),
        interval("s-2", "alice", "peer-a3", "Alice", "2026-03-03 09:00", "2026-03-03 09:30", 1800.0, "webhook", False),
        interval("s-3", "frank", "peer-f1", "Frank", "2026-03-03 12:00", "2026-03-03 12:10", 600.0, "webhook", False),
        # Live session, no leave yet: no end, no duration.
        interval("s-3", "gina", "peer-g1", "Gina", "2026-03-03 12:05", None, None, "webhook", False),
    ]
    assert rows_of(views, "attendance_intervals") == sort_rows(expected)


def test_attendance_view_hand_computed(views: Engine) -> None:
    """attendance counts overlapping devices once, sums rejoins, clips to the session and closes open intervals."""
    assert rows_of(views, "attendance", columns=ATTENDANCE_COLUMNS) == sort_rows(EXPECTED_ATTENDANCE)


def test_attendance_view_equals_attendance_report_for_ended_sessions(views: Engine) -> None:
    """For ended sessions the view's rows equal receiver.reports.queries.attendance_report's, column for column."""
    report: list[dict[str, Any]] = []
    for session_id in ("s-1", "s-2"):
        report += attendance_report(views, ReportFilter(session_id=session_id))
    report = [{column: row[column] for column in ATTENDANCE_COLUMNS} for row in report]
    assert len(report) == 6
    assert rows_of(views, "attendance", "WHERE session_id IN ('s-1', 's-2')", ATTENDANCE_COLUMNS) == sort_rows(report)


def test_attendance_view_live_session_uses_known_leaves(views: Engine) -> None:
    """A live session counts only known leaves: equal to attendance_rows with an unknown session end, ratio NULL."""
    intervals = [
        Interval("peer-f1", "frank", ts("2026-03-03 12:00"), ts("2026-03-03 12:10"), "Frank"),
        Interval("peer-g1", "gina", ts("2026-03-03 12:05"), None, "Gina"),
    ]
    expected = [
        {
            "session_id": row.session_id,
            "meeting_id": row.meeting_id,
            "participant_key": row.participant_key,
            "display_name": row.display_name,
            "first_joined_at": row.first_joined_at,
            "last_left_at": row.last_left_at,
            "attended_seconds": row.attended_seconds,
            "join_count": row.join_count,
            "attendance_ratio": row.attendance_ratio,
            "closed_at_session_end": row.closed_at_session_end,
            "provenance": row.provenance,
            "session_reconciled": False,
        }
        for row in attendance_rows("s-3", "m-1", ts("2026-03-03 12:00"), None, intervals)
    ]
    assert rows_of(views, "attendance", "WHERE session_id = 's-3'", ATTENDANCE_COLUMNS) == sort_rows(expected)
    assert rows_of(views, "attendance", "WHERE session_id = 's-3'", ATTENDANCE_COLUMNS) == sort_rows(
        EXPECTED_ATTENDANCE[-2:]
    )


def test_sessions_summary_rows(views: Engine) -> None:
    """sessions_summary counts people and peers and takes peak concurrency with leaves before joins at equal times."""

    def summary(session_id, started, ended, seconds, participants, peers, peak, reconciled):
        return {
            "meeting_id": "m-1",
            "meeting_title": "Weekly sync",
            "session_id": session_id,
            "started_at": iso(ts(started)),
            "ended_at": iso(ts(ended)) if ended else None,
            "duration_seconds": seconds,
            "participants": participants,
            "peers": peers,
            "peak_concurrency": peak,
            "reconciled": reconciled,
        }

    # s-1: at 10:30 bob's second peer leaves as alice's phone joins: 3, not 4.
    expected = [
        summary("s-1", "2026-03-02 10:00", "2026-03-02 11:00", 3600.0, 5, 7, 3, True),
        summary("s-2", "2026-03-03 09:00", "2026-03-03 09:30", 1800.0, 1, 1, 1, False),
        # Live: gina's open interval has no end yet and is not counted.
        summary("s-3", "2026-03-03 12:00", None, None, 2, 2, 1, False),
    ]
    assert rows_of(views, "sessions_summary") == sort_rows(expected)


def test_sessions_summary_equals_sessions_report_for_ended_sessions(views: Engine) -> None:
    """For ended sessions sessions_summary equals receiver.reports.queries.sessions_report on the shared columns."""
    report = []
    for session_id in ("s-1", "s-2"):
        report += sessions_report(views, ReportFilter(session_id=session_id))
    report = [{column: row[column] for column in SUMMARY_COLUMNS} for row in report]
    assert rows_of(views, "sessions_summary", "WHERE ended_at IS NOT NULL") == sort_rows(report)


def test_recording_index_equals_recordings_report(views: Engine) -> None:
    """recording_index has the recordings report's columns and values, times as UTC text."""
    expected_rec1 = {
        "recording_id": "rec-1",
        "meeting_id": "m-1",
        "session_id": "s-1",
        "status": "UPLOADED",
        "started_at": "2026-03-02T10:05:00.500000Z",
        "stopped_at": "2026-03-02T10:55:00.000000Z",
        "duration_seconds": 2999.5,
        "file_size_bytes": 123456789,
        "output_file_name": "weekly-sync_1.mp4",
        "download_url": "https://example.invalid/rec-1.mp4",
        "download_url_expires_at": "2026-03-09T10:55:00.000000Z",
        "audio_download_url": "https://example.invalid/rec-1.mp3",
    }
    rows = rows_of(views, "recording_index")
    assert expected_rec1 in rows
    assert rows == sort_rows(recordings_report(views))


def test_daily_usage_rows(views: Engine) -> None:
    """daily_usage sums sessions, attended minutes and recorded minutes per UTC day of start."""
    expected = [
        # 3600 + 1200 + 2999.75 + 60 + 900 = 8759.75 s; recording 2999.5 s.
        {"day": "2026-03-02", "sessions": 1, "participant_minutes": 145.996, "recorded_minutes": 49.992},
        # s-2 1800 s + live s-3 600 s (known leaves); recording 600 s.
        {"day": "2026-03-03", "sessions": 2, "participant_minutes": 40.0, "recorded_minutes": 10.0},
    ]
    assert rows_of(views, "daily_usage") == sort_rows(expected)


def test_union_matches_python_on_random_intervals(engine: Engine) -> None:
    """The SQL union, names and flags equal receiver.reports.attendance on random overlapping, nested, tied and open intervals."""
    with engine.begin() as connection:
        create_views(connection)
    rng = random.Random(6001)
    start = ts("2026-04-01 08:00:00")
    end = start + timedelta(hours=2)
    now = datetime(2026, 4, 1, 12, tzinfo=UTC)
    with OrmSession(engine) as db, db.begin():
        db.add(
            Session(session_id="rand", meeting_id="m-r", started_at=start, ended_at=end, status="ended", updated_at=now)
        )
        for number in range(120):
            if rng.random() < 0.5:  # whole minutes: many equal join times
                joined = start + timedelta(minutes=rng.randint(-10, 130))
            else:
                joined = start + timedelta(milliseconds=rng.randint(-600_000, 7_800_000))
            left = None if rng.random() < 0.15 else joined + timedelta(milliseconds=rng.randint(0, 2_400_000))
            db.add(
                ParticipantInterval(
                    session_id="rand",
                    meeting_id="m-r",
                    peer_id=f"p{number}",
                    participant_key=f"k{rng.randint(0, 14)}",
                    display_name=rng.choice(["Ann", "Ben", "Cy", "Dee", "", None]),
                    joined_at=joined,
                    left_at=left,
                    closed_at_session_end=False,
                    source=rng.choice(["webhook", "webhook", "api", "both"]),
                    updated_at=now,
                )
            )
    report = [{column: row[column] for column in ATTENDANCE_COLUMNS} for row in attendance_report(engine)]
    assert len(report) == 15
    assert rows_of(engine, "attendance", columns=ATTENDANCE_COLUMNS) == sort_rows(report)
    peak = sessions_report(engine)[0]["peak_concurrency"]
    assert rows_of(engine, "sessions_summary")[0]["peak_concurrency"] == peak


def test_display_name_is_the_last_new_name_in_join_order(engine: Engine) -> None:
    """display_name is the distinct name that appeared last in join order (ties by row id), blanks ignored."""
    with engine.begin() as connection:
        create_views(connection)
    now = datetime(2026, 5, 1, 12, tzinfo=UTC)
    start = ts("2026-05-01 09:00")
    names = [  # (peer, key, name, joined minute)
        ("p1", "renamed", "Ann", 0),
        ("p2", "renamed", "Bea", 10),
        ("p3", "renamed", "Ann", 20),  # Ann again: Bea is still the newest name
        ("p4", "renamed", "", 30),
        ("p5", "renamed", None, 40),
        ("p6", "tied", "First", 5),
        ("p7", "tied", "Second", 5),  # same join time, inserted later
        ("p8", "nameless", None, 5),
    ]
    with OrmSession(engine) as db, db.begin():
        db.add(
            Session(
                session_id="names",
                meeting_id="m-n",
                started_at=start,
                ended_at=start + timedelta(hours=1),
                status="ended",
                updated_at=now,
            )
        )
        db.flush()
        for peer, key, name, minute in names:
            db.add(
                ParticipantInterval(
                    session_id="names",
                    meeting_id="m-n",
                    peer_id=peer,
                    participant_key=key,
                    display_name=name,
                    joined_at=start + timedelta(minutes=minute),
                    left_at=start + timedelta(minutes=minute + 1),
                    closed_at_session_end=False,
                    source="webhook",
                    updated_at=now,
                )
            )
            db.flush()  # ids in list order
    got = {r["participant_key"]: r["display_name"] for r in rows_of(engine, "attendance", columns=ATTENDANCE_COLUMNS)}
    assert got == {"renamed": "Bea", "tied": "Second", "nameless": None}


def example_queries() -> list[str]:
    """The SQL blocks of the "Example queries" section of docs/schema.md."""
    doc = (Path(__file__).resolve().parents[2] / "docs" / "schema.md").read_text()
    section = doc.split("## Example queries", 1)[1].split("\n## ", 1)[0]
    return [block.split("```", 1)[0].strip().rstrip(";") for block in section.split("```sql")[1:]]


def test_documented_example_queries_run(views: Engine) -> None:
    """Every example query of docs/schema.md runs on this database and returns rows for the scripted data."""
    queries = example_queries()
    assert len(queries) >= 3
    with views.connect() as connection:
        results = {query: connection.execute(text(query)).all() for query in queries}
    assert all(results.values()), [q for q, rows in results.items() if not rows]
    monthly = next(rows for q, rows in results.items() if "substr(day, 1, 7)" in q)
    assert [(m, int(n), round(float(p), 3), round(float(r), 3)) for m, n, p, r in monthly] == [
        ("2026-03", 3, 185.996, 59.992)
    ]
    at_80 = next(rows for q, rows in results.items() if "attendance_ratio >= 0.8\nORDER BY" in q)
    assert sorted((row[0], row[1]) for row in at_80) == [("s-1", "alice"), ("s-1", "peer-c1"), ("s-2", "alice")]


def test_migrated_database_has_the_views(engine: Engine) -> None:
    """A database migrated to head (revision 0003) has every view."""
    assert set(VIEW_NAMES) <= set(inspect(engine).get_view_names())


def test_migration_0003_downgrade_drops_and_upgrade_recreates_views(tmp_path: Path) -> None:
    """Downgrading to 0002 drops the views and upgrading to head recreates them (SQLite)."""
    url = f"sqlite:///{tmp_path / 'views.db'}"
    migrate(url)
    engine = make_engine(url)
    try:
        assert current_revision(engine) == head_revision()
        assert set(inspect(engine).get_view_names()) == set(VIEW_NAMES)
        command.downgrade(alembic_config(url), "0002")
        assert inspect(engine).get_view_names() == []
        command.upgrade(alembic_config(url), "head")
        assert set(inspect(engine).get_view_names()) == set(VIEW_NAMES)
    finally:
        engine.dispose()


def test_create_views_is_repeatable_and_drop_views_removes_them(engine: Engine) -> None:
    """create_views replaces existing views and drop_views removes every one of them."""
    with engine.begin() as connection:
        create_views(connection)
        create_views(connection)
    for name in VIEW_NAMES:
        assert columns_of(engine, name)
    with engine.begin() as connection:
        drop_views(connection)
        drop_views(connection)
    for name in VIEW_NAMES:
        with pytest.raises(Exception):  # noqa: B017
            columns_of(engine, name)
    with engine.begin() as connection:
        create_views(connection)  # leave the database as the migration would


def test_statements_cover_every_view_and_reject_other_dialects() -> None:
    """Both dialects get one CREATE VIEW per view; other dialects are refused."""
    for dialect in ("sqlite", "postgresql"):
        statements = view_statements(dialect)
        assert [s.split()[2] for s in statements] == list(VIEW_NAMES)
    assert drop_statements() == [f"DROP VIEW IF EXISTS {name}" for name in reversed(VIEW_NAMES)]
    with pytest.raises(ValueError):
        view_statements("mysql")
