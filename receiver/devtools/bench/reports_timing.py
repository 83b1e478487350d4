"""Timing one query of ``receiver bench reports``: in a fresh process, repeated, summarised as median and p95.

Each query runs in its own spawned process (nothing warmed by an earlier
query, and a query can be stopped mid-way); PostgreSQL also gets
``statement_timeout``. Wall times only (no ``EXPLAIN ANALYZE``, whose
instrumentation costs time of its own). Kinds of query:

* ``report``: :func:`receiver.reports.queries.attendance_report` (``arg``: a
  session id, or None for the org-wide report);
* ``report-computed``: the same with ``store=False`` (a stale session is
  computed from its intervals every run);
* ``page``: :func:`receiver.reports.queries.attendance_page`, 100 rows at
  offset ``arg`` (the ``?offset=`` way);
* ``api``: ``GET arg`` (a path with query) on the reports API routes, in
  process through Starlette's test client: parameters, auth, the query,
  JSON rendering; the answer must be 200;
* ``sql``: ``arg`` = (SQL text, parameters), all rows fetched.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy import text

from receiver.devtools.bench.stats import percentile

__all__ = ["BENCH_TOKEN", "Timing", "time_query"]

#: The API token of the bench's in-process API client.
BENCH_TOKEN = "bench-reports-token-0123456789"


@dataclass(frozen=True)
class Timing:
    """Wall times of one query, milliseconds: ``runs`` in order; ``rows`` what the last run returned."""

    runs: list[float]
    rows: int

    @property
    def median_ms(self) -> float:
        """Median of the runs."""
        return statistics.median(self.runs)

    @property
    def p95_ms(self) -> float:
        """95th percentile of the runs (nearest rank: the maximum below 20 runs)."""
        return percentile(sorted(self.runs), 95)


def _api_client(engine: Any) -> Any:
    """A Starlette test client on the reports API routes, authorised with :data:`BENCH_TOKEN`."""
    import warnings

    from pydantic import SecretStr
    from starlette.applications import Starlette

    with warnings.catch_warnings():  # starlette's advice to swap httpx for httpx2: not this bench's business
        warnings.simplefilter("ignore", UserWarning)  # StarletteDeprecationWarning
        from starlette.testclient import TestClient

    from receiver.settings import Settings
    from receiver.web.api import api_routes

    settings = Settings(database_url=str(engine.url), api_tokens=SecretStr(BENCH_TOKEN), reconcile_enabled=False)
    app = Starlette(routes=api_routes(settings))
    app.state.engine = engine
    app.state.settings = settings
    client = TestClient(app, raise_server_exceptions=True)
    client.headers["Authorization"] = f"Bearer {BENCH_TOKEN}"
    return client


def _timed_child(url: str, kind: str, arg: Any, repeat: int, timeout: float, queue: Any) -> None:
    """Child process body: run the query ``repeat`` times (once if slower than 10 s); put (timings ms, rows)."""
    from receiver.db.engine import make_engine
    from receiver.reports.queries import ReportFilter, attendance_page, attendance_report

    engine = make_engine(url)
    if engine.dialect.name == "postgresql":  # the server stops too, not only this process
        from sqlalchemy import event

        @event.listens_for(engine, "connect")
        def _timeout(dbapi_connection, _record):  # pragma: no cover - trivial
            with dbapi_connection.cursor() as cursor:
                cursor.execute(f"SET statement_timeout = {int(timeout * 1000)}")
            dbapi_connection.commit()

    client: Any = _api_client(engine) if kind == "api" else None

    def call() -> int:
        if kind == "report":
            return len(attendance_report(engine, ReportFilter(session_id=arg) if arg else None))
        if kind == "page":  # one API page of the org-wide report the ?offset= way: 100 rows at ``arg``; the total
            return attendance_page(engine, limit=100, offset=arg)[1]
        if kind == "report-computed":  # stale session: computed from the intervals every time (nothing stored)
            return len(attendance_report(engine, ReportFilter(session_id=arg), store=False))
        if kind == "sessions-page":  # /ui/sessions: 100 sessions newest first at offset ``arg[0]``, search ``arg[1]``
            from receiver.reports.browse import sessions_page

            offset, q = arg
            return sessions_page(engine, ReportFilter(), q=q, sort="-started_at", limit=100, offset=offset).total
        if kind == "overview":  # /ui/overview per day over ``arg`` = (since, until)
            from receiver.reports.overview import usage_overview

            return len(usage_overview(engine, period="day", since=arg[0], until=arg[1]))
        if kind == "api":
            response = client.get(arg)
            if response.status_code != 200:
                raise RuntimeError(f"GET {arg}: {response.status_code} {response.text[:200]}")
            return len(response.json()["items"])
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


def time_query(url: str, kind: str, arg: Any, repeat: int, timeout: float) -> Timing | None:
    """Timings of one query (see the module doc for ``kind``/``arg``) in a fresh process; None when it outran
    ``timeout`` seconds (or failed: the child's error is on stderr)."""
    import multiprocessing
    import queue as queue_module

    ctx = multiprocessing.get_context("spawn")
    results = ctx.Queue()
    child = ctx.Process(target=_timed_child, args=(url, kind, arg, repeat, timeout, results), daemon=True)
    child.start()
    try:
        results.get(timeout=120)  # the child has imported everything and made its engine
        # The budget covers the runs themselves; a little slack for the last result to arrive.
        runs, rows = results.get(timeout=timeout + 2)
        return Timing(runs, rows)
    except queue_module.Empty:
        return None
    finally:
        if child.is_alive():
            child.kill()
        child.join(5)
