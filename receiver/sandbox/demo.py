"""``receiver demo``: a scripted meeting through the whole service, printed and checked.

:func:`run_demo` plays the meeting and prints the reports; :func:`serve_demo`
(``receiver demo --serve``) then serves the demo database's pages on
127.0.0.1 with a fresh token until Ctrl-C.
"""

from __future__ import annotations

import secrets
import shlex
import time

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

__all__ = ["DEMO_DATABASE_URL", "run_demo", "serve_demo", "try_commands"]

#: Where ``receiver demo`` writes unless told otherwise (recreated on each run).
DEMO_DATABASE_URL = "sqlite:///receiver-demo.db"

_SHOWN_ATTENDANCE = [c for c in ATTENDANCE_COLUMNS if c not in ("meeting_id", "session_id", "session_reconciled")]
_SHOWN_RECORDINGS = [c for c in RECORDING_COLUMNS if c not in ("meeting_id", "audio_download_url")]


def try_commands(command: str, database_url: str) -> list[str]:
    """Commands to explore the demo's database, runnable as printed.

    ``command`` is how this ``receiver`` was started (e.g.
    ``.venv/bin/receiver``, or ``python -m receiver.cli``), so the lines
    work without an activated virtual environment.
    """
    base = f"{command} --database-url {shlex.quote(database_url)}"
    same_db = "" if database_url == DEMO_DATABASE_URL else f" --database-url {shlex.quote(database_url)}"
    return [
        f"{base} report attendance --format csv",
        f"{base} report sessions --wide",
        f"{base} events list",
        f"{command} demo --serve{same_db}    # the same meeting, as pages in a browser",
    ]


def run_demo(
    database_url: str,
    *,
    drop: float,
    duplicate: float,
    reorder: float,
    seed: int,
    console: Console,
    provider: str = "dyte",
    command: str = "receiver",
    serving: bool = False,
) -> bool:
    """Run the demo on ``database_url``; print reports; return True when they equal the ground truth.

    ``provider``: the sandbox speaks Dyte v2 (``dyte``) or Cloudflare
    RealtimeKit (``realtimekit``: ``rtk-*`` deliveries to /webhooks/realtimekit,
    REST on the Cloudflare paths with a Bearer token), and the receiver runs
    with that PROVIDER. ``command`` prefixes the commands suggested at the
    end (see :func:`try_commands`); with ``serving`` (pages follow) the
    suggestion to serve them is left out.
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
    with console.status("Playing the meeting: sandbox -> signed webhooks -> receiver -> worker -> REST API ..."):
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
                sessions_report(engine, ReportFilter()),
                [c for c in SESSION_COLUMNS if c != "meeting_id"],
                "Sessions",
                caption=False,
                width=console.width,
            )
        )
    finally:
        engine.dispose()
    for session in world.sessions:
        rows = [r for r in result.attendance_rows if r["session_id"] == session.id]
        console.print(
            to_table(rows, _SHOWN_ATTENDANCE, f"Attendance, session {session.id}", caption=False, width=console.width)
        )
    console.print(to_table(result.recording_rows, _SHOWN_RECORDINGS, "Recordings", caption=False, width=console.width))
    console.print("[dim]Times UTC, ids shortened; `report ... --wide` or `--format csv` shows every column in full.")
    if result.matches_truth:
        console.print(
            f"[bold green]OK[/]: attendance for {len(result.attendance_rows)} person-sessions and "
            f"{len(result.recording_rows)} recording(s) equal the sandbox's ground truth, despite the lost webhooks."
        )
        console.print("\nTry:", highlight=False)
        for line in try_commands(command, database_url):
            if serving and " demo --serve" in line:
                continue
            console.print(f"  {line}", highlight=False, markup=False, soft_wrap=True)
        return True
    console.print("[bold red]MISMATCH[/] with the sandbox's ground truth:")
    for problem in result.attendance_problems + result.recording_problems:
        console.print(f"  - {problem}")
    return False


def serve_demo(database_url: str, *, console: Console, host: str = "127.0.0.1", port: int = 8000) -> None:
    """Serve the demo database's pages (/ui) and API on ``host:port`` until Ctrl-C.

    A fresh random token (``API_TOKENS``) is printed with the URL of the
    pages: paste it on the log-in page. No worker, no Dyte credentials: the
    data is what the demo stored. ``port`` 0 takes any free port.

    Raises:
        OSError: the port cannot be bound (in use, or not permitted).
    """
    from receiver.sandbox.localserver import serve_in_thread
    from receiver.service import build_service_app
    from receiver.settings import Settings

    token = secrets.token_urlsafe(18)
    settings = Settings(
        database_url=database_url,
        api_tokens=token,
        log_format="console",
        log_level="WARNING",
        subscription_ensure_on_start=False,
    )
    base_url, stop = serve_in_thread(build_service_app(settings, run_worker=False), host, port, name="receiver-demo")
    try:
        console.rule("[bold]pages")
        console.print(f"Pages:  {base_url}/ui/", highlight=False, markup=False)
        console.print(f"Token:  {token}   (log in with this token; a new one each run)", highlight=False, markup=False)
        console.print(
            f"API:    {base_url}/api/ with `Authorization: Bearer <token>` ({base_url}/api/openapi.json)",
            highlight=False,
            markup=False,
        )
        console.print("Serving until Ctrl-C.", highlight=False)
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        console.print("stopped")
    finally:
        stop()
