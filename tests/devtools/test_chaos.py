"""The chaos run, small: real processes, faulty webhooks and REST, a worker SIGKILL and (PostgreSQL) a database cut."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import PG_ADMIN_URL, postgres_unavailable_reason

from receiver.devtools.chaos import ChaosOptions, ChaosReport, run_chaos

pytestmark = pytest.mark.slow


FAST = dict(
    sessions=6,
    participants=60,
    drop=0.2,
    duplicate=0.3,
    reorder=0.3,
    rest_error_rate=0.1,
    workers=2,
    seed=7,
    cut_seconds=2.0,
    lease_seconds=3.0,
    drain_timeout=45.0,
)


def _assert_sound(report: ChaosReport) -> None:
    assert report.problems == [], f"problems: {report.problems}; logs: {report.log_dir}"
    assert report.dropped > 0 and report.duplicated > 0 and report.reordered > 0
    assert report.acknowledged_missing == [], "an acknowledged delivery was lost"
    assert report.unique_stored == report.unique_acknowledged == report.unique_sent
    assert all(count == 0 for count in report.duplicate_rows.values()), report.duplicate_rows
    assert report.sessions_equal == report.sessions == FAST["sessions"]
    assert report.recordings_equal == report.recordings_total
    assert report.attendance_problems == [] and report.recording_problems == []
    assert report.kill["event_claims_at_kill"] > 0, "the worker was killed while holding no claims"
    assert report.kill["claims_left_with_victim"] == 0
    assert report.event_status.get("done") == report.unique_stored


@pytest.mark.postgres
def test_chaos_postgres_with_worker_kill_and_database_cut() -> None:
    """PostgreSQL: drops, duplicates, reordering, REST faults, a SIGKILLed worker and a 2 s database cut still give the truth."""
    reason = postgres_unavailable_reason()
    if reason:
        pytest.skip(reason)
    report = run_chaos(ChaosOptions(database_url=PG_ADMIN_URL, **FAST))
    _assert_sound(report)
    assert report.dialect == "postgresql"
    assert report.cut["readyz_during_cut"] == 503
    assert report.cut["responses_during_cut"].get(503, 0) > 0, "no webhook hit the outage"
    assert set(report.cut["responses_during_cut"]) <= {200, 503}
    assert report.cut["workers_alive_after"] == report.cut["workers_total"] == FAST["workers"]
    assert report.status_counts.get(503, 0) > 0 and report.failed_after_retries == 0


def test_chaos_sqlite_with_worker_kill(tmp_path: Path) -> None:
    """SQLite (no connection to cut): the same faults and a SIGKILLed worker still give the truth."""
    report = run_chaos(ChaosOptions(database_url=f"sqlite:///{tmp_path / 'chaos.db'}", cut_database=False, **FAST))
    _assert_sound(report)
    assert report.dialect == "sqlite" and report.cut == {}
