"""CLI: ``receiver subscribe`` and ``receiver subscriptions list`` (see :mod:`receiver.subscriptions.ensure`).

:func:`register` adds both to the root group. Commands read the
:class:`receiver.cli.context.Context` (``.settings``, ``.engine``); an optional
``dyte_transport`` attribute on it (an httpx transport) is handed to the Dyte
client, which is how tests point the commands at the sandbox.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import click

from receiver.settings import ALL_EVENTS

__all__ = ["subscribe", "subscriptions", "subscriptions_list", "webhook_rows"]


def _transport(obj: Any) -> Any:
    return getattr(obj, "dyte_transport", None)


@click.command()
@click.option(
    "--dry-run", is_flag=True, help="Only show what would change; write nothing (at the provider or in the database)."
)
@click.option(
    "--prune",
    is_flag=True,
    help="Also delete webhooks named SUBSCRIPTION_NAME that point elsewhere (never webhooks with another name).",
)
@click.pass_obj
def subscribe(obj: Any, dry_run: bool, prune: bool) -> None:
    """Ensure exactly one webhook points at PUBLIC_URL/webhooks/dyte (or /webhooks/realtimekit), enabled.

    At the provider chosen by PROVIDER: creates it when missing, fixes its
    events (SUBSCRIPTION_EVENTS) or enabled flag when they differ, deletes
    duplicates (keeping the oldest), and leaves a correct one untouched.
    Needs PUBLIC_URL and DYTE_ORG_ID, DYTE_API_KEY (PROVIDER=dyte) or
    REALTIMEKIT_ACCOUNT_ID, REALTIMEKIT_APP_ID, REALTIMEKIT_API_TOKEN
    (PROVIDER=realtimekit).
    """
    from sqlalchemy.exc import SQLAlchemyError

    from receiver.cli.context import fail
    from receiver.cli.errors import ExitCode, translate
    from receiver.errors import ProviderError
    from receiver.service import build_dyte_client
    from receiver.subscriptions.ensure import ensure_subscription
    from receiver.subscriptions.spec import SubscriptionError, SubscriptionSpec

    settings = obj.settings
    try:
        spec = SubscriptionSpec.from_settings(settings)
    except SubscriptionError as exc:
        fail(str(exc), ExitCode.CONFIG)
        return

    async def run():
        client = build_dyte_client(settings, transport=_transport(obj))
        assert client is not None
        async with client:
            return await ensure_subscription(
                client, spec, engine=None if dry_run else obj.engine, dry_run=dry_run, prune=prune
            )

    try:
        result = asyncio.run(run())
    except SubscriptionError as exc:
        fail(str(exc))
        return
    except (ProviderError, SQLAlchemyError) as exc:  # exit 7/8 (provider), 4-6 (database): see `receiver --help`
        raise translate(exc, settings.database_url) from exc
    for line in result.lines():
        click.echo(line)


@click.group()
def subscriptions() -> None:
    """Webhook subscriptions at the provider (Dyte or RealtimeKit, per PROVIDER)."""


def webhook_rows(hooks: list[Any], name: str, url: str | None) -> list[dict[str, Any]]:
    """One dict per webhook: id, name, url, events (list), enabled, created_at, ours (named ``name``), points_here (url equals ``url``; None when unknown)."""
    from receiver.subscriptions.spec import same_url
    from receiver.timeparse import to_iso

    rows = []
    for hook in hooks:
        rows.append(
            {
                "ours": hook.name == name,
                "points_here": same_url(hook.url, url) if url else None,
                "id": hook.id,
                "name": hook.name,
                "url": hook.url,
                "events": list(hook.events),
                "enabled": hook.enabled,
                "created_at": to_iso(hook.created_at) if hook.created_at else None,
            }
        )
    rows.sort(key=lambda r: (not r["ours"], r["created_at"] or "", r["id"]))
    return rows


def _events_cell(events: list[str]) -> str:
    if set(events) == set(ALL_EVENTS):
        return f"all ({len(ALL_EVENTS)})"
    return ", ".join(events) or "-"


@subscriptions.command("list")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)
@click.pass_obj
def subscriptions_list(obj: Any, fmt: str) -> None:
    """List the provider's webhooks (GET /webhooks): id, name, url, events, enabled; ours marked.

    "Ours" are webhooks named SUBSCRIPTION_NAME; "here" marks the one
    pointing at PUBLIC_URL/webhooks/dyte (PROVIDER=dyte) or
    PUBLIC_URL/webhooks/realtimekit (when PUBLIC_URL is set). Needs the
    provider's credentials.
    """
    from receiver.cli.context import fail
    from receiver.cli.errors import ExitCode, translate
    from receiver.errors import ProviderError
    from receiver.providers.registry import webhook_path
    from receiver.service import build_dyte_client
    from receiver.subscriptions.spec import (
        SubscriptionConfigError,
        missing_subscription_settings,
        webhook_url,
    )

    settings = obj.settings
    missing = [m for m in missing_subscription_settings(settings) if m != "PUBLIC_URL"]
    if missing:
        fail(f"set {', '.join(missing)} to list the {settings.provider_label} webhook subscriptions", ExitCode.CONFIG)
        return
    url = None
    if settings.public_url:
        try:
            url = webhook_url(settings.public_url, webhook_path(settings.provider))
        except SubscriptionConfigError as exc:
            fail(str(exc), ExitCode.CONFIG)
            return

    async def run():
        client = build_dyte_client(settings, transport=_transport(obj))
        assert client is not None
        async with client:
            return await client.list_webhooks()

    try:
        hooks = asyncio.run(run())
    except ProviderError as exc:  # exit 7 (unreachable) or 8 (refused): see `receiver --help`
        raise translate(exc) from exc
    rows = webhook_rows(hooks, settings.subscription_name, url)
    if fmt == "json":
        click.echo(json.dumps(rows, indent=2, ensure_ascii=False))
        return

    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"{settings.provider_label} webhooks (ours: named {settings.subscription_name!r})")
    for column in ("ours", "id", "name", "url", "events", "enabled"):
        table.add_column(column, overflow="fold")
    for row in rows:
        mark = (
            ("ours, here" if row["points_here"] else "ours") if row["ours"] else ("here" if row["points_here"] else "")
        )
        table.add_row(
            mark,
            row["id"],
            row["name"] or "-",
            row["url"] or "-",
            _events_cell(row["events"]),
            "yes" if row["enabled"] else "no",
            style="bold green" if row["ours"] else None,
        )
    console = Console()
    if not console.is_terminal:  # piped: do not fold ids and URLs at 80 columns
        console = Console(width=200)
    if not rows:
        click.echo("no webhooks")
        return
    console.print(table)
