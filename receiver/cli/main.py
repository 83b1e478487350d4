"""The ``receiver`` command line (click): thin commands over the service modules.

Exit codes: 0 success, 1 operational failure (one-line message on stderr),
2 usage error (click's own).
"""

from __future__ import annotations

import asyncio
import gc
import signal
import sys
from typing import Any

import click

from receiver.cli.context import Context, fail, parse_cli_time
from receiver.settings import Settings, load_settings

__all__ = ["main", "cli"]


def _settings_epilog() -> str:
    lines = ["\b", "Configuration (environment variables, or a .env file in the working directory):"]
    for name, field in Settings.model_fields.items():
        default = field.default
        shown = "" if default is None else f" [default: {default}]"
        lines.append(f"  {name.upper()}{shown}")
        lines.append(f"      {field.description}")
    return "\n".join(lines)


# Process-wide tuning of `receiver serve`, applied once the app has started.
# Threads (an in-process worker, the SQLite fallback writer) wait for the GIL at
# most this long while the event loop is busy (Python's default: 5 ms).
GIL_SWITCH_INTERVAL_SECONDS = 0.001
# Cyclic GC generation thresholds (Python's default: 700, 10, 10). Requests
# waiting for their group commit keep many young objects alive, so at 700 the
# collector ran every few requests and rescanned them: ~3% of the receive
# path's CPU (callgrind, `receiver bench ingest`). At 10,000 most are freed
# by reference counting before a collection sees them.
GC_THRESHOLDS = (10_000, 20, 20)


def tune_process() -> None:
    """Tune the interpreter for serving (called by the app once start-up objects exist).

    Start-up objects are long-lived: ``gc.freeze`` moves them out of the
    collector's way (halves the receive path's p99, which is mostly GC
    pauses; see ``receiver bench ingest``); then :data:`GC_THRESHOLDS` and
    :data:`GIL_SWITCH_INTERVAL_SECONDS` apply.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)
    sys.setswitchinterval(GIL_SWITCH_INTERVAL_SECONDS)


@click.group(
    epilog=_settings_epilog(), context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110}
)
@click.option("--database-url", envvar="DATABASE_URL", help="Overrides DATABASE_URL.", show_envvar=True)
@click.pass_context
def cli(ctx: click.Context, database_url: str | None) -> None:
    """receiver: Dyte webhook receiver, attendance worker and reports.

    Start with `receiver demo`. In production: `receiver migrate`, then
    `receiver serve --no-worker` and one or more `receiver worker`.
    """
    overrides: dict[str, Any] = {}
    if database_url:
        overrides["database_url"] = database_url
    try:
        settings = load_settings(**overrides)
    except Exception as exc:  # pydantic ValidationError: show which variable is wrong
        fail(f"invalid configuration: {exc}")
    from receiver.logging_setup import configure_logging, register_secret

    configure_logging(settings.log_format, settings.log_level)
    if settings.dyte_api_key is not None:
        register_secret(settings.dyte_api_key.get_secret_value())
    ctx.obj = Context(settings)


@cli.command()
@click.option("--revision", default="head", show_default=True, help="Target Alembic revision.")
@click.pass_obj
def migrate(obj: Context, revision: str) -> None:
    """Create or upgrade the database schema (Alembic) to the newest revision."""
    from receiver.db.engine import migrate as run_migrate

    try:
        run_migrate(obj.settings.database_url, revision)
    except Exception as exc:
        fail(f"migration failed: {type(exc).__name__}: {exc}")
    click.echo(f"database at {revision}")


@cli.command()
@click.option("--host", default="127.0.0.1", show_default=True, envvar="RECEIVER_HOST", show_envvar=True)
@click.option("--port", default=8000, show_default=True, type=int, envvar="PORT", show_envvar=True)
@click.option(
    "--worker/--no-worker",
    "run_worker",
    default=None,
    help="Run the event worker in-process. Default: on for SQLite, off for PostgreSQL (run `receiver worker`).",
)
@click.option("--migrate/--no-migrate", "auto_migrate", default=None, help="Migrate at start. Default: on for SQLite.")
@click.option(
    "--admin-port",
    type=click.IntRange(1, 65535),
    default=None,
    help="Serve /metrics, /api, /ui and the detailed /readyz only on this port; --port then serves only "
    "/webhooks/*, /healthz and /readyz. Default: ADMIN_PORT, else everything on --port.",
)
@click.pass_obj
def serve(
    obj: Context, host: str, port: int, run_worker: bool | None, auto_migrate: bool | None, admin_port: int | None
) -> None:
    """Serve the webhook endpoint, health, metrics and reports with uvicorn."""
    from receiver.logging_setup import configure_logging
    from receiver.service import build_service_app, serve_app

    settings = obj.settings
    if admin_port is not None:
        settings = settings.model_copy(update={"admin_port": admin_port})
    configure_logging(settings.log_format, settings.log_level, sys.stdout, settings.log_flush_seconds)
    if auto_migrate if auto_migrate is not None else settings.is_sqlite:
        from receiver.db.engine import migrate as run_migrate

        run_migrate(settings.database_url)
    app = build_service_app(
        settings, run_worker=run_worker if run_worker is not None else settings.is_sqlite, on_started=tune_process
    )
    serve_app(app, host=host, port=port, admin_port=settings.admin_port)


@cli.command()
@click.option("--once", is_flag=True, help="Drain everything due (events and reconciliations), then exit.")
@click.option(
    "--metrics-port",
    type=int,
    envvar="WORKER_METRICS_PORT",
    show_envvar=True,
    help="Serve this worker's Prometheus metrics (processing, Dyte API calls) on this port.",
)
@click.pass_obj
def worker(obj: Context, once: bool, metrics_port: int | None) -> None:
    """Process stored events and reconcile sessions with the Dyte REST API."""
    from receiver.logging_setup import configure_logging
    from receiver.service import build_worker

    configure_logging(obj.settings.log_format, obj.settings.log_level, sys.stdout, obj.settings.log_flush_seconds)
    if metrics_port:
        from prometheus_client import start_http_server

        start_http_server(metrics_port)

    w = build_worker(obj.settings, obj.engine)
    loop_signals = (signal.SIGTERM, signal.SIGINT)
    for sig in loop_signals:
        signal.signal(sig, lambda *_: w.request_stop())
    result = asyncio.run(w.run(once=once))
    click.echo(
        f"worker finished: {result.done} done, {result.failed} failed, {result.ignored} ignored, {result.reconciled} reconciled"
    )


@cli.group()
def report() -> None:
    """Attendance, recordings and sessions reports (table, CSV or JSON)."""


def _report_options(func):
    func = click.option(
        "--format", "fmt", type=click.Choice(["table", "csv", "json"]), default="table", show_default=True
    )(func)
    func = click.option(
        "--output", "-o", type=click.Path(dir_okay=False, writable=True), help="Write to a file instead of stdout."
    )(func)
    func = click.option("--until", help="Sessions started before this UTC date/time (ISO 8601).")(func)
    func = click.option("--since", help="Sessions started at or after this UTC date/time (ISO 8601).")(func)
    func = click.option("--meeting-id", help="Only this meeting.")(func)
    return func


def _emit(rows: list[dict[str, Any]], columns, fmt: str, output: str | None, title: str) -> None:
    from receiver.reports.formatting import render

    if output:
        from rich.console import Console

        with open(output, "w", encoding="utf-8", newline="") as handle:
            text = render(rows, columns, fmt, title=title, console=Console(file=handle, width=200))
            if text is not None:
                handle.write(text)
        click.echo(f"{len(rows)} rows written to {output}", err=True)
        return
    text = render(rows, columns, fmt, title=title)
    if text is not None:
        click.echo(text, nl=not text.endswith("\n"))


@report.command("attendance")
@click.option("--session-id", help="Only this session.")
@click.option("--participant", help="Only this participant key (custom participant id, or peer id).")
@_report_options
@click.pass_obj
def report_attendance(obj: Context, session_id, participant, meeting_id, since, until, fmt, output) -> None:
    """One row per person per session: attended seconds (overlaps once), joins, ratio."""
    from receiver.reports.queries import ATTENDANCE_COLUMNS, ReportFilter, attendance_report

    flt = ReportFilter(
        session_id=session_id,
        meeting_id=meeting_id,
        participant=participant,
        since=parse_cli_time(since),
        until=parse_cli_time(until),
    )
    rows = attendance_report(obj.engine, flt)
    if session_id and not rows and fmt == "table":
        click.echo(f"no attendance recorded for session {session_id}", err=True)
    _emit(rows, ATTENDANCE_COLUMNS, fmt, output, "Attendance")


@report.command("recordings")
@click.option("--session-id", help="Only this session.")
@click.option(
    "--refresh-expired/--no-refresh-expired",
    default=True,
    help="Refresh expired download URLs from the Dyte API first (needs credentials).",
)
@_report_options
@click.pass_obj
def report_recordings(obj: Context, session_id, refresh_expired, meeting_id, since, until, fmt, output) -> None:
    """The recording index: status, times, size, download links."""
    from receiver.reports.queries import RECORDING_COLUMNS, ReportFilter, recordings_report

    flt = ReportFilter(
        session_id=session_id, meeting_id=meeting_id, since=parse_cli_time(since), until=parse_cli_time(until)
    )
    if refresh_expired and obj.settings.api_credentials_set:
        from receiver.service import refresh_expired_recordings

        asyncio.run(refresh_expired_recordings(obj.settings, obj.engine, flt))
    _emit(recordings_report(obj.engine, flt), RECORDING_COLUMNS, fmt, output, "Recordings")


@report.command("sessions")
@_report_options
@click.pass_obj
def report_sessions(obj: Context, meeting_id, since, until, fmt, output) -> None:
    """One row per session: start, end, duration, people, peak concurrency, reconciled."""
    from receiver.reports.queries import SESSION_COLUMNS, ReportFilter, sessions_report

    flt = ReportFilter(meeting_id=meeting_id, since=parse_cli_time(since), until=parse_cli_time(until))
    _emit(sessions_report(obj.engine, flt), SESSION_COLUMNS, fmt, output, "Sessions")


@report.command("refresh")
@click.option(
    "--session-id",
    "session_ids",
    multiple=True,
    help="Only this session (repeatable). Default: every ended session whose stored attendance is not current.",
)
@click.pass_obj
def report_refresh(obj: Context, session_ids) -> None:
    """Precompute the attendance of ended sessions now (table session_attendance).

    Reports do this themselves for what they find stale; run it once after
    migrating a large database so the first org-wide report is fast.
    """
    import time

    from receiver.reports.queries import refresh_session_attendance

    started = time.perf_counter()
    stored = refresh_session_attendance(obj.engine, list(session_ids) or None)
    click.echo(f"attendance stored for {stored} ended session(s) in {time.perf_counter() - started:.1f} s", err=True)


def main() -> None:
    """Console-script entry point (``receiver``, and ``python -m receiver.cli``)."""
    cli(prog_name="receiver")


def _register_commands() -> None:
    """Attach the command groups defined beside this module: the one place commands are registered."""
    from receiver.cli.commands import backfill, demo, events, reconcile
    from receiver.cli.subscriptions import subscribe, subscriptions
    from receiver.devtools.bench import bench
    from receiver.sandbox.cli import sandbox_command

    for command in (events, reconcile, backfill, demo, subscribe, subscriptions, bench):
        cli.add_command(command)
    cli.add_command(sandbox_command, name="sandbox")


_register_commands()


if __name__ == "__main__":  # pragma: no cover
    main()
