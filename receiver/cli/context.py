"""What every command shares: the :class:`Context` object, errors and option parsing."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any, NoReturn, overload

import click

from receiver.settings import Settings

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

__all__ = ["Context", "CliError", "fail", "parse_cli_time"]


class Context:
    """What every command gets: settings (read once) and helpers to build engines and clients."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._engine: Engine | None = None

    @property
    def engine(self) -> Engine:
        """The database engine (created on first use)."""
        if self._engine is None:
            from receiver.db.engine import make_engine

            self._engine = make_engine(self.settings.database_url)
        return self._engine

    def close(self) -> None:
        """Close the engine's pooled connections, if an engine was made (called when the command ends)."""
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None


class CliError(click.ClickException):
    """A command failed for a reason the user can act on: ``error: <message>`` on stderr, exit 1 (no traceback)."""

    exit_code = 1

    def show(self, file: Any = None) -> None:
        click.echo(f"error: {self.format_message()}", err=True)


def fail(message: str) -> NoReturn:
    """Stop the command with a one-line error on stderr and exit code 1 (raises :class:`CliError`)."""
    raise CliError(message)


@overload
def parse_cli_time(value: str) -> datetime: ...
@overload
def parse_cli_time(value: None) -> None: ...
@overload
def parse_cli_time(value: str | None) -> datetime | None: ...


def parse_cli_time(value: str | None) -> datetime | None:
    """Parse a --since/--until value (date or ISO 8601 datetime; naive = UTC); None stays None.

    Raises:
        click.BadParameter: neither a date (``YYYY-MM-DD``) nor an ISO 8601 time.
    """
    if value is None:
        return None
    from receiver.timeparse import TimestampError, parse_timestamp

    try:
        if len(value) == 10:
            value += "T00:00:00Z"
        return parse_timestamp(value)
    except TimestampError as exc:
        raise click.BadParameter(f"not a date or ISO 8601 time: {value!r}") from exc
