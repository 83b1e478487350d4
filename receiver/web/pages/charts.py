"""Geometry of the analysts' charts over time (bars per day/week, a trend line): pure functions, no server.

:func:`bar_chart` lays out one bar per period and :func:`line_chart` one
point per occurrence, both scaled to a "nice" maximum (1, 2 or 5 x 10^k) with
horizontal grid lines; the templates draw them as inline SVG (no script, the
pages' CSP allows none). Units: px from the plot's top-left corner; values in
whatever unit the caller passes (minutes, people, sessions).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = [
    "PLOT_HEIGHT",
    "PLOT_WIDTH",
    "BarChart",
    "ChartBar",
    "ChartPoint",
    "GridLine",
    "LineChart",
    "bar_chart",
    "line_chart",
    "nice_max",
]

#: Width and height of a plot area, px (axis labels are drawn outside it).
PLOT_WIDTH = 720
PLOT_HEIGHT = 140


def nice_max(value: float) -> float:
    """The smallest of 1, 2, 5 x 10^k at or above ``value`` (1 for 0 or less): the top of a value axis."""
    if value <= 0:
        return 1.0
    power = 10 ** math.floor(math.log10(value))
    for step in (1, 2, 5, 10):
        if value <= step * power:
            return float(step * power)
    return float(10 * power)  # pragma: no cover - the loop always returns


@dataclass(frozen=True)
class GridLine:
    """A horizontal grid line at ``y`` px, labelled ``label`` (its value)."""

    y: float
    label: str


@dataclass(frozen=True)
class ChartBar:
    """One bar: ``x``/``y`` its top-left corner, ``width``/``height`` in px; ``label`` the period, ``value`` drawn."""

    x: float
    y: float
    width: float
    height: float
    label: str
    value: float
    show_label: bool


@dataclass(frozen=True)
class BarChart:
    """Bars over ``width`` x ``height`` px, scaled to ``top`` (a :func:`nice_max`), with ``grid`` lines."""

    bars: list[ChartBar]
    grid: list[GridLine]
    top: float
    width: int
    height: int


def _label(value: float) -> str:
    return f"{value:g}" if value < 10_000 else f"{value / 1000:g}k"


def _grid(top: float, height: int) -> list[GridLine]:
    """Grid lines at round values: tops 1/5 x 10^k in 5 steps (0.2 / 1 x 10^k), 2 x 10^k in 4 (0.5 x 10^k)."""
    leading = round(top / 10 ** math.floor(math.log10(top)))
    steps = 4 if leading == 2 else 5
    return [GridLine(round(height - height * i / steps, 2), _label(top * i / steps)) for i in range(steps + 1)]


def _label_every(count: int, width: int, label_px: int = 64) -> int:
    """Label one bar in this many so that labels ``label_px`` wide do not overlap."""
    return max(1, math.ceil(count * label_px / width)) if count else 1


def bar_chart(values: Sequence[tuple[str, float]], width: int = PLOT_WIDTH, height: int = PLOT_HEIGHT) -> BarChart:
    """One bar per ``(label, value)`` in order, left to right; negative values are drawn as 0.

    Each bar takes 80% of its slot (at least 1 px wide); a value's bar is
    ``value / top * height`` px tall, ``top`` = :func:`nice_max` of the
    largest value. Labels are kept on every n-th bar so they do not overlap.
    """
    top = nice_max(max((v for _, v in values), default=0.0))
    slot = width / len(values) if values else float(width)
    every = _label_every(len(values), width)
    bars = []
    for index, (label, value) in enumerate(values):
        shown = max(value, 0.0)
        bar_height = round(shown / top * height, 2)
        bars.append(
            ChartBar(
                x=round(index * slot + slot * 0.1, 2),
                y=round(height - bar_height, 2),
                width=round(max(slot * 0.8, 1.0), 2),
                height=bar_height,
                label=label,
                value=value,
                show_label=index % every == 0,
            )
        )
    return BarChart(bars, _grid(top, height), top, width, height)


@dataclass(frozen=True)
class ChartPoint:
    """One point of a line: ``x``/``y`` px, ``label`` (the occurrence) and ``value``."""

    x: float
    y: float
    label: str
    value: float
    show_label: bool


@dataclass(frozen=True)
class LineChart:
    """Points left to right, ``svg_points`` for a ``<polyline>``, scaled to ``top`` with ``grid`` lines."""

    points: list[ChartPoint]
    grid: list[GridLine]
    top: float
    width: int
    height: int

    @property
    def svg_points(self) -> str:
        """``"x,y x,y ..."`` for the ``points`` attribute of an SVG polyline."""
        return " ".join(f"{p.x:.2f},{p.y:.2f}" for p in self.points)


def line_chart(values: Sequence[tuple[str, float]], width: int = PLOT_WIDTH, height: int = PLOT_HEIGHT) -> LineChart:
    """One point per ``(label, value)``, evenly spaced, centred in its slot; y = ``height - value / top * height``."""
    top = nice_max(max((v for _, v in values), default=0.0))
    slot = width / len(values) if values else float(width)
    every = _label_every(len(values), width, 84)
    points = [
        ChartPoint(
            x=round(index * slot + slot / 2, 2),
            y=round(height - max(value, 0.0) / top * height, 2),
            label=label,
            value=value,
            show_label=index % every == 0,
        )
        for index, (label, value) in enumerate(values)
    ]
    return LineChart(points, _grid(top, height), top, width, height)
