"""Geometry of the session page's timeline and concurrency curve: pure functions, tested without a server.

:func:`timeline_bounds` picks the time axis, :func:`timeline_layout` the bars
(one row per person, one bar per peer interval), :func:`concurrency_curve` the
step curve of concurrent peers, :func:`time_ticks` the axis labels. Units: px
for geometry, aware UTC datetimes for time.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from receiver.reports.attendance import Interval

__all__ = [
    "CHART_WIDTH",
    "ROW_HEIGHT",
    "CURVE_HEIGHT",
    "MIN_BAR_WIDTH",
    "TimelineBar",
    "TimelineRow",
    "ConcurrencyCurve",
    "Tick",
    "timeline_bounds",
    "timeline_layout",
    "concurrency_curve",
    "time_ticks",
]

#: Width of the time axis of the timeline and the curve, px.
CHART_WIDTH = 720
#: Height of one timeline row, px.
ROW_HEIGHT = 22
#: Height of the concurrency plot, px.
CURVE_HEIGHT = 120
#: Narrowest drawn bar, px (so an instant join/leave stays visible).
MIN_BAR_WIDTH = 1.0


@dataclass(frozen=True)
class TimelineBar:
    """One peer interval drawn on the timeline; ``x`` and ``width`` in px from the axis origin."""

    peer_id: str
    start: datetime
    end: datetime
    x: float
    width: float
    open_end: bool  # no leave seen: closed at the session end (or at "now" for a live session)
    overlaps: bool  # overlaps another interval of the same person (second device): drawn semi-transparent


@dataclass(frozen=True)
class TimelineRow:
    """One person (participant key) and their bars, in join order."""

    participant_key: str
    label: str
    bars: tuple[TimelineBar, ...]


@dataclass(frozen=True)
class ConcurrencyCurve:
    """Concurrent peers over time: the step ``points`` (px, y down) and the ``peak`` count."""

    points: tuple[tuple[float, float], ...]
    peak: int
    steps: tuple[tuple[datetime, int], ...]  # (time, peers connected from then on)

    @property
    def svg_points(self) -> str:
        """The points as an SVG ``points`` attribute (``"x,y x,y ..."``, px)."""
        return " ".join(f"{x:.2f},{y:.2f}" for x, y in self.points)


@dataclass(frozen=True)
class Tick:
    """An axis tick at ``x`` px with its UTC ``label``."""

    x: float
    label: str


def timeline_bounds(
    session_start: datetime | None, session_end: datetime | None, intervals: Sequence[Interval], as_of: datetime
) -> tuple[datetime, datetime]:
    """The time axis ``(start, end)`` (UTC) of a session.

    Start: the session start, else the first join, else ``as_of``. End: the
    session end; for a live session ``as_of``, or the last known join/leave
    when later; never before the start.
    """
    joins = [i.joined_at for i in intervals if i.joined_at is not None]
    leaves = [i.left_at for i in intervals if i.left_at is not None]
    start = session_start or (min(joins) if joins else as_of)
    if session_end is not None:
        end = session_end
    else:
        end = max([as_of, *joins, *leaves]) if session_start is not None or joins else as_of
    return start, max(start, end)


def _scale(start: datetime, end: datetime, width: float) -> Callable[[datetime], float]:
    span = (end - start).total_seconds()

    def x_of(moment: datetime) -> float:
        if span <= 0:
            return 0.0
        offset = (moment - start).total_seconds()
        return min(max(offset / span, 0.0), 1.0) * width

    return x_of


def _clip(interval: Interval, start: datetime, end: datetime) -> tuple[datetime, datetime, bool] | None:
    """The interval as drawn: clipped to the axis, a missing leave closed at ``end``."""
    if interval.joined_at is None:
        return None
    left = interval.left_at
    open_end = interval.closed_at_session_end or left is None
    if left is None:
        left = end
    lo = min(max(interval.joined_at, start), end)
    hi = min(max(left, lo), end)
    return lo, hi, open_end


def timeline_layout(
    session_start: datetime, session_end: datetime, intervals: Sequence[Interval], width: float
) -> list[TimelineRow]:
    """Rows of bars for a timeline ``width`` px wide spanning ``[session_start, session_end]`` (UTC).

    One row per person (``participant_key``), ordered by first join then key;
    one bar per interval (peer), clipped to the axis, at least
    ``MIN_BAR_WIDTH`` px wide. A missing leave is drawn up to the axis end and
    flagged ``open_end``. A bar that overlaps another bar of the same person
    (two devices at once) is flagged ``overlaps``. Intervals without a join
    time are left out. Rejoins show as several bars with gaps between them.
    """
    x_of = _scale(session_start, session_end, width)
    people: dict[str, list[tuple[Interval, datetime, datetime, bool]]] = {}
    for interval in intervals:
        clipped = _clip(interval, session_start, session_end)
        if clipped is not None:
            people.setdefault(interval.participant_key, []).append((interval, *clipped))
    rows: list[TimelineRow] = []
    for key, spans in people.items():
        spans.sort(key=lambda s: (s[1], s[2], s[0].peer_id))
        bars = []
        for index, (interval, lo, hi, open_end) in enumerate(spans):
            overlaps = any(
                other_lo < hi and lo < other_hi
                for other_index, (_, other_lo, other_hi, _) in enumerate(spans)
                if other_index != index
            )
            x = x_of(lo)
            bar_width = max(x_of(hi) - x, MIN_BAR_WIDTH)
            x = min(x, max(width - bar_width, 0.0))
            bars.append(TimelineBar(interval.peer_id, lo, hi, round(x, 2), round(bar_width, 2), open_end, overlaps))
        names = [i.display_name for i, *_ in spans if i.display_name]
        rows.append(TimelineRow(key, names[-1] if names else key, tuple(bars)))
    rows.sort(key=lambda r: (r.bars[0].start, r.participant_key))
    return rows


def concurrency_curve(
    session_start: datetime, session_end: datetime, intervals: Sequence[Interval], width: float, height: float
) -> ConcurrencyCurve:
    """The step curve of concurrent peers over ``[session_start, session_end]`` in a ``width`` x ``height`` px box.

    x grows with time, y grows downwards: 0 peers at ``y = height``, the
    peak at ``y = 0``. Intervals are clipped and a missing leave is closed at
    ``session_end``, as in :func:`timeline_layout`; a leave and a join at the
    same instant do not overlap (as in :func:`receiver.reports.attendance.peak_concurrency`).
    """
    deltas: dict[datetime, int] = {}
    at_start = 0
    for interval in intervals:
        clipped = _clip(interval, session_start, session_end)
        if clipped is None:
            continue
        lo, hi, _ = clipped
        if hi <= lo:
            continue
        if lo <= session_start:
            at_start += 1
        else:
            deltas[lo] = deltas.get(lo, 0) + 1
        if hi < session_end:
            deltas[hi] = deltas.get(hi, 0) - 1
    steps = [(session_start, at_start)]
    current = at_start
    for moment in sorted(deltas):
        if deltas[moment] == 0:
            continue
        current += deltas[moment]
        steps.append((moment, current))
    peak = max(count for _, count in steps)
    x_of = _scale(session_start, session_end, width)

    def y_of(count: int) -> float:
        return round(height - (count / peak * height if peak else 0.0), 2)

    points: list[tuple[float, float]] = [(0.0, y_of(at_start))]
    previous = at_start
    for moment, count in steps[1:]:
        x = round(x_of(moment), 2)
        points.append((x, y_of(previous)))
        points.append((x, y_of(count)))
        previous = count
    points.append((float(width), y_of(previous)))
    return ConcurrencyCurve(tuple(points), peak, tuple(steps))


_TICK_STEPS_SECONDS = (1, 5, 10, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400)


def time_ticks(start: datetime, end: datetime, width: float, max_ticks: int = 8) -> list[Tick]:
    """Axis ticks at round UTC times (1 s .. 1 day apart), at most ``max_ticks``, ``x`` in px."""
    span = (end - start).total_seconds()
    if span <= 0:
        return [Tick(0.0, start.strftime("%H:%M:%S"))]
    step = next((s for s in _TICK_STEPS_SECONDS if span / s <= max_ticks), _TICK_STEPS_SECONDS[-1])
    while span / step > max_ticks:
        step *= 2
    fmt = "%H:%M:%S" if step < 60 else ("%H:%M" if step < 86400 else "%m-%d")
    first = int(start.timestamp() // step + 1) * step
    if first - step >= start.timestamp():
        first -= step
    x_of = _scale(start, end, width)
    ticks = []
    moment = first
    while moment <= end.timestamp():
        at = datetime.fromtimestamp(moment, tz=UTC)
        ticks.append(Tick(round(x_of(at), 2), at.strftime(fmt)))
        moment += step
    return ticks
