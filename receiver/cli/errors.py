"""One place that turns every failure of a command into a short message and an exit code.

:class:`ReceiverGroup` (the root ``receiver`` group) wraps each command: an
exception it raises is translated by :func:`translate` into a
:class:`~receiver.cli.context.CliError` - one or two lines on stderr saying
what happened and what to do - with the :class:`ExitCode` of its class of
failure. The traceback is printed only with ``receiver --debug``.
"""

from __future__ import annotations

import errno
import sys
import traceback
from enum import IntEnum
from typing import Any

import click

from receiver.cli.context import CliError

__all__ = ["ExitCode", "EXIT_CODES_HELP", "translate", "ReceiverGroup"]


class ExitCode(IntEnum):
    """Exit codes of ``receiver``: one per class of failure, so scripts can tell them apart."""

    OK = 0
    #: The command could not do what was asked: unknown id, an event in the wrong state, items that failed.
    FAILED = 1
    #: Bad option or value (click's own code): unknown option, bad date, inverted --since/--until.
    USAGE = 2
    #: Invalid configuration: a setting that does not validate, an unusable DATABASE_URL.
    CONFIG = 3
    #: The database server is down, unknown, timed out, refused the login, or the SQLite file stayed locked.
    DB_UNREACHABLE = 4
    #: The database does not exist: no SQLite file at the path, no such PostgreSQL database.
    DB_MISSING = 5
    #: The database has no receiver tables or an older schema: run `receiver migrate`.
    DB_NOT_MIGRATED = 6
    #: The provider's REST API did not answer (connect error, timeout) or kept failing (5xx) after retries.
    PROVIDER_UNREACHABLE = 7
    #: The provider's REST API refused the call (401/403 credentials, 404, 429 after retries) or answered nonsense.
    PROVIDER_REFUSED = 8
    #: A bug: an error nobody planned for (`receiver --debug ...` shows the traceback; please report it).
    INTERNAL = 70
    #: Interrupted (Ctrl-C).
    INTERRUPTED = 130


EXIT_CODES_HELP = "\n".join(
    [
        "\b",
        "Exit codes:",
        "  0   success",
        "  1   failed: unknown id, nothing to do it to, or some items failed",
        "  2   usage: bad option or value (dates, an inverted --since/--until)",
        "  3   configuration: a setting is invalid, DATABASE_URL unusable",
        "  4   database unreachable: server down, wrong host/port/user, locked",
        "  5   database missing: no such SQLite file or PostgreSQL database",
        "  6   database not migrated: run `receiver migrate`",
        "  7   provider unreachable: the Dyte API did not answer or kept failing",
        "  8   provider refused: credentials (401/403), 404, rate limit, bad answer",
        "  70  internal error (a bug): rerun with --debug for the traceback",
        "  130 interrupted (Ctrl-C)",
        "Errors are one or two lines on stderr; `receiver --debug ...` adds the traceback.",
    ]
)


def _redacted(message: str) -> str:
    from receiver.redaction import redact_value

    return str(redact_value(message))


def _provider_error(exc: Exception) -> CliError:
    from receiver.providers.errors import (
        ProviderAuthError,
        ProviderNotFound,
        ProviderRateLimited,
        ProviderResponseError,
        ProviderStatusError,
        ProviderTransportError,
    )

    label = getattr(exc, "provider_label", None) or "Dyte"
    rtk = label == "RealtimeKit"
    base_url_setting = "REALTIMEKIT_API_BASE_URL" if rtk else "DYTE_API_BASE_URL"
    credentials = (
        "REALTIMEKIT_ACCOUNT_ID, REALTIMEKIT_APP_ID and REALTIMEKIT_API_TOKEN"
        if rtk
        else "DYTE_ORG_ID and DYTE_API_KEY"
    )
    if isinstance(exc, ProviderTransportError):
        return CliError(
            f"cannot reach the {label} API ({exc}): check {base_url_setting} and the network, then try again",
            ExitCode.PROVIDER_UNREACHABLE,
        )
    if isinstance(exc, ProviderAuthError):
        return CliError(
            f"{label} refused the credentials (HTTP {exc.status_code}): check {credentials}",
            ExitCode.PROVIDER_REFUSED,
        )
    if isinstance(exc, ProviderRateLimited):
        wait = f"; try again in {exc.retry_after_seconds:.0f} s" if exc.retry_after_seconds else "; try again later"
        return CliError(
            f"the {label} API is still rate-limiting (HTTP 429) after retries{wait}", ExitCode.PROVIDER_REFUSED
        )
    if isinstance(exc, ProviderNotFound):
        return CliError(f"{label} API: not found: {exc}", ExitCode.PROVIDER_REFUSED)
    if isinstance(exc, ProviderStatusError):
        if exc.status_code >= 500:
            return CliError(f"the {label} API kept failing: {exc}; try again later", ExitCode.PROVIDER_UNREACHABLE)
        return CliError(f"{label} API refused the call: {exc}", ExitCode.PROVIDER_REFUSED)
    if isinstance(exc, ProviderResponseError):
        return CliError(f"the {label} API answered something unexpected: {exc}", ExitCode.PROVIDER_REFUSED)
    return CliError(f"{label} API: {exc}", ExitCode.PROVIDER_REFUSED)


def translate(exc: BaseException, database_url: str | None = None) -> CliError:
    """The :class:`CliError` (message, exit code) for an exception a command raised.

    ``database_url`` (the configured one) lets database errors name the
    database; passwords are never shown, and registered secrets (the API
    key) are redacted from every message.
    """
    from receiver.db.engine import (
        DatabaseMissing,
        DatabaseUnreachable,
        SchemaNotMigrated,
        classify_database_error,
        database_error_reason,
    )
    from receiver.errors import ConfigurationError, ProviderError, ReceiverError, StorageUnavailable

    if isinstance(exc, CliError):
        return exc
    if isinstance(exc, KeyboardInterrupt):
        return CliError("interrupted", ExitCode.INTERRUPTED)
    error: BaseException | None = exc
    if not isinstance(exc, ReceiverError):
        error = classify_database_error(exc, database_url or "")
    if isinstance(error, ProviderError):
        cli_error = _provider_error(error)
    elif isinstance(error, ConfigurationError):
        cli_error = CliError(str(error), ExitCode.CONFIG)
    elif isinstance(error, DatabaseMissing):
        cli_error = CliError(str(error), ExitCode.DB_MISSING)
    elif isinstance(error, SchemaNotMigrated):
        cli_error = CliError(str(error), ExitCode.DB_NOT_MIGRATED)
    elif isinstance(error, (DatabaseUnreachable, StorageUnavailable)):
        cli_error = CliError(str(error) or "the database is unavailable", ExitCode.DB_UNREACHABLE)
    elif isinstance(error, ReceiverError):
        cli_error = CliError(str(error), ExitCode.FAILED)
    else:
        from sqlalchemy.exc import SQLAlchemyError

        if isinstance(exc, SQLAlchemyError):
            what = f"database error: {database_error_reason(exc)}"
        elif isinstance(exc, OSError) and exc.errno is not None:
            return CliError(_redacted(str(exc)), ExitCode.FAILED)
        else:
            what = f"internal error: {type(exc).__name__}: {' '.join(str(exc).split())[:300]}"
        cli_error = CliError(
            f"{what}\nThis is a bug: rerun with `receiver --debug ...` for the traceback and report it.",
            ExitCode.INTERNAL,
        )
    return CliError(_redacted(cli_error.message), cli_error.exit_code)


class ReceiverGroup(click.Group):
    """The root group: runs a command and translates whatever it raises (see :func:`translate`).

    click's own exceptions (usage errors, ``Exit``, ``Abort``) and
    ``SystemExit`` pass through; a broken pipe is left to click (quiet
    exit). With ``--debug`` the traceback is printed before the message.
    """

    def invoke(self, ctx: click.Context) -> Any:
        """Invoke the group callback and the command; translate failures."""
        try:
            return super().invoke(ctx)
        except click.ClickException as exc:
            cause = exc.__cause__ or exc.__context__
            if ctx.params.get("debug") and cause is not None and not isinstance(cause, click.ClickException):
                traceback.print_exception(cause, file=sys.stderr)
            raise
        except (click.exceptions.Exit, click.Abort, SystemExit):
            raise
        except BrokenPipeError:
            raise
        except OSError as exc:
            if exc.errno == errno.EPIPE:
                raise
            self._fail(ctx, exc)
        except (Exception, KeyboardInterrupt) as exc:
            self._fail(ctx, exc)

    @staticmethod
    def _fail(ctx: click.Context, exc: BaseException) -> None:
        settings = getattr(ctx.obj, "settings", None)
        database_url = getattr(settings, "database_url", None) or ctx.params.get("database_url")
        if ctx.params.get("debug"):
            traceback.print_exception(exc, file=sys.stderr)
        raise translate(exc, database_url) from exc
