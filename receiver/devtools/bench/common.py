"""Shared bits of the bench commands: machine description, formatting, a rich console."""

from __future__ import annotations

import importlib.util
import math
import os
import platform
import sqlite3
from pathlib import Path

from rich.console import Console

__all__ = ["machine_summary", "fmt_ms", "fmt_rate", "fmt_ratio", "make_console", "http_stack"]


def make_console() -> Console:
    """The console benches print to: stdout, line-buffered so progress shows when piped to a file."""
    import sys

    try:
        sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]
    except (AttributeError, ValueError):  # not a real text stream (e.g. click's CliRunner)
        pass
    return Console(width=max(Console().width, 110), highlight=False)


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def http_stack() -> str:
    """What uvicorn's ``auto`` choices resolve to here: loop (uvloop|asyncio) + HTTP (httptools|h11)."""
    loop = "uvloop" if importlib.util.find_spec("uvloop") else "asyncio"
    http = "httptools" if importlib.util.find_spec("httptools") else "h11"
    return f"{loop}+{http}"


def machine_summary() -> str:
    """One line: cores, CPU model, 1-minute load average (other work on the machine skews results), Python, SQLite, uvicorn's HTTP stack."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    try:
        load = f", load avg {os.getloadavg()[0]:.2f}"
    except OSError:
        load = ""
    return (
        f"{cores} cores ({_cpu_model()}){load}, Python {platform.python_version()}, "
        f"SQLite {sqlite3.sqlite_version}, uvicorn {http_stack()}"
    )


def fmt_ms(value: float) -> str:
    """Milliseconds with sensible precision; '-' for NaN."""
    if math.isnan(value):
        return "-"
    return f"{value:.2f}" if value < 10 else f"{value:.1f}"


def fmt_rate(value: float) -> str:
    """A per-second rate, rounded to units."""
    return f"{value:,.0f}"


def fmt_ratio(numerator: float, denominator: float) -> str:
    """``numerator / denominator`` with two decimals; '-' when undefined."""
    return f"{numerator / denominator:.2f}" if denominator else "-"
