"""Backfill: reconcile every session Dyte knows in a time window (``receiver backfill``).

Walks ``GET /sessions`` (all pages, ``start_time``/``end_time`` filters) and
runs the same session reconciliation as the worker for each, so running it
twice changes nothing. Calls go through the client's rate limiter.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import httpx
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
)
from sqlalchemy.engine import Engine

from receiver.processing.reconcile import Reconciler
from receiver.processing.worker import default_worker_id
from receiver.providers.dyte.client import DyteAPIError
from receiver.providers.registry import build_client as build_dyte_client
from receiver.settings import Settings

__all__ = ["BackfillSummary", "run_backfill"]


@dataclass
class BackfillSummary:
    """Counts of one backfill run."""

    sessions: int = 0
    reconciled: int = 0
    still_live: int = 0
    failed: int = 0
    added: int = 0
    changed: int = 0


async def run_backfill(
    settings: Settings,
    engine: Engine,
    since: datetime,
    until: datetime,
    *,
    console: Console | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
) -> BackfillSummary:
    """Reconcile every session started in ``[since, until)`` (UTC); returns the counts.

    Raises:
        ValueError: credentials are missing.
    """
    client = build_dyte_client(settings, transport=transport)
    if client is None:
        raise ValueError("backfill needs DYTE_ORG_ID and DYTE_API_KEY")
    summary = BackfillSummary()
    reconciler = Reconciler(
        engine, client, worker_id=default_worker_id(), stale_session_seconds=settings.stale_session_seconds
    )
    progress = Progress(
        TextColumn("[bold]backfill"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console or Console(stderr=True),
        transient=False,
    )
    async with client:
        session_ids = [s.id async for s in client.iter_sessions(start_time=since, end_time=until)]
        summary.sessions = len(session_ids)
        with progress:
            task = progress.add_task("sessions", total=len(session_ids))
            for session_id in session_ids:
                try:
                    final, added, changed = await reconciler.reconcile_session_counts(session_id)
                except DyteAPIError as exc:
                    summary.failed += 1
                    progress.console.print(f"[red]session {session_id}: {type(exc).__name__}: {exc}")
                else:
                    if final:
                        summary.reconciled += 1
                        summary.added += added
                        summary.changed += changed
                    else:
                        summary.still_live += 1
                progress.advance(task)
    return summary
