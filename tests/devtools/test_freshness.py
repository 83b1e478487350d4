"""``receiver bench freshness``: its pure parts, and a tiny run that prints the figures and the verdicts (no timing asserted)."""

from __future__ import annotations

import math
import re

import click
import pytest
from click.testing import CliRunner
from helpers import bench_database_url
from rich.console import Console

from receiver.devtools.bench import bench
from receiver.devtools.bench.freshness import IdWatermark, depth_table, freshness_seconds, goal_verdicts


def test_watermark_reports_each_id_once_and_waits_for_a_gap() -> None:
    """Ids committed out of order are all reported, once; the read bound stays below a gap until it fills."""
    mark = IdWatermark(gap_seconds=5)
    assert mark.add([1, 2, 3], now=0.0) == [1, 2, 3] and mark.low == 3
    assert mark.add([6, 7], now=0.1) == [6, 7] and mark.low == 3  # 4 and 5 not committed yet
    assert mark.add([6, 7, 8], now=0.2) == [8]  # read again above the gap, reported once
    assert mark.add([4, 5, 6, 7, 8], now=0.3) == [4, 5] and mark.low == 8


def test_watermark_skips_a_gap_that_never_fills() -> None:
    """An id lost for good (a rolled-back insert) holds the bound back for gap_seconds only."""
    mark = IdWatermark(gap_seconds=2)
    mark.add([1, 3], now=0.0)
    assert mark.low == 1
    mark.add([3], now=1.0)
    assert mark.low == 1
    mark.add([3], now=2.5)
    assert mark.low == 3
    assert mark.add([4], now=2.6) == [4] and mark.low == 4


def test_freshness_counts_missing_deliveries_and_clamps_early_effects() -> None:
    """An effect seen before its answer arrived counts 0 s; a delivery never seen is missing, and fails the goals."""
    values, missing = freshness_seconds([(0, 10.0), (1, 10.0), (2, 10.0)], {0: 10.05, 1: 9.99})
    assert values == [pytest.approx(0.05), 0.0] and missing == 1
    verdicts = goal_verdicts(values, missing)
    assert [label for label, _, _ in verdicts] == ["p50 < 200 ms", "p99 < 1,000 ms"]
    assert verdicts[0][2] is True  # p50 of (0, 50 ms, inf) is 50 ms
    assert verdicts[1][2] is False and math.isinf(verdicts[1][1])


def test_depth_table_puts_ten_seconds_per_row() -> None:
    """25 one-second samples make three rows starting at seconds 0, 10 and 20."""
    samples = [(100.0 + t, t * 3, t) for t in range(25)]
    console = Console(width=200, record=True)
    console.print(depth_table(samples, start=100.0))
    rows = [line for line in console.export_text().splitlines() if re.match(r"^│\s+\d+ │", line)]
    assert [row.split("│")[1].strip() for row in rows] == ["0", "10", "20"]
    assert rows[2].split("│")[6].strip() == "72"  # second 24: 24 * 3


@pytest.mark.slow
@pytest.mark.parametrize("dialect", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def test_bench_freshness_tiny_run(dialect: str, tmp_path) -> None:
    """A short run with serve and a worker prints the freshness figures, the queue depth and one verdict per goal."""
    url = bench_database_url(dialect, tmp_path)
    root = click.Group("receiver")
    root.add_command(bench)
    args = ["bench", "freshness", "--rate", "40", "--seconds", "2", "--workers", "1", "--connections", "4"]
    result = CliRunner().invoke(root, [*args, "--database-url", url])
    assert result.exit_code == 0, result.output
    output = result.output
    assert "p50 ms" in output and "p99 ms" in output and "max ms" in output
    figures = next(line for line in output.splitlines() if line.startswith("│") and line.count("│") == 10)
    cells = [cell.strip().replace(",", "") for cell in figures.split("│")[1:-1]]
    acked, errors, applied = int(cells[2]), int(cells[3]), int(cells[4])
    assert acked > 0 and errors == 0 and applied == acked, output
    assert "Queue depth over time" in output and re.search(r"queue depth: max \d+ over \d+ samples", output)
    assert re.search(r"goal freshness p50 < 200 ms: (met|not met) \(measured [\d.]+ ms\)", output), output
    assert re.search(r"goal freshness p99 < 1,000 ms: (met|not met) \(measured [\d.]+ ms\)", output), output
    assert "never appeared" not in output
