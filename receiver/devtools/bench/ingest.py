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
from receiver.devtools.bench.stats import summarize_latencies
from receiver.providers.dyte.signature import generate_private_key, load_private_key, public_key_pem

__all__ = ["IngestOptions", "run_ingest", "default_pool_size"]

# Goals (issue 8): durable ingest vs verify-only, and p99 on PostgreSQL.
PG_RATIO_GOAL = 0.8
PG_P99_GOAL_MS = 25.0
SQLITE_RATIO_GOAL = 0.5


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
    opts: IngestOptions, factory: RequestFactory, bodies: list[bytes], signatures: list[str], host: str, port: int
) -> LoadResult:
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
) -> tuple[TargetRun, RequestFactory]:
    """Start ``server``, load it for ``opts.duration`` seconds (one round), stop it."""
    runs, factories = _run_interleaved([server], replace(opts, rounds=1), bodies, signatures, console)
    return runs[0], factories[0]


def _run_interleaved(
    servers: list[ServerProcess],
    opts: IngestOptions,
    bodies: list[bytes],
    signatures: list[str],
    console: Console,
) -> tuple[list[TargetRun], list[RequestFactory]]:
    """Load ``servers`` (all started first) one at a time in ``opts.rounds`` rounds, the order reversed every round.

    Each round measures ``opts.duration / opts.rounds`` seconds per target
    after ``opts.warmup`` seconds of warm-up; a target's rounds add up into
    one :class:`TargetRun` (``round_rates``: req/s of each round).
    """
    factories = [RequestFactory(bodies, signatures, host=f"{server.host}:{server.port}") for server in servers]
    runs = [TargetRun(server.name, LoadResult(), None, []) for server in servers]
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
        lat = summarize_latencies(run.result.latencies)
        table.add_row(
            run.name,
            fmt_rate(run.result.requests_per_second),
            fmt_ms(lat.p50_ms),
            fmt_ms(lat.p99_ms),
            fmt_ms(lat.p999_ms),
            fmt_ms(lat.max_ms),
            _statuses(run.result),
            "-" if run.server_cpu_share is None else f"{run.server_cpu_share:.0%}",
            f"{run.result.client_cpu_share:.0%}",
        )
    return table


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
    try:
        with scratch_database(opts.database_url, keep=opts.keep) as db_url:
            dialect = "postgresql" if db_url.startswith("postgresql") else "sqlite"
            console.print(f"database: {describe_url(db_url)} (scratch, migrated); server logs: {workdir}")
            env_common = {"log_format": "json", "log_level": opts.log_level}
            baseline_servers: dict[str, ServerProcess] = {}
            if opts.baseline:
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
                console.print("running baselines ...")
                for kind in ("raw", "noop"):
                    runs.append(_run_server_target(baseline_servers[kind], opts, bodies, signatures, console)[0])
            port = free_port(host)
            commits_before = _pg_commits(db_url) if dialect == "postgresql" else None
            server = ServerProcess(
                f"receiver ingest ({dialect})",
                receiver_serve_argv(host, port),
                bench_env(database_url=db_url, dyte_webhook_public_key=pem, reconcile_enabled="false", **env_common),
                host=host,
                port=port,
                log_path=workdir / "receiver.log",
                ready_path="/readyz",
            )
            if opts.baseline:
                console.print(
                    f"running verify-only and the receiver on {dialect}, interleaved in {opts.rounds} rounds ..."
                )
                pair, factories = _run_interleaved(
                    [baseline_servers["verify"], server], opts, bodies, signatures, console
                )
                runs.extend(pair)
                run, factory = pair[1], factories[1]
            else:
                console.print(f"running the receiver on {dialect} ...")
                run, factory = _run_server_target(server, opts, bodies, signatures, console)
                runs.append(run)
            # The server has stopped (graceful): everything it acknowledged is committed.
            stored = _stored_ids(db_url, factory.run_id)
            commits = (_pg_commits(db_url) - commits_before) if commits_before is not None else None
            exit_code = _report(console, opts, runs, run, factory, stored, dialect, commits)
            completed = True
    finally:
        if opts.keep or not completed:
            console.print(f"server logs kept in {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    return exit_code


def _round_ratios(ingest: TargetRun, verify: TargetRun) -> list[float]:
    """Receiver req/s over verify-only req/s, round by round (one value when they did not run in rounds)."""
    if ingest.round_rates and verify.round_rates and len(ingest.round_rates) == len(verify.round_rates):
        return [i / v for i, v in zip(ingest.round_rates, verify.round_rates, strict=False) if v > 0]
    rate = verify.result.requests_per_second
    return [ingest.result.requests_per_second / rate] if rate else []


def _report(
    console: Console,
    opts: IngestOptions,
    runs: list[TargetRun],
    ingest: TargetRun,
    factory: RequestFactory,
    stored: set[str],
    dialect: str,
    commits: int | None,
) -> int:
    console.print(_results_table(runs, opts.connections, opts.rate))
    by_name = {r.name: r for r in runs}
    verify = by_name.get("verify-only")
    noop = by_name.get("no-op Starlette")
    ceiling = by_name.get("generator ceiling (raw asyncio)")
    ingest_lat = summarize_latencies(ingest.result.latencies)

    if verify and noop:
        ratios = Table(title="Ratios (req/s)")
        ratios.add_column("ratio")
        ratios.add_column("value", justify="right")
        ratios.add_column("goal", justify="right")
        goal = PG_RATIO_GOAL if dialect == "postgresql" else SQLITE_RATIO_GOAL
        round_ratios = _round_ratios(ingest, verify)
        value = statistics.median(round_ratios) if round_ratios else 0.0
        met = "met" if value >= goal else "NOT met"
        rounds = f" (median of rounds {', '.join(f'{r:.2f}' for r in round_ratios)})" if len(round_ratios) > 1 else ""
        ratios.add_row(f"ingest ({dialect}) / verify-only{rounds}", f"{value:.2f}", f">= {goal} ({met})")
        ratios.add_row(
            "verify-only / no-op", fmt_ratio(verify.result.requests_per_second, noop.result.requests_per_second), ""
        )
        if ceiling:
            ratios.add_row(
                "generator ceiling / no-op",
                fmt_ratio(ceiling.result.requests_per_second, noop.result.requests_per_second),
                "> 1.5 (generator not the bottleneck)",
            )
        console.print(ratios)
    if dialect == "postgresql":
        met = "met" if ingest_lat.p99_ms < PG_P99_GOAL_MS else "NOT met"
        console.print(f"p99 on PostgreSQL: {fmt_ms(ingest_lat.p99_ms)} ms (goal < {PG_P99_GOAL_MS:.0f} ms: {met})")

    acked = {factory.delivery_id(n) for n in ingest.result.acked}
    # A request that re-sent a pooled body under a new dyte-uuid is a replay: the inbox stores one body once
    # (unique body digest), under the first delivery id that carried it. Such a request is durable when its
    # body is stored; only an acknowledged request whose id and body are both absent is lost.
    stored_bodies = {factory.body_index(factory.request_number(d)) for d in stored}
    replays = {
        factory.delivery_id(n)
        for n in ingest.result.acked
        if factory.delivery_id(n) not in stored and factory.body_index(n) in stored_bodies
    }
    missing = acked - stored - replays
    durability = Table(title="Durability (webhook_events read back after the server stopped)")
    for column in ("requests sent", "2xx acknowledged", "rows stored", "acked, missing", "stored, not acked"):
        durability.add_column(column, justify="right")
    durability.add_row(
        f"{ingest.result.sent:,}",
        f"{len(acked):,}",
        f"{len(stored):,}",
        f"{len(missing):,}",
        f"{len(stored - acked):,}",
    )
    console.print(durability)
    if commits:
        console.print(
            f"group commit: {commits:,} PostgreSQL transactions committed during the run "
            f"(~{len(stored) / commits:.1f} deliveries per commit, readiness checks included)"
        )
    if factory.bodies_reused:
        console.print(
            f"note: {factory.bodies_reused:,} requests reused a pooled body (new dyte-uuid each): the inbox answers "
            f"them as replays of the stored body ({len(replays):,} acknowledged so, none stored twice) and they "
            "take the dedupe path, not the insert path; raise --pool to avoid"
        )
    if missing:
        console.print(f"[red]LOST: {len(missing)} acknowledged deliveries are not stored[/red]")
        return 1
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
