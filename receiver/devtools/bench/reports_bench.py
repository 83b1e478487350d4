"""``receiver bench reports``: attendance report timings on large data.

Data (bulk-loaded into a scratch database, then ``ANALYZE``d; after the
precomputation below, ``VACUUM ANALYZE`` on PostgreSQL, as autovacuum
would do before long):

* one **big session** of ``--people`` people (2 h; ~15 % rejoin, ~5 % on two
  devices at once, ~10 % without a custom participant id, ~3 % whose leave
  was never seen) - about 1.2 intervals per person;
* **org-wide**: sessions of ~100 intervals (~80 people) until the total
  reaches ``--intervals`` participant intervals.

After the load, :func:`receiver.reports.queries.refresh_session_attendance`
precomputes every ended session into ``session_attendance`` (migration 0004;
timed and printed once), as a deployment's first report would.

Timed (best and median of up to ``--repeat`` runs, each query in a fresh
process that is stopped once its runs exceed ``--timeout`` seconds; a query
slower than 10 s runs once):

* :func:`receiver.reports.queries.attendance_report` filtered to the big session
  (goal < 200 ms): from the precomputed rows, and once more after a late
  change made it stale (computed from its intervals, ``store=False`` so
  every run computes); unfiltered, org-wide (goal < 2 s on PostgreSQL);
* :func:`receiver.reports.queries.attendance_page` org-wide, 100 rows at offset 0
  and half-way (what ``GET /api/attendance`` does; informational);
* the analysts' pages (issue #21; goal < 200 ms, a page view):
  :func:`receiver.reports.browse.sessions_page` (``/ui/sessions``), 100
  sessions newest first at offset 0 and half-way, and searched by a
  person's key; :func:`receiver.reports.overview.usage_overview`
  (``/ui/overview``) per day over the last 90 days (the page's default)
  and, informational, per week over the whole data span;
* when the analyst views exist (migration 0003, :mod:`receiver.db.views`):
  ``SELECT * FROM attendance WHERE session_id = ...`` for the big session,
  ``SELECT count(*), sum(attended_seconds) FROM attendance`` org-wide
  (computed in the database, nothing fetched) and ``SELECT * FROM
  attendance`` (everything fetched).

Indexes: the report reads current precomputed rows through
``pk_session_attendance`` (session_id, position) and the refresh marker
through ``pk_session_attendance_refreshes``; a stale session's intervals are loaded with
``session_id IN (...)`` chunks of 500 through
``ix_participant_intervals_session_key`` (session_id, participant_key) or
the unique ``uq_participant_intervals_session_peer`` (session_id, peer_id);
sessions through ``pk_sessions`` / ``ix_sessions_started_at``. The plans are
printed with ``EXPLAIN`` (PostgreSQL) / ``EXPLAIN QUERY PLAN`` (SQLite) and
the index names they use are listed. An org-wide report without filters
reads every row, so there sequential scans and hash joins are fine too.
"""

from __future__ import annotations

import random
import re
import statistics
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, cast

from rich.console import Console
from rich.table import Table
from sqlalchemy import insert, inspect, select, text, update
from sqlalchemy.engine import Engine

if TYPE_CHECKING:
    import sqlite3

    import psycopg

from receiver.devtools.bench.common import machine_summary
from receiver.devtools.bench.scratch import describe_url, scratch_database

__all__ = ["ReportsOptions", "run_reports_bench", "interval_rows", "indexes_in_plan", "SESSION_GOAL_MS", "ORG_GOAL_MS"]

SESSION_GOAL_MS = 200.0
ORG_GOAL_MS = 2000.0
_BASE = datetime(2026, 6, 1, 8, 0, tzinfo=UTC)
_INTERVAL_COLUMNS = (
    "session_id",
    "meeting_id",
    "peer_id",
    "participant_key",
    "custom_participant_id",
    "user_id",
    "display_name",
    "preset_name",
    "joined_at",
    "left_at",
    "closed_at_session_end",
    "source",
    "updated_at",
)


@dataclass
class ReportsOptions:
    """Options of ``receiver bench reports``."""

    people: int = 10_000
    intervals: int = 1_000_000
    database_url: str | None = None
    repeat: int = 3
    timeout: float = 15.0
    keep: bool = False


def interval_rows(
    rng: random.Random, session_id: str, meeting_id: str, start: datetime, end: datetime, people: int
) -> Iterator[tuple[Any, ...]]:
    """Interval tuples (``_INTERVAL_COLUMNS`` order) for ``people`` people of one session.

    Per person: one interval; ~15 % rejoin (a second, later interval), ~5 %
    a second device overlapping the first; ~10 % have no custom id (key =
    peer id); ~3 % of intervals have no leave.
    """
    length = (end - start).total_seconds()
    for person in range(people):
        custom = None if rng.random() < 0.10 else f"{session_id[:8]}-p{person}"
        roll = rng.random()
        spans: list[tuple[float, float | None]] = []
        joined = rng.uniform(0, length * 0.6)
        left = rng.uniform(joined + 30, length)
        if roll < 0.15:  # rejoin
            gap_start = rng.uniform(joined + 10, left)
            spans += [(joined, gap_start), (min(gap_start + rng.uniform(5, 120), length - 1), left)]
        elif roll < 0.20:  # second device
            spans += [(joined, left), (rng.uniform(joined, left), rng.uniform(joined, length))]
        else:
            spans.append((joined, left))
        for s, e in spans:
            peer_id = str(uuid.UUID(int=rng.getrandbits(128), version=4))
            open_ended = rng.random() < 0.03
            joined_at = start + timedelta(seconds=round(s, 3))
            left_at = None if open_ended or e is None else start + timedelta(seconds=round(max(e, s), 3))
            yield (
                session_id,
                meeting_id,
                peer_id,
                custom or peer_id,
                custom,
                None,
                f"Person {person}",
                "group_call_participant",
                joined_at,
                left_at,
                False,
                "webhook",
                end,
            )


def _sqlite_ts(value: datetime | None) -> str | None:
    # What SQLAlchemy's SQLite DateTime stores for the naive UTC value UTCDateTime binds.
    return None if value is None else value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")


def bulk_insert_intervals(engine: Engine, rows: Iterator[tuple[Any, ...]]) -> int:
    """Insert interval tuples fast: ``COPY`` on PostgreSQL, driver ``executemany`` on SQLite. Returns the count."""
    columns = ", ".join(_INTERVAL_COLUMNS)
    count = 0
    raw = engine.raw_connection()
    try:
        if engine.dialect.name == "postgresql":
            pg = cast("psycopg.Connection[Any]", raw.driver_connection)
            with pg.cursor() as pg_cursor, pg_cursor.copy(f"COPY participant_intervals ({columns}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
                    count += 1
            pg.commit()
        else:
            placeholders = ", ".join("?" for _ in _INTERVAL_COLUMNS)
            cursor = cast("sqlite3.Connection", raw.driver_connection).cursor()
            cursor.execute("BEGIN")
            batch: list[tuple[Any, ...]] = []
            for row in rows:
                batch.append(
                    row[:8] + (_sqlite_ts(row[8]), _sqlite_ts(row[9]), int(row[10]), row[11], _sqlite_ts(row[12]))
                )
                if len(batch) >= 10_000:
                    cursor.executemany(f"INSERT INTO participant_intervals ({columns}) VALUES ({placeholders})", batch)
                    count += len(batch)
                    batch.clear()
            if batch:
                cursor.executemany(f"INSERT INTO participant_intervals ({columns}) VALUES ({placeholders})", batch)
                count += len(batch)
            cursor.execute("COMMIT")
    finally:
        raw.close()
    return count


def _insert_sessions(engine: Engine, sessions: list[dict[str, Any]], meetings: list[str]) -> None:
    from receiver.db.models import Meeting, Session

    now = datetime.now(UTC)
    with engine.begin() as connection:
        connection.execute(
            insert(Meeting), [{"meeting_id": m, "title": "Bench meeting", "updated_at": now} for m in meetings]
        )
        for start in range(0, len(sessions), 5000):
            connection.execute(insert(Session), sessions[start : start + 5000])


def _timed_child(url: str, kind: str, arg: Any, repeat: int, timeout: float, queue: Any) -> None:
    """Child process body: run the query ``repeat`` times (once if slower than 10 s); put (timings ms, rows)."""
    from receiver.db.engine import make_engine
    from receiver.reports.browse import sessions_page
    from receiver.reports.overview import usage_overview
    from receiver.reports.queries import ReportFilter, attendance_page, attendance_report

    engine = make_engine(url)
    if engine.dialect.name == "postgresql":  # the server stops too, not only this process
        from sqlalchemy import event

        @event.listens_for(engine, "connect")
        def _timeout(dbapi_connection, _record):  # pragma: no cover - trivial
            with dbapi_connection.cursor() as cursor:
                cursor.execute(f"SET statement_timeout = {int(timeout * 1000)}")
            dbapi_connection.commit()

    def call() -> int:
        if kind == "report":
            return len(attendance_report(engine, ReportFilter(session_id=arg) if arg else None))
        if kind == "page":  # one API page of the org-wide report: 100 rows at offset ``arg``; returns the total
            return attendance_page(engine, limit=100, offset=arg)[1]
        if kind == "report-computed":  # stale session: computed from the intervals every time (nothing stored)
            return len(attendance_report(engine, ReportFilter(session_id=arg), store=False))
        if kind == "sessions-page":  # /ui/sessions: 100 sessions newest first at offset ``arg[0]``, search ``arg[1]``
            offset, q = arg
            return sessions_page(engine, ReportFilter(), q=q, sort="-started_at", limit=100, offset=offset).total
        if kind == "overview":  # /ui/overview over ``arg`` = (since, until): per day up to 91 days, else per week
            period = "day" if (arg[1] - arg[0]).days <= 91 else "week"
            return len(usage_overview(engine, period=period, since=arg[0], until=arg[1]))
        sql, params = arg
        with engine.connect() as connection:
            rows = connection.execute(text(sql), params).all()
        return int(rows[0][0]) if sql.lstrip().upper().startswith("SELECT COUNT") else len(rows)

    queue.put(("ready",))
    timings: list[float] = []
    rows = 0
    for _ in range(repeat):
        started = time.perf_counter()
        rows = call()
        timings.append((time.perf_counter() - started) * 1000)
        # Another run only if it surely fits in the budget.
        if (sum(timings) + timings[-1]) / 1000 > timeout or timings[-1] > 10_000:
            break
    queue.put((timings, rows))


def _time(url: str, kind: str, arg: Any, repeat: int, timeout: float) -> tuple[list[float], int] | None:
    """Timings (ms) and row count of a report or SQL query run in a fresh process; None when it outran ``timeout`` s.

    A child process can be stopped mid-query; PostgreSQL also gets ``statement_timeout``.
    """
    import multiprocessing
    import queue as queue_module

    ctx = multiprocessing.get_context("spawn")
    results = ctx.Queue()
    child = ctx.Process(target=_timed_child, args=(url, kind, arg, repeat, timeout, results), daemon=True)
    child.start()
    try:
        results.get(timeout=120)  # the child has imported everything and made its engine
        # The budget covers the runs themselves; a little slack for the last result to arrive.
        return results.get(timeout=timeout + 2)
    except queue_module.Empty:
        return None
    finally:
        if child.is_alive():
            child.kill()
        child.join(5)


_PG_INDEX = re.compile(r"(?:Index Scan|Index Only Scan|Bitmap Index Scan)(?: Backward)? (?:using|on) (\w+)")
_SQLITE_INDEX = re.compile(r"USING (?:COVERING )?INDEX (\w+)|USING (INTEGER PRIMARY KEY)")
_SEQ = re.compile(r"Seq Scan on (\w+)|SCAN (\w+)(?! USING)")


def indexes_in_plan(plan: str, tables: set[str] | None = None) -> tuple[list[str], list[str]]:
    """(index names used, tables read sequentially) found in an EXPLAIN text of either dialect.

    ``tables`` restricts the sequential scans reported to these names (SQLite
    also "scans" its materialised CTEs).
    """
    indexes: list[str] = []
    for match in list(_PG_INDEX.finditer(plan)) + list(_SQLITE_INDEX.finditer(plan)):
        name = next(g for g in match.groups() if g)
        if name not in indexes:
            indexes.append(name)
    scans: list[str] = []
    for line in plan.splitlines():
        if "USING" in line and "SCAN" in line:
            continue
        for match in _SEQ.finditer(line):
            name = next(g for g in match.groups() if g)
            if name not in scans and (tables is None or name in tables):
                scans.append(name)
    return indexes, scans


def _explain(engine: Engine, sql: str, params: dict[str, Any]) -> str:
    prefix = "EXPLAIN " if engine.dialect.name == "postgresql" else "EXPLAIN QUERY PLAN "
    with engine.connect() as connection:
        rows = connection.execute(text(prefix + sql), params).all()
    if engine.dialect.name == "postgresql":
        return "\n".join(r[0] for r in rows)
    return "\n".join(str(r[-1]) for r in rows)


def _report_sql(engine: Engine) -> str:
    """The interval query of ``attendance_report`` for one session, as SQL text with a :sid parameter."""
    from receiver.db.models import ParticipantInterval

    statement = select(ParticipantInterval).where(ParticipantInterval.session_id.in_(["__SID__"]))
    compiled = statement.compile(dialect=engine.dialect, compile_kwargs={"literal_binds": True})
    return str(compiled).replace("'__SID__'", ":sid")


def _stored_sql(engine: Engine) -> str:
    """The stored-rows query of ``attendance_report`` for one current session, as SQL text with a :sid parameter."""
    from receiver.db.models import SessionAttendance
    from receiver.reports.precomputed import SUMMARY_COLUMNS, pg_stored_rows_sql

    if engine.dialect.name == "postgresql":  # run on psycopg's own cursor: %(ids)s is a text array
        return pg_stored_rows_sql(by_session=True, participant=False).replace("%(ids)s", "ARRAY[:sid]")
    statement = select(*SUMMARY_COLUMNS, SessionAttendance.position).where(
        SessionAttendance.session_id.in_(["__SID__"])
    )
    compiled = statement.compile(dialect=engine.dialect, compile_kwargs={"literal_binds": True})
    return str(compiled).replace("'__SID__'", ":sid")


def _refresh_all(engine: Engine) -> tuple[int, float]:
    """Precompute every stale ended session (as a deployment would once after migrating), then ANALYZE; (sessions, seconds)."""
    from receiver.reports.queries import refresh_session_attendance

    started = time.perf_counter()
    count = refresh_session_attendance(engine)
    seconds = time.perf_counter() - started
    _vacuum_analyze(engine)
    return count, seconds


def _vacuum_analyze(engine: Engine) -> None:
    """PostgreSQL: ``VACUUM ANALYZE`` (autocommit), as autovacuum would soon after a bulk load: without it,
    autovacuum and the first scans setting hint bits on a million fresh rows run during the timings.
    SQLite: ``ANALYZE``."""
    if engine.dialect.name == "postgresql":
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            connection.execute(text("VACUUM ANALYZE"))
        return
    with engine.begin() as connection:
        connection.execute(text("ANALYZE"))


def _late_leave(engine: Engine, session_id: str) -> None:
    """A late correction to one interval of the session (its leave moves 1 s earlier): the session becomes stale."""
    from receiver.db.models import ParticipantInterval

    with engine.begin() as connection:
        found, left_at = connection.execute(
            select(ParticipantInterval.id, ParticipantInterval.left_at)
            .where(ParticipantInterval.session_id == session_id, ParticipantInterval.left_at.is_not(None))
            .limit(1)
        ).one()
        assert left_at is not None  # selected WHERE left_at IS NOT NULL
        connection.execute(
            update(ParticipantInterval)
            .where(ParticipantInterval.id == found)
            .values(left_at=left_at - timedelta(seconds=1))
        )


def run_reports_bench(opts: ReportsOptions, console: Console) -> None:
    """Load, time, explain, print."""
    from receiver.db.engine import make_engine

    console.print(f"[bold]receiver bench reports[/bold] - {machine_summary()}")
    rng = random.Random(11)
    with scratch_database(opts.database_url, keep=opts.keep) as url:
        engine = make_engine(url)
        try:
            dialect = engine.dialect.name
            console.print(f"database: {describe_url(url)} (scratch, migrated)")
            started = time.perf_counter()
            big_id = "big-" + uuid.UUID(int=rng.getrandbits(128), version=4).hex[:28]
            meetings = ["bench-meeting-big"] + [f"bench-meeting-{m}" for m in range(100)]
            big_start = _BASE
            big_end = _BASE + timedelta(hours=2)
            sessions = [
                {
                    "session_id": big_id,
                    "meeting_id": meetings[0],
                    "started_at": big_start,
                    "ended_at": big_end,
                    "status": "ended",
                    "updated_at": big_end,
                }
            ]
            big_count = bulk_insert_intervals(
                engine, interval_rows(rng, big_id, meetings[0], big_start, big_end, opts.people)
            )

            org_sessions: list[tuple[str, str, datetime, datetime]] = []
            remaining = max(0, opts.intervals - big_count)

            def org_rows() -> Iterator[tuple[Any, ...]]:
                # Sessions of 80 people (~96 intervals) until ``remaining`` intervals are produced.
                produced = 0
                while produced < remaining:
                    sid = str(uuid.UUID(int=rng.getrandbits(128), version=4))
                    start = _BASE - timedelta(hours=3 * (len(org_sessions) + 1))
                    end = start + timedelta(minutes=rng.randint(20, 90))
                    mid = meetings[1 + len(org_sessions) % 100]
                    org_sessions.append((sid, mid, start, end))
                    for row in interval_rows(rng, sid, mid, start, end, 80):
                        if produced >= remaining:
                            return
                        produced += 1
                        yield row

            org_count = bulk_insert_intervals(engine, org_rows()) if remaining else 0
            sessions += [
                {
                    "session_id": sid,
                    "meeting_id": mid,
                    "started_at": s,
                    "ended_at": e,
                    "status": "ended",
                    "updated_at": e,
                }
                for sid, mid, s, e in org_sessions
            ]
            _insert_sessions(engine, sessions, meetings)
            with engine.begin() as connection:
                connection.execute(text("ANALYZE"))
            total = big_count + org_count
            console.print(
                f"loaded {len(sessions):,} sessions and {total:,} intervals (big session: {opts.people:,} people, "
                f"{big_count:,} intervals) in {time.perf_counter() - started:.1f} s, then ANALYZE"
            )
            refreshed, refresh_seconds = _refresh_all(engine)
            console.print(
                f"refresh_session_attendance: precomputed {refreshed:,} ended sessions in {refresh_seconds:.1f} s "
                "(once after the load; reports then read session_attendance), then "
                + ("VACUUM ANALYZE" if dialect == "postgresql" else "ANALYZE")
            )

            timings = Table(title=f"Report timings ({dialect}; best / median of up to {opts.repeat})")
            for column in ("query", "rows", "best ms", "median ms", "goal"):
                timings.add_column(column, justify="left" if column in ("query", "goal") else "right")

            def add(name: str, kind: str, arg: Any, goal_ms: float | None) -> float | None:
                """Time one query; returns its best time in ms, None when it was stopped."""
                outcome = _time(url, kind, arg, opts.repeat, opts.timeout)
                if outcome is None or not outcome[0]:
                    timings.add_row(
                        name, "-", f"> {opts.timeout * 1000:,.0f} (stopped)", "-", "" if goal_ms is None else "NOT met"
                    )
                    console.print(f"  {name}: stopped after {opts.timeout:.0f} s")
                    return None
                runs, rows = outcome
                best, median = min(runs), statistics.median(runs)
                goal = "" if goal_ms is None else f"< {goal_ms:,.0f} ms: " + ("met" if best < goal_ms else "NOT met")
                timings.add_row(name, f"{rows:,}", f"{best:,.0f}", f"{median:,.0f}", goal)
                console.print(f"  {name}: {best:,.0f} ms")
                return best

            console.print(f"timing (each query in a fresh process, stopped after --timeout {opts.timeout:.0f} s) ...")
            org_goal = ORG_GOAL_MS if dialect == "postgresql" else None
            add("attendance_report(session_id=big)", "report", big_id, SESSION_GOAL_MS)
            _late_leave(engine, big_id)  # the big session is stale now: the report computes it from its intervals
            add("attendance_report(session_id=big), stale: computed", "report-computed", big_id, SESSION_GOAL_MS)
            _refresh_all(engine)
            views = set(inspect(engine).get_view_names())
            if "attendance" in views:
                add(
                    "SELECT * FROM attendance WHERE session_id = big",
                    "sql",
                    ("SELECT * FROM attendance WHERE session_id = :sid", {"sid": big_id}),
                    SESSION_GOAL_MS,
                )
            if org_count:
                add("attendance_report() org-wide", "report", None, org_goal)
                # GET /api/attendance?limit=100: informational (counts every session, reads the page's rows).
                add("attendance_page() org-wide, 100 rows at offset 0", "page", 0, None)
                halfway = min(500_000, org_count // 2)
                add(f"attendance_page() org-wide, 100 rows at offset {halfway:,}", "page", halfway, None)
                # The analysts' pages (issue #21): one page of sessions, a search, the overview.
                add("sessions_page() 100 newest at offset 0", "sessions-page", (0, None), SESSION_GOAL_MS)
                middle = len(sessions) // 2
                add(f"sessions_page() 100 at offset {middle:,}", "sessions-page", (middle, None), SESSION_GOAL_MS)
                # A person's key: an exact key match, but the name match (ILIKE) reads every interval.
                with engine.connect() as connection:
                    key = connection.execute(
                        text("SELECT max(participant_key) FROM participant_intervals WHERE session_id = :sid"),
                        {"sid": big_id},
                    ).scalar_one()
                add("sessions_page(q=<a person's key>)", "sessions-page", (0, key), SESSION_GOAL_MS)
                span = (min(s for _, _, s, _ in org_sessions), big_end + timedelta(days=1))
                if (span[1] - span[0]) <= timedelta(weeks=400):
                    add("usage_overview(period=week), whole span", "overview", span, None)
                ninety = (big_end - timedelta(days=90), big_end + timedelta(days=1))
                add("usage_overview(period=day), 90 days (the page's default)", "overview", ninety, SESSION_GOAL_MS)
                if "attendance" in views:
                    best = add(
                        "SELECT count(*), sum(attended_seconds) FROM attendance",
                        "sql",
                        ("SELECT count(*), sum(attended_seconds) FROM attendance", {}),
                        org_goal,
                    )
                    if (
                        best is not None and best < opts.timeout * 500
                    ):  # fetching everything costs more; skip when hopeless
                        # Informational: every row through SQLAlchemy's result layer (the report reads the driver's rows).
                        add(
                            "SELECT * FROM attendance (all rows fetched by SQLAlchemy)",
                            "sql",
                            ("SELECT * FROM attendance", {}),
                            None,
                        )
                    else:
                        console.print(
                            "  SELECT * FROM attendance (all rows fetched): skipped (the aggregate alone took over half of --timeout)"
                        )
            console.print(timings)
            if "attendance" not in views:
                console.print(
                    "analyst views: none in this database (no `attendance` view); only attendance_report was timed"
                )

            plans = Table(title="Plans (EXPLAIN) for the big session")
            for column in ("query", "indexes used", "sequential scans"):
                plans.add_column(column)
            queries = [
                ("attendance_report stored rows (session_attendance)", _stored_sql(engine)),
                ("attendance_report interval load, stale session (session_id IN ...)", _report_sql(engine)),
            ]
            if "attendance" in views:
                queries.append(
                    (
                        "SELECT * FROM attendance WHERE session_id = ...",
                        "SELECT * FROM attendance WHERE session_id = :sid",
                    )
                )
            for name, sql in queries:
                used, scans = indexes_in_plan(
                    _explain(engine, sql, {"sid": big_id}), set(inspect(engine).get_table_names())
                )
                plans.add_row(name, ", ".join(used) or "-", ", ".join(scans) or "-")
            console.print(plans)
        finally:
            engine.dispose()
