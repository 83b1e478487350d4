"""Client-side rate limiting for the Dyte REST API (2000 calls per minute per IP).

:class:`RateLimiter` keeps a sliding-window log of the monotonic times of the
calls it admitted during the last ``window_seconds`` (60 s): a call is
admitted only while fewer than ``calls_per_minute`` calls fall inside the
window ending now, so **any** 60-second window holds at most
``calls_per_minute`` calls (bursts up to the whole budget are allowed, never
more). Memory is ``O(calls_per_minute)``.

One limiter is meant to be shared by every task (and every client) of one
process that talks to the same API, since Dyte counts per IP. It is safe for
many concurrent asyncio tasks in one event loop; it is not thread-safe and
does not coordinate across processes.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Awaitable, Callable

__all__ = ["RateLimiter"]


class RateLimiter:
    """Sliding-window limiter: at most ``calls_per_minute`` calls in any ``window_seconds``.

    Args:
        calls_per_minute: budget per window (Dyte: 2000), >= 1.
        clock: monotonic clock in seconds (``time.monotonic``); inject a fake
            in tests.
        sleep: coroutine function sleeping the given seconds
            (``asyncio.sleep``); a fake one should advance the fake clock.
        window_seconds: window length, 60 s by default.

    Attributes:
        total_calls: calls admitted so far.
        total_wait_seconds: sum over calls of the seconds each caller waited
            in :meth:`acquire` (concurrent waits are each counted).

    Raises:
        ValueError: ``calls_per_minute < 1`` or ``window_seconds <= 0``.
    """

    def __init__(
        self,
        calls_per_minute: int,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
        *,
        window_seconds: float = 60.0,
    ) -> None:
        if int(calls_per_minute) < 1:
            raise ValueError("calls_per_minute must be >= 1")
        if window_seconds <= 0:
            raise ValueError("window_seconds must be > 0")
        self.calls_per_minute = int(calls_per_minute)
        self.window_seconds = float(window_seconds)
        self._clock = clock
        self._sleep = sleep
        self._admitted: deque[float] = deque()
        # FIFO lock: waiters are admitted in arrival order, and only the head
        # of the queue sleeps on the window; the others wait on the lock.
        self._lock = asyncio.Lock()
        self.total_calls = 0
        self.total_wait_seconds = 0.0

    def _expire(self, now: float) -> None:
        # Same expression as the wait computed in acquire(), so float
        # rounding can never admit a call early or spin with a zero wait.
        window = self.window_seconds
        admitted = self._admitted
        while admitted and admitted[0] + window <= now:
            admitted.popleft()

    def in_window(self) -> int:
        """Number of calls admitted within the window ending now."""
        self._expire(self._clock())
        return len(self._admitted)

    async def acquire(self) -> float:
        """Wait until one more call fits in the window, record it, and return the seconds waited.

        The wait includes time spent queued behind other tasks. Cancelling a
        waiting task admits nothing and releases its place.
        """
        start = self._clock()
        async with self._lock:
            while True:
                now = self._clock()
                self._expire(now)
                if len(self._admitted) < self.calls_per_minute:
                    self._admitted.append(now)
                    break
                await self._sleep((self._admitted[0] + self.window_seconds) - now)
        waited = max(0.0, now - start)
        self.total_calls += 1
        self.total_wait_seconds += waited
        return waited
