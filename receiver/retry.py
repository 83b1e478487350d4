"""Exponential backoff with jitter, shared by the Dyte client and the event worker.

Everything here is pure: no sleeping, no clock. The caller counts attempts
(1-based), asks :meth:`RetryPolicy.exhausted` whether another is allowed and
sleeps :meth:`RetryPolicy.delay_seconds` itself.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Protocol

__all__ = ["RetryPolicy"]

# 2**62 already dwarfs any sane max_seconds; capping the exponent keeps the
# arithmetic finite for absurd attempt numbers.
_MAX_EXPONENT = 62


class _Uniform(Protocol):
    def uniform(self, a: float, b: float) -> float: ...


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how long to back off between attempts of one operation.

    Attributes (all durations in seconds):
        base_seconds: delay after the first failed attempt, before jitter.
        max_seconds: cap on the un-jittered delay.
        max_attempts: total attempts allowed, the first one included
            (``max_attempts=5`` means 1 try + 4 retries).
        jitter: fraction in ``[0, 1]``; the delay is multiplied by a random
            factor in ``[1 - jitter, 1]`` ("equal jitter" when 0.5), so
            concurrent failures do not retry in lockstep.

    With the defaults, the delays after attempts 1, 2, 3, 4 are at most
    0.5, 1, 2, 4 s and at least 0.25, 0.5, 1, 2 s; attempt 5 is the last
    one (:meth:`exhausted` is true). An attempt-10 delay would be capped at
    30 s (15-30 s after jitter).

    Raises:
        ValueError: on construction, for negative durations, ``max_seconds``
            below ``base_seconds``, ``max_attempts < 1`` or ``jitter``
            outside ``[0, 1]``.
    """

    base_seconds: float = 0.5
    max_seconds: float = 30.0
    max_attempts: int = 5
    jitter: float = 0.5

    def __post_init__(self) -> None:
        if self.base_seconds < 0 or self.max_seconds < 0:
            raise ValueError("base_seconds and max_seconds must be >= 0")
        if self.max_seconds < self.base_seconds:
            raise ValueError("max_seconds must be >= base_seconds")
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be >= 1")
        if not 0.0 <= self.jitter <= 1.0:
            raise ValueError("jitter must be within [0, 1]")

    def raw_delay_seconds(self, attempt: int) -> float:
        """Un-jittered delay after failed attempt ``attempt`` (1-based): ``min(max, base * 2**(attempt-1))``."""
        exponent = min(max(attempt, 1) - 1, _MAX_EXPONENT)
        return min(self.max_seconds, self.base_seconds * (2.0**exponent))

    def delay_seconds(self, attempt: int, rng: _Uniform = random) -> float:  # type: ignore[assignment]
        """Seconds to wait after failed attempt ``attempt`` (1-based) before the next one.

        ``raw_delay_seconds(attempt)`` times a factor drawn from
        ``rng.uniform(1 - jitter, 1)``; ``rng`` is the :mod:`random` module
        by default, or any object with ``uniform`` (e.g. ``random.Random(0)``)
        for reproducible schedules. Attempts below 1 are treated as 1.
        """
        raw = self.raw_delay_seconds(attempt)
        if self.jitter == 0.0 or raw == 0.0:
            return raw
        factor = rng.uniform(1.0 - self.jitter, 1.0)
        return raw * min(1.0, max(1.0 - self.jitter, factor))

    def exhausted(self, attempt: int) -> bool:
        """True when ``attempt`` (1-based, just failed) was the last one allowed."""
        return attempt >= self.max_attempts
