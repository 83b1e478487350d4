"""What the chaos run checks: database probes (claims, drain state, duplicate keys), the ground truth, the verdict.

Owns :func:`claims` and :func:`drain_state` (read while the run goes),
:data:`DUPLICATE_QUERIES` / :func:`duplicate_rows`, :func:`compare_with_truth`
(reports against :mod:`receiver.sandbox.groundtruth`) and
:func:`final_checks`, which turns the figures into ``report.problems``.
"""

from __future__ import annotations

import signal
from typing import Any

from sqlalchemy import text
from sqlalchemy.engine import Engine

from receiver.devtools.chaos.plan import ChaosReport
from receiver.reports.queries import attendance_report, recordings_report
from receiver.sandbox.groundtruth import compare_attendance, compare_recordings, expected_attendance

__all__ = [
    "DUPLICATE_QUERIES",
    "claims",
    "compare_with_truth",
    "drain_state",
    "duplicate_rows",
    "final_checks",
]


def claims(monitor: Engine, prefix: str | None = None) -> tuple[int, int]:
    """(events in processing, reconcile tasks under a live lease), of workers whose id starts with ``prefix`` (all if None)."""
    who = "" if prefix is None else " AND locked_by LIKE :prefix"
    params = {"prefix": prefix + "%"} if prefix else {}
    with monitor.connect() as connection:
        events = connection.execute(
            text(f"SELECT count(*) FROM webhook_events WHERE status = 'processing'{who}"), params
        ).scalar_one()
        tasks = connection.execute(
            text(f"SELECT count(*) FROM reconcile_tasks WHERE status = 'pending' AND locked_by IS NOT NULL{who}"),
            params,
        ).scalar_one()
    return int(events), int(tasks)


def drain_state(monitor: Engine) -> dict[str, int]:
    """Open and dead events, pending and dead reconcile tasks, and sessions not yet reconciled (counts)."""
    with monitor.connect() as connection:
        events: dict[str, int] = {
            status: int(n)
            for status, n in connection.execute(text("SELECT status, count(*) FROM webhook_events GROUP BY status"))
        }
        tasks: dict[str, int] = {
            status: int(n)
            for status, n in connection.execute(text("SELECT status, count(*) FROM reconcile_tasks GROUP BY status"))
        }
        unreconciled = connection.execute(
            text("SELECT count(*) FROM sessions WHERE reconciled_at IS NULL")
        ).scalar_one()
    return {
        "events_open": sum(int(events.get(s, 0)) for s in ("pending", "processing", "failed")),
        "events_dead": int(events.get("dead", 0)),
        "tasks_pending": int(tasks.get("pending", 0)),
        "tasks_dead": int(tasks.get("dead", 0)),
        "sessions_unreconciled": int(unreconciled),
    }


DUPLICATE_QUERIES = {
    "participant_intervals (session_id, peer_id)": "SELECT session_id, peer_id FROM participant_intervals GROUP BY session_id, peer_id HAVING count(*) > 1",
    "recording_status_history (recording_id, status, source)": "SELECT recording_id, status, source FROM recording_status_history GROUP BY recording_id, status, source HAVING count(*) > 1",
    "recording_status_history webhook copies (recording_id, status)": (
        "SELECT recording_id, status FROM recording_status_history WHERE source LIKE 'event:%' "
        "GROUP BY recording_id, status HAVING count(*) > 1"
    ),
    "livestream_status_history (livestream_id, status, source)": "SELECT livestream_id, status, source FROM livestream_status_history GROUP BY livestream_id, status, source HAVING count(*) > 1",
    "webhook_events (delivery_id)": "SELECT delivery_id FROM webhook_events GROUP BY delivery_id HAVING count(*) > 1",
    "reconcile_tasks (kind, object_id)": "SELECT kind, object_id FROM reconcile_tasks GROUP BY kind, object_id HAVING count(*) > 1",
}


def duplicate_rows(monitor: Engine) -> dict[str, int]:
    """For each uniqueness the data must have: how many keys occur more than once (all 0 when sound).

    ``recording history webhook copies`` counts a recording status stored
    from two *different* webhook events: the same status delivered twice
    under two delivery ids would show there.
    """
    result: dict[str, int] = {}
    with monitor.connect() as connection:
        for name, query in DUPLICATE_QUERIES.items():
            result[name] = len(connection.execute(text(query)).all())
    return result


class _OneRecording:
    def __init__(self, truth: dict[str, Any]) -> None:
        self._truth = truth

    def recordings_final(self) -> list[dict[str, Any]]:
        return [self._truth]


def compare_with_truth(engine: Engine, world: Any, report: ChaosReport) -> None:
    """Fill the per-session and per-recording comparisons of ``report``."""
    rows = attendance_report(engine)
    expected = expected_attendance(world)
    known = {s.id for s in world.sessions}
    for row in rows:
        if row["session_id"] not in known:
            report.attendance_problems.append(f"unexpected session {row['session_id']}")
    for session in world.sessions:
        problems = compare_attendance(
            [r for r in rows if r["session_id"] == session.id],
            {k: v for k, v in expected.items() if k[0] == session.id},
        )
        if problems:
            report.attendance_problems.extend(problems)
        else:
            report.sessions_equal += 1
    recordings = recordings_report(engine)
    finals = world.recordings_final()
    report.recordings_total = len(finals)
    for truth in finals:
        problems = compare_recordings(recordings, _OneRecording(truth))
        if problems:
            report.recording_problems.extend(problems)
        else:
            report.recordings_equal += 1


def final_checks(report: ChaosReport) -> None:
    """Append to ``report.problems`` every figure that is not as it must be (empty: the run passed)."""
    if report.acknowledged_missing:
        report.problems.append(
            f"{len(report.acknowledged_missing)} acknowledged deliveries are not stored: {report.acknowledged_missing[:5]}"
        )
    if report.stored_never_sent:
        report.problems.append(f"{len(report.stored_never_sent)} stored delivery ids were never sent")
    if report.event_rows != report.unique_stored:
        report.problems.append(f"{report.event_rows} event rows for {report.unique_stored} delivery ids")
    for name, count in report.duplicate_rows.items():
        if count:
            report.problems.append(f"duplicate rows in {name}: {count}")
    if report.event_status.get("dead"):
        report.problems.append(f"{report.event_status['dead']} dead events")
    if report.task_status.get("dead"):
        report.problems.append(f"{report.task_status['dead']} dead reconcile tasks")
    if report.attendance_problems:
        report.problems.append(
            f"attendance differs from the truth in {report.sessions - report.sessions_equal} session(s): {report.attendance_problems[:3]}"
        )
    if report.recording_problems:
        report.problems.append(f"recordings differ from the truth: {report.recording_problems[:3]}")
    if report.kill:  # noqa: SIM102
        if report.kill.get("claims_left_with_victim"):
            report.problems.append(
                f"{report.kill['claims_left_with_victim']} events still claimed by the killed worker"
            )
    if report.cut:
        if report.cut.get("readyz_during_cut") != 503:
            report.problems.append(
                f"/readyz answered {report.cut.get('readyz_during_cut')} during the database cut, not 503"
            )
        during = report.cut.get("responses_during_cut", {})
        if any(status >= 500 and status != 503 for status in during):
            report.problems.append(f"webhooks got {during} during the cut (only 503 is right)")
        if report.cut.get("ready_again_after_seconds") is None:
            report.problems.append("the receiver did not become ready again after the database came back")
        if report.cut.get("workers_alive_after") != report.cut.get("workers_total"):
            report.problems.append("a worker died during the database cut")
    for name, code in report.exit_codes.items():
        # uvicorn (>= 0.29) re-raises the SIGTERM it handled once the graceful shutdown is done.
        if code != 0 and not (name.startswith("receiver") and code == -signal.SIGTERM):
            report.problems.append(f"{name} exited with {code} after SIGTERM")
    if report.failed_after_retries:
        # Not a loss (never acknowledged), but with these retries and outage lengths none should be.
        report.problems.append(f"{report.failed_after_retries} deliveries were given up after Dyte's retries")
    other_errors = {s: n for s, n in report.status_counts.items() if s >= 500 and s != 503}
    if other_errors:
        report.problems.append(f"unexpected server errors: {other_errors}")
