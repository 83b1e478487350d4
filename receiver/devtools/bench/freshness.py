"""``receiver bench freshness``: how long after its acknowledgement a delivery shows in the attendance tables.

What runs (issue #23, item 3):

1. ``--rate x --seconds`` distinct ``meeting.participantJoined`` bodies
   (one new peer each, :func:`receiver.devtools.bench.payloads.participant_joined_bodies`)
   are generated and signed with a fresh RSA-2048 key before anything is timed;
2. on a scratch database (:mod:`receiver.devtools.bench.scratch`):
   ``receiver serve --no-worker`` and ``--workers`` ``receiver worker``
   processes, reconciliation off, JSON logs to files; the bench waits until
   every worker runs (on PostgreSQL: until each one LISTENs);
3. the load generator (:mod:`receiver.devtools.bench.loadgen`, open loop: each
   of ``--connections`` connections sends on a fixed schedule, whatever the
   answers) offers ``--rate`` deliveries/s for ``--seconds`` and records when
   each 2xx answer arrived;
4. meanwhile an observer thread reads the ``participant_intervals`` rows
   added since its last read every :data:`OBSERVE_INTERVAL_SECONDS` (its
   resolution), noting when each delivery's peer first appeared, and counts
   the unprocessed events (pending, processing, failed) once a second;
5. after the load, the bench waits up to ``--drain-timeout`` seconds for the
   rest to appear, stops the processes and prints freshness
   (appearance minus acknowledgement, per delivery) p50/p90/p99/max, the
   achieved rate, the queue depth over time and one ``met``/``not met``
   line per goal (p99 < 1 s, p50 < 200 ms; a delivery that never appeared
   counts as infinitely late).

Observer and load generator share one process and one clock
(``time.perf_counter``). Rows read by ``id > watermark``: on PostgreSQL two
workers may commit ids out of order, so ids above a gap are read again until
the gap fills or :data:`GAP_SECONDS` pass (:class:`IdWatermark`); a row that
still slipped through is found by a final full read and counted at the time
of that read (later than it was, never earlier).
"""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console
from rich.table import Table
from sqlalchemy import func, select

from receiver.devtools.bench.common import fmt_ms, fmt_rate, machine_summary
from receiver.devtools.bench.loadgen import LoadResult, client_loop_name, run_coroutine, run_load
from receiver.devtools.bench.payloads import RequestFactory, participant_joined_bodies, sign_all
from receiver.devtools.bench.scratch import describe_url, scratch_database
from receiver.devtools.bench.servers import (
    ServerProcess,
    _cpu_seconds,
    bench_env,
    free_port,
    receiver_serve_argv,
    terminate,
)
from receiver.devtools.bench.stats import percentile

__all__ = [
    "FreshnessOptions",
    "run_freshness",
    "IdWatermark",
    "freshness_seconds",
    "goal_verdicts",
    "depth_table",
    "FRESHNESS_P50_GOAL_MS",
    "FRESHNESS_P99_GOAL_MS",
]

#: Goals of issue #23: acknowledgement to effect in the attendance tables.
FRESHNESS_P50_GOAL_MS = 200.0
FRESHNESS_P99_GOAL_MS = 1000.0
#: Seconds between two reads of the observer (the resolution of every freshness figure).
OBSERVE_INTERVAL_SECONDS = 0.02
#: Seconds a gap in the interval ids is waited for before the observer reads past it.
GAP_SECONDS = 3.0
_UNPROCESSED = ("pending", "processing", "failed")


@dataclass
class FreshnessOptions:
    """Options of ``receiver bench freshness`` (see its ``--help``)."""

    rate: float = 1000.0
    seconds: float = 60.0
    workers: int = 2
    connections: int = 64
    database_url: str | None = None
    drain_timeout: float = 30.0
    log_level: str = "INFO"
    client_loop: str = "auto"
    keep: bool = False
    listen: bool = True


class IdWatermark:
    """Which ids of an append-only table are new, when rows may become visible out of id order.

    ``low`` is the highest id below which every id has been seen (or given
    up on): the next read is ``id > low``. Ids above a gap are remembered
    so that they are not reported twice; a gap (an id never seen while a
    higher one was) is waited for ``gap_seconds``, then skipped (ids can be
    lost for good: a rolled-back insert or an upsert that updated).
    """

    def __init__(self, gap_seconds: float = GAP_SECONDS) -> None:
        self.low = 0
        self.gap_seconds = gap_seconds
        self._above: set[int] = set()
        self._gap_since: float | None = None

    def add(self, ids: Iterable[int], now: float) -> list[int]:
        """Record the ids of one read at ``now`` (seconds, any monotonic clock); returns those not seen before, ascending."""
        new = sorted({i for i in ids if i > self.low and i not in self._above})
        self._above.update(new)
        self._advance()
        if self._above:
            if self._gap_since is None:
                self._gap_since = now
            elif now - self._gap_since >= self.gap_seconds:
                self.low = min(self._above) - 1
                self._advance()
                self._gap_since = now if self._above else None
        else:
            self._gap_since = None
        return new

    def _advance(self) -> None:
        while self.low + 1 in self._above:
            self.low += 1
            self._above.discard(self.low)


def freshness_seconds(acked: Iterable[tuple[int, float]], seen_at: dict[int, float]) -> tuple[list[float], int]:
    """Freshness of each acknowledged delivery: ``(seconds, missing)``.

    ``acked`` gives ``(delivery number, acknowledgement time)``; ``seen_at``
    maps a delivery number to when its effect was first seen (same clock).
    An effect seen before the acknowledgement arrived (the worker can be
    faster than the answer) counts as 0. Deliveries never seen are not in
    the list: they are counted in ``missing``.
    """
    values: list[float] = []
    missing = 0
    for number, acked_at in acked:
        seen = seen_at.get(number)
        if seen is None:
            missing += 1
        else:
            values.append(max(seen - acked_at, 0.0))
    return values, missing


def goal_verdicts(values: list[float], missing: int) -> list[tuple[str, float, bool]]:
    """``(goal label, measured ms, met)`` for the p50 and p99 goals; missing deliveries count as infinitely late."""
    ordered = sorted(values) + [math.inf] * missing
    p50 = percentile(ordered, 50) * 1000 if ordered else math.nan
    p99 = percentile(ordered, 99) * 1000 if ordered else math.nan
    return [
        (f"p50 < {FRESHNESS_P50_GOAL_MS:,.0f} ms", p50, p50 < FRESHNESS_P50_GOAL_MS),
        (f"p99 < {FRESHNESS_P99_GOAL_MS:,.0f} ms", p99, p99 < FRESHNESS_P99_GOAL_MS),
    ]


def depth_table(samples: list[tuple[float, int, int]], start: float, per_row: int = 10) -> Table:
    """The queue depth samples ``(time, unprocessed events, applied so far)``, one a second, ``per_row`` seconds a row.

    Column ``+k`` of the row of second ``t`` is the depth at second ``t + k`` of the run (counted from ``start``).
    """
    table = Table(title="Queue depth over time: unprocessed events (pending, processing, failed), sampled every second")
    table.add_column("from s", justify="right")
    for k in range(per_row):
        table.add_column(f"+{k}", justify="right")
    for first in range(0, len(samples), per_row):
        row = samples[first : first + per_row]
        cells = [f"{count:,}" for _, count, _ in row] + [""] * (per_row - len(row))
        table.add_row(f"{max(row[0][0] - start, 0.0):.0f}", *cells)
    return table


@dataclass
class _Observation:
    """What the observer thread saw (times are ``time.perf_counter()``)."""

    peer_seen_at: dict[str, float] = field(default_factory=dict)
    depth: list[tuple[float, int, int]] = field(default_factory=list)  # (time, unprocessed events, peers seen)
    reads: int = 0
    errors: list[str] = field(default_factory=list)


class _Observer(threading.Thread):
    """Polls ``participant_intervals`` (new rows) and the queue depth until stopped."""

    def __init__(self, url: str) -> None:
        super().__init__(name="freshness-observer", daemon=True)
        self.url = url
        self.result = _Observation()
        self.stop_event = threading.Event()

    def run(self) -> None:
        from receiver.db.engine import make_engine
        from receiver.db.models import ParticipantInterval, WebhookEvent

        engine = make_engine(self.url, pool_size=2, create=False)
        watermark = IdWatermark()
        seen = self.result.peer_seen_at
        next_depth = time.perf_counter()
        try:
            with engine.connect() as connection:
                while not self.stop_event.is_set():
                    started = time.perf_counter()
                    rows = connection.execute(
                        select(ParticipantInterval.id, ParticipantInterval.peer_id)
                        .where(ParticipantInterval.id > watermark.low)
                        .order_by(ParticipantInterval.id)
                    ).all()
                    connection.rollback()  # a fresh snapshot next time
                    self.result.reads += 1
                    new = set(watermark.add((row.id for row in rows), started))
                    for row in rows:
                        if row.id in new:
                            seen.setdefault(row.peer_id, started)
                    if started >= next_depth:
                        depth = connection.execute(
                            select(func.count()).select_from(WebhookEvent).where(WebhookEvent.status.in_(_UNPROCESSED))
                        ).scalar_one()
                        connection.rollback()
                        self.result.depth.append((started, int(depth), len(seen)))
                        next_depth += 1.0
                    self.stop_event.wait(max(OBSERVE_INTERVAL_SECONDS - (time.perf_counter() - started), 0.0))
        except Exception as exc:  # reported with the figures: a broken observer must not pass for a result
            self.result.errors.append(f"{type(exc).__name__}: {exc}"[:300])
        finally:
            engine.dispose()


def _all_peers(url: str) -> set[str]:
    from receiver.db.engine import make_engine
    from receiver.db.models import ParticipantInterval

    engine = make_engine(url, create=False)
    try:
        with engine.connect() as connection:
            return set(connection.execute(select(ParticipantInterval.peer_id)).scalars())
    finally:
        engine.dispose()


def _listeners(url: str) -> int:
    """Worker LISTEN connections on the scratch PostgreSQL database."""
    from sqlalchemy import text

    from receiver.db.engine import make_engine
    from receiver.processing.wakeup import LISTENER_APPLICATION_NAME

    engine = make_engine(url, create=False)
    try:
        with engine.connect() as connection:
            return int(
                connection.execute(
                    text(
                        "SELECT count(*) FROM pg_stat_activity "
                        "WHERE application_name = :name AND datname = current_database()"
                    ),
                    {"name": LISTENER_APPLICATION_NAME},
                ).scalar_one()
            )
    finally:
        engine.dispose()


def _start_workers(count: int, env: dict[str, str], workdir: Path) -> list[tuple[subprocess.Popen[bytes], Path]]:
    workers = []
    for index in range(count):
        log_path = workdir / f"worker-{index}.log"
        with open(log_path, "ab") as log_file:
            proc = subprocess.Popen(
                [sys.executable, "-m", "receiver.cli", "worker"],
                env=env,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        workers.append((proc, log_path))
    return workers


def _wait_for_workers(
    workers: list[tuple[subprocess.Popen[bytes], Path]], url: str, dialect: str, *, listen: bool, timeout: float = 60.0
) -> None:
    """Until every worker logged ``worker_started`` (and, on PostgreSQL, LISTENs). Raises RuntimeError."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for proc, log_path in workers:
            if proc.poll() is not None:
                tail = "\n".join(log_path.read_text(errors="replace").splitlines()[-8:])
                raise RuntimeError(f"a worker exited with {proc.returncode}; last log lines:\n{tail}")
        started = all("worker_started" in log_path.read_text(errors="replace") for _, log_path in workers)
        if started and (dialect != "postgresql" or not listen or _listeners(url) >= len(workers)):
            return
        time.sleep(0.1)
    raise RuntimeError(f"the workers were not running within {timeout:.0f} s (logs: {workers[0][1].parent})")


def _cpu_now(server: ServerProcess, workers: list[tuple[subprocess.Popen[bytes], Path]]) -> dict[str, float | None]:
    """CPU seconds used so far by serve, each worker and this process (load generator and observer)."""
    now: dict[str, float | None] = {"serve": server.cpu_seconds()}
    now.update({f"worker {i}": _cpu_seconds(proc.pid) for i, (proc, _) in enumerate(workers)})
    now["bench"] = time.process_time()
    return now


def _cpu_used(before: dict[str, float | None], after: dict[str, float | None]) -> dict[str, float]:
    return {
        name: end - start for name, end in after.items() if end is not None and (start := before.get(name)) is not None
    }


def _peer_ids(bodies: list[bytes]) -> list[str]:
    return [json.loads(body)["participant"]["peerId"] for body in bodies]


def run_freshness(opts: FreshnessOptions, console: Console) -> int:
    """Run the bench (see the module docstring); prints the figures and verdicts; returns 0.

    Raises:
        RuntimeError: a server or worker did not start.
    """
    from receiver.providers.dyte.signature import generate_private_key, public_key_pem

    console.print(f"[bold]receiver bench freshness[/bold] - {machine_summary()}")
    total = math.ceil(opts.rate * opts.seconds) + opts.connections + 16
    key = generate_private_key()
    started = time.perf_counter()
    bodies = participant_joined_bodies(total, seed=23)
    signatures = sign_all(bodies, key)
    peers = _peer_ids(bodies)
    number_of_peer = {peer: n for n, peer in enumerate(peers)}
    console.print(
        f"pre-signed {total:,} distinct participantJoined bodies (one new peer each) in "
        f"{time.perf_counter() - started:.1f} s"
    )
    console.print(
        f"load: open loop, {opts.rate:,.0f} deliveries/s offered for {opts.seconds:g} s on {opts.connections} "
        f"connections ({client_loop_name(opts.client_loop)}); {opts.workers} worker process(es) "
        f"({'LISTEN' if opts.listen else 'polling only'} on PostgreSQL); "
        f"observer reads every {OBSERVE_INTERVAL_SECONDS * 1000:.0f} ms"
    )
    workdir = Path(tempfile.mkdtemp(prefix="receiver-bench-freshness-"))
    host = "127.0.0.1"
    completed = False
    try:
        with scratch_database(opts.database_url, keep=opts.keep, label="fresh") as url:
            dialect = "postgresql" if url.startswith("postgresql") else "sqlite"
            console.print(f"database: {describe_url(url)} (scratch, migrated); logs: {workdir}")
            common = {
                "database_url": url,
                "reconcile_enabled": "false",
                "log_format": "json",
                "log_level": opts.log_level,
            }
            port = free_port(host)
            server = ServerProcess(
                f"receiver serve ({dialect})",
                receiver_serve_argv(host, port),
                bench_env(dyte_webhook_public_key=public_key_pem(key), **common),
                host=host,
                port=port,
                log_path=workdir / "serve.log",
                ready_path="/readyz",
            )
            workers = _start_workers(opts.workers, bench_env(worker_listen=str(opts.listen).lower(), **common), workdir)
            try:
                with server:
                    _wait_for_workers(workers, url, dialect, listen=opts.listen)
                    observer = _Observer(url)
                    observer.start()
                    factory = RequestFactory(bodies, signatures, host=f"{host}:{port}")
                    cpu_before = _cpu_now(server, workers)
                    load_started = time.perf_counter()
                    load = run_coroutine(
                        run_load(
                            host,
                            port,
                            factory.next,
                            connections=opts.connections,
                            duration=opts.seconds,
                            warmup=0.0,
                            sequence=lambda: factory.issued,
                            rate=opts.rate,
                        ),
                        opts.client_loop,
                    )
                    acked = [(n, t) for n, t in zip(load.acked, load.acked_at, strict=True) if n < total]
                    wanted = {peers[n] for n, _ in acked}
                    drain_deadline = time.monotonic() + opts.drain_timeout
                    while time.monotonic() < drain_deadline and observer.is_alive():
                        if wanted <= observer.result.peer_seen_at.keys():
                            break
                        time.sleep(0.1)
                    cpu = _cpu_used(cpu_before, _cpu_now(server, workers))
                    wall = time.perf_counter() - load_started
                    observer.stop_event.set()
                    observer.join(10)
                    final_read_at = time.perf_counter()
                    unseen = wanted - observer.result.peer_seen_at.keys()
                    late = unseen & _all_peers(url) if unseen else set()
            finally:
                for proc, _ in workers:
                    terminate(proc)
            observation = observer.result
            seen_at = {number_of_peer[p]: t for p, t in observation.peer_seen_at.items() if p in number_of_peer}
            seen_at.update({number_of_peer[p]: final_read_at for p in late})
            _report(console, opts, load, acked, seen_at, observation, load_started, len(late))
            console.print(
                f"CPU seconds in the {wall:.1f} s of load and drain (PostgreSQL not counted): "
                + ", ".join(f"{name} {seconds:.1f}" for name, seconds in cpu.items())
            )
            completed = True
    finally:
        if opts.keep or not completed:
            console.print(f"logs kept in {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    return 0


def _report(
    console: Console,
    opts: FreshnessOptions,
    load: LoadResult,
    acked: list[tuple[int, float]],
    seen_at: dict[int, float],
    observation: _Observation,
    load_started: float,
    late: int,
) -> None:
    values, missing = freshness_seconds(acked, seen_at)
    ordered = sorted(values)
    errors = sum(count for status, count in load.statuses.items() if not 200 <= status < 300)
    errors += sum(load.errors.values())
    table = Table(title=f"Freshness: acknowledgement -> participant row visible ({opts.workers} workers)")
    for column in ("offered/s", "acked/s", "acked", "errors", "applied", "p50 ms", "p90 ms", "p99 ms", "max ms"):
        table.add_column(column, justify="right")
    ms = [percentile(ordered, q) * 1000 if ordered else math.nan for q in (50, 90, 99)]
    table.add_row(
        fmt_rate(opts.rate),
        fmt_rate(len(acked) / opts.seconds),
        f"{len(acked):,}",
        f"{errors:,}",
        f"{len(values):,}",
        *(fmt_ms(v) for v in ms),
        fmt_ms(ordered[-1] * 1000 if ordered else math.nan),
    )
    console.print(table)

    console.print(depth_table(observation.depth, load_started))
    peak = max((count for _, count, _ in observation.depth), default=0)
    console.print(f"queue depth: max {peak:,} over {len(observation.depth)} samples")

    if late:
        console.print(f"{late:,} row(s) found only by the final read (counted at the time of that read)")
    if missing:
        console.print(
            f"[bold red]{missing:,} acknowledged deliveries never appeared[/bold red] within "
            f"--drain-timeout {opts.drain_timeout:g} s (counted as infinitely late)"
        )
    for error in observation.errors:
        console.print(f"[bold red]observer failed[/bold red]: {error}")
    for label, measured, met in goal_verdicts(values, missing):
        verdict = "met" if met and not observation.errors else "not met"
        console.print(f"goal freshness {label}: {verdict} (measured {fmt_ms(measured)} ms)")
    try:
        load_average = f"{os.getloadavg()[0]:.2f}"
    except OSError:
        load_average = "unknown"
    console.print(f"load average at the end: {load_average}")
