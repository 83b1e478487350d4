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

import os
import random
import re
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
from receiver.devtools.bench.reports_data import PEOPLE_PER_SESSION
from receiver.devtools.bench.scratch import describe_url, scratch_database

__all__ = [
    "ONE_GOAL_MS",
    "ORG_GOAL_MS",
    "PAGE_GOAL_MS",
    "SESSION_GOAL_MS",
    "ReportsOptions",
    "indexes_in_plan",
    "interval_rows",
    "run_reports_bench",
]

#: One ordinary session's attendance (80 people), query and API (issue #23, item 5).
ONE_GOAL_MS = 50.0
#: One API page of the org-wide listing, first or deep (issue #23, item 5).
PAGE_GOAL_MS = 200.0
#: The big session's attendance (``--people``).
SESSION_GOAL_MS = 200.0
#: The whole org-wide report (PostgreSQL).
ORG_GOAL_MS = 2000.0
_WHOLE_REPORT_MAX = 2_000_000  # intervals: above, the whole org-wide report is not timed (rows in memory)
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
    repeat: int = 10
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


def _load(engine: Engine, opts: ReportsOptions, rng: random.Random, console: Console) -> _Loaded:
    """Load the big session and the org-wide sessions (PostgreSQL: generated server-side); ANALYZE."""
    from receiver.devtools.bench.reports_data import pg_org_sessions, session_id

    started = time.perf_counter()
    big_id = "big-" + uuid.UUID(int=rng.getrandbits(128), version=4).hex[:28]
    meetings = ["bench-meeting-big"] + [f"bench-meeting-{m}" for m in range(100)]
    big_end = _BASE + timedelta(hours=2)
    sessions = [_session_row(big_id, meetings[0], _BASE, big_end)]
    big_count = bulk_insert_intervals(engine, interval_rows(rng, big_id, meetings[0], _BASE, big_end, opts.people))
    remaining = max(0, opts.intervals - big_count)
    if engine.dialect.name == "postgresql":
        _insert_sessions(engine, sessions, meetings)
        made, org_count = pg_org_sessions(engine, remaining, _BASE)
        typical = session_id(max(1, made // 2)) if made else None
        how = "org-wide generated by the server (generate_series)"
    else:
        org_sessions: list[tuple[str, str, datetime, datetime]] = []

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
        sessions += [_session_row(sid, mid, s, e) for sid, mid, s, e in org_sessions]
        _insert_sessions(engine, sessions, meetings)
        made = len(org_sessions)
        typical = org_sessions[made // 2][0] if made else None
        how = "COPY/executemany from Python"
    with engine.begin() as connection:
        connection.execute(text("ANALYZE"))
    console.print(
        f"loaded {made + 1:,} sessions and {big_count + org_count:,} intervals (big session: {opts.people:,} people, "
        f"{big_count:,} intervals; {how}) in {time.perf_counter() - started:.1f} s, then ANALYZE"
    )
    return _Loaded(big_id, typical, org_count)


@dataclass
class _Loaded:
    """What the load made: the big session, a typical org-wide session in the middle of the listing, intervals."""

    big_id: str
    typical_id: str | None
    org_count: int


def _session_row(sid: str, mid: str, start: datetime, end: datetime) -> dict[str, Any]:
    return {
        "session_id": sid,
        "meeting_id": mid,
        "started_at": start,
        "ended_at": end,
        "status": "ended",
        "updated_at": end,
    }


def _deep_cursor(engine: Engine, typical_id: str) -> str:
    """A ``cursor`` deep in the org-wide listing: after the first person of ``typical_id`` (mid-listing)."""
    from receiver.db.models import Session
    from receiver.reports.queries import PageKey
    from receiver.web.params import encode_cursor

    with engine.connect() as connection:
        started = connection.execute(select(Session.started_at).where(Session.session_id == typical_id)).scalar_one()
    return encode_cursor(PageKey(started, typical_id, 0))


class _Timings:
    """The timings table: one row per query with median, p95, runs, load average and the verdict."""

    def __init__(self, url: str, opts: ReportsOptions, console: Console, dialect: str) -> None:
        self.url, self.opts, self.console = url, opts, console
        self.table = Table(title=f"Report timings ({dialect}; median and p95 of up to {opts.repeat} runs)")
        for column in ("query", "rows", "median ms", "p95 ms", "runs", "load 1m", "goal (median)"):
            self.table.add_column(column, justify="left" if column in ("query", "goal (median)") else "right")

    def add(self, name: str, kind: str, arg: Any, goal_ms: float | None) -> float | None:
        """Time one query; returns its median in ms, None when it was stopped."""
        from receiver.devtools.bench.reports_timing import time_query

        timing = time_query(self.url, kind, arg, self.opts.repeat, self.opts.timeout)
        load = f"{os.getloadavg()[0]:.2f}"
        if timing is None or not timing.runs:
            verdict = "" if goal_ms is None else f"< {goal_ms:,.0f} ms: NOT met"
            self.table.add_row(name, "-", f"> {self.opts.timeout * 1000:,.0f} (stopped)", "-", "-", load, verdict)
            self.console.print(
                f"  {name}: stopped after {self.opts.timeout:.0f} s (load {load}) {verdict}", soft_wrap=True
            )
            return None
        median = timing.median_ms
        verdict = "" if goal_ms is None else f"< {goal_ms:,.0f} ms: " + ("met" if median < goal_ms else "NOT met")
        self.table.add_row(
            name, f"{timing.rows:,}", f"{median:,.1f}", f"{timing.p95_ms:,.1f}", str(len(timing.runs)), load, verdict
        )
        self.console.print(
            f"  {name}: median {median:,.1f} ms, p95 {timing.p95_ms:,.1f} ms, {len(timing.runs)} runs (load {load}) {verdict}",
            soft_wrap=True,
        )
        return median


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
            loaded = _load(engine, opts, rng, console)
            big_id = loaded.big_id
            refreshed, refresh_seconds = _refresh_all(engine)
            console.print(
                f"refresh_session_attendance: precomputed {refreshed:,} ended sessions in {refresh_seconds:.1f} s "
                "(once after the load; reports then read session_attendance), then "
                + ("VACUUM ANALYZE" if dialect == "postgresql" else "ANALYZE")
            )
            timings = _Timings(url, opts, console, dialect)
            add = timings.add
            console.print(f"timing (each query in a fresh process, stopped after --timeout {opts.timeout:.0f} s) ...")
            if loaded.typical_id is not None:
                typical = loaded.typical_id
                add(f"attendance_report(session_id=one) ({PEOPLE_PER_SESSION} people)", "report", typical, ONE_GOAL_MS)
                add(
                    f"GET /api/sessions/one/attendance ({PEOPLE_PER_SESSION} people)",
                    "api",
                    f"/api/sessions/{typical}/attendance",
                    ONE_GOAL_MS,
                )
            add(f"attendance_report(session_id=big) ({opts.people:,} people)", "report", big_id, SESSION_GOAL_MS)
            add(
                f"GET /api/sessions/big/attendance ({opts.people:,} people)",
                "api",
                f"/api/sessions/{big_id}/attendance",
                SESSION_GOAL_MS,
            )
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
            if loaded.org_count:
                _org_wide(engine, timings, loaded, opts, dialect, views, console)
            console.print(timings.table)
            if "attendance" not in views:
                console.print("analyst views: none in this database (no `attendance` view); only the report was timed")
            _print_plans(engine, console, big_id, views)
        finally:
            engine.dispose()


def _org_wide(
    engine: Engine,
    timings: _Timings,
    loaded: _Loaded,
    opts: ReportsOptions,
    dialect: str,
    views: set[str],
    console: Console,
) -> None:
    """The org-wide timings: API pages (first, deep by cursor, deep by offset), the whole report, the view."""
    add = timings.add
    add("GET /api/attendance?limit=100 (first page)", "api", "/api/attendance?limit=100", PAGE_GOAL_MS)
    if loaded.typical_id is not None:
        cursor = _deep_cursor(engine, loaded.typical_id)
        add(
            "GET /api/attendance?limit=100&cursor=<mid-listing>",
            "api",
            f"/api/attendance?limit=100&cursor={cursor}",
            PAGE_GOAL_MS,
        )
    halfway = loaded.org_count * 4 // 10  # ~80 rows per 96 intervals: about the middle of the listing
    add(
        f"GET /api/attendance?limit=100&offset={halfway:,} (old way)",
        "api",
        f"/api/attendance?limit=100&offset={halfway}",
        None,
    )
    if opts.intervals > _WHOLE_REPORT_MAX:
        console.print(
            f"  attendance_report() org-wide: skipped above {_WHOLE_REPORT_MAX:,} intervals "
            "(every row in memory: several GB)"
        )
    else:
        add("attendance_report() org-wide", "report", None, ORG_GOAL_MS if dialect == "postgresql" else None)
    if "attendance" in views:
        best = add(
            "SELECT count(*), sum(attended_seconds) FROM attendance",
            "sql",
            ("SELECT count(*), sum(attended_seconds) FROM attendance", {}),
            None,
        )
        if best is not None and best < opts.timeout * 500 and opts.intervals <= _WHOLE_REPORT_MAX:
            # Informational: every row through SQLAlchemy's result layer (the report reads the driver's rows).
            add(
                "SELECT * FROM attendance (all rows fetched by SQLAlchemy)",
                "sql",
                ("SELECT * FROM attendance", {}),
                None,
            )
        else:
            console.print("  SELECT * FROM attendance (all rows fetched): skipped (too slow or too many rows)")


def _print_plans(engine: Engine, console: Console, big_id: str, views: set[str]) -> None:
    """The plans (``EXPLAIN``) of the big session's queries and the index names they use."""
    plans = Table(title="Plans (EXPLAIN) for the big session")
    for column in ("query", "indexes used", "sequential scans"):
        plans.add_column(column)
    queries = [
        ("attendance_report stored rows (session_attendance)", _stored_sql(engine)),
        ("attendance_report interval load, stale session (session_id IN ...)", _report_sql(engine)),
    ]
    if "attendance" in views:
        queries.append(
            ("SELECT * FROM attendance WHERE session_id = ...", "SELECT * FROM attendance WHERE session_id = :sid")
        )
    tables = set(inspect(engine).get_table_names())
    for name, sql in queries:
        used, scans = indexes_in_plan(_explain(engine, sql, {"sid": big_id}), tables)
        plans.add_row(name, ", ".join(used) or "-", ", ".join(scans) or "-")
    console.print(plans)
