"""Progress of long commands on stderr: a rich bar or spinner on a terminal, plain lines in a pipe.

stdout stays for the command's result (tables, CSV, JSON, summaries), so a
progress display never mixes into redirected output. In a pipe or a log
file (stderr not a terminal) a line ``<description>: N/M`` is written at
most every ``interval`` seconds, and nothing at all for work that ends
sooner.
"""

from __future__ import annotations

import sys
import time
from types import TracebackType
from typing import Any

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.progress import Progress as RichProgress

__all__ = ["Progress", "stderr_console"]


def stderr_console() -> Console:
    """A rich console on stderr (progress, notes), independent of stdout's redirection."""
    return Console(stderr=True)


class Progress:
    """A context manager showing how far a command is.

    Args:
        description: what is being done, e.g. ``"refreshing attendance"``.
        total: number of steps (None: unknown - a spinner with the elapsed time).
        unit: what a step is, for the plain lines (``"sessions"``).
        console: where to draw (default: a console on stderr).
        interval: seconds between plain lines when not on a terminal.
    """

    def __init__(
        self,
        description: str,
        total: int | None = None,
        *,
        unit: str = "",
        console: Console | None = None,
        interval: float = 10.0,
    ) -> None:
        self.description = description
        self.total = total
        self.unit = unit
        self.console = console or stderr_console()
        self.interval = interval
        self.completed = 0
        self._rich: RichProgress | None = None
        self._task: Any = None
        self._last_line = time.monotonic()

    @property
    def on_terminal(self) -> bool:
        """True when drawing a live bar (stderr is a terminal)."""
        return self.console.is_terminal

    def __enter__(self) -> Progress:
        if self.on_terminal:
            columns: list[Any] = [SpinnerColumn(), TextColumn("{task.description}")]
            if self.total is not None:
                columns += [BarColumn(), MofNCompleteColumn()]
            columns.append(TimeElapsedColumn())
            self._rich = RichProgress(*columns, console=self.console, transient=True)
            self._rich.__enter__()
            self._task = self._rich.add_task(self.description, total=self.total)
        self._last_line = time.monotonic()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._rich is not None:
            self._rich.__exit__(exc_type, exc, tb)
            self._rich = None

    def set_total(self, total: int) -> None:
        """Set (or change) the number of steps."""
        self.total = total
        if self._rich is not None:
            self._rich.update(self._task, total=total)

    def advance(self, steps: int = 1, description: str | None = None) -> None:
        """Count ``steps`` more done (and optionally change the description)."""
        self.completed += steps
        if description:
            self.description = description
        if self._rich is not None:
            self._rich.update(self._task, advance=steps, description=self.description)
            return
        now = time.monotonic()
        if now - self._last_line >= self.interval:
            self._last_line = now
            of = f"/{self.total}" if self.total is not None else ""
            unit = f" {self.unit}" if self.unit else ""
            self.console.print(f"{self.description}: {self.completed}{of}{unit}", highlight=False, soft_wrap=True)

    def echo(self, line: str) -> None:
        """Print a result line for stdout: through the live bar when stdout is the same terminal (so the
        bar is redrawn below it), else straight to stdout (a pipe or file gets the line alone)."""
        if self._rich is not None and sys.stdout.isatty():
            self._rich.console.print(line, highlight=False, markup=False, soft_wrap=True)
        else:
            click.echo(line)

    def print(self, line: str) -> None:
        """Print a line above the bar (or as a plain line in a pipe)."""
        target = self._rich.console if self._rich is not None else self.console
        target.print(line, highlight=False, markup=False, soft_wrap=True)
