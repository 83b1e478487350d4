"""Pure numeric helpers of the benches: percentiles, latency summaries, sliding-window counts.

Everything here is pure (no I/O, no clock) so it is unit-tested directly.
Times are seconds unless a name says ``_ms``.
"""

from __future__ import annotations

import math
from bisect import bisect_left
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

__all__ = ["percentile", "LatencySummary", "summarize_latencies", "max_in_window", "rate"]


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0 <= q <= 100) of already **sorted** values, nearest-rank method.

    Nearest rank: the smallest value such that at least ``q`` % of the values
    are <= it (``q = 0`` gives the minimum). NaN for an empty sequence.

    >>> percentile([1, 2, 3, 4], 50)
    2
    >>> percentile([1, 2, 3, 4], 99)
    4
    """
    if not 0 <= q <= 100:
        raise ValueError("q must be within [0, 100]")
    n = len(sorted_values)
    if n == 0:
        return math.nan
    rank = max(1, math.ceil(round(q * n / 100.0, 9)))  # round: 99.9 * 1000 / 100 is 999.0000000000001
    return sorted_values[min(rank, n) - 1]


@dataclass(frozen=True)
class LatencySummary:
    """Latency percentiles in milliseconds over ``count`` samples."""

    count: int
    p50_ms: float
    p90_ms: float
    p99_ms: float
    p999_ms: float
    max_ms: float
    mean_ms: float


def summarize_latencies(seconds: Iterable[float]) -> LatencySummary:
    """p50/p90/p99/p99.9/max/mean of latencies given in **seconds**, returned in milliseconds."""
    values = sorted(seconds)
    if not values:
        nan = math.nan
        return LatencySummary(0, nan, nan, nan, nan, nan, nan)
    ms = 1000.0
    return LatencySummary(
        count=len(values),
        p50_ms=percentile(values, 50) * ms,
        p90_ms=percentile(values, 90) * ms,
        p99_ms=percentile(values, 99) * ms,
        p999_ms=percentile(values, 99.9) * ms,
        max_ms=values[-1] * ms,
        mean_ms=sum(values) / len(values) * ms,
    )


def max_in_window(times: Iterable[float], window: float) -> tuple[int, float | None]:
    """Largest number of events inside any half-open window ``[t, t + window)``.

    Returns ``(count, start)`` where ``start`` is the time of the first
    event of a busiest window (None when there are no events). Half-open
    matches :class:`receiver.providers.ratelimit.RateLimiter`, which frees a slot at
    exactly ``admitted + window``. O(n log n).

    >>> max_in_window([0, 10, 59.9, 60, 61], 60)
    (4, 10.0)
    """
    ordered = sorted(float(t) for t in times)
    if not ordered:
        return 0, None
    best, best_start = 0, ordered[0]
    for i, start in enumerate(ordered):
        # Events in [start, start + window): those before the first >= start + window.
        count = bisect_left(ordered, start + window, lo=i) - i
        if count > best:
            best, best_start = count, start
    return best, best_start


def rate(count: int, seconds: float) -> float:
    """``count / seconds``, 0.0 for a non-positive duration."""
    return count / seconds if seconds > 0 else 0.0
