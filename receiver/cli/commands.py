"""CLI commands beyond the core ones in :mod:`receiver.cli.main`: events, backfill, demo, sandbox.

``register_commands(cli)`` attaches them (and the subscription and bench
commands when those modules are present) to the root group.
"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from sqlalchemy import select
from sqlalchemy.orm import Session as OrmSession

from receiver.cli.context import UTC_TIME, Context, check_window, fail
from receiver.cli.errors import ExitCode, translate
from receiver.cli.progress import Progress
from receiver.cli.reports import wide_option
from receiver.db.models import EVENT_DEAD, EVENT_FAILED, EVENT_STATUSES, WebhookEvent

__all__ = ["events", "reconcile", "backfill", "demo"]

EVENT_LIST_COLUMNS = (
    "id",
    "delivery_id",
    "event_name",
    "status",
    "parse_status",
    "attempts",
    "received_at",
    "session_id",
    "last_error",
)


def _event_summary(row: WebhookEvent) -> dict[str, Any]:
    return {
        "id": row.id,
        "delivery_id": row.delivery_id,
        "webhook_id": row.webhook_id,
        "event_name": row.event_name,
        "status": row.status,
        "parse_status": row.parse_status,
        "parse_error": row.parse_error,
        "attempts": row.attempts,
        "received_at": row.received_at,
        "processed_at": row.processed_at,
        "next_attempt_at": row.next_attempt_at,
        "meeting_id": row.meeting_id,
        "session_id": row.session_id,
        "duplicate_count": row.duplicate_count,
        "conflict_count": row.conflict_count,
        "signature_scheme": row.signature_scheme,
        "last_error": (row.last_error or "").splitlines()[0][:120] if row.last_error else None,
    }


@click.group()
def events() -> None:
    """Inspect and requeue stored webhook events (the inbox)."""


@events.command("list")
@click.option("--status", type=click.Choice(EVENT_STATUSES), multiple=True, help="Only these statuses (repeatable).")
@click.option("--event", "event_name", help="Only this event name, e.g. meeting.participantJoined.")
@click.option("--limit", default=50, show_default=True, type=click.IntRange(1, 100000))
@click.option("--format", "fmt", type=click.Choice(["table", "csv", "json"]), default="table", show_default=True)
@wide_option
@click.pass_obj
def events_list(
    obj: Context, status: tuple[str, ...], event_name: str | None, limit: int, fmt: str, wide: bool
) -> None:
    """List stored events, newest first (the queue's counts after a table)."""
    from receiver.processing.queue import queue_stats
    from receiver.reports.formatting import render

    query = select(WebhookEvent).order_by(WebhookEvent.id.desc()).limit(limit)
    if status:
        query = query.where(WebhookEvent.status.in_(status))
    if event_name:
        query = query.where(WebhookEvent.event_name == event_name)
    with OrmSession(obj.engine) as db:
        rows = [_event_summary(r) for r in db.execute(query).scalars()]
    text = render(rows, EVENT_LIST_COLUMNS, fmt, title="Stored events", wide=wide)
    if text is not None:
        click.echo(text)
    else:
        stats = queue_stats(obj.engine)
        counts = ", ".join(f"{k} {v}" for k, v in stats.by_status.items() if v)
        click.echo(f"queue: {counts or 'empty'}")


def _load_event(obj: Context, event_id: str) -> WebhookEvent:
    with OrmSession(obj.engine, expire_on_commit=False) as db:
        by_id = event_id.isdigit() and int(event_id) < 2**63  # larger numbers are no row id (PostgreSQL BIGINT)
        condition = WebhookEvent.id == int(event_id) if by_id else WebhookEvent.delivery_id == event_id
        row = db.execute(select(WebhookEvent).where(condition)).scalar_one_or_none()
    if row is None:
        fail(f"no stored event with id or delivery id {event_id!r} (`receiver events list` shows them)")
    return row  # type: ignore[return-value]


@events.command("show")
@click.argument("event_id")
@click.pass_obj
def events_show(obj: Context, event_id: str) -> None:
    """Show one event (by id or dyte-uuid): state, errors and the payload (secrets redacted)."""
    from receiver.redaction import redact_value
    from receiver.reports.formatting import cell

    row = _load_event(obj, event_id)
    summary = {k: cell(v) for k, v in _event_summary(row).items()}
    summary["last_error"] = row.last_error
    try:
        payload: Any = redact_value(json.loads(row.raw_body))
    except (ValueError, RecursionError):
        payload = f"<{len(row.raw_body)} bytes, not JSON>"
    if not row.raw_body and (row.purged_at or row.erased_at):
        why = f"purged at {cell(row.purged_at)} (RAW_RETENTION_DAYS)" if row.purged_at else "erased (receiver forget)"
        payload = f"<raw body removed: {why}>"
    click.echo(json.dumps({"event": summary, "payload": payload}, indent=2, ensure_ascii=False))


@events.command("retry")
@click.argument("event_id", required=False)
@click.option("--dead", is_flag=True, help="Requeue every dead event.")
@click.option("--failed", is_flag=True, help="Requeue every failed event now (skip its backoff).")
@click.pass_obj
def events_retry(obj: Context, event_id: str | None, dead: bool, failed: bool) -> None:
    """Requeue a failed or dead event (ID), or all dead/failed ones, with a fresh attempt count."""
    from receiver.processing.queue import requeue_events

    if not event_id and not dead and not failed:
        raise click.UsageError("give an event ID, --dead or --failed")
    if event_id:
        row = _load_event(obj, event_id)
        if row.status not in (EVENT_DEAD, EVENT_FAILED):
            fail(
                f"event {row.id} is {row.status}; retry takes failed or dead events (use `events replay` for done ones)"
            )
        count = requeue_events(obj.engine, event_ids=[row.id])
    else:
        statuses = tuple(s for s, on in ((EVENT_DEAD, dead), (EVENT_FAILED, failed)) if on)
        with Progress(f"requeueing {' and '.join(statuses)} events"):
            count = requeue_events(obj.engine, statuses=statuses)
    click.echo(f"{count} event(s) requeued")


@events.command("replay")
@click.argument("event_id")
@click.pass_obj
def events_replay(obj: Context, event_id: str) -> None:
    """Process a done event again (idempotent: applying it twice changes nothing)."""
    from receiver.processing.queue import requeue_events

    row = _load_event(obj, event_id)
    if row.status == "ignored":
        fail(f"event {row.id} was never processable ({row.parse_status}: {row.parse_error})")
    if not row.raw_body:
        fail(
            f"event {row.id}'s raw body was removed (retention purge or erasure): nothing to replay; "
            "`receiver backfill` rebuilds a session from the provider"
        )
    count = requeue_events(obj.engine, event_ids=[row.id])
    click.echo(f"{count} event(s) queued for replay; the worker will apply it again")


@click.group()
def reconcile() -> None:
    """Inspect and requeue reconciliation tasks (REST API fetches for sessions, recordings, livestreams, meetings)."""


@reconcile.command("list")
@click.option("--status", type=click.Choice(["pending", "done", "dead"]), multiple=True, help="Only these statuses.")
@click.option(
    "--kind",
    type=click.Choice(["session", "session_media", "recording", "livestream", "meeting"]),
    help="Only this kind.",
)
@click.option("--limit", default=50, show_default=True, type=click.IntRange(1, 100000))
@click.option("--format", "fmt", type=click.Choice(["table", "csv", "json"]), default="table", show_default=True)
@wide_option
@click.pass_obj
def reconcile_list(obj: Context, status: tuple[str, ...], kind: str | None, limit: int, fmt: str, wide: bool) -> None:
    """List reconciliation tasks, most recently updated first."""
    from receiver.db.models import ReconcileTask
    from receiver.reports.formatting import render

    columns = ("id", "kind", "object_id", "status", "attempts", "due_at", "done_at", "last_error")
    query = select(ReconcileTask).order_by(ReconcileTask.updated_at.desc()).limit(limit)
    if status:
        query = query.where(ReconcileTask.status.in_(status))
    if kind:
        query = query.where(ReconcileTask.kind == kind)
    with OrmSession(obj.engine) as db:
        rows = [{c: getattr(t, c) for c in columns} for t in db.execute(query).scalars()]
    for row in rows:
        row["last_error"] = (row["last_error"] or "")[:120] or None
    text = render(rows, columns, fmt, title="Reconciliation tasks", wide=wide)
    if text is not None:
        click.echo(text)


@reconcile.command("retry")
@click.option("--dead", is_flag=True, required=True, help="Requeue every dead task now.")
@click.pass_obj
def reconcile_retry(obj: Context, dead: bool) -> None:
    """Requeue dead reconciliation tasks (after fixing credentials or a Dyte outage)."""
    from sqlalchemy import update

    from receiver.db.models import TASK_DEAD, TASK_PENDING, ReconcileTask

    now = datetime.now(UTC)
    with Progress("requeueing dead tasks"), obj.engine.begin() as connection:
        count = connection.execute(
            update(ReconcileTask)
            .where(ReconcileTask.status == TASK_DEAD)
            .values(status=TASK_PENDING, attempts=0, due_at=now, locked_by=None, locked_until=None, updated_at=now)
        ).rowcount
    click.echo(f"{count} task(s) requeued")


@click.command()
@click.option(
    "--since", required=True, type=UTC_TIME, help="UTC date or ISO 8601 time: sessions started at or after it."
)
@click.option("--until", type=UTC_TIME, help="UTC date or ISO 8601 time: sessions started before it (default: now).")
@click.option(
    "--recheck",
    is_flag=True,
    help="Reconcile sessions an earlier run already reconciled, too (default: skip them, so a rerun resumes).",
)
@click.pass_obj
def backfill(obj: Context, since: datetime, until: datetime | None, recheck: bool) -> None:
    """Walk the provider's GET /sessions (all pages) in a time window and reconcile each session. Idempotent.

    Each session's participants, recordings and livestreams are merged as
    the worker's reconciliation does. A failing listing page is retried
    with back-off; if it keeps failing the command stops with a one-line
    error and exit code 1, keeping everything done so far: run it again to
    resume (sessions already reconciled are skipped). A progress bar on a
    terminal; exit 1 also when a session failed, 3 when the provider's
    credentials are not set, 7/8 when the provider's API cannot be reached
    or refuses.
    """
    from receiver.processing.backfill import BackfillError, run_backfill

    settings = obj.settings
    settings.require_api_credentials("receiver backfill")  # ConfigurationError: exit 3, names what is missing
    start, end = since, until or datetime.now(UTC)
    check_window(start, end)
    engine = obj.engine
    console = Console(stderr=True)
    window = f"backfill {start:%Y-%m-%d %H:%M} .. {end:%Y-%m-%d %H:%M} UTC"
    try:
        summary = asyncio.run(
            run_backfill(
                settings,
                engine,
                start,
                end,
                console=console if console.is_terminal else None,
                transport=obj.dyte_transport,
                recheck=recheck,
            )
        )
    except BackfillError as exc:
        # One line that says what was kept; the exit code of the provider failure behind it.
        cause = exc.__cause__
        fail(str(exc), translate(cause).exit_code if cause is not None else ExitCode.FAILED)
    click.echo(f"{window}: {summary.line()}")
    if summary.failed:
        raise SystemExit(1)


@click.command()
@click.option(
    "--database-url",
    "demo_db",
    default="sqlite:///receiver-demo.db",
    show_default=True,
    help="Where the demo writes (recreated when it is the default SQLite file).",
)
@click.option(
    "--drop", default=0.15, show_default=True, type=click.FloatRange(0, 1), help="Share of webhooks the sandbox drops."
)
@click.option("--duplicate", default=0.3, show_default=True, type=click.FloatRange(0, 1), help="Share delivered twice.")
@click.option(
    "--reorder", default=0.3, show_default=True, type=click.FloatRange(0, 1), help="Share delivered late, out of order."
)
@click.option("--seed", default=7, show_default=True, type=int)
@click.option(
    "--provider",
    type=click.Choice(["dyte", "realtimekit"], case_sensitive=False),
    default="dyte",
    show_default=True,
    help="Platform the sandbox plays: dyte, or realtimekit (rtk-* webhooks to /webhooks/realtimekit, "
    "Cloudflare REST paths with a Bearer token).",
)
@click.option(
    "--serve",
    is_flag=True,
    help="Then serve the demo's pages on 127.0.0.1 (prints the URL and a token to log in with) until Ctrl-C.",
)
@click.option(
    "--port", default=8000, show_default=True, type=click.IntRange(0, 65535), help="Port of --serve (0: any)."
)
def demo(
    demo_db: str, drop: float, duplicate: float, reorder: float, seed: int, provider: str, serve: bool, port: int
) -> None:
    """Play a scripted meeting through the whole service and print what it built.

    A local sandbox of the provider (REST API + signing key) posts a scripted
    meeting's webhooks as signed HTTP requests to the receiver, dropping,
    duplicating and reordering some (the second session's meeting.ended is
    always lost); the worker stores, processes and reconciles them with the
    sandbox's REST API; the attendance report and recording index are
    printed and checked against the sandbox's ground truth. With --serve the
    pages of the result stay served until Ctrl-C.
    """
    from receiver.cli.context import invocation
    from receiver.sandbox.demo import run_demo, serve_demo

    if demo_db == "sqlite:///receiver-demo.db":
        for suffix in ("", "-wal", "-shm"):
            Path(f"receiver-demo.db{suffix}").unlink(missing_ok=True)
    console = Console()
    if not console.is_terminal:
        console = Console(width=100)
    ok = run_demo(
        demo_db,
        drop=drop,
        duplicate=duplicate,
        reorder=reorder,
        seed=seed,
        console=console,
        command=invocation(),
        serving=serve,
        provider=provider.lower(),
    )
    if not ok:
        raise SystemExit(1)
    if serve:
        try:
            serve_demo(demo_db, console=console, port=port)
        except OSError as exc:
            fail(
                f"cannot serve the pages on 127.0.0.1:{port} ({exc.strerror or exc}): pass --port N (0: any free port)"
            )
