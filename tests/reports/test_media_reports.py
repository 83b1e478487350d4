"""Recording reasons and livestream viewer data found by reconciliation, in the reports (issue #18, point 4).

The fake REST API knows a recording and a livestream no webhook announced;
after one session reconciliation, `receiver report recordings` shows the
recording with its start/stop reasons and `receiver report livestreams` the
livestream with its runs' viewer and ingest seconds. SQLite and PostgreSQL.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from click.testing import CliRunner
from fake_dyte import FakeDyte
from test_reconcile_unfriendly import api_session, arm, person, reconcile

from receiver.cli.main import cli
from receiver.reports.queries import (
    LIVESTREAM_COLUMNS,
    RECORDING_DETAIL_COLUMNS,
    ReportFilter,
    livestreams_report,
    recordings_detail_report,
    recordings_report,
)

T0 = datetime(2023, 2, 1, 10, 0, tzinfo=UTC)


def iso(minutes: float) -> str:
    return (T0 + timedelta(minutes=minutes)).isoformat().replace("+00:00", "Z")


@pytest.fixture
def media_world(engine):
    fake = FakeDyte(sessions={"s-1": api_session()})
    fake.participants["s-1"] = [person("alice", 1, 20)]
    fake.recordings = [
        {
            "id": "r-1",
            "meeting_id": "m-1",
            "session_id": "s-1",
            "status": "UPLOADED",
            "started_time": iso(5),
            "stopped_time": iso(50),
            "file_size": "2044680.4",
            "start_reason": {"reason": "RECORD_ON_START"},
            "stop_reason": {"reason": "ALL_PEERS_LEFT", "caller": {"type": "ORGANIZATION"}},
        }
    ]
    fake.meeting_livestreams["m-1"] = [{"id": "ls-1", "status": "IDLE", "meeting_id": "m-1", "name": "Stage"}]
    fake.session_livestream_sessions["s-1"] = [
        {
            "id": "run-1",
            "livestream_id": "ls-1",
            "started_time": iso(10),
            "stopped_time": iso(20),
            "ingest_seconds": 600,
            "viewer_seconds": 1500.25,
        },
        {
            "id": "run-2",
            "livestream_id": "ls-1",
            "started_time": iso(30),
            "stopped_time": iso(40),
            "ingest_seconds": 600,
            "viewer_seconds": "99.75",
        },
    ]
    arm(engine, "session", "s-1")
    reconcile(engine, fake)
    return engine


def test_recordings_report_has_the_rest_reasons(media_world):
    """The detail report adds the reason codes to the unchanged recording index."""
    [row] = recordings_detail_report(media_world)
    assert list(row) == list(RECORDING_DETAIL_COLUMNS)
    assert (row["recording_id"], row["file_size_bytes"], row["start_reason"], row["stop_reason"]) == (
        "r-1",
        2044680,
        "RECORD_ON_START",
        "ALL_PEERS_LEFT",
    )
    assert row["reconciled_at"] is not None
    assert {k: v for k, v in row.items() if k in recordings_report(media_world)[0]} == recordings_report(media_world)[0]


def test_livestreams_report_sums_the_runs(media_world):
    """One row per livestream: linked to meeting and session, 2 runs, ingest and viewer seconds summed."""
    [row] = livestreams_report(media_world)
    assert list(row) == list(LIVESTREAM_COLUMNS)
    assert (row["livestream_id"], row["meeting_id"], row["session_id"], row["name"], row["status"]) == (
        "ls-1",
        "m-1",
        "s-1",
        "Stage",
        "IDLE",
    )
    assert (row["runs"], row["ingest_seconds"], row["viewer_seconds"]) == (2, 1200.0, 1600.0)
    assert row["first_started_at"] == T0 + timedelta(minutes=10) and row["last_stopped_at"] == T0 + timedelta(
        minutes=40
    )
    assert livestreams_report(media_world, ReportFilter(session_id="other")) == []
    assert [r["livestream_id"] for r in livestreams_report(media_world, ReportFilter(since=T0))] == ["ls-1"]
    assert livestreams_report(media_world, ReportFilter(since=T0 + timedelta(hours=1))) == []


def test_cli_reports(media_world, db_url):
    """`report recordings` shows the reasons; `report livestreams` exists, with --help and JSON output."""
    runner = CliRunner()
    env = {"DATABASE_URL": db_url}
    recordings = runner.invoke(cli, ["report", "recordings", "--format", "json", "--no-refresh-expired"], env=env)
    assert recordings.exit_code == 0, recordings.output
    assert json.loads(recordings.output)[0]["stop_reason"] == "ALL_PEERS_LEFT"
    streams = runner.invoke(cli, ["report", "livestreams", "--format", "json", "--meeting-id", "m-1"], env=env)
    assert streams.exit_code == 0, streams.output
    assert json.loads(streams.output)[0]["viewer_seconds"] == 1600.0
    help_text = runner.invoke(cli, ["report", "livestreams", "--help"]).output
    assert "viewer_seconds" in help_text and "--session-id" in help_text
