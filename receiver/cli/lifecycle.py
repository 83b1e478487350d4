"""Data lifecycle commands: ``receiver purge`` (raw body retention) and ``receiver forget`` (erasure).

The rules live in :mod:`receiver.processing.retention` and
:mod:`receiver.processing.erasure`; these commands parse options, show
progress (rich, on a terminal) and print a summary. Procedures:
docs/operations.md.
"""

from __future__ import annotations

import getpass
import json
from datetime import UTC, datetime
from typing import Any

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from sqlalchemy.exc import DBAPIError

from receiver.cli.context import Context, fail

__all__ = ["purge", "forget"]


def _megabytes(size: int) -> str:
    return f"{size / 1_000_000:.1f} MB" if size >= 100_000 else f"{size:,} bytes"


def _database_failed(exc: DBAPIError) -> None:
    first = str(exc.orig).strip().splitlines()[0] if exc.orig is not None else type(exc).__name__
    fail(f"database error: {first[:200]} (is the schema current? run `receiver migrate`)")


@click.command()
@click.option("--dry-run", is_flag=True, help="Count what would be purged; change nothing.")
@click.option(
    "--days",
    type=click.IntRange(min=1),
    help="Keep raw bodies this many days for this run (default: RAW_RETENTION_DAYS).",
)
@click.option(
    "--batch-size",
    default=1000,
    show_default=True,
    type=click.IntRange(1, 100_000),
    help="Rows per transaction (smaller: shorter locks).",
)
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
@click.pass_obj
def purge(obj: Context, dry_run: bool, days: int | None, batch_size: int, fmt: str) -> None:
    """Remove the raw bodies of handled webhook events older than RAW_RETENTION_DAYS.

    \b
    Events that are done or ignored and were received more than the window
    ago lose raw_body (emptied, purged_at set). Kept: the row (delivery id
    and body hash, so a provider retry is still a duplicate), every derived
    table (sessions, intervals, recordings, reports), and the bodies of
    pending, failed and dead events until they are handled. Works in short
    batches; safe beside running workers, which also run it once a day.
    Freed space is reused by the database; VACUUM returns it to the disk.

    \b
    On PostgreSQL (inbox partitioned by month) a month wholly older than the
    window and holding no unhandled event is dropped whole instead, rows and
    all (space returned at once); the coming months' partitions are created
    if missing.
    """
    from receiver.db.partitions import ensure_months
    from receiver.processing.retention import Purge, finish_run, purge_plan, retention_cutoff, start_run

    window = days if days is not None else obj.settings.raw_retention_days
    if window == 0:
        fail("retention is disabled (RAW_RETENTION_DAYS=0): pass --days N to purge once")
    now = datetime.now(UTC)
    cutoff = retention_cutoff(now, window)
    engine = obj.engine
    try:
        plan = purge_plan(engine, cutoff)
        if dry_run:
            summary = plan
        else:
            ensure_months(engine, now, on_error=lambda name, error: fail(f"cannot create partition {name}: {error}"))
            start_run(engine, f"cli:{getpass.getuser()}", now=now)
            run = Purge(engine, cutoff, batch_size)
            console = Console(stderr=True)
            progress = Progress(
                TextColumn("[bold]purge"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                console=console,
                disable=not console.is_terminal,
            )
            with progress:
                task = progress.add_task("bodies", total=plan.bodies)
                run.run(on_batch=lambda s: progress.update(task, completed=s.bodies))
            run.count_kept()
            summary = run.summary
            finish_run(engine, summary)
    except DBAPIError as exc:
        _database_failed(exc)
    if fmt == "json":
        click.echo(json.dumps(summary.as_dict(), sort_keys=True))
        return
    verb = "would purge" if dry_run else "purged"
    click.echo(
        f"{verb} {summary.bodies:,} raw bodies ({_megabytes(summary.bytes)}) of handled events received before "
        f"{cutoff:%Y-%m-%d %H:%M} UTC ({window} days)"
    )
    if summary.partitions and dry_run:
        click.echo(f"would drop {len(summary.partitions)} month partition(s) whole: {', '.join(summary.partitions)}")
    elif summary.partitions:
        click.echo(
            f"dropped {len(summary.partitions)} month partition(s) of the inbox ({', '.join(summary.partitions)}): "
            f"{summary.partition_rows:,} events, {_megabytes(summary.partition_bytes)} on disk; "
            f"inbox locked {summary.lock_seconds * 1000:.0f} ms at most (files removed in {summary.commit_seconds:.1f} s)"
        )
    if summary.outbound_bodies:
        verb_outbound = "would empty" if dry_run else "emptied"
        click.echo(
            f"{verb_outbound} the bodies of {summary.outbound_bodies:,} outbound attendance webhooks delivered before "
            "the cutoff (the rows stay)"
        )
    if summary.kept_unhandled:
        click.echo(
            f"kept {summary.kept_unhandled:,} older events that are not handled yet (pending, failed or dead): "
            "see `receiver events list --status dead`"
        )


@click.command()
@click.option("--participant", metavar="KEY", help="The attendance key (custom participant id, else peer id).")
@click.option("--user-id", metavar="ID", help="Dyte's participant user id (userId / user_id).")
@click.option(
    "--custom-participant-id",
    metavar="ID",
    help="Your app's id of the person (customParticipantId / clientSpecificId).",
)
@click.option("--dry-run", is_flag=True, help="Count what would be erased; change and record nothing.")
@click.option("--reference", help="Your request or ticket number, stored in the audit row (never personal data).")
@click.option("--actor", help="Who asks, stored in the audit row. Default: cli:<OS user>.")
@click.option(
    "--vacuum/--no-vacuum",
    default=None,
    help="Compact the database afterwards so no freed bytes remain. Default: on for SQLite (VACUUM), "
    "off for PostgreSQL (VACUUM FULL locks the tables: ingest waits; use a maintenance window).",
)
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
@click.pass_obj
def forget(
    obj: Context,
    participant: str | None,
    user_id: str | None,
    custom_participant_id: str | None,
    dry_run: bool,
    reference: str | None,
    actor: str | None,
    vacuum: bool | None,
    fmt: str,
) -> None:
    """Erase one person (GDPR Art. 17) from attendance, reports and stored webhook bodies.

    \b
    Name the person with exactly one of --participant, --user-id or
    --custom-participant-id. Removed: their participant intervals, the
    precomputed attendance of every session they were in (recomputed from
    the others on the next report), their organizer fields on meetings,
    and every stored raw body that mentions them (dropped, or rewritten
    without them). Recorded in table erasures: a SHA-256 of the identifier,
    counts, time, actor - no personal data. Afterwards only new data (a
    join after now) brings them back: late webhooks and reconciliations of
    their past are ignored. Erase them at the provider too (Dyte keeps
    session participants, chat and recordings). docs/operations.md.
    """
    from receiver.processing.erasure import ErasureError, ErasureRequest
    from receiver.processing.erasure import forget as run_forget

    given = {
        kind: value
        for kind, value in (
            ("participant", participant),
            ("user_id", user_id),
            ("custom_participant_id", custom_participant_id),
        )
        if value is not None
    }
    if len(given) != 1:
        raise click.UsageError("name the person with exactly one of --participant, --user-id, --custom-participant-id")
    ((kind, value),) = given.items()
    try:
        request = ErasureRequest.build(kind, value, actor or f"cli:{getpass.getuser()}", reference)
        result = run_forget(obj.engine, request, dry_run=dry_run, vacuum=vacuum, origin="cli")
    except ErasureError as exc:
        fail(str(exc))
    except DBAPIError as exc:
        _database_failed(exc)
    data: dict[str, Any] = result.as_dict()
    if fmt == "json":
        click.echo(json.dumps(data, sort_keys=True))
        return
    if not result.found:
        click.echo(f"nothing stored for that {kind.replace('_', ' ')}", err=True)
    head = "dry run: would erase" if dry_run else f"erasure {result.erasure_id}: erased"
    click.echo(
        f"{head} {result.intervals_deleted} interval(s) in {result.sessions_touched} session(s), "
        f"{result.attendance_rows_deleted} precomputed attendance row(s), {result.events_dropped} raw bod(ies) "
        f"dropped, {result.events_rewritten} rewritten, {result.meetings_scrubbed} meeting organizer(s) cleared"
    )
    if not dry_run:
        click.echo(f"recorded: {kind} sha256 {result.subject_sha256}, by {result.requested_by}")
        if result.vacuumed:
            click.echo("database compacted (no freed bytes of the erased rows remain in the files)")
        elif obj.engine.dialect.name == "postgresql":
            click.echo(
                "PostgreSQL: old row versions stay in the table files until VACUUM FULL, and in WAL and backups "
                "until they expire (docs/operations.md, Erasure)"
            )
