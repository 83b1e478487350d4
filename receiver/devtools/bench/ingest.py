"""``receiver bench ingest``: durable webhook ingest throughput and latency, and what is lost.

What runs (each server in its own process, uvicorn, one worker, on a free port):

1. a pool of distinct ``meeting.participantJoined`` bodies is generated and
   signed with a fresh RSA-2048 key **before** any timed phase;
2. with ``--baseline``: a bare asyncio canned-response server (the load
   generator's own ceiling), a no-op Starlette POST, and a verify-only
   Starlette POST (body + JSON + ``parse_event`` + signature; no database)
   - see :mod:`receiver.devtools.bench.baseline`;
3. the receiver: ``receiver serve --no-worker`` on a scratch database
   (SQLite by default; PostgreSQL with ``--database-url``), trusting the key
   through ``DYTE_WEBHOOK_PUBLIC_KEY``, logging JSON at ``--log-level`` to a
   file.

Each target gets the same closed-loop load: ``--connections`` keep-alive
connections, ``--warmup`` seconds unmeasured, then ``--duration`` seconds
measured (:mod:`receiver.devtools.bench.loadgen`). Every request carries a new
``dyte-uuid``. After the receiver has stopped, ``webhook_events`` is read
back: every delivery answered 2xx must be there (``acked, missing`` must be 0);
a request that reused a pooled body is a replay, durable when that body is
stored (the inbox stores one body once).

With ``--baseline``, verify-only and the receiver run side by side (both
processes up, one loaded at a time) in ``--rounds`` interleaved rounds
(verify, receiver; then receiver, verify; ...), each ``--duration / --rounds``
seconds measured. A VM whose speed drifts by tens of percent within a minute
then moves both numbers of a round alike: the ratio reported is the median
of the rounds' ratios, and each round's ratio is printed.
"""

from __future__ import annotations

import shutil
import statistics
import tempfile
import time
import uuid
from contextlib import ExitStack
from dataclasses import dataclass, replace
from pathlib import Path
from urllib.parse import urlsplit

from rich.console import Console
from rich.table import Table
from sqlalchemy import select, text

from receiver.devtools.bench.common import fmt_ms, fmt_rate, fmt_ratio, machine_summary
from receiver.devtools.bench.loadgen import (
    LoadResult,
    client_loop_name,
    run_coroutine,
    run_load,
    run_load_processes,
)
from receiver.devtools.bench.payloads import RequestFactory, participant_joined_bodies, sign_all
from receiver.devtools.bench.scratch import describe_url, scratch_database
from receiver.devtools.bench.servers import (
    ServerProcess,
    baseline_argv,
    bench_env,
    free_port,
    receiver_serve_argv,
)
from receiver.devtools.bench.stats import LatencySummary, summarize_latencies
from receiver.devtools.bench.wrk import WrkLoad, WrkResult, wrk_path
from receiver.providers.dyte.signature import generate_private_key, load_private_key, public_key_pem

__all__ = ["IngestOptions", "run_ingest", "default_pool_size"]

# Goals (issue 8): durable ingest vs verify-only, and p99 on PostgreSQL.
PG_RATIO_GOAL = 0.8
PG_P99_GOAL_MS = 25.0
SQLITE_RATIO_GOAL = 0.5
# Goal (issue #23, item 1): the receiver on PostgreSQL vs the no-op Starlette endpoint, same run.
PG_NOOP_RATIO_GOAL = 0.5


@dataclass
class IngestOptions:
    """Options of ``receiver bench ingest`` (see its ``--help``)."""

    url: str | None = None
    connections: int = 64
    duration: float = 10.0
    warmup: float = 1.0
    database_url: str | None = None
    baseline: bool = False
    pool: int | None = None
    client_processes: int = 1
    client_loop: str = "auto"
    rate: float | None = None
    log_level: str = "INFO"
    private_key_path: str | None = None
    keep: bool = False
    rounds: int = 3
    wrk: bool = False
    workers: int = 1
    scaling: bool = False


@dataclass
class TargetRun:
    """One target's load result (all its rounds) and its server's CPU use."""

    name: str
    result: LoadResult
    server_cpu_share: float | None = None
    round_rates: list[float] | None = None


def default_pool_size(duration: float, warmup: float) -> int:
    """Distinct signed bodies to prepare: ~2,000 per second of run (above what one receiver process stores), at most 40,000.

    Signing costs ~0.25 ms per body here, before any timed phase.
    """
    return int(min(40_000, max(2_000, (duration + warmup) * 2_000)))


def _load(
    opts: IngestOptions,
    factory: RequestFactory | WrkLoad,
    bodies: list[bytes],
    signatures: list[str],
    host: str,
    port: int,
) -> LoadResult:
    if isinstance(factory, WrkLoad):
        return factory.load(host, port, duration=opts.duration, warmup=opts.warmup)
    if opts.client_processes > 1:
        return run_load_processes(
            opts.client_processes,
            host=host,
            port=port,
            bodies=bodies,
            signatures=signatures,
            run_id=factory.run_id,
            connections=opts.connections,
            duration=opts.duration,
            warmup=opts.warmup,
            path=factory.path,
            client_loop=opts.client_loop,
            rate=opts.rate,
        )
    return run_coroutine(
        run_load(
            host,
            port,
            factory.next,
            connections=opts.connections,
            duration=opts.duration,
            warmup=opts.warmup,
            sequence=lambda: factory.issued,
            rate=opts.rate,
        ),
        opts.client_loop,
    )


def _run_server_target(
    server: ServerProcess,
    opts: IngestOptions,
    bodies: list[bytes],
    signatures: list[str],
    console: Console,
    workdir: Path,
) -> tuple[TargetRun, RequestFactory | WrkLoad]:
    """Start ``server``, load it for ``opts.duration`` seconds (one round), stop it."""
    runs, factories = _run_interleaved([server], replace(opts, rounds=1), bodies, signatures, console, workdir)
    return runs[0], factories[0]


def _run_interleaved(
    servers: list[ServerProcess],
    opts: IngestOptions,
    bodies: list[bytes],
    signatures: list[str],
    console: Console,
    workdir: Path,
) -> tuple[list[TargetRun], list[RequestFactory | WrkLoad]]:
    """Load ``servers`` (all started first) one at a time in ``opts.rounds`` rounds, the order reversed every round.

    Each round measures ``opts.duration / opts.rounds`` seconds per target
    after ``opts.warmup`` seconds of warm-up; a target's rounds add up into
    one :class:`TargetRun` (``round_rates``: req/s of each round). With
    ``opts.wrk`` each target is loaded by wrk (:mod:`receiver.devtools.bench.wrk`).
    """
    factories: list[RequestFactory | WrkLoad] = [
        WrkLoad(workdir, bodies, signatures, connections=opts.connections, run_id=uuid.uuid4().hex[:8])
        if opts.wrk
        else RequestFactory(bodies, signatures, host=f"{server.host}:{server.port}")
        for server in servers
    ]
    runs = [TargetRun(server.name, WrkResult() if opts.wrk else LoadResult(), None, []) for server in servers]
    cpu = [0.0] * len(servers)
    wall = [0.0] * len(servers)
    per_round = replace(opts, duration=opts.duration / opts.rounds)
    started: list[ServerProcess] = []
    try:
        for server in servers:
            server.start()
            started.append(server)
        for round_no in range(opts.rounds):
            order = range(len(servers)) if round_no % 2 == 0 else reversed(range(len(servers)))
            for index in order:
                server, factory = servers[index], factories[index]
                cpu_before, wall_before = server.cpu_seconds(), time.perf_counter()
                result = _load(per_round, factory, bodies, signatures, server.host, server.port)
                cpu_after = server.cpu_seconds()
                wall[index] += time.perf_counter() - wall_before
                if cpu_before is not None and cpu_after is not None:
                    cpu[index] += cpu_after - cpu_before
                runs[index].result.extend(result)
                round_rates = runs[index].round_rates
                assert round_rates is not None
                round_rates.append(result.requests_per_second)
            if opts.rounds == 1:
                for run in runs:
                    console.print(f"  {run.name}: {fmt_rate(run.result.requests_per_second)} req/s")
            else:
                rates = ", ".join(
                    f"{run.name} {fmt_rate(run.round_rates[-1])} req/s" for run in runs if run.round_rates
                )
                console.print(f"  round {round_no + 1}/{opts.rounds}: {rates}")
    finally:
        for server in reversed(started):
            server.stop()  # the receiver stops gracefully: what it acknowledged is committed
    for index, run in enumerate(runs):
        run.server_cpu_share = cpu[index] / wall[index] if wall[index] > 0 else None
    return runs, factories


def _statuses(result: LoadResult) -> str:
    parts = [f"{status}: {count:,}" for status, count in sorted(result.statuses.items())]
    parts += [f"{kind}: {count:,}" for kind, count in sorted(result.errors.items())]
    return ", ".join(parts) or "-"


def _results_table(runs: list[TargetRun], connections: int, rate: float | None = None) -> Table:
    table = Table(
        title=f"Ingest, {connections} keep-alive connections, "
        + (f"open loop at {rate:,.0f} req/s offered" if rate else "closed loop")
    )
    for column in (
        "target",
        "req/s",
        "p50 ms",
        "p99 ms",
        "p99.9 ms",
        "max ms",
        "responses / errors",
        "server CPU",
        "client CPU",
    ):
        table.add_column(column, justify="left" if column in ("target", "responses / errors") else "right")
    for run in runs:
        lat = _latency(run.result)
        table.add_row(
            run.name,
            fmt_rate(run.result.requests_per_second),
            fmt_ms(lat.p50_ms),
            fmt_ms(lat.p99_ms),
            fmt_ms(lat.p999_ms),
            fmt_ms(lat.max_ms),
            _statuses(run.result),
            "-" if run.server_cpu_share is None else f"{run.server_cpu_share:.0%}",
            "-" if isinstance(run.result, WrkResult) else f"{run.result.client_cpu_share:.0%}",
        )
    return table


def _latency(result: LoadResult) -> LatencySummary:
    """Latency percentiles of a run: from its samples (our generator) or wrk's histograms (worst round)."""
    return result.latency() if isinstance(result, WrkResult) else summarize_latencies(result.latencies)


def _pg_commits(url: str) -> int:
    from receiver.db.engine import make_engine

    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            return int(
                connection.execute(
                    text("SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()")
                ).scalar_one()
            )
    finally:
        engine.dispose()


def _stored_counts(url: str, prefix: str) -> tuple[int, int]:
    """Rows whose delivery id starts with ``prefix``, and the replays and retries counted on them."""
    from sqlalchemy import func

    from receiver.db.engine import make_engine
    from receiver.db.models import WebhookEvent

    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            rows, duplicates = connection.execute(
                select(func.count(), func.coalesce(func.sum(WebhookEvent.duplicate_count), 0)).where(
                    WebhookEvent.delivery_id.like(f"{prefix}%")
                )
            ).one()
            return int(rows), int(duplicates)
    finally:
        engine.dispose()


def _stored_ids(url: str, run_id: str) -> set[str]:
    from receiver.db.engine import make_engine
    from receiver.db.models import WebhookEvent

    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            return set(
                connection.execute(
                    select(WebhookEvent.delivery_id).where(WebhookEvent.delivery_id.like(f"{run_id}-%"))
                ).scalars()
            )
    finally:
        engine.dispose()


def run_ingest(opts: IngestOptions, console: Console) -> int:
    """Run the bench; prints tables; returns the process exit code (0 unless acknowledged rows are missing)."""
    console.print(f"[bold]receiver bench ingest[/bold] - {machine_summary()}")
    console.print(
        f"load generator: {opts.client_processes} process(es), {client_loop_name(opts.client_loop)} event loop, "
        f"{opts.connections} connections, {opts.warmup:g} s warm-up + {opts.duration:g} s measured per target, "
        + (
            f"open loop at {opts.rate:,.0f} req/s offered (latency from the scheduled send time)"
            if opts.rate
            else "closed loop"
        )
    )
    key = load_private_key(Path(opts.private_key_path).read_text()) if opts.private_key_path else generate_private_key()
    pem = public_key_pem(key)
    pool = opts.pool or default_pool_size(opts.duration, opts.warmup)
    started = time.perf_counter()
    bodies = participant_joined_bodies(pool, seed=1)
    signatures = sign_all(bodies, key)
    console.print(
        f"pre-signed {pool:,} distinct participantJoined bodies (~{sum(map(len, bodies)) // pool} B each) "
        f"in {time.perf_counter() - started:.1f} s; each request gets a new dyte-uuid "
        f"(bodies are reused round-robin past the pool)"
    )

    if opts.url:
        return _run_external(opts, bodies, signatures, console)

    workdir = Path(tempfile.mkdtemp(prefix="receiver-bench-ingest-"))
    host = "127.0.0.1"
    runs: list[TargetRun] = []
    exit_code = 0
    completed = False
    if opts.wrk:
        console.print(
            f"load generator for the servers: wrk ({wrk_path()}), 1 thread, {opts.connections} connections; "
            "each request the next pooled body (round-robin) under a new dyte-uuid"
        )
    try:
        with ExitStack() as stack:
            db_url = stack.enter_context(scratch_database(opts.database_url, keep=opts.keep))
            single_url = (
                stack.enter_context(scratch_database(opts.database_url, keep=opts.keep, label="bench1"))
                if opts.scaling
                else None
            )
            dialect = "postgresql" if db_url.startswith("postgresql") else "sqlite"
            console.print(f"database: {describe_url(db_url)} (scratch, migrated); server logs: {workdir}")
            env_common = {"log_format": "json", "log_level": opts.log_level}
            targets: list[ServerProcess] = []
            if opts.baseline:
                baseline_servers: dict[str, ServerProcess] = {}
                for kind, label in (
                    ("raw", "generator ceiling (raw asyncio)"),
                    ("noop", "no-op Starlette"),
                    ("verify", "verify-only"),
                ):
                    port = free_port(host)
                    baseline_servers[kind] = ServerProcess(
                        label,
                        baseline_argv(kind, host, port),
                        bench_env(dyte_webhook_public_key=pem, **env_common),
                        host=host,
                        port=port,
                        log_path=workdir / f"{kind}.log",
                    )
                console.print("running the generator's ceiling ...")
                runs.append(_run_server_target(baseline_servers["raw"], opts, bodies, signatures, console, workdir)[0])
                targets += [baseline_servers["noop"], baseline_servers["verify"]]

            def receiver(url: str, workers: int, name: str) -> ServerProcess:
                port = free_port(host)
                return ServerProcess(
                    name,
                    receiver_serve_argv(host, port, workers),
                    bench_env(database_url=url, dyte_webhook_public_key=pem, reconcile_enabled="false", **env_common),
                    host=host,
                    port=port,
                    log_path=workdir / f"receiver-{name.split()[-2]}.log",
                    ready_path="/readyz",
                )

            if single_url is not None:
                targets.append(receiver(single_url, 1, f"receiver ingest ({dialect}), 1 process"))
            plural = "process" if opts.workers == 1 else "processes"
            targets.append(receiver(db_url, opts.workers, f"receiver ingest ({dialect}), {opts.workers} {plural}"))
            commits_before = _pg_commits(db_url) if dialect == "postgresql" else None
            if len(targets) > 1:
                names = ", ".join(t.name for t in targets)
                console.print(f"running {names}: interleaved in {opts.rounds} rounds ...")
                loaded, factories = _run_interleaved(targets, opts, bodies, signatures, console, workdir)
            else:
                console.print(f"running the receiver on {dialect} ...")
                loaded, factories = _run_interleaved(
                    targets, replace(opts, rounds=1), bodies, signatures, console, workdir
                )
            runs.extend(loaded)
            # The servers have stopped (graceful): everything they acknowledged is committed.
            commits = (_pg_commits(db_url) - commits_before) if commits_before is not None else None
            checks = [(loaded[-1], factories[-1], db_url)]
            if single_url is not None:
                checks.insert(0, (loaded[-2], factories[-2], single_url))
            exit_code = _report(console, opts, runs, checks, dialect, commits)
            completed = True
    finally:
        if opts.keep or not completed:
            console.print(f"server logs kept in {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    return exit_code


def _round_ratios(numerator: TargetRun, denominator: TargetRun) -> list[float]:
    """``numerator`` req/s over ``denominator`` req/s, round by round (one value when they did not run in rounds)."""
    if numerator.round_rates and denominator.round_rates and len(numerator.round_rates) == len(denominator.round_rates):
        return [a / b for a, b in zip(numerator.round_rates, denominator.round_rates, strict=False) if b > 0]
    rate = denominator.result.requests_per_second
    return [numerator.result.requests_per_second / rate] if rate else []


def _ratio_row(table: Table, label: str, numerator: TargetRun, denominator: TargetRun, goal: float | None) -> float:
    """Add the median of the rounds' ratios (each round's shown) to ``table``; returns the median."""
    ratios = _round_ratios(numerator, denominator)
    value = statistics.median(ratios) if ratios else 0.0
    rounds = f" (median of rounds {', '.join(f'{r:.2f}' for r in ratios)})" if len(ratios) > 1 else ""
    shown_goal = "" if goal is None else f">= {goal} ({'met' if value >= goal else 'not met'})"
    table.add_row(f"{label}{rounds}", f"{value:.2f}", shown_goal)
    return value


def _report(
    console: Console,
    opts: IngestOptions,
    runs: list[TargetRun],
    checks: list[tuple[TargetRun, RequestFactory | WrkLoad, str]],
    dialect: str,
    commits: int | None,
) -> int:
    """Print the tables, ratios, goals and durability; returns 1 when an acknowledged delivery is missing.

    ``checks``: each receiver target, its generator and its database (the last: the receiver under test).
    """
    console.print(_results_table(runs, opts.connections, opts.rate))
    ingest = checks[-1][0]
    by_name = {r.name: r for r in runs}
    verify = by_name.get("verify-only")
    noop = by_name.get("no-op Starlette")
    ceiling = by_name.get("generator ceiling (raw asyncio)")
    ingest_lat = _latency(ingest.result)
    ratios = Table(title="Ratios (req/s, same run)")
    ratios.add_column("ratio")
    ratios.add_column("value", justify="right")
    ratios.add_column("goal", justify="right")
    if noop:
        goal = PG_NOOP_RATIO_GOAL if dialect == "postgresql" else None
        _ratio_row(ratios, f"{ingest.name} / no-op Starlette", ingest, noop, goal)
    if verify:
        goal = PG_RATIO_GOAL if dialect == "postgresql" else SQLITE_RATIO_GOAL
        _ratio_row(ratios, f"{ingest.name} / verify-only", ingest, verify, goal)
    if noop and len(checks) > 1:
        _ratio_row(ratios, f"{checks[0][0].name} / no-op Starlette", checks[0][0], noop, None)
    if verify and noop:
        _ratio_row(ratios, "verify-only / no-op", verify, noop, None)
    if ceiling and noop:
        ratios.add_row(
            "generator ceiling / no-op",
            fmt_ratio(ceiling.result.requests_per_second, noop.result.requests_per_second),
            "> 1.5 (generator not the bottleneck)",
        )
    if len(checks) > 1:
        _ratio_row(ratios, f"{opts.workers} processes / 1 process", ingest, checks[0][0], None)
    if ratios.row_count:
        console.print(ratios)
    if dialect == "postgresql":
        met = "met" if ingest_lat.p99_ms < PG_P99_GOAL_MS else "not met"
        console.print(
            f"p99 on PostgreSQL at {opts.connections} connections: {fmt_ms(ingest_lat.p99_ms)} ms "
            f"(goal < {PG_P99_GOAL_MS:.0f} ms: {met})"
        )
    durability = Table(title="Durability (webhook_events read back after the servers stopped)")
    for column in ("receiver", "2xx acknowledged", "rows stored", "replays counted", "acked, missing"):
        durability.add_column(column, justify="right")
    lost = 0
    notes: list[str] = []
    for run, factory, url in checks:
        if isinstance(factory, WrkLoad):
            rows, replays = _stored_counts(url, factory.delivery_prefix())
            acked = run.result.acked_count if isinstance(run.result, WrkResult) else 0
            missing = max(0, acked - rows - replays)
            if replays:
                notes.append(
                    f"{run.name}: {replays:,} of {acked:,} acknowledged requests re-sent a pooled body under a new "
                    "dyte-uuid: replays (no row, the stored row's duplicate_count raised); raise --pool to avoid"
                )
        else:
            stored = _stored_ids(url, factory.run_id)
            acked_ids = {factory.delivery_id(n) for n in run.result.acked}
            # A request that re-sent a pooled body under a new dyte-uuid is a replay: the inbox stores one body once
            # (unique body digest), under the first delivery id that carried it. Such a request is durable when its
            # body is stored; only an acknowledged request whose id and body are both absent is lost.
            stored_bodies = {factory.body_index(factory.request_number(d)) for d in stored}
            replay_ids = {
                factory.delivery_id(n)
                for n in run.result.acked
                if factory.delivery_id(n) not in stored and factory.body_index(n) in stored_bodies
            }
            acked, rows, replays = len(acked_ids), len(stored), len(replay_ids)
            missing = len(acked_ids - stored - replay_ids)
            if factory.bodies_reused:
                notes.append(
                    f"{run.name}: {factory.bodies_reused:,} requests reused a pooled body (new dyte-uuid each): the "
                    f"inbox answers them as replays of the stored body ({replays:,} acknowledged so, none stored "
                    "twice); they take the dedupe path, not the insert path; raise --pool to avoid"
                )
        lost += missing
        durability.add_row(run.name, f"{acked:,}", f"{rows:,}", f"{replays:,}", f"{missing:,}")
    console.print(durability)
    if commits:
        console.print(
            f"group commit: {commits:,} PostgreSQL transactions committed during the run by the receiver under test "
            "(readiness checks included)"
        )
    for note in notes:
        console.print(f"note: {note}")
    if lost:
        console.print(f"[red]LOST: {lost} acknowledged deliveries are not stored[/red]")
        return 1
    console.print("nothing acknowledged lost (met)")
    return 0


def _run_external(opts: IngestOptions, bodies: list[bytes], signatures: list[str], console: Console) -> int:
    parts = urlsplit(opts.url or "")
    if parts.scheme != "http" or not parts.hostname:
        raise ValueError("--url must be http://host:port[/path] (plain HTTP/1.1)")
    host, port = parts.hostname, parts.port or 80
    path = parts.path or "/webhooks/dyte"
    factory = RequestFactory(bodies, signatures, host=parts.netloc, path=path, run_id=uuid.uuid4().hex[:8])
    console.print(
        f"external target {opts.url}: it must trust the signing key (pass --private-key with a key it trusts); "
        "rows are not read back"
    )
    result = _load(opts, factory, bodies, signatures, host, port)
    console.print(_results_table([TargetRun(f"external {opts.url}", result)], opts.connections, opts.rate))
    return 0
