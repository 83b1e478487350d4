"""``receiver outbound``: list the outbound attendance webhook's deliveries and send failed or dead ones again."""

from __future__ import annotations

from datetime import UTC, datetime

import click

from receiver.cli.context import Context, fail
from receiver.cli.reports import wide_option
from receiver.db.models import OUTBOUND_DEAD, OUTBOUND_FAILED, OUTBOUND_STATUSES

__all__ = ["outbound", "OUTBOUND_LIST_COLUMNS"]

#: Columns of ``receiver outbound list`` (never the body).
OUTBOUND_LIST_COLUMNS = (
    "id",
    "created_at",
    "session_id",
    "status",
    "attempts",
    "next_attempt_at",
    "last_status_code",
    "last_error",
    "webhook_id",
)


@click.group()
def outbound() -> None:
    """Outbound attendance webhook (OUTBOUND_WEBHOOK_URL): list deliveries, send failed or dead ones again."""


@outbound.command("list")
@click.option("--status", type=click.Choice(OUTBOUND_STATUSES), help="Only this state.")
@click.option("--session", "session_id", help="Only this session id.")
@click.option("--limit", default=50, show_default=True, type=click.IntRange(1, 100000))
@click.option("--format", "fmt", type=click.Choice(["table", "csv", "json"]), default="table", show_default=True)
@wide_option
@click.pass_obj
def outbound_list(obj: Context, status: str | None, session_id: str | None, limit: int, fmt: str, wide: bool) -> None:
    """List deliveries, newest first, with the counts by state after a table."""
    from receiver.processing.outbound_queue import delivery_rows, outbound_counts
    from receiver.reports.formatting import render

    rows, _ = delivery_rows(obj.engine, status=status, session_id=session_id, limit=limit)
    text = render(rows, OUTBOUND_LIST_COLUMNS, fmt, title="Outbound deliveries", wide=wide)
    if text is not None:
        click.echo(text)
    else:
        counts = ", ".join(f"{k} {v}" for k, v in outbound_counts(obj.engine).items() if v)
        click.echo(f"outbound: {counts or 'none'}")


@outbound.command("retry")
@click.argument("delivery_id", required=False, type=click.IntRange(1, 2**63 - 1))
@click.option("--dead", is_flag=True, help="Send every dead delivery again.")
@click.option("--failed", is_flag=True, help="Send every failed delivery now (skip its back-off).")
@click.pass_obj
def outbound_retry(obj: Context, delivery_id: int | None, dead: bool, failed: bool) -> None:
    """Send a failed or dead delivery (ID), or all dead/failed ones, again: same body and webhook-id, attempts reset."""
    from receiver.processing.outbound_queue import requeue_deliveries, requeue_delivery

    now = datetime.now(UTC)
    if delivery_id is None and not dead and not failed:
        raise click.UsageError("give a delivery ID, --dead or --failed")
    if delivery_id is not None:
        outcome = requeue_delivery(obj.engine, delivery_id, now=now)
        if outcome == "missing":
            fail(f"no outbound delivery {delivery_id} (`receiver outbound list` shows them)")
        if outcome != "requeued":
            state = "being sent" if outcome == "in_flight" else outcome
            fail(f"outbound delivery {delivery_id} is {state}; retry takes failed or dead deliveries")
        count = 1
    else:
        statuses = tuple(s for s, on in ((OUTBOUND_DEAD, dead), (OUTBOUND_FAILED, failed)) if on)
        count = requeue_deliveries(obj.engine, statuses, now=now)
    click.echo(f"{count} outbound deliver{'y' if count == 1 else 'ies'} requeued; a worker sends them")
