"""``receiver bench chaos``: the click command and the printed report."""

from __future__ import annotations

import signal
import sys
from typing import Any

import click

from receiver.devtools.chaos.plan import ChaosOptions, ChaosReport
from receiver.devtools.chaos.run import run_chaos

__all__ = ["chaos_command", "print_report"]


def print_report(report: ChaosReport, options: ChaosOptions, console: Any) -> None:
    """Print the figures of ``report`` as rich tables."""
    from rich.table import Table

    table = Table(title="receiver bench chaos", show_header=True, header_style="bold")
    table.add_column("figure")
    table.add_column("value", justify="right")
    table.add_column("note")

    def row(name: str, value: Any, note: str = "") -> None:
        table.add_row(name, str(value), note)

    def section(name: str) -> None:
        table.add_row(f"[bold cyan]{name}[/bold cyan]", "", "")

    section("setup")
    row("database", report.dialect, report.database + (" via TCP proxy" if report.cut else ""))
    if report.dialect == "sqlite":
        row("database cut", "skipped", "SQLite is a local file: there is no connection to cut")
    row(
        "world",
        f"{report.sessions} sessions",
        f"{report.peers} peers, {report.recordings} recordings, {report.livestreams} livestreams",
    )
    row(
        "workers",
        options.workers,
        f"lease {options.lease_seconds:g} s, REST timeout {options.rest_timeout_seconds:g} s",
    )
    section("webhook delivery (Dyte side)")
    row("deliveries planned", report.deliveries_planned)
    row("dropped", report.dropped, f"{options.drop:.0%} never sent")
    row("duplicated", report.duplicated, f"{options.duplicate:.0%} sent twice")
    row("reordered", report.reordered, f"{options.reorder:.0%} held back, sent last")
    row("POSTs scheduled", report.scheduled_posts, "copies, duplicates included")
    row("POSTs sent", report.http_requests, f"HTTP requests, {report.retried} retries included")
    row("acknowledged (2xx)", report.acknowledged)
    row("503s seen", report.status_counts.get(503, 0), "database unavailable: Dyte retries")
    others = {s: n for s, n in sorted(report.status_counts.items()) if not 200 <= s < 300 and s != 503}
    row("other non-2xx", sum(others.values()), str(others) if others else "")
    row(
        "failed after retries",
        report.failed_after_retries,
        str(report.failed_by_status) if report.failed_by_status else "",
    )
    section("Dyte REST faults")
    row("REST calls", report.rest_calls)
    row(
        "faults injected",
        sum(report.rest_faults.values()),
        ", ".join(f"{k}: {v}" for k, v in report.rest_faults.items()),
    )
    section("process faults")
    if report.kill:
        row(
            "worker SIGKILL",
            f"pid {report.kill['victim_pid']}",
            f"holding {report.kill['event_claims_at_kill']} claimed events; restarted as pid {report.kill['replacement_pid']}; "
            f"left with it at the end: {report.kill.get('claims_left_with_victim', '?')}",
        )
    if report.cut:
        row(
            "database cut",
            f"{report.cut['seconds']} s",
            f"{report.cut['connections_reset']} connections reset; /readyz {report.cut['readyz_during_cut']} "
            f"{report.cut['readyz_detail']}; webhooks during the cut {report.cut['responses_during_cut']}; "
            f"ready again after {report.cut['ready_again_after_seconds']} s; workers alive {report.cut['workers_alive_after']}/{report.cut['workers_total']}",
        )
    row("stale-session sweep", "worker --once" if report.sweeper_used else "not needed")
    section("receiver side")
    row("unique deliveries sent", report.unique_sent)
    row("unique deliveries acknowledged", report.unique_acknowledged)
    row("events stored (unique delivery ids)", report.unique_stored, f"{report.event_rows} rows")
    row("acknowledged but not stored", len(report.acknowledged_missing), "must be 0")
    row("event status", ", ".join(f"{k} {v}" for k, v in sorted(report.event_status.items())))
    row("reconcile tasks", ", ".join(f"{k} {v}" for k, v in sorted(report.task_status.items())))
    for name, count in report.duplicate_rows.items():
        row(f"duplicate keys: {name}", count, "must be 0")
    section("against ground truth")
    row("sessions equal to truth", f"{report.sessions_equal}/{report.sessions}")
    row("recordings equal to truth", f"{report.recordings_equal}/{report.recordings_total}")
    for name, code in report.exit_codes.items():
        note = "after SIGTERM"
        if name.startswith("receiver") and code == -signal.SIGTERM:
            note += " (graceful; uvicorn re-raises the signal after shutdown)"
        row(f"exit code {name}", code, note)
    section("time")
    for name in ("delivery", "drain", "total"):
        if name in report.timings:
            row(f"{name}", f"{report.timings[name]:.1f} s")
    console.print(table)
    if report.problems:
        console.print("[bold red]FAILED[/bold red]")
        for problem in report.problems:
            console.print(f"  - {problem}")
        if report.log_dir:
            console.print(f"service logs kept in {report.log_dir}")
    else:
        console.print(
            "[bold green]OK[/bold green]: no acknowledged event lost, no duplicate rows, reports equal the truth"
        )


@click.command("chaos")
@click.option(
    "--sessions", default=50, show_default=True, type=click.IntRange(1, 10_000), help="Sessions in the sandbox world."
)
@click.option(
    "--participants", default=520, show_default=True, type=click.IntRange(1, 1_000_000), help="Peers over all sessions."
)
@click.option(
    "--drop", default=0.2, show_default=True, type=click.FloatRange(0, 1), help="Share of webhooks Dyte never sends."
)
@click.option(
    "--duplicate",
    default=0.3,
    show_default=True,
    type=click.FloatRange(0, 1),
    help="Share sent twice (same dyte-uuid).",
)
@click.option(
    "--reorder", default=0.3, show_default=True, type=click.FloatRange(0, 1), help="Share held back and sent last."
)
@click.option(
    "--rest-error-rate",
    default=0.1,
    show_default=True,
    type=click.FloatRange(0, 1),
    help="Share of REST calls failing, split evenly among 500, 429 (retry-after 1 s) and timeouts.",
)
@click.option(
    "--database-url",
    help="Where to run: a PostgreSQL server URL (a scratch database is created and dropped) or a SQLite file URL (a scratch file beside it). Default: PostgreSQL on 127.0.0.1:5432 if it answers, else a temporary SQLite file.",
)
@click.option("--workers", default=2, show_default=True, type=click.IntRange(1, 32), help="Worker processes.")
@click.option(
    "--seed", default=7, show_default=True, type=int, help="Seed of the world, the webhook faults and the REST faults."
)
@click.option(
    "--cut-seconds",
    default=4.0,
    show_default=True,
    type=click.FloatRange(0.5, 12),
    help="How long the database is unreachable (PostgreSQL only).",
)
@click.option(
    "--drain-timeout",
    default=240.0,
    show_default=True,
    type=click.FloatRange(5, 3600),
    help="Seconds to wait for the queue and reconciliation to drain.",
)
@click.option("--keep", is_flag=True, help="Keep the scratch database and the service logs.")
def chaos_command(**kwargs: Any) -> None:
    """Chaos run: faulty Dyte webhooks and REST, a worker SIGKILL and a database outage; compare with the truth.

    \b
    Starts the Dyte sandbox, a scratch database (behind a TCP proxy on
    PostgreSQL), `receiver serve --no-worker` and N `receiver worker`
    processes; delivers the world's webhooks with drops, duplicates and
    re-ordering (retrying non-2xx like Dyte); SIGKILLs a worker holding
    claims and restarts it; cuts the database for a few seconds (PostgreSQL);
    drains; then checks: every acknowledged delivery stored, no duplicate
    rows, attendance and recordings equal to the ground truth. Exit 1 if not.
    """
    from rich.console import Console

    console = Console(highlight=False, width=max(Console().width, 140))
    options = ChaosOptions(
        sessions=kwargs["sessions"],
        participants=kwargs["participants"],
        drop=kwargs["drop"],
        duplicate=kwargs["duplicate"],
        reorder=kwargs["reorder"],
        rest_error_rate=kwargs["rest_error_rate"],
        database_url=kwargs["database_url"],
        workers=kwargs["workers"],
        seed=kwargs["seed"],
        cut_seconds=kwargs["cut_seconds"],
        drain_timeout=kwargs["drain_timeout"],
        keep=kwargs["keep"],
    )
    if options.participants < options.sessions:
        raise click.BadParameter("--participants must be at least --sessions (every session has a host)")
    try:
        report = run_chaos(options, console)
    except (RuntimeError, ValueError, OSError) as exc:
        click.echo(f"error: {type(exc).__name__}: {exc}", err=True)
        sys.exit(1)
    print_report(report, options, console)
    sys.exit(0 if report.ok else 1)
