"""``receiver report ...``: attendance, recordings and sessions as a table, CSV, JSON or XLSX; ``report refresh``.

Results go to stdout (or ``--output``; XLSX is binary: ``--output`` or a pipe,
never a terminal); times are UTC unless ``--tz`` names a zone. CSV, JSON and
XLSX are streamed (:func:`receiver.reports.export.stream_export`): the
attendance report is read a batch of sessions at a time, so an org-wide
export stays in constant memory. Notes (an empty window, a session
with no attendance yet) and progress go to stderr. An unknown
``--session-id`` / ``--meeting-id`` exits 1 with "no session ..." / "no
meeting ...", an inverted ``--since/--until`` is a usage error (exit 2).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import UTC, datetime, tzinfo
from typing import Any

import click

from receiver.cli.context import TIME_ZONE, UTC_TIME, Context, check_window, fail
from receiver.cli.progress import Progress

__all__ = ["report", "emit", "wide_option", "FORMAT_CHOICES"]

#: ``--format`` values of the reports.
FORMAT_CHOICES = ("table", "csv", "json", "xlsx")


@click.group()
def report() -> None:
    """Attendance, sessions, recordings and livestreams reports (table, CSV, JSON or XLSX).

    Tables show short ids and the main columns (times UTC, or --tz); `--wide`
    shows every column in full, CSV, JSON and XLSX always do.
    """


def wide_option(func: Callable[..., Any]) -> Callable[..., Any]:
    """The ``--wide`` flag of table output."""
    return click.option(
        "--wide", is_flag=True, help="Tables: full ids, every column, ISO 8601 times (CSV/JSON always are)."
    )(func)


def _report_options(func: Callable[..., Any]) -> Callable[..., Any]:
    func = wide_option(func)
    func = click.option(
        "--tz",
        "zone",
        type=TIME_ZONE,
        default="UTC",
        show_default=True,
        help="Show times in this IANA time zone (Europe/Berlin); stored times stay UTC.",
    )(func)
    func = click.option(
        "--format",
        "fmt",
        type=click.Choice(FORMAT_CHOICES),
        default="table",
        show_default=True,
        help="xlsx needs --output (or a pipe).",
    )(func)
    func = click.option(
        "--output", "-o", type=click.Path(dir_okay=False, writable=True), help="Write to a file instead of stdout."
    )(func)
    func = click.option(
        "--until", type=UTC_TIME, help="Sessions started before this UTC date or time (ISO 8601), exclusive."
    )(func)
    func = click.option(
        "--since", type=UTC_TIME, help="Sessions started at or after this UTC date or time (ISO 8601)."
    )(func)
    func = click.option("--meeting-id", help="Only this meeting.")(func)
    return func


def check_binary_target(fmt: str, output: str | None) -> None:
    """Usage error (exit 2) when ``fmt`` is ``xlsx`` and would go to a terminal (no ``--output``, stdout a tty)."""
    if fmt == "xlsx" and not output and sys.stdout.isatty():
        raise click.UsageError("--format xlsx writes a binary workbook: give --output FILE.xlsx (or pipe stdout)")


class _Counted:
    """An iterator that counts the rows passing through (and remembers whether there were any)."""

    def __init__(self, rows: Iterable[dict[str, Any]]) -> None:
        self._rows = iter(rows)
        self.count = 0

    def __iter__(self) -> Iterator[dict[str, Any]]:
        for row in self._rows:
            self.count += 1
            yield row


def emit(
    rows: Iterable[dict[str, Any]],
    columns: Sequence[str],
    fmt: str,
    output: str | None,
    title: str,
    *,
    wide: bool = False,
    zone: tzinfo = UTC,
) -> int:
    """Write ``rows`` as ``fmt`` to stdout, or to the file ``output`` (then a count on stderr); returns the row count.

    CSV, JSON and XLSX are streamed as the rows come
    (:func:`receiver.reports.export.stream_export`); a table needs every row
    first. XLSX to a terminal is refused (:func:`check_binary_target`).
    """
    from receiver.reports.export import stream_export
    from receiver.reports.formatting import PIPE_WIDE_TABLE_WIDTH, render

    if fmt != "table":
        check_binary_target(fmt, output)
        counted = _Counted(rows)
        chunks = stream_export(counted, columns, fmt, zone=zone, title=title)
        if output:
            with open(output, "wb") as handle:
                for chunk in chunks:
                    handle.write(chunk)
            click.echo(f"{counted.count} rows written to {output}", err=True)
        else:
            stdout = sys.stdout.buffer
            for chunk in chunks:
                stdout.write(chunk)
            stdout.flush()
        return counted.count
    listed = list(rows)
    if output:
        from rich.console import Console

        with open(output, "w", encoding="utf-8", newline="") as handle:
            console = Console(file=handle, width=PIPE_WIDE_TABLE_WIDTH)
            render(listed, columns, fmt, title=title, console=console, wide=wide, zone=zone)
        click.echo(f"{len(listed)} rows written to {output}", err=True)
        return len(listed)
    if listed:  # else the caller says why on stderr; an empty table adds nothing
        render(listed, columns, fmt, title=title, wide=wide, zone=zone)
    return len(listed)


def _window(since: datetime | None, until: datetime | None) -> str:
    from receiver.timeparse import to_iso

    if since and until:
        return f"between {to_iso(since)} and {to_iso(until)} (UTC, until exclusive)"
    if since:
        return f"at or after {to_iso(since)}"
    return f"before {to_iso(until)}"


def require_known(
    engine: Any, *, session_id: str | None = None, meeting_id: str | None = None, participant: str | None = None
) -> None:
    """Exit 1 with "no session ..." / "no meeting ..." / "no participant ..." when the id is stored nowhere.

    Sessions: the sessions or recordings table; meetings: meetings,
    sessions or recordings; participants: a participant key of any interval.
    """
    from sqlalchemy import exists, or_, select

    from receiver.db.models import Meeting, ParticipantInterval, Recording, Session

    with engine.connect() as connection:
        if session_id is not None:
            known = connection.execute(
                select(
                    or_(
                        exists().where(Session.session_id == session_id),
                        exists().where(Recording.session_id == session_id),
                    )
                )
            ).scalar()
            if not known:
                fail(f"no session {session_id!r} is stored (`receiver report sessions` lists them)")
        if meeting_id is not None:
            known = connection.execute(
                select(
                    or_(
                        exists().where(Meeting.meeting_id == meeting_id),
                        exists().where(Session.meeting_id == meeting_id),
                        exists().where(Recording.meeting_id == meeting_id),
                    )
                )
            ).scalar()
            if not known:
                fail(f"no meeting {meeting_id!r} is stored (`receiver report sessions --wide` shows meeting ids)")
        if participant is not None:
            known = connection.execute(
                select(exists().where(ParticipantInterval.participant_key == participant))
            ).scalar()
            if not known:
                fail(
                    f"no participant {participant!r} is stored (the key is the custom participant id, else the "
                    "peer id: `receiver report attendance --wide` shows them)"
                )


def _note_when_empty(count: int, what: str, *, session_id=None, since=None, until=None, meeting_id=None) -> None:
    if count:
        return
    if session_id:
        click.echo(f"session {session_id} has no {what} recorded (yet)", err=True)
    elif since or until:
        scope = f" of meeting {meeting_id}" if meeting_id else ""
        subject = f"no sessions{scope} started" if what == "sessions" else f"no {what}{scope} in sessions started"
        click.echo(f"{subject} {_window(since, until)}", err=True)
    elif meeting_id:
        click.echo(f"meeting {meeting_id} has no {what} recorded (yet)", err=True)
    else:
        click.echo(f"no {what} stored yet (is `receiver worker` running?)", err=True)


def _computing(what: str) -> Progress:
    """A spinner on stderr while a report is computed (terminal only; reports of a large org take seconds)."""
    return Progress(f"computing the {what} report")


@report.command("attendance")
@click.option("--session-id", help="Only this session.")
@click.option("--participant", help="Only this participant key (custom participant id, or peer id).")
@click.option(
    "--include-breakouts",
    is_flag=True,
    help="Count time in breakout rooms as time in their main session (adds breakout_seconds; "
    "breakout rooms' own rows are then left out). People are matched by custom participant id.",
)
@_report_options
@click.pass_obj
def report_attendance(
    obj: Context,
    session_id,
    participant,
    include_breakouts,
    meeting_id,
    since,
    until,
    fmt,
    output,
    wide: bool,
    zone: tzinfo,
) -> None:
    """One row per person per session: attended time (overlaps once), joins, ratio, role, guest, ids.

    Columns: docs/schema.md (the `attendance` view); attended_minutes
    is attended_seconds / 60 rounded half up to one decimal.
    """
    from receiver.reports.queries import (
        ATTENDANCE_REPORT_COLUMNS,
        BREAKOUT_ATTENDANCE_COLUMNS,
        ReportFilter,
        add_analyst_columns,
        attendance_with_breakouts,
        iter_attendance,
    )

    check_window(since, until)
    check_binary_target(fmt, output)
    engine = obj.engine
    require_known(engine, session_id=session_id, meeting_id=meeting_id, participant=participant)
    flt = ReportFilter(session_id=session_id, meeting_id=meeting_id, participant=participant, since=since, until=until)
    columns: tuple[str, ...] = ATTENDANCE_REPORT_COLUMNS
    rows: Iterable[dict[str, Any]]
    if include_breakouts:
        with _computing("attendance"):
            listed = attendance_with_breakouts(engine, flt)
            with engine.connect() as connection:
                add_analyst_columns(connection, listed)
        rows = listed
        columns = BREAKOUT_ATTENDANCE_COLUMNS
    elif fmt == "table":
        with _computing("attendance"):
            rows = list(iter_attendance(engine, flt))
    else:
        rows = iter_attendance(engine, flt)  # streamed: constant memory for an org-wide export
    count = emit(rows, columns, fmt, output, "Attendance", wide=wide, zone=zone)
    if participant and not count:
        click.echo(f"no attendance of participant {participant!r} in the selected sessions", err=True)
    else:
        _note_when_empty(count, "attendance", session_id=session_id, since=since, until=until, meeting_id=meeting_id)


@report.command("recordings")
@click.option("--session-id", help="Only this session.")
@click.option(
    "--refresh-expired/--no-refresh-expired",
    default=True,
    help="Refresh expired download URLs from the Dyte API first (needs credentials).",
)
@_report_options
@click.pass_obj
def report_recordings(
    obj: Context, session_id, refresh_expired, meeting_id, since, until, fmt, output, wide: bool, zone: tzinfo
) -> None:
    """The recording index: status, times, size, download links, start/stop reasons (all: `--wide` or CSV/JSON)."""
    import asyncio

    from receiver.reports.queries import RECORDING_DETAIL_COLUMNS, ReportFilter, recordings_detail_report

    check_window(since, until)
    check_binary_target(fmt, output)
    engine = obj.engine
    require_known(engine, session_id=session_id, meeting_id=meeting_id)
    flt = ReportFilter(session_id=session_id, meeting_id=meeting_id, since=since, until=until)
    if refresh_expired and obj.settings.api_credentials_set:
        from receiver.service import refresh_expired_recordings

        with Progress("refreshing expired download links"):
            asyncio.run(refresh_expired_recordings(obj.settings, engine, flt, transport=obj.dyte_transport))
    rows = recordings_detail_report(engine, flt)
    _note_when_empty(len(rows), "recordings", session_id=session_id, since=since, until=until, meeting_id=meeting_id)
    emit(rows, RECORDING_DETAIL_COLUMNS, fmt, output, "Recordings", wide=wide, zone=zone)


@report.command("livestreams")
@click.option("--session-id", help="Only livestreams of this session.")
@_report_options
@click.pass_obj
def report_livestreams(
    obj: Context, session_id, meeting_id, since, until, fmt, output, wide: bool, zone: tzinfo
) -> None:
    """One row per livestream: meeting, session, status and the totals of its runs.

    Runs come from the REST API during reconciliation (a session's
    livestream-sessions, a livestream's sessions): ingest_seconds (input
    streamed) and viewer_seconds (watch time of all viewers) are summed per
    livestream, in seconds; first start and last stop are UTC. Stream keys
    are never stored.
    """
    from receiver.reports.queries import LIVESTREAM_COLUMNS, ReportFilter, livestreams_report

    check_window(since, until)
    check_binary_target(fmt, output)
    engine = obj.engine
    require_known(engine, session_id=session_id, meeting_id=meeting_id)
    flt = ReportFilter(session_id=session_id, meeting_id=meeting_id, since=since, until=until)
    rows = livestreams_report(engine, flt)
    _note_when_empty(len(rows), "livestreams", session_id=session_id, since=since, until=until, meeting_id=meeting_id)
    emit(rows, LIVESTREAM_COLUMNS, fmt, output, "Livestreams", wide=wide, zone=zone)


@report.command("sessions")
@_report_options
@click.pass_obj
def report_sessions(obj: Context, meeting_id, since, until, fmt, output, wide: bool, zone: tzinfo) -> None:
    """One row per session: start, duration, status, people, peak concurrency, reconciled."""
    from receiver.reports.queries import SESSION_COLUMNS, ReportFilter, sessions_report

    check_window(since, until)
    check_binary_target(fmt, output)
    engine = obj.engine
    require_known(engine, meeting_id=meeting_id)
    flt = ReportFilter(meeting_id=meeting_id, since=since, until=until)
    with _computing("sessions"):
        rows = sessions_report(engine, flt)
    _note_when_empty(len(rows), "sessions", since=since, until=until, meeting_id=meeting_id)
    emit(rows, SESSION_COLUMNS, fmt, output, "Sessions", wide=wide, zone=zone)


@report.command("refresh")
@click.option(
    "--session-id",
    "session_ids",
    multiple=True,
    help="Only this session (repeatable). Default: every ended session whose stored attendance is not current.",
)
@click.pass_obj
def report_refresh(obj: Context, session_ids: tuple[str, ...]) -> None:
    """Precompute the attendance of ended sessions now (table session_attendance).

    Reports do this themselves for what they find stale; run it once after
    migrating a large database so the first org-wide report is fast. Shows
    a progress bar on a terminal (a line every 10 s in a pipe).
    """
    from receiver.reports.queries import refresh_session_attendance

    engine = obj.engine
    for session_id in session_ids:
        require_known(engine, session_id=session_id)
    started = time.perf_counter()
    with Progress("refreshing attendance", unit="sessions") as progress:

        def on_progress(done: int, total: int) -> None:
            if progress.total != total:
                progress.set_total(total)
            progress.advance(done - progress.completed)

        stored = refresh_session_attendance(engine, list(session_ids) or None, on_progress=on_progress)
    click.echo(f"attendance stored for {stored} ended session(s) in {time.perf_counter() - started:.1f} s")
