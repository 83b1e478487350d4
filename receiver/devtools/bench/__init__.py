"""``receiver bench``: reproducible performance benches of the receiver (issue 8).

Subcommands (each prints rich tables and exits 0; defaults finish in under
two minutes on a 2-core machine):

* ``ingest``: durable webhook ingest over keep-alive HTTP against a real
  ``receiver serve`` process, optionally with no-op and verify-only
  baselines (:mod:`receiver.devtools.bench.ingest`);
* ``worker``: worker throughput and receipt-to-processed lag over a
  preloaded inbox (:mod:`receiver.devtools.bench.worker_bench`);
* ``freshness``: acknowledgement-to-attendance-row time per delivery at a
  sustained open-loop rate, with ``receiver serve`` and worker processes,
  and the queue depth over time (:mod:`receiver.devtools.bench.freshness`);
* ``reports``: attendance timings (one session, the big session, the
  org-wide API pages first and deep) over ``--intervals`` intervals, up to
  10,000,000 on PostgreSQL (:mod:`receiver.devtools.bench.reports_bench`);
* ``export``: peak memory and time of ``receiver report attendance --format
  csv`` over 1,000,000 intervals, cold and precomputed
  (:mod:`receiver.devtools.bench.export_bench`);
* ``lifecycle``: the month-partitioned inbox on PostgreSQL with millions of
  events stored: ingest and claim against an empty inbox, and the purge of
  one month under ingest (:mod:`receiver.devtools.bench.lifecycle_bench`);
* ``ratelimit``: a backfill against the sandbox REST API under the client
  rate limiter, on a fake clock (:mod:`receiver.devtools.bench.ratelimit_bench`).

Databases: every bench works in a **scratch** database created next to
``--database-url`` (default: a temporary SQLite file) and removed afterwards
(see :mod:`receiver.devtools.bench.scratch`); the root ``--database-url`` /
``DATABASE_URL`` of ``receiver`` is deliberately ignored so a bench never
writes into a real database.

Wire-up: ``register(cli)`` adds the ``bench`` group to the root CLI group.
"""

from __future__ import annotations

import sys

import click

__all__ = ["register", "bench"]

_DB_HELP = (
    "Where to bench: a PostgreSQL server URL (a scratch database is created on it and dropped after) "
    "or a SQLite file URL (a scratch file beside it). Default: a temporary SQLite file."
)


def _fail(message: str) -> None:
    click.echo(f"error: {message}", err=True)
    sys.exit(1)


@click.group("bench")
def bench() -> None:
    """Performance benches: ingest, worker, freshness, reports, export, lifecycle, ratelimit (numbers on stdout, exit 0)."""


@bench.command("ingest")
@click.option(
    "--url",
    help="Bench an already running receiver at this http:// URL instead of starting one (no baselines, no read-back).",
)
@click.option(
    "--connections",
    default=64,
    show_default=True,
    type=click.IntRange(1, 10_000),
    help="Keep-alive connections (closed loop: one request in flight each).",
)
@click.option(
    "--rate",
    type=click.FloatRange(1, 1_000_000),
    help="Open loop: offer this many requests/s in total on a fixed schedule (latency counted from the scheduled time). Default: closed loop, as fast as the server answers.",
)
@click.option(
    "--duration", default=10.0, show_default=True, type=click.FloatRange(0.5, 600), help="Measured seconds per target."
)
@click.option(
    "--warmup",
    default=1.0,
    show_default=True,
    type=click.FloatRange(0, 60),
    help="Unmeasured seconds before each measurement.",
)
@click.option("--database-url", help=_DB_HELP)
@click.option(
    "--baseline",
    is_flag=True,
    help="Also measure the generator ceiling, a no-op Starlette POST and a verify-only POST, and print ratios.",
)
@click.option(
    "--pool",
    type=click.IntRange(1, 1_000_000),
    help="Distinct signed bodies to pre-sign. Default: ~2,000 per second of run, at most 40,000.",
)
@click.option(
    "--client-processes",
    default=1,
    show_default=True,
    type=click.IntRange(1, 64),
    help="Load generator processes (1 is best on 2 cores).",
)
@click.option(
    "--client-loop",
    default="auto",
    show_default=True,
    type=click.Choice(["auto", "asyncio", "uvloop"]),
    help="Event loop of the load generator (auto: uvloop when installed).",
)
@click.option(
    "--log-level",
    default="INFO",
    show_default=True,
    type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"], case_sensitive=False),
    help="LOG_LEVEL of the servers (JSON logs go to a file).",
)
@click.option(
    "--private-key",
    "private_key_path",
    type=click.Path(exists=True, dir_okay=False),
    help="Sign with this RSA private key (PEM) instead of a fresh one (for --url).",
)
@click.option("--keep", is_flag=True, help="Keep the scratch database and the server logs.")
@click.option(
    "--rounds",
    default=3,
    show_default=True,
    type=click.IntRange(1, 20),
    help="With --baseline: verify-only and the receiver alternate in this many rounds of --duration/--rounds seconds each; the ratio is the median of the rounds' ratios (a drifting VM moves both alike).",
)
@click.option(
    "--wrk",
    is_flag=True,
    help="Load the servers with wrk (must be installed) instead of our own generator: the same pre-signed pool, "
    "a new dyte-uuid per request (see receiver.devtools.bench.wrk).",
)
@click.option(
    "--workers",
    default=1,
    show_default=True,
    type=click.IntRange(1, 16),
    help="Server processes of the receiver under test (receiver serve --workers N).",
)
@click.option(
    "--scaling",
    is_flag=True,
    help="Also run a 1-process receiver (on its own scratch database), interleaved with the --workers one, "
    "and print the throughput ratio.",
)
def ingest_command(**kwargs) -> None:
    """Durable ingest: req/s, p50/p99/p99.9 latency, errors by status, and acknowledged-vs-stored rows.

    \b
    Starts `receiver serve --no-worker` (uvicorn, one process) on a free
    port with a generated key trusted through DYTE_WEBHOOK_PUBLIC_KEY, on a
    migrated scratch database, and drives it with our asyncio HTTP/1.1
    generator (or wrk with --wrk): signed participantJoined deliveries,
    pre-signed before the timed phase, a new dyte-uuid each. With --baseline,
    the no-op Starlette POST, verify-only and the receiver run interleaved in
    --rounds rounds and the ratios to both are printed with their goals; with
    --scaling a 1-process receiver joins the rounds. Exit 1 if an
    acknowledged delivery is missing.
    """
    from receiver.devtools.bench.common import make_console
    from receiver.devtools.bench.ingest import IngestOptions, run_ingest

    try:
        code = run_ingest(IngestOptions(**kwargs), make_console())
    except (RuntimeError, ValueError, OSError) as exc:
        _fail(f"{type(exc).__name__}: {exc}")
    sys.exit(code)


@bench.command("worker")
@click.option(
    "--events",
    default=20_000,
    show_default=True,
    type=click.IntRange(1, 10_000_000),
    help="Events to preload into the inbox.",
)
@click.option("--database-url", help=_DB_HELP)
@click.option(
    "--batch-size",
    default=None,
    type=click.IntRange(1, 100_000),
    help="WORKER_BATCH_SIZE (events claimed per batch). Default: the setting's default.",
)
@click.option(
    "--events-per-transaction",
    default=None,
    type=click.IntRange(1, 100_000),
    help="WORKER_EVENTS_PER_TRANSACTION, when the worker has it. Default: the setting's default.",
)
@click.option(
    "--time-limit",
    default=60.0,
    show_default=True,
    type=click.FloatRange(1, 86_400),
    help="Stop draining after this many seconds (events/s is then over what was processed).",
)
@click.option(
    "--workers",
    default=1,
    show_default=True,
    type=click.IntRange(1, 64),
    help="Worker threads draining concurrently (PostgreSQL: SKIP LOCKED).",
)
@click.option(
    "--log-level",
    default="INFO",
    show_default=True,
    type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"], case_sensitive=False),
    help="Log level during the drain (JSON logs go to a file).",
)
@click.option("--keep", is_flag=True, help="Keep the scratch database and the worker's log file.")
def worker_command(**kwargs) -> None:
    """Worker throughput: preload N realistic events, drain with Worker.process_batch, print events/s and lag."""
    from receiver.devtools.bench.common import make_console
    from receiver.devtools.bench.worker_bench import WorkerOptions, run_worker_bench

    try:
        run_worker_bench(WorkerOptions(**kwargs), make_console())
    except (RuntimeError, ValueError, OSError) as exc:
        _fail(f"{type(exc).__name__}: {exc}")


@bench.command("freshness")
@click.option(
    "--rate",
    default=1000.0,
    show_default=True,
    type=click.FloatRange(1, 100_000),
    help="Deliveries offered per second, on a fixed schedule (open loop).",
)
@click.option(
    "--seconds", default=60.0, show_default=True, type=click.FloatRange(0.5, 3600), help="How long the load lasts."
)
@click.option(
    "--workers", default=2, show_default=True, type=click.IntRange(1, 64), help="`receiver worker` processes."
)
@click.option(
    "--connections",
    default=64,
    show_default=True,
    type=click.IntRange(1, 10_000),
    help="Keep-alive connections of the load generator (each sends on its share of the schedule).",
)
@click.option("--database-url", help=_DB_HELP)
@click.option(
    "--drain-timeout",
    default=30.0,
    show_default=True,
    type=click.FloatRange(0, 3600),
    help="Seconds to wait after the load for the remaining effects to appear.",
)
@click.option(
    "--log-level",
    default="INFO",
    show_default=True,
    type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"], case_sensitive=False),
    help="LOG_LEVEL of the server and the workers (JSON logs go to files).",
)
@click.option(
    "--client-loop",
    default="auto",
    show_default=True,
    type=click.Choice(["auto", "asyncio", "uvloop"]),
    help="Event loop of the load generator (auto: uvloop when installed).",
)
@click.option(
    "--listen/--no-listen",
    default=True,
    show_default=True,
    help="WORKER_LISTEN of the workers: --no-listen measures polling alone (WORKER_POLL_SECONDS) for comparison.",
)
@click.option("--keep", is_flag=True, help="Keep the scratch database and the logs.")
def freshness_command(**kwargs) -> None:
    """Freshness: time from a delivery's acknowledgement to its participant row, p50/p90/p99/max, queue depth.

    \b
    Starts `receiver serve --no-worker` and --workers `receiver worker`
    processes on a scratch database, offers signed participantJoined
    deliveries (a new peer each) at --rate for --seconds, and watches
    participant_intervals for each peer (every 20 ms). Goals: p99 < 1 s,
    p50 < 200 ms, each printed as met / not met.
    """
    from receiver.devtools.bench.common import make_console
    from receiver.devtools.bench.freshness import FreshnessOptions, run_freshness

    try:
        code = run_freshness(FreshnessOptions(**kwargs), make_console())
    except (RuntimeError, ValueError, OSError) as exc:
        _fail(f"{type(exc).__name__}: {exc}")
    sys.exit(code)


@bench.command("reports")
@click.option(
    "--people",
    default=10_000,
    show_default=True,
    type=click.IntRange(1, 10_000_000),
    help="People in the one big session.",
)
@click.option(
    "--intervals",
    default=1_000_000,
    show_default=True,
    type=click.IntRange(0, 100_000_000),
    help="Intervals org-wide (0 skips the org-wide part).",
)
@click.option("--database-url", help=_DB_HELP)
@click.option(
    "--repeat",
    default=10,
    show_default=True,
    type=click.IntRange(1, 100),
    help="Timed runs per query (the median, which the goal is checked against, and the p95 are shown).",
)
@click.option(
    "--timeout",
    default=15.0,
    show_default=True,
    type=click.FloatRange(1, 3600),
    help="Seconds after which a query is stopped and reported as slower than that.",
)
@click.option("--keep", is_flag=True, help="Keep the scratch database.")
def reports_command(**kwargs) -> None:
    """Report timings: one session's attendance, the org-wide API pages (first, deep by cursor), the big session.

    On PostgreSQL the org-wide sessions are generated by the server itself
    (fast enough for --intervals 10000000).
    """
    from receiver.devtools.bench.common import make_console
    from receiver.devtools.bench.reports_bench import ReportsOptions, run_reports_bench

    try:
        run_reports_bench(ReportsOptions(**kwargs), make_console())
    except (RuntimeError, ValueError, OSError) as exc:
        _fail(f"{type(exc).__name__}: {exc}")


@bench.command("export")
@click.option(
    "--intervals",
    default=1_000_000,
    show_default=True,
    type=click.IntRange(1, 100_000_000),
    help="Participant intervals to load (sessions of 80 people).",
)
@click.option("--database-url", help=_DB_HELP)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["csv", "json", "xlsx"]),
    default="csv",
    show_default=True,
    help="Export format.",
)
@click.option("--keep", is_flag=True, help="Keep the scratch database.")
def export_command(**kwargs) -> None:
    """Peak RSS and time of `receiver report attendance --format csv` (a child process), goal < 200 MB."""
    from receiver.devtools.bench.common import make_console
    from receiver.devtools.bench.export_bench import ExportOptions, run_export_bench

    try:
        run_export_bench(ExportOptions(**kwargs), make_console())
    except (RuntimeError, ValueError, OSError) as exc:
        _fail(f"{type(exc).__name__}: {exc}")


@bench.command("ratelimit")
@click.option(
    "--sessions",
    default=1000,
    show_default=True,
    type=click.IntRange(1, 1_000_000),
    help="Sessions to backfill from the sandbox.",
)
@click.option(
    "--calls-per-minute",
    default=2000,
    show_default=True,
    type=click.IntRange(1, 1_000_000),
    help="The limiter's budget per 60 s window.",
)
@click.option(
    "--concurrency",
    default=16,
    show_default=True,
    type=click.IntRange(1, 1000),
    help="Concurrent backfill tasks sharing one client.",
)
@click.option(
    "--per-page", default=100, show_default=True, type=click.IntRange(1, 1000), help="Page size of paginated calls."
)
def ratelimit_command(**kwargs) -> None:
    """Backfill-like load against the sandbox REST API on a fake clock: max calls in any 60 s window vs the limit."""
    from receiver.devtools.bench.common import make_console
    from receiver.devtools.bench.ratelimit_bench import RateLimitOptions, run_ratelimit_bench

    code = run_ratelimit_bench(RateLimitOptions(**kwargs), make_console())
    sys.exit(code)


@bench.command("lifecycle")
@click.option(
    "--database-url",
    required=True,
    help="A PostgreSQL server URL (partitions are PostgreSQL only): a scratch database is created on it and dropped.",
)
@click.option(
    "--events",
    default=10_000_000,
    show_default=True,
    type=click.IntRange(2, 1_000_000_000),
    help="Events generated in the inbox (~1.3 KB each on disk: check the free space).",
)
@click.option(
    "--months",
    default=4,
    show_default=True,
    type=click.IntRange(2, 36),
    help="Months before this one to spread them over.",
)
@click.option(
    "--ingest",
    default=5_000,
    show_default=True,
    type=click.IntRange(1, 10_000_000),
    help="Deliveries ingested (then claimed) per measurement.",
)
@click.option(
    "--concurrency", default=32, show_default=True, type=click.IntRange(1, 1000), help="Concurrent submitters."
)
@click.option("--claim-batch", default=64, show_default=True, type=click.IntRange(1, 10_000), help="Ids per claim.")
@click.option(
    "--rounds", default=3, show_default=True, type=click.IntRange(1, 50), help="Interleaved empty/full rounds."
)
@click.option("--keep", is_flag=True, help="Keep the scratch database.")
def lifecycle_command(**kwargs) -> None:
    """Inbox at scale: ingest/claim empty vs full (goal: within 20 %), purge of one month under ingest, bytes/event."""
    from receiver.devtools.bench.common import make_console
    from receiver.devtools.bench.lifecycle_bench import LifecycleOptions, run_lifecycle_bench

    try:
        run_lifecycle_bench(LifecycleOptions(**kwargs), make_console())
    except (RuntimeError, ValueError, OSError) as exc:
        _fail(f"{type(exc).__name__}: {exc}")
