"""What every command shares: the :class:`Context` object, errors and option parsing."""

from __future__ import annotations

import os
import shlex
import shutil
import sys
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, NoReturn

import click

from receiver.settings import Settings

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

__all__ = [
    "Context",
    "CliError",
    "fail",
    "parse_cli_time",
    "UtcTime",
    "UTC_TIME",
    "TimeZone",
    "TIME_ZONE",
    "check_window",
    "invocation",
]


class Context:
    """What every command gets: settings (read once) and helpers to build engines and clients.

    ``dyte_transport`` (an httpx transport, None = the network) is handed to
    every provider client the commands build: tests point it at the sandbox
    or an ``httpx.MockTransport`` (``cli.main(obj=...)`` with an object
    carrying ``dyte_transport``).
    """

    def __init__(self, settings: Settings, *, dyte_transport: Any = None) -> None:
        self.settings = settings
        self.dyte_transport = dyte_transport
        self._engine: Engine | None = None

    @property
    def engine(self) -> Engine:
        """The database engine, created on first use after checking the database.

        Never creates a database: a missing SQLite file, a missing
        PostgreSQL database or a schema that is not migrated raise the
        errors of :mod:`receiver.db.engine` (the CLI turns them into
        one-line messages and exit codes 5, 6; an unreachable server: 4).
        """
        if self._engine is None:
            from receiver.db.engine import check_schema, make_engine

            engine = make_engine(self.settings.database_url, create=False)
            try:
                check_schema(engine)
            except BaseException:
                engine.dispose()
                raise
            self._engine = engine
        return self._engine

    def close(self) -> None:
        """Close the engine's pooled connections, if an engine was made (called when the command ends)."""
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None


class CliError(click.ClickException):
    """A command failed for a reason the user can act on: ``error: <message>`` on stderr, no traceback.

    ``exit_code`` is 1 unless given (see :class:`receiver.cli.errors.ExitCode`).
    """

    def __init__(self, message: str, exit_code: int | None = None) -> None:
        super().__init__(message)
        # click declares exit_code a class variable; each CliError carries its own.
        setattr(self, "exit_code", 1 if exit_code is None else int(exit_code))  # noqa: B010

    def show(self, file: Any = None) -> None:
        """Print ``error: <message>`` on stderr."""
        click.echo(f"error: {self.format_message()}", err=True)


def fail(message: str, exit_code: int = 1) -> NoReturn:
    """Stop the command with a one-line error on stderr and ``exit_code`` (default 1; raises :class:`CliError`)."""
    raise CliError(message, exit_code)


_TIME_HELP = "a date (2026-01-31) or an ISO 8601 time (2026-01-31T09:30:00Z; no offset = UTC)"


def _parse_time(value: str) -> datetime:
    """A UTC datetime from a date or ISO 8601 text; raises TimestampError."""
    from receiver.timeparse import TimestampError, parse_timestamp

    text = value.strip()
    if len(text) == 10 and text[4:5] == "-" and text[7:8] == "-":
        try:
            return datetime.strptime(text, "%Y-%m-%d").replace(tzinfo=UTC)
        except ValueError as exc:
            raise TimestampError(str(exc)) from exc
    if not text or text.isdigit():  # bare numbers would be read as epoch seconds: not what anyone types here
        raise TimestampError("not a time")
    return parse_timestamp(text)


class UtcTime(click.ParamType):
    """A click type for ``--since`` / ``--until``: a date or ISO 8601 time, as an aware UTC datetime.

    A bad value is a usage error (exit 2) naming the option and echoing the
    value exactly as typed.
    """

    name = "DATE|TIME"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> datetime:
        """Parse ``value`` (already a datetime: returned in UTC)."""
        if isinstance(value, datetime):
            return value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)
        from receiver.timeparse import TimestampError

        try:
            return _parse_time(str(value))
        except TimestampError:
            self.fail(f"{value!r} is not {_TIME_HELP}", param, ctx)


UTC_TIME = UtcTime()


class TimeZone(click.ParamType):
    """A click type for ``--tz``: an IANA zone name (``Europe/Berlin``) as a ``tzinfo``; ``UTC`` by default.

    An unknown zone is a usage error (exit 2) naming the option and the value.
    """

    name = "ZONE"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        """Parse ``value`` with :func:`receiver.timeparse.parse_zone` (a tzinfo passes through)."""
        if not isinstance(value, str):
            return value
        from receiver.timeparse import ZoneError, parse_zone

        try:
            return parse_zone(value)
        except ZoneError as exc:
            self.fail(str(exc), param, ctx)


TIME_ZONE = TimeZone()


def parse_cli_time(value: str | None, option: str = "--since/--until") -> datetime | None:
    """Parse a --since/--until value (date or ISO 8601 datetime; naive = UTC); None stays None.

    Raises:
        click.BadParameter: naming ``option`` and echoing ``value`` as typed.
    """
    if value is None:
        return None
    from receiver.timeparse import TimestampError

    try:
        return _parse_time(value)
    except TimestampError as exc:
        raise click.BadParameter(f"{value!r} is not {_TIME_HELP}", param_hint=f"'{option}'") from exc


def check_window(since: datetime | None, until: datetime | None) -> None:
    """Raise a usage error (exit 2) naming both options when ``--since`` is not before ``--until``."""
    if since is not None and until is not None and since >= until:
        raise click.UsageError(
            f"--since {_show(since)} is not before --until {_show(until)}: the window [since, until) is empty "
            "(did you swap them?)"
        )


def _show(moment: datetime) -> str:
    from receiver.timeparse import to_iso

    return to_iso(moment) or str(moment)


def invocation(argv0: str | None = None) -> str:
    """How to run this ``receiver`` again from the current directory, for commands printed to people.

    ``receiver`` when that name on PATH is this very program (an activated
    virtual environment or an installed tool); else the path it was started
    by (``.venv/bin/receiver``, relative when under the working directory);
    ``python -m receiver.cli`` (this interpreter) when started as a module.
    """
    argv0 = argv0 if argv0 is not None else sys.argv[0]
    if not argv0 or argv0 == "-m" or argv0.endswith(("__main__.py", "-c")):
        return f"{shlex.quote(sys.executable)} -m receiver.cli"
    on_path = shutil.which(os.path.basename(argv0))
    if on_path and os.path.realpath(on_path) == os.path.realpath(argv0):
        return os.path.basename(argv0)
    path = os.path.abspath(argv0)
    relative = os.path.relpath(path)
    shown = relative if not relative.startswith("..") else path
    if os.sep not in shown:
        shown = "." + os.sep + shown
    return shlex.quote(shown)
