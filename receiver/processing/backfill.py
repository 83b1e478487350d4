"""Backfill: reconcile every session the provider knows in a time window (``receiver backfill``).

Walks ``GET /sessions`` (``start_time``/``end_time`` filters, every page,
driven by the server's totals) and reconciles each session as it arrives:
its participants (the same reconciliation as the worker's ``session``
task) and its recordings and livestreams (``session_media``). Calls go
through the client's rate limiter and retries.

Surviving failures:

* a session that fails is counted and reported in one line; the walk goes on;
* a listing page that still fails after the client's retries is retried
  ``page_retries`` more times with back-off (``retry_base_seconds``, then 3x
  longer each time), by walking the listing again and skipping what this
  run already did; then :class:`BackfillError` stops the run with a
  one-line message. Everything reconciled so far is committed;
* a rerun resumes: sessions already reconciled (participants and media)
  are skipped without being fetched again, unless ``recheck``. So running
  it twice changes nothing and costs only the listing calls.

Progress (pages, sessions) goes to ``console`` (stderr by default).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import httpx
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from sqlalchemy import select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session as OrmSession

from receiver.db.engine import writer
from receiver.db.models import Session
from receiver.errors import ReceiverError
from receiver.processing.queue import error_line
from receiver.processing.reconcile import Reconciler
from receiver.processing.worker import default_worker_id
from receiver.processing.writes import schedule_task
from receiver.providers.base import ProviderClient
from receiver.providers.errors import (
    ProviderAPIError,
    ProviderAuthError,
    ProviderRateLimited,
    ProviderStatusError,
)
from receiver.providers.registry import build_client
from receiver.settings import Settings

__all__ = ["BackfillSummary", "BackfillError", "run_backfill", "PAGE_RETRY_BASE_SECONDS"]

#: Wait before the first re-walk after a listing page failed, seconds (then 3x longer each time).
PAGE_RETRY_BASE_SECONDS = 10.0


class BackfillError(ReceiverError):
    """The session listing failed after every retry; the message is one line and says how to resume.

    ``summary`` holds the counts of what was done before the failure (all of it is kept).
    """

    def __init__(self, message: str, summary: BackfillSummary) -> None:
        super().__init__(message)
        self.summary = summary


@dataclass
class BackfillSummary:
    """Counts of one backfill run.

    ``sessions``: distinct sessions listed; ``pages``: listing pages read
    (the furthest walk); ``reconciled``: sessions reconciled now;
    ``skipped``: already reconciled by an earlier run (not fetched);
    ``still_live``: the API reports them live (the worker re-checks them);
    ``failed``: sessions whose reconciliation failed; ``media_failed``:
    sessions whose recordings/livestreams listing failed (left to the
    worker as a ``session_media`` task); ``added`` / ``changed``: intervals.
    """

    sessions: int = 0
    pages: int = 0
    reconciled: int = 0
    skipped: int = 0
    still_live: int = 0
    failed: int = 0
    media_failed: int = 0
    added: int = 0
    changed: int = 0

    def line(self) -> str:
        """The counts as one human line."""
        return (
            f"{self.sessions} sessions on {self.pages} pages: {self.reconciled} reconciled, "
            f"{self.skipped} already done, {self.still_live} still live, {self.failed} failed"
            + (f", media of {self.media_failed} left to the worker" if self.media_failed else "")
            + f"; intervals added {self.added}, changed {self.changed}"
        )


def _already_done(engine: Engine, session_id: str) -> bool:
    """True when an earlier run (or the worker) reconciled the session's participants and media."""
    with OrmSession(engine) as db:
        row = db.execute(
            select(Session.reconciled_at, Session.media_reconciled_at, Session.status).where(
                Session.session_id == session_id
            )
        ).first()
    return row is not None and row[0] is not None and row[1] is not None and row[2] == "ended"


async def run_backfill(
    settings: Settings,
    engine: Engine,
    since: datetime,
    until: datetime,
    *,
    console: Console | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
    recheck: bool = False,
    page_retries: int = 2,
    retry_base_seconds: float | None = None,
    sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
    client: ProviderClient | None = None,
) -> BackfillSummary:
    """Reconcile every session started in ``[since, until)`` (UTC); returns the counts.

    Args:
        recheck: reconcile sessions an earlier run already did, too.
        page_retries: extra walks after a listing page failed (after the
            client's own retries); delays ``retry_base_seconds`` * 3**n
            (default :data:`PAGE_RETRY_BASE_SECONDS`).
        sleep: the coroutine that waits between walks (tests pass a fake).
        client: the REST client to use instead of the configured one
            (closed when done); ``transport`` then does nothing.

    Raises:
        ValueError: credentials are missing.
        BackfillError: the listing failed after every retry (one-line
            message; ``summary`` has the counts; what was done is kept).
    """
    client = client or build_client(settings, transport=transport)
    if client is None:
        raise ValueError("backfill needs DYTE_ORG_ID and DYTE_API_KEY")
    base_delay = PAGE_RETRY_BASE_SECONDS if retry_base_seconds is None else retry_base_seconds
    summary = BackfillSummary()
    reconciler = Reconciler(
        engine, client, worker_id=default_worker_id(), stale_session_seconds=settings.stale_session_seconds
    )
    progress = Progress(
        TextColumn("[bold]backfill[/] {task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("sessions"),
        TimeElapsedColumn(),
        console=console or Console(stderr=True),
        transient=False,
        disable=console is None,  # no console given (a pipe): no bar, only the re-walk notices and the summary
    )
    seen: set[str] = set()
    async with client:
        with progress:
            bar = progress.add_task("page 0", total=None)

            def on_page(page_no: int, so_far: int, total: int | None) -> None:
                summary.pages = max(summary.pages, page_no)
                progress.update(bar, description=f"page {page_no}", total=total)

            for walk in range(page_retries + 1):
                try:
                    async for api_session in client.iter_sessions(start_time=since, end_time=until, on_page=on_page):
                        if api_session.id in seen:
                            continue
                        seen.add(api_session.id)
                        summary.sessions += 1
                        await _backfill_one(reconciler, engine, api_session.id, recheck, summary, progress)
                        progress.advance(bar)
                    break
                except ProviderAPIError as exc:
                    if _permanent(exc):
                        raise  # refused credentials or a bad request: walking again cannot help
                    if walk == page_retries:
                        raise BackfillError(
                            f"GET /sessions failed after {walk + 1} walks ({error_line(exc)}); "
                            f"kept {summary.reconciled} reconciled of {summary.sessions} sessions; "
                            "run the same command again to resume",
                            summary,
                        ) from exc  # the cause picks the CLI's exit code (7 unreachable, 8 refused)
                    delay = base_delay * 3**walk
                    progress.console.print(
                        f"[yellow]session listing failed ({error_line(exc)}); walking it again in {delay:.0f} s"
                    )
                    await sleep(delay)
    return summary


async def _backfill_one(
    reconciler: Reconciler, engine: Engine, session_id: str, recheck: bool, summary: BackfillSummary, progress: Progress
) -> None:
    """Reconcile one listed session (participants, then media) and count the outcome; never raises API errors."""
    if not recheck and _already_done(engine, session_id):
        summary.skipped += 1
        return
    try:
        final, added, changed = await reconciler.reconcile_session_counts(session_id, schedule_media=False)
    except (ProviderAPIError, ValueError) as exc:
        summary.failed += 1
        progress.console.print(f"[red]session {session_id}: {error_line(exc)}")
        return
    if not final:
        summary.still_live += 1
        return
    summary.reconciled += 1
    summary.added += added
    summary.changed += changed
    try:
        await reconciler.reconcile_session_media(session_id)
    except (ProviderAPIError, ValueError) as exc:
        summary.media_failed += 1
        progress.console.print(
            f"[yellow]session {session_id} recordings/livestreams: {error_line(exc)} (left to the worker)"
        )
        now = datetime.now(UTC)
        with OrmSession(writer(engine)) as db, db.begin():
            schedule_task(db, "session_media", session_id, now, now)


def _permanent(exc: ProviderAPIError) -> bool:
    """True for a refusal no retry fixes: 401/403, or another 4xx than 429 (the listing stops at once)."""
    if isinstance(exc, ProviderAuthError):
        return True
    return isinstance(exc, ProviderStatusError) and not isinstance(exc, ProviderRateLimited) and exc.status_code < 500
