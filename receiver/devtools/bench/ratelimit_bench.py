"""``receiver bench ratelimit``: does the client stay under Dyte's 2000 calls/min during a backfill?

A backfill-like load runs against the sandbox REST app in process
(``httpx.ASGITransport``, no sockets): list every session (``GET /sessions``,
all pages), then for each session ``GET /sessions/{id}`` and every page of
``GET /sessions/{id}/participants``, with ``--concurrency`` tasks sharing
one :class:`receiver.providers.dyte.client.DyteClient` and its
:class:`receiver.providers.ratelimit.RateLimiter`.

Time is **fake**: the limiter gets a :class:`FakeClock` whose ``sleep``
advances the clock instead of waiting, so an hour of limited traffic runs in
seconds. Requests take no fake time. Every request reaching the sandbox is
stamped with the fake clock; the bench prints the largest number of calls in
any 60 s window (half-open ``[t, t + 60)``) against ``--calls-per-minute``,
and exits 1 if it was exceeded.
"""

from __future__ import annotations

import asyncio
import math
import time
from dataclasses import dataclass

import httpx
from rich.console import Console
from rich.table import Table

from receiver.devtools.bench.common import machine_summary
from receiver.devtools.bench.stats import max_in_window

__all__ = ["RateLimitOptions", "FakeClock", "StampingTransport", "run_ratelimit_bench", "backfill_like"]

WINDOW_SECONDS = 60.0


@dataclass
class RateLimitOptions:
    """Options of ``receiver bench ratelimit``."""

    sessions: int = 1000
    calls_per_minute: int = 2000
    concurrency: int = 16
    per_page: int = 100


class FakeClock:
    """A monotonic fake clock (seconds); :meth:`sleep` advances it and yields to the event loop."""

    def __init__(self, start: float = 0.0) -> None:
        self.now = start
        self.slept = 0.0

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        """Advance the clock by ``seconds`` (never backwards), then let other tasks run."""
        if seconds > 0:
            self.now += seconds
            self.slept += seconds
        await asyncio.sleep(0)


class StampingTransport(httpx.AsyncBaseTransport):
    """Wraps a transport and records the fake time of every request it forwards."""

    def __init__(self, inner: httpx.AsyncBaseTransport, clock: FakeClock) -> None:
        self.inner = inner
        self.clock = clock
        self.times: list[float] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.times.append(self.clock())
        return await self.inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self.inner.aclose()


async def backfill_like(client, concurrency: int) -> tuple[int, int, int]:
    """List sessions, then fetch each session and its participants on ``concurrency`` tasks.

    Returns (sessions, participants, errors).
    """
    from receiver.providers.dyte.client import DyteAPIError

    session_ids = [s.id async for s in client.iter_sessions()]
    queue: asyncio.Queue[str] = asyncio.Queue()
    for session_id in session_ids:
        queue.put_nowait(session_id)
    participants = 0
    errors = 0

    async def runner() -> None:
        nonlocal participants, errors
        while True:
            try:
                session_id = queue.get_nowait()
            except asyncio.QueueEmpty:
                return
            try:
                await client.get_session(session_id)
                fetched = await client.list_session_participants(session_id)
                participants += len(fetched)
            except DyteAPIError:
                errors += 1

    await asyncio.gather(*(runner() for _ in range(concurrency)))
    return len(session_ids), participants, errors


def run_ratelimit_bench(opts: RateLimitOptions, console: Console) -> int:
    """Run the fake-clock backfill; print the window table; 0 if the limit held, else 1."""
    from receiver.providers.dyte.client import DyteClient
    from receiver.providers.dyte.signature import generate_private_key
    from receiver.providers.ratelimit import RateLimiter
    from receiver.retry import RetryPolicy
    from receiver.sandbox import SandboxState, build_scenario, create_sandbox_app

    console.print(f"[bold]receiver bench ratelimit[/bold] - {machine_summary()}")
    started = time.perf_counter()
    world = build_scenario(
        3, sessions=opts.sessions, participants=opts.sessions * 3, recordings=False, livestreams=False
    )
    state = SandboxState(world=world, private_key=generate_private_key())
    clock = FakeClock()
    transport = StampingTransport(httpx.ASGITransport(app=create_sandbox_app(state)), clock)
    limiter = RateLimiter(opts.calls_per_minute, clock=clock, sleep=clock.sleep, window_seconds=WINDOW_SECONDS)
    client = DyteClient(
        "http://sandbox.invalid/v2",
        state.org_id,
        state.api_key,
        transport=transport,
        per_page=opts.per_page,
        limiter=limiter,
        sleep=clock.sleep,
        retry=RetryPolicy(max_attempts=1),
    )
    console.print(
        f"sandbox world: {len(world.sessions):,} sessions, {len(world.all_peers()):,} peers (built in {time.perf_counter() - started:.1f} s)"
    )

    async def main() -> tuple[int, int, int]:
        try:
            return await backfill_like(client, opts.concurrency)
        finally:
            await client.aclose()

    wall = time.perf_counter()
    sessions, participants, errors = asyncio.run(main())
    wall = time.perf_counter() - wall
    calls = len(transport.times)
    busiest, busiest_start = max_in_window(transport.times, WINDOW_SECONDS)
    span = (max(transport.times) - min(transport.times)) if transport.times else 0.0
    # Lower bound on the span of ``calls`` admitted under the limit: full windows before the last call.
    floor_span = max(0, math.ceil(calls / opts.calls_per_minute) - 1) * WINDOW_SECONDS

    table = Table(
        title=f"Backfill of {sessions:,} sessions under the rate limiter (fake clock, {opts.concurrency} tasks)"
    )
    for column in (
        "calls",
        "limit / 60 s",
        "max in any 60 s",
        "busiest window at",
        "fake span s",
        "min possible s",
        "limiter waits s (sum)",
        "wall s",
    ):
        table.add_column(column, justify="right")
    table.add_row(
        f"{calls:,}",
        f"{opts.calls_per_minute:,}",
        f"{busiest:,}",
        "-" if busiest_start is None else f"{busiest_start:.1f}",
        f"{span:.1f}",
        f"{floor_span:.0f}",
        f"{limiter.total_wait_seconds:,.1f}",
        f"{wall:.1f}",
    )
    console.print(table)
    held = busiest <= opts.calls_per_minute
    statuses: dict[int, int] = {}  # HTTP status -> calls answered with it
    for _, _, status in state.calls:
        statuses[status] = statuses.get(status, 0) + 1
    console.print(
        f"limit {'held' if held else '[red]EXCEEDED[/red]'}: max {busiest:,} calls in a 60 s window vs {opts.calls_per_minute:,}; "
        f"{participants:,} participants fetched, {errors} API errors; sandbox answers: "
        + ", ".join(f"{s}: {n:,}" for s, n in sorted(statuses.items()))
    )
    return 0 if held else 1
