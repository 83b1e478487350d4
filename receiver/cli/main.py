"""The ``receiver`` command line (click): thin commands over the service modules.

Every failure a user can cause or meet is one or two lines on stderr and an
exit code per class of failure (:class:`receiver.cli.errors.ExitCode`, listed
in ``receiver --help``); ``receiver --debug`` adds the traceback.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from typing import Any

import click

from receiver.cli.context import Context, fail
from receiver.cli.errors import EXIT_CODES_HELP, ExitCode, ReceiverGroup
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


def _configuration_error(exc: Exception) -> str:
    """One line per invalid setting (pydantic's ValidationError), never echoing the value (it may be a secret)."""
    errors = getattr(exc, "errors", None)
    if not callable(errors):
        return f"invalid configuration: {exc}"
    lines = []
    for error in errors():
        name = "_".join(str(part) for part in error.get("loc", ()) if isinstance(part, str)).upper() or "settings"
        lines.append(f"{name}: {error.get('msg', 'invalid')}")
    return "invalid configuration: " + "; ".join(lines) + " (see `receiver --help` for every setting)"


@click.group(
    cls=ReceiverGroup,
    epilog=_settings_epilog() + "\n\n" + EXIT_CODES_HELP,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110},
)
@click.option("--database-url", envvar="DATABASE_URL", help="Overrides DATABASE_URL.", show_envvar=True)
@click.option("--debug", is_flag=True, help="Show the full traceback with an error (for bug reports).")
@click.pass_context
def cli(ctx: click.Context, database_url: str | None, debug: bool) -> None:
    """receiver: Dyte webhook receiver, attendance worker and reports.

    Start with `receiver demo`. In production: `receiver migrate`, then
    `receiver serve --no-worker` and one or more `receiver worker`.
    """
    transport = getattr(ctx.obj, "dyte_transport", None)  # tests: cli.main(obj=...) with a transport
    overrides: dict[str, Any] = {}
    if database_url:
        overrides["database_url"] = database_url
    try:
        settings = load_settings(**overrides)
    except Exception as exc:  # pydantic ValidationError: show which variable is wrong
        fail(_configuration_error(exc), ExitCode.CONFIG)
    from receiver.logging_setup import configure_logging, register_secret

    configure_logging(settings.log_format, settings.log_level)
    for secret in (settings.dyte_api_key, settings.realtimekit_api_token, settings.outbound_webhook_secret):
        if secret is not None:
            register_secret(secret.get_secret_value())
    ctx.obj = Context(settings, dyte_transport=transport)
    # Pooled connections are closed when the command ends, not left to the
    # garbage collector (psycopg warns about connections deleted while open).
    ctx.call_on_close(ctx.obj.close)


def _check_database(obj: Context, *, wait_if_unreachable: bool, log_unreachable: bool = True) -> None:
    """Fail now on a database that is missing, not migrated or unusable; an unreachable one is waited for
    (logged unless ``log_unreachable`` is False) when ``wait_if_unreachable``: a long-running service rides
    out a database restart."""
    from receiver.db.engine import DatabaseUnreachable, classify_database_error, database_error_reason

    try:
        obj.engine  # noqa: B018 - creating it checks the database
    except Exception as exc:
        known = classify_database_error(exc, obj.settings.database_url)
        if not (wait_if_unreachable and isinstance(known, DatabaseUnreachable)):
            raise
        if not log_unreachable:
            return
        import structlog

        structlog.get_logger("receiver.cli").error(
            "database_unreachable", error=database_error_reason(exc), action="waiting for it"
        )


def _check_port(host: str, port: int, option: str = "--port (or PORT)") -> None:
    """Fail with one line (exit 1) when ``host:port`` cannot be listened on (in use, not permitted, no such address)."""
    import socket

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        with socket.create_server((host, port), family=family):
            pass
    except OSError as exc:
        fail(
            f"cannot listen on {host}:{port} ({os.strerror(exc.errno) if exc.errno else exc}): "
            "is another server running there? "
            f"Choose another with {option}"
        )


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
@click.option(
    "--workers",
    type=click.IntRange(1, 64),
    default=1,
    show_default=True,
    envvar="RECEIVER_WORKERS",
    show_envvar=True,
    help="Server processes sharing the port(s), each with its own inbox writer and database pool "
    "(about one per core). More than 1 needs --no-worker: run `receiver worker` beside it.",
)
@click.pass_obj
def serve(
    obj: Context,
    host: str,
    port: int,
    run_worker: bool | None,
    auto_migrate: bool | None,
    admin_port: int | None,
    workers: int,
) -> None:
    """Serve the webhook endpoint, health, metrics and reports with uvicorn.

    Logs are JSON lines on stdout (LOG_FORMAT=console for people). Without
    migrating, a missing or unmigrated database stops it at once; an
    unreachable one is waited for (deliveries get 503, so Dyte retries).
    With ``--admin-port`` (ADMIN_PORT), only the webhooks and health answer
    on PORT; metrics, the API and the pages answer on the admin port. With
    ``--workers N`` (N > 1), N uvicorn processes share the port(s).
    """
    from receiver.logging_setup import configure_logging
    from receiver.service import build_service_app, serve_app, serve_workers, tune_process

    settings = obj.settings
    if admin_port is not None:
        settings = settings.model_copy(update={"admin_port": admin_port})
    if settings.admin_port == port:
        fail(f"--admin-port must differ from --port (both {port})", ExitCode.CONFIG)
    in_process_worker = run_worker if run_worker is not None else settings.is_sqlite
    if workers > 1 and in_process_worker:
        fail(
            f"--workers {workers} runs several server processes: pass --no-worker and run `receiver worker` "
            "beside them (the in-process worker runs only with one process)",
            ExitCode.CONFIG,
        )
    _check_port(host, port)
    if settings.admin_port is not None:
        _check_port(host, settings.admin_port, "--admin-port (or ADMIN_PORT)")
    configure_logging(settings.log_format, settings.log_level, sys.stdout, settings.log_flush_seconds)
    if auto_migrate if auto_migrate is not None else settings.is_sqlite:
        from receiver.db.engine import migrate as run_migrate

        run_migrate(settings.database_url)
    else:
        _check_database(obj, wait_if_unreachable=True)
    if workers > 1:
        # Each process builds its app from the environment (receiver.service.app_from_environment). Built once
        # here first, so a configuration error (an invalid API_TOKENS entry, ...) is one line and exit 3 here,
        # not a traceback in every child.
        build_service_app(settings, run_worker=False)
        os.environ["DATABASE_URL"] = settings.database_url
        if settings.admin_port is not None:
            os.environ["ADMIN_PORT"] = str(settings.admin_port)
        serve_workers(host=host, port=port, workers=workers, admin_port=settings.admin_port)
        return
    app = build_service_app(settings, run_worker=in_process_worker, on_started=tune_process)
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
    """Process stored events and reconcile sessions with the Dyte REST API.

    Logs are JSON lines on stdout (LOG_FORMAT=console for people); the last
    one, ``worker_stopped``, has the counts (done, failed, ignored,
    reconciled). A missing or unmigrated database stops it at once;
    `--once` also stops on an unreachable one, the long-running worker
    waits for it.
    """
    from receiver.db.engine import make_engine
    from receiver.logging_setup import configure_logging
    from receiver.service import build_worker

    configure_logging(obj.settings.log_format, obj.settings.log_level, sys.stdout, obj.settings.log_flush_seconds)
    _check_database(obj, wait_if_unreachable=not once, log_unreachable=False)  # the worker logs it
    engine = obj._engine or make_engine(obj.settings.database_url, create=False)
    if metrics_port:
        from prometheus_client import start_http_server

        start_http_server(metrics_port)

    w = build_worker(obj.settings, engine, transport=obj.dyte_transport)
    loop_signals = (signal.SIGTERM, signal.SIGINT)
    for sig in loop_signals:
        signal.signal(sig, lambda *_: w.request_stop())
    asyncio.run(w.run(once=once))


def main() -> None:
    """Console-script entry point (``receiver``, and ``python -m receiver.cli``)."""
    cli(prog_name="receiver")


def _register_commands() -> None:
    """Attach the command groups defined beside this module: the one place commands are registered."""
    from receiver.cli.commands import backfill, demo, events, reconcile
    from receiver.cli.lifecycle import forget, purge
    from receiver.cli.migrate import migrate
    from receiver.cli.outbound import outbound
    from receiver.cli.reports import report
    from receiver.cli.subscriptions import subscribe, subscriptions
    from receiver.devtools.bench import bench
    from receiver.devtools.chaos.command import chaos_command
    from receiver.sandbox.cli import sandbox_command

    # `receiver bench chaos` is attached here, not in devtools.bench: the chaos
    # package imports devtools.bench.scratch (an import circle otherwise).
    bench.add_command(chaos_command, name="chaos")
    for command in (
        migrate,
        report,
        events,
        reconcile,
        outbound,
        backfill,
        demo,
        subscribe,
        subscriptions,
        bench,
        purge,
        forget,
    ):
        cli.add_command(command)
    cli.add_command(sandbox_command, name="sandbox")


_register_commands()


if __name__ == "__main__":  # pragma: no cover
    main()
