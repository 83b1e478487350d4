"""``receiver bench export``: peak memory and time of an org-wide attendance export (issue #23 item 4).

Data: sessions of 80 people (~96 intervals each, the org-wide part of
``receiver bench reports``: rejoins, second devices, guests, open leaves)
until ``--intervals`` participant intervals are loaded into a scratch
database (SQLite by default; PostgreSQL with ``--database-url``).

Measured: ``receiver report attendance --format FORMAT --output FILE`` run
as a child process (``python -m receiver.cli``), twice:

* **cold**: nothing precomputed yet, so the export computes every session
  from its intervals and stores it in ``session_attendance``, as the first
  report after a migration does;
* **warm**: every session precomputed, read from ``session_attendance``.

For each run: wall time, rows written, file size and the child's peak
resident memory (``ru_maxrss`` from ``os.wait4``, that child alone), with
"met" / "not met" against :data:`RSS_GOAL_MB` (200 MB).
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from receiver.devtools.bench.common import machine_summary
from receiver.devtools.bench.reports_bench import _insert_sessions, bulk_insert_intervals, interval_rows
from receiver.devtools.bench.scratch import describe_url, scratch_database

__all__ = ["ExportOptions", "RSS_GOAL_MB", "ExportRun", "run_export", "run_export_bench"]

#: Peak resident memory an org-wide export must stay under, MB (issue #23 item 4).
RSS_GOAL_MB = 200.0
_BASE = datetime(2026, 6, 1, 8, 0, tzinfo=UTC)
_PEOPLE = 80


@dataclass
class ExportOptions:
    """Options of ``receiver bench export``."""

    intervals: int = 1_000_000
    database_url: str | None = None
    fmt: str = "csv"
    keep: bool = False


@dataclass
class ExportRun:
    """One measured export: seconds, peak RSS in MB, rows written, file bytes, exit code."""

    seconds: float
    peak_rss_mb: float
    rows: int
    file_bytes: int
    exit_code: int
    stderr: str


def load(engine: Any, intervals: int, seed: int = 23) -> tuple[int, int]:
    """Load sessions of 80 people until ``intervals`` intervals exist; returns (sessions, intervals)."""
    rng = random.Random(seed)
    sessions: list[tuple[str, str, datetime, datetime]] = []
    meetings = [f"bench-meeting-{m}" for m in range(100)]

    def rows() -> Iterator[tuple[Any, ...]]:
        produced = 0
        while produced < intervals:
            sid = str(uuid.UUID(int=rng.getrandbits(128), version=4))
            start = _BASE - timedelta(hours=3 * (len(sessions) + 1))
            end = start + timedelta(minutes=rng.randint(20, 90))
            mid = meetings[len(sessions) % len(meetings)]
            sessions.append((sid, mid, start, end))
            for row in interval_rows(rng, sid, mid, start, end, _PEOPLE):
                if produced >= intervals:
                    return
                produced += 1
                yield row

    count = bulk_insert_intervals(engine, rows())
    _insert_sessions(
        engine,
        [
            {"session_id": sid, "meeting_id": mid, "started_at": s, "ended_at": e, "status": "ended", "updated_at": e}
            for sid, mid, s, e in sessions
        ],
        meetings,
    )
    return len(sessions), count


def run_export(url: str, fmt: str, output: Path) -> ExportRun:
    """Run ``receiver report attendance --format fmt --output output`` in a child process and measure it.

    Peak RSS is the child's own ``ru_maxrss`` (``os.wait4``; kilobytes on Linux).
    """
    env = {**os.environ, "DATABASE_URL": url, "LOG_LEVEL": "WARNING"}
    command = [sys.executable, "-m", "receiver.cli", "report", "attendance", "--format", fmt, "--output", str(output)]
    started = time.perf_counter()
    with tempfile.TemporaryFile() as errors:
        child = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=errors)
        _, status, usage = os.wait4(child.pid, 0)
        seconds = time.perf_counter() - started
        child.returncode = os.waitstatus_to_exitcode(status)
        errors.seek(0)
        stderr = errors.read().decode("utf-8", "replace")
    rows = 0
    for line in stderr.splitlines():
        if line.endswith(f"rows written to {output}"):
            rows = int(line.split()[0])
    size = output.stat().st_size if output.exists() else 0
    return ExportRun(seconds, usage.ru_maxrss / 1024, rows, size, child.returncode, stderr)


def run_export_bench(opts: ExportOptions, console: Console) -> bool:
    """Load, export cold and warm, print; returns True when both runs met the memory goal."""
    from receiver.db.engine import make_engine

    console.print(f"[bold]receiver bench export[/bold] - {machine_summary()}")
    met = True
    with scratch_database(opts.database_url, keep=opts.keep, label="export") as url:
        engine = make_engine(url)
        try:
            console.print(f"database: {describe_url(url)} (scratch, migrated)")
            started = time.perf_counter()
            sessions, intervals = load(engine, opts.intervals)
            console.print(
                f"loaded {sessions:,} sessions, {intervals:,} intervals in {time.perf_counter() - started:.1f} s"
            )
        finally:
            engine.dispose()
        table = Table(title=f"receiver report attendance --format {opts.fmt} --output FILE ({intervals:,} intervals)")
        for column in ("run", "rows", "file MB", "seconds", "peak RSS MB", f"goal < {RSS_GOAL_MB:.0f} MB"):
            table.add_column(column, justify="left" if column in ("run",) else "right")
        with tempfile.TemporaryDirectory(prefix="receiver-export-") as directory:
            for name in ("cold (computes and stores)", "warm (precomputed)"):
                target = Path(directory) / f"attendance.{opts.fmt}"
                result = run_export(url, opts.fmt, target)
                if result.exit_code != 0:
                    console.print(f"[red]{name}: exit {result.exit_code}[/red]\n{result.stderr[-2000:]}")
                    met = False
                    continue
                ok = result.peak_rss_mb < RSS_GOAL_MB
                met = met and ok
                table.add_row(
                    name,
                    f"{result.rows:,}",
                    f"{result.file_bytes / 1e6:,.1f}",
                    f"{result.seconds:,.1f}",
                    f"{result.peak_rss_mb:,.0f}",
                    "met" if ok else "not met",
                )
        console.print(table)
    return met
