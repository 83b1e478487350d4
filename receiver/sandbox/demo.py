"""``receiver demo``: a scripted meeting through the whole service, printed and checked."""

from __future__ import annotations

from rich.console import Console

from receiver.logging_setup import configure_logging
from receiver.reports.formatting import to_table
from receiver.reports.queries import (
    ATTENDANCE_COLUMNS,
    RECORDING_COLUMNS,
    SESSION_COLUMNS,
    ReportFilter,
    sessions_report,
)
from receiver.sandbox import FaultPlan, demo_world
from receiver.sandbox.dialects import dialect_for
from receiver.sandbox.simulation import run_simulation

__all__ = ["run_demo"]

_SHOWN_ATTENDANCE = [c for c in ATTENDANCE_COLUMNS if c not in ("meeting_id", "session_id", "session_reconciled")]
_SHOWN_RECORDINGS = [c for c in RECORDING_COLUMNS if c not in ("meeting_id", "audio_download_url")]


def run_demo(
    database_url: str,
    *,
    drop: float,
    duplicate: float,
    reorder: float,
    seed: int,
    console: Console,
    provider: str = "dyte",
) -> bool:
    """Run the demo on ``database_url``; print reports; return True when they equal the ground truth.

    ``provider``: the sandbox speaks Dyte v2 (``dyte``) or Cloudflare
    RealtimeKit (``realtimekit``: ``rtk-*`` deliveries to /webhooks/realtimekit,
    REST on the Cloudflare paths with a Bearer token), and the receiver runs
    with that PROVIDER.
    """
    configure_logging("console", "WARNING")
    world = demo_world()
    second_session = world.sessions[1].id
    faults = FaultPlan(
        drop=drop, duplicate=duplicate, reorder=reorder, seed=seed, always_drop={("meeting.ended", second_session)}
    )
    console.rule("[bold]receiver demo")
    label = dialect_for(provider).label
    console.print(
        f"Sandbox {label}: 1 meeting, {len(world.sessions)} sessions, {sum(len(s.peers) for s in world.sessions)} peers, "
        f"{len(world.recordings)} recording, {len(world.livestreams)} livestream.\n"
        f"Faults: drop {drop:.0%}, duplicate {duplicate:.0%}, reorder {reorder:.0%}; meeting.ended of session 2 always dropped.\n"
        f"Database: {database_url}"
    )
    result = run_simulation(world, database_url=database_url, faults=faults, provider=provider)
    stats = result.delivery_stats
    console.print(
        f"\nWebhooks: {result.deliveries_planned} events, {stats.sent} POSTs signed with the sandbox key, "
        f"{stats.dropped} dropped, {stats.duplicated} duplicated, {stats.reordered} reordered; "
        f"failed after retries: {stats.failed}."
    )
    console.print(
        f"Worker: {result.worker.done} events applied, {result.worker.reconciled} reconciliations with the "
        f"{label} REST API "
        f"({result.rest_calls} REST calls)."
    )
    from receiver.db.engine import make_engine

    engine = make_engine(database_url)
    try:
        console.print(
            to_table(
                sessions_report(engine, ReportFilter()), [c for c in SESSION_COLUMNS if c != "meeting_id"], "Sessions"
            )
        )
    finally:
        engine.dispose()
    for session in world.sessions:
        rows = [r for r in result.attendance_rows if r["session_id"] == session.id]
        console.print(to_table(rows, _SHOWN_ATTENDANCE, f"Attendance, session {session.id}"))
    console.print(to_table(result.recording_rows, _SHOWN_RECORDINGS, "Recordings"))
    if result.matches_truth:
        console.print(
            f"[bold green]OK[/]: attendance for {len(result.attendance_rows)} person-sessions and "
            f"{len(result.recording_rows)} recording(s) equal the sandbox's ground truth, despite the lost webhooks."
        )
        console.print("Try: receiver --database-url sqlite:///receiver-demo.db report attendance --format csv")
        return True
    console.print("[bold red]MISMATCH[/] with the sandbox's ground truth:")
    for problem in result.attendance_problems + result.recording_problems:
        console.print(f"  - {problem}")
    return False
