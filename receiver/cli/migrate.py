"""``receiver migrate``: upgrade the schema with Alembic, one line per revision applied, then a summary.

Output (stdout, in this order, each on its own line)::

    Running upgrade 0002 -> 0003, analyst views
    Running upgrade 0003 -> 0004, session attendance summary
    database at 0004 (head), 2 revision(s) applied in 0.4 s

On a terminal a spinner on stderr shows the revision being applied and the
elapsed time (a revision can take minutes on a large database).
"""

from __future__ import annotations

import logging
import time
from typing import Any

import click

from receiver.cli.context import Context, fail
from receiver.cli.progress import Progress

__all__ = ["migrate"]

_ALEMBIC_LOGGER = "alembic.runtime.migration"


class _AlembicLines(logging.Handler):
    """Echo Alembic's ``Running upgrade ...`` lines on stdout as they happen and move the progress on."""

    def __init__(self, progress: Progress) -> None:
        super().__init__(logging.INFO)
        self.progress = progress
        self.applied = 0

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if not message.startswith("Running "):
            return  # "Context impl SQLiteImpl.", "Will assume non-transactional DDL.": noise for people
        if self.applied:
            self.progress.advance(1)
        self.applied += 1
        self.progress.echo(message)
        self.progress.advance(0, description=f"migrating: {message.removeprefix('Running ')}")


def _pending(url: str, target: str) -> tuple[str | None, list[Any]]:
    """The revision the database is at, and the revisions an upgrade to ``target`` applies (oldest first)."""
    from alembic.script import ScriptDirectory
    from alembic.script.revision import RevisionError
    from alembic.util import CommandError

    from receiver.db.engine import alembic_config, current_revision, make_engine

    engine = make_engine(url)
    try:
        current = current_revision(engine)
    finally:
        engine.dispose()
    script = ScriptDirectory.from_config(alembic_config(url))
    try:
        steps = list(script.iterate_revisions(target, current or "base"))
    except (CommandError, RevisionError) as exc:
        if current and target in {rev.revision for rev in script.walk_revisions()}:
            raise click.BadParameter(
                f"the database is at {current}, past {target}: `receiver migrate` only upgrades",
                param_hint="'--revision'",
            ) from None
        raise click.BadParameter(
            f"{exc} (the newest is {script.get_current_head()})", param_hint="'--revision'"
        ) from None
    return current, list(reversed(steps))


@click.command()
@click.option(
    "--revision",
    default="head",
    show_default=True,
    help="Target Alembic revision (e.g. 0003); upgrades only.",
)
@click.pass_obj
def migrate(obj: Context, revision: str) -> None:
    """Create or upgrade the database schema (Alembic) to the newest revision.

    Creates a missing SQLite file (and nothing else: its folder must exist).
    A PostgreSQL database must exist first (createdb NAME). Safe to run again:
    an up-to-date database is left alone. Prints Alembic's line for each
    revision applied, then where the database is.
    """
    from receiver.db.engine import (
        DatabaseMissing,
        DatabaseUnreachable,
        DatabaseURLError,
        classify_database_error,
        database_error_reason,
    )
    from receiver.db.engine import (
        migrate as run_migrate,
    )

    url = obj.settings.database_url
    started = time.perf_counter()
    current, steps = _pending(url, revision)
    if not steps:
        click.echo(f"database already at {current or 'base'}{' (head)' if revision == 'head' else ''}: nothing to do")
        return
    alembic_log = logging.getLogger(_ALEMBIC_LOGGER)
    with Progress("migrating", total=len(steps), unit="revisions") as progress:
        handler = _AlembicLines(progress)
        propagate, level = alembic_log.propagate, alembic_log.level
        alembic_log.addHandler(handler)
        alembic_log.propagate = False
        alembic_log.setLevel(logging.INFO)
        try:
            run_migrate(url, revision)
        except Exception as exc:
            known = classify_database_error(exc, url)
            if isinstance(known, (DatabaseURLError, DatabaseMissing, DatabaseUnreachable)):
                raise known from exc
            at = f" after {handler.applied - 1} revision(s) applied" if handler.applied > 1 else ""
            fail(
                f"migration failed{at}: {database_error_reason(exc)}\n"
                "The failed revision was rolled back where the database allows it "
                "(PostgreSQL: always); rerun with --debug for the traceback."
            )
        finally:
            alembic_log.removeHandler(handler)
            alembic_log.propagate, alembic_log.level = propagate, level
        progress.advance(1)
    target = steps[-1].revision
    head = " (head)" if revision == "head" else ""
    click.echo(f"database at {target}{head}, {len(steps)} revision(s) applied in {time.perf_counter() - started:.1f} s")
