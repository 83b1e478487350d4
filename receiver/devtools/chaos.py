"""``receiver bench chaos``: the whole service under faults, checked against the sandbox's ground truth.

What runs (all on 127.0.0.1, everything stopped and removed at the end):

* the Dyte sandbox (REST API + key document) in a thread, answering a share
  of REST calls with 500, 429 (``retry-after``) or a pause longer than the
  client's timeout (``DYTE_API_TIMEOUT_SECONDS=2`` for the run);
* a scratch database (PostgreSQL when 127.0.0.1:5432 answers, else a SQLite
  file), migrated; on PostgreSQL the services reach it through a
  :class:`~receiver.devtools.tcpproxy.TcpProxy` so it can be made unreachable;
* ``receiver serve --no-worker`` and ``--workers`` x ``receiver worker`` as
  subprocesses (reconcile delay 0, a short lease, a short stale-session time);
* the world's webhooks, POSTed like Dyte does by :func:`receiver.sandbox.deliver`
  with a :class:`~receiver.sandbox.FaultPlan` (drops, duplicates, re-ordering)
  and Dyte's retries of non-2xx answers.

Mid-run one worker is SIGKILLed while it holds claimed events and is started
again (its claims are taken over once the lease passes), and on PostgreSQL the
database is cut for a few seconds (the receiver must answer 503 and recover
without a restart; the workers must survive). Then the queue and the
reconciliation tasks are drained and the reports are compared with the truth.
Exit 1 if an acknowledged delivery is missing, a row is duplicated, a report
differs from the truth, or a process misbehaved.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from queue import Empty, Queue
from typing import Any

import click
import httpx
from sqlalchemy import create_engine, text
from sqlalchemy.engine import Engine, make_url

from receiver.db.engine import make_engine, normalise_url
from receiver.devtools.bench.scratch import scratch_database
from receiver.devtools.bench.servers import free_port, terminate
from receiver.devtools.tcpproxy import TcpProxy, proxied_url
from receiver.providers.dyte.signature import generate_private_key
from receiver.reports.queries import attendance_report, recordings_report
from receiver.sandbox import (
    FaultPlan,
    RestFaults,
    SandboxState,
    build_scenario,
    deliver,
    events_for,
    start_sandbox_in_thread,
)
from receiver.sandbox.groundtruth import compare_attendance, compare_recordings, expected_attendance
from receiver.sandbox.webhooks import plan_schedule

__all__ = [
    "ChaosOptions",
    "ChaosReport",
    "ChildProcess",
    "chaos_command",
    "default_database_url",
    "free_port",
    "run_chaos",
    "serve_argv",
    "service_env",
    "worker_argv",
]

#: Where the default scratch PostgreSQL database is created (if the server answers).
DEFAULT_PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
#: Service settings of the caller's environment that never reach the children.
_STRIPPED_ENV = (
    "DATABASE_URL",
    "DYTE_",
    "PUBLIC_URL",
    "RECONCILE",
    "WORKER_",
    "LOG_",
    "SUBSCRIPTION",
    "STALE_",
    "MAX_BODY",
    "API_TOKENS",
)


# ---------------------------------------------------------------------------
# Databases and processes (also used by tests/test_resilience.py)
# ---------------------------------------------------------------------------


def postgres_answers(url: str = DEFAULT_PG_URL) -> bool:
    """True when the PostgreSQL server of ``url`` accepts a login and ``SELECT 1``."""
    parsed = make_url(normalise_url(url))
    try:
        with socket.create_connection((parsed.host or "127.0.0.1", parsed.port or 5432), timeout=1):
            pass
        engine = create_engine(parsed, connect_args={"connect_timeout": 3})
        try:
            with engine.connect() as connection:
                connection.execute(text("SELECT 1"))
        finally:
            engine.dispose()
    except Exception:  # OSError or any driver error: not usable
        return False
    return True


def default_database_url() -> str | None:
    """Where to create the scratch database: local PostgreSQL when it answers, else None (SQLite)."""
    return DEFAULT_PG_URL if postgres_answers(DEFAULT_PG_URL) else None


def service_env(**settings: Any) -> dict[str, str]:
    """The caller's environment without service settings, plus ``settings`` (names upper-cased)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(_STRIPPED_ENV)}
    env.update({k.upper(): str(v) for k, v in settings.items() if v is not None})
    env["PYTHONUNBUFFERED"] = "1"
    return env


def serve_argv(port: int, host: str = "127.0.0.1") -> list[str]:
    """``receiver serve --no-worker --no-migrate`` on ``host:port``."""
    return [
        sys.executable,
        "-m",
        "receiver.cli",
        "serve",
        "--no-worker",
        "--no-migrate",
        "--host",
        host,
        "--port",
        str(port),
    ]


def worker_argv(*extra: str) -> list[str]:
    """``receiver worker`` (plus ``extra`` options, e.g. ``--once``)."""
    return [sys.executable, "-m", "receiver.cli", "worker", *extra]


class ChildProcess:
    """A service subprocess with its output in a log file; stopped with SIGTERM, then SIGKILL.

    ``worker_id_prefix`` is what the worker ids of this process start with
    (``host:pid:``, see :func:`receiver.processing.worker.default_worker_id`).
    """

    def __init__(
        self, name: str, argv: list[str], env: dict[str, str], log_path: Path, *, cwd: Path | None = None
    ) -> None:
        self.name = name
        self.argv = argv
        self.env = env
        self.log_path = log_path
        self.cwd = cwd or log_path.parent
        self.proc: subprocess.Popen[bytes] | None = None
        self._log: Any = None

    def start(self) -> ChildProcess:
        """Start the process (does not wait for readiness)."""
        self._log = open(self.log_path, "ab")  # noqa: SIM115
        self.proc = subprocess.Popen(
            self.argv, env=self.env, cwd=self.cwd, stdout=self._log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
        )
        return self

    @property
    def pid(self) -> int:
        """The process id."""
        assert self.proc is not None
        return self.proc.pid

    @property
    def worker_id_prefix(self) -> str:
        """``host:pid:`` - the prefix of the worker ids this process uses."""
        return f"{socket.gethostname()}:{self.pid}:"

    def alive(self) -> bool:
        """True while the process runs."""
        return self.proc is not None and self.proc.poll() is None

    def signal(self, sig: int) -> None:
        """Send ``sig`` to this process (only)."""
        if self.alive():
            assert self.proc is not None
            self.proc.send_signal(sig)

    def wait(self, timeout: float) -> int | None:
        """Wait for the exit; returns the exit code, or None if it still runs after ``timeout`` seconds."""
        assert self.proc is not None
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def stop(self, timeout: float = 30.0) -> int | None:
        """SIGTERM, wait up to ``timeout`` seconds, then SIGKILL; returns the exit code (idempotent)."""
        if self.proc is None:
            return None
        code = terminate(self.proc, timeout)
        if self._log is not None:
            self._log.close()
            self._log = None
        return code

    def log_tail(self, lines: int = 10) -> str:
        """The last ``lines`` lines of the process's output."""
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


def http_get(base_url: str, path: str, timeout: float = 3.0) -> tuple[int | None, dict[str, Any] | None]:
    """GET ``base_url + path``; returns (status, JSON body) or (None, None) when nothing answered."""
    parsed = httpx.URL(base_url)
    connection = http.client.HTTPConnection(parsed.host, parsed.port, timeout=timeout)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        raw = response.read()
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        return response.status, body
    except OSError:
        return None, None
    finally:
        connection.close()


def wait_until_ready(process: ChildProcess, base_url: str, *, path: str = "/readyz", timeout: float = 30.0) -> None:
    """Poll ``path`` until 200.

    Raises:
        RuntimeError: the process exited or was not ready in time (with its last log lines).
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not process.alive():
            raise RuntimeError(f"{process.name} exited early; last log lines:\n{process.log_tail()}")
        if http_get(base_url, path, timeout=2)[0] == 200:
            return
        time.sleep(0.1)
    raise RuntimeError(f"{process.name} was not ready within {timeout:.0f} s; last log lines:\n{process.log_tail()}")


# ---------------------------------------------------------------------------
# The run
# ---------------------------------------------------------------------------


@dataclass
class ChaosOptions:
    """Knobs of one chaos run (see ``receiver bench chaos --help``)."""

    sessions: int = 50
    participants: int = 520
    drop: float = 0.2
    duplicate: float = 0.3
    reorder: float = 0.3
    rest_error_rate: float = 0.1
    database_url: str | None = None
    use_default_postgres: bool = True
    workers: int = 2
    seed: int = 7
    kill_worker: bool = True
    cut_database: bool = True
    cut_seconds: float = 4.0
    lease_seconds: float = 10.0
    rest_timeout_seconds: float = 2.0
    retry_delay: float = 0.5
    concurrency: int = 8
    drain_timeout: float = 240.0
    keep: bool = False


@dataclass
class ChaosReport:
    """Everything a run measured; ``problems`` empty means the run passed."""

    database: str = ""
    dialect: str = ""
    sessions: int = 0
    peers: int = 0
    recordings: int = 0
    livestreams: int = 0
    deliveries_planned: int = 0
    scheduled_posts: int = 0
    dropped: int = 0
    duplicated: int = 0
    reordered: int = 0
    http_requests: int = 0
    retried: int = 0
    acknowledged: int = 0
    status_counts: Counter = field(default_factory=Counter)
    failed_after_retries: int = 0
    failed_by_status: dict[str, int] = field(default_factory=dict)
    rest_calls: int = 0
    rest_faults: Counter = field(default_factory=Counter)
    kill: dict[str, Any] = field(default_factory=dict)
    cut: dict[str, Any] = field(default_factory=dict)
    sweeper_used: bool = False
    unique_sent: int = 0
    unique_acknowledged: int = 0
    event_rows: int = 0
    unique_stored: int = 0
    acknowledged_missing: list[str] = field(default_factory=list)
    stored_never_sent: list[str] = field(default_factory=list)
    event_status: dict[str, int] = field(default_factory=dict)
    task_status: dict[str, int] = field(default_factory=dict)
    duplicate_rows: dict[str, int] = field(default_factory=dict)
    sessions_equal: int = 0
    recordings_equal: int = 0
    recordings_total: int = 0
    attendance_problems: list[str] = field(default_factory=list)
    recording_problems: list[str] = field(default_factory=list)
    exit_codes: dict[str, int | None] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    log_dir: str | None = None

    @property
    def ok(self) -> bool:
        """True when nothing differs from the truth and every process behaved."""
        return not self.problems


class _DeliveryMonitor:
    """httpx event hooks around :func:`deliver`: per-uuid outcomes, status counts and a pause gate.

    ``milestones`` maps a request number (1-based, retries included) to a
    name; reaching it puts the name on ``reached``; names in ``pausing``
    also hold every further request until :meth:`resume`.
    """

    def __init__(self, milestones: dict[int, str], pausing: set[str]) -> None:
        self.milestones = dict(milestones)
        self.pausing = pausing
        self.requests = 0
        self.statuses: Counter = Counter()
        self.attempted: set[str] = set()
        self.acknowledged: set[str] = set()
        self.reached: Queue[str] = Queue()
        self._paused = threading.Event()
        self.cut_active = threading.Event()
        self.statuses_during_cut: Counter = Counter()

    def resume(self) -> None:
        """Let held requests go."""
        self._paused.clear()

    async def on_request(self, request: httpx.Request) -> None:
        while self._paused.is_set():
            await asyncio.sleep(0.01)
        self.requests += 1
        self.attempted.add(request.headers.get("dyte-uuid", ""))
        name = self.milestones.pop(self.requests, None)
        if name is not None:
            if name in self.pausing:
                self._paused.set()
            self.reached.put(name)

    async def on_response(self, response: httpx.Response) -> None:
        self.statuses[response.status_code] += 1
        if self.cut_active.is_set():
            self.statuses_during_cut[response.status_code] += 1
        if 200 <= response.status_code < 300:
            self.acknowledged.add(response.request.headers.get("dyte-uuid", ""))


def _claims(monitor: Engine, prefix: str | None = None) -> tuple[int, int]:
    """(events in processing, reconcile tasks under a live lease), of workers whose id starts with ``prefix`` (all if None)."""
    who = "" if prefix is None else " AND locked_by LIKE :prefix"
    params = {"prefix": prefix + "%"} if prefix else {}
    with monitor.connect() as connection:
        events = connection.execute(
            text(f"SELECT count(*) FROM webhook_events WHERE status = 'processing'{who}"), params
        ).scalar_one()
        tasks = connection.execute(
            text(f"SELECT count(*) FROM reconcile_tasks WHERE status = 'pending' AND locked_by IS NOT NULL{who}"),
            params,
        ).scalar_one()
    return int(events), int(tasks)


def _drain_state(monitor: Engine) -> dict[str, int]:
    with monitor.connect() as connection:
        events = dict(connection.execute(text("SELECT status, count(*) FROM webhook_events GROUP BY status")).all())
        tasks = dict(connection.execute(text("SELECT status, count(*) FROM reconcile_tasks GROUP BY status")).all())
        unreconciled = connection.execute(
            text("SELECT count(*) FROM sessions WHERE reconciled_at IS NULL")
        ).scalar_one()
    return {
        "events_open": sum(int(events.get(s, 0)) for s in ("pending", "processing", "failed")),
        "events_dead": int(events.get("dead", 0)),
        "tasks_pending": int(tasks.get("pending", 0)),
        "tasks_dead": int(tasks.get("dead", 0)),
        "sessions_unreconciled": int(unreconciled),
    }


DUPLICATE_QUERIES = {
    "participant_intervals (session_id, peer_id)": "SELECT session_id, peer_id FROM participant_intervals GROUP BY session_id, peer_id HAVING count(*) > 1",
    "recording_status_history (recording_id, status, source)": "SELECT recording_id, status, source FROM recording_status_history GROUP BY recording_id, status, source HAVING count(*) > 1",
    "recording_status_history webhook copies (recording_id, status)": (
        "SELECT recording_id, status FROM recording_status_history WHERE source LIKE 'event:%' "
        "GROUP BY recording_id, status HAVING count(*) > 1"
    ),
    "livestream_status_history (livestream_id, status, source)": "SELECT livestream_id, status, source FROM livestream_status_history GROUP BY livestream_id, status, source HAVING count(*) > 1",
    "webhook_events (delivery_id)": "SELECT delivery_id FROM webhook_events GROUP BY delivery_id HAVING count(*) > 1",
    "reconcile_tasks (kind, object_id)": "SELECT kind, object_id FROM reconcile_tasks GROUP BY kind, object_id HAVING count(*) > 1",
}


def duplicate_rows(monitor: Engine) -> dict[str, int]:
    """For each uniqueness the data must have: how many keys occur more than once (all 0 when sound).

    ``recording history webhook copies`` counts a recording status stored
    from two *different* webhook events: the same status delivered twice
    under two delivery ids would show there.
    """
    result: dict[str, int] = {}
    with monitor.connect() as connection:
        for name, query in DUPLICATE_QUERIES.items():
            result[name] = len(connection.execute(text(query)).all())
    return result


class _OneRecording:
    def __init__(self, truth: dict[str, Any]) -> None:
        self._truth = truth

    def recordings_final(self) -> list[dict[str, Any]]:
        return [self._truth]


def compare_with_truth(engine: Engine, world: Any, report: ChaosReport) -> None:
    """Fill the per-session and per-recording comparisons of ``report``."""
    rows = attendance_report(engine)
    expected = expected_attendance(world)
    known = {s.id for s in world.sessions}
    for row in rows:
        if row["session_id"] not in known:
            report.attendance_problems.append(f"unexpected session {row['session_id']}")
    for session in world.sessions:
        problems = compare_attendance(
            [r for r in rows if r["session_id"] == session.id],
            {k: v for k, v in expected.items() if k[0] == session.id},
        )
        if problems:
            report.attendance_problems.extend(problems)
        else:
            report.sessions_equal += 1
    recordings = recordings_report(engine)
    finals = world.recordings_final()
    report.recordings_total = len(finals)
    for truth in finals:
        problems = compare_recordings(recordings, _OneRecording(truth))
        if problems:
            report.recording_problems.extend(problems)
        else:
            report.recordings_equal += 1


def _say(console: Any, message: str) -> None:
    if console is not None:
        console.print(f"[dim]{time.strftime('%H:%M:%S')}[/dim] {message}")


def run_chaos(options: ChaosOptions, console: Any = None) -> ChaosReport:
    """Run the whole chaos scenario (see the module docstring); returns the measured :class:`ChaosReport`.

    Raises:
        RuntimeError: a service did not start (its last log lines are in the message).
    """
    report = ChaosReport()
    started = time.monotonic()
    where = options.database_url
    if where is None and options.use_default_postgres:
        where = default_database_url()
    world = build_scenario(seed=options.seed, sessions=options.sessions, participants=options.participants)
    deliveries = events_for(world)
    report.sessions, report.peers = len(world.sessions), sum(len(s.peers) for s in world.sessions)
    report.recordings, report.livestreams = len(world.recordings), len(world.livestreams)
    report.deliveries_planned = len(deliveries)
    faults = FaultPlan(
        drop=options.drop, duplicate=options.duplicate, reorder=options.reorder, delay_seconds=0.5, seed=options.seed
    )
    main, held, _ = plan_schedule(deliveries, faults)
    report.scheduled_posts = len(main) + len(held)
    share = options.rest_error_rate / 3
    rest_faults = RestFaults(
        error_rate=share,
        rate_limit_rate=share,
        timeout_rate=share,
        timeout_seconds=options.rest_timeout_seconds * 2,
        retry_after_seconds=1,
        seed=options.seed,
    )
    key = generate_private_key()
    state = SandboxState(world=world, private_key=key, rest_faults=rest_faults)
    log_dir = Path(tempfile.mkdtemp(prefix="receiver-chaos-"))
    report.log_dir = str(log_dir)
    children: list[ChildProcess] = []
    proxy: TcpProxy | None = None
    sandbox_url, stop_sandbox = start_sandbox_in_thread(state)
    try:
        with scratch_database(where, keep=options.keep, label="chaos") as direct_url:
            report.database = make_url(direct_url).render_as_string(hide_password=True)
            report.dialect = "postgresql" if direct_url.startswith("postgresql") else "sqlite"
            service_url = direct_url
            if report.dialect == "postgresql":
                parsed = make_url(direct_url)
                proxy = TcpProxy(parsed.host or "127.0.0.1", parsed.port or 5432).start()
                service_url = proxied_url(direct_url, proxy.port)
            _say(console, f"scratch database {report.database} ({report.dialect}); logs in {log_dir}")
            monitor = create_engine(
                normalise_url(direct_url),
                **({"connect_args": {"connect_timeout": 5}} if report.dialect == "postgresql" else {}),
            )
            env = service_env(
                database_url=service_url,
                dyte_webhook_keys_url=f"{sandbox_url}/.well-known/webhooks.json",
                dyte_api_base_url=f"{sandbox_url}/v2",
                dyte_org_id=state.org_id,
                dyte_api_key=state.api_key,
                dyte_api_timeout_seconds=options.rest_timeout_seconds,
                reconcile_delay_seconds=0,
                stale_session_seconds=1,
                worker_lease_seconds=options.lease_seconds,
                worker_poll_seconds=0.2,
                subscription_ensure_on_start="false",
                log_format="json",
                log_level="INFO",
            )
            try:
                _run_services(
                    options, report, env, log_dir, children, proxy, monitor, deliveries, faults, key, console, started
                )
                compare_with_truth(make_engine(direct_url), world, report)
            finally:
                for child in children:
                    child.stop(20)
                monitor.dispose()
    finally:
        if proxy is not None:
            proxy.stop()
        stop_sandbox()
    report.rest_calls = len(state.calls)
    report.rest_faults = Counter(
        {
            "500": sum(1 for c in state.calls if c[2] == 500),
            "429": sum(1 for c in state.calls if c[2] == 429),
            "timeout": sum(1 for c in state.calls if c[2] == 504),
        }
    )
    report.timings["total"] = time.monotonic() - started
    _final_checks(report)
    if report.ok and not options.keep:
        shutil.rmtree(log_dir, ignore_errors=True)
        report.log_dir = None
    return report


def _run_services(
    options: ChaosOptions,
    report: ChaosReport,
    env: dict[str, str],
    log_dir: Path,
    children: list[ChildProcess],
    proxy: TcpProxy | None,
    monitor: Engine,
    deliveries: list[Any],
    faults: FaultPlan,
    key: Any,
    console: Any,
    started: float,
) -> None:
    port = free_port()
    receiver = ChildProcess("receiver", serve_argv(port), env, log_dir / "receiver.log")
    children.append(receiver.start())
    workers: list[ChildProcess] = []
    for index in range(options.workers):
        worker = ChildProcess(f"worker-{index}", worker_argv(), env, log_dir / f"worker-{index}.log")
        workers.append(worker.start())
        children.append(worker)
    base_url = f"http://127.0.0.1:{port}"
    wait_until_ready(receiver, base_url)
    receiver_pid = receiver.pid
    _say(console, f"receiver pid {receiver.pid} on {base_url}; workers {[w.pid for w in workers]}")

    milestones: dict[int, str] = {}
    if options.kill_worker and workers:
        milestones[max(1, report.scheduled_posts * 25 // 100)] = "kill"
    if options.cut_database and proxy is not None:
        milestones[max(2, report.scheduled_posts * 55 // 100)] = "cut"
    monitor_hooks = _DeliveryMonitor(milestones, pausing={"kill", "cut"})
    outcome: dict[str, Any] = {}

    def send() -> None:
        async def go() -> Any:
            async with httpx.AsyncClient(
                timeout=3.0,
                event_hooks={"request": [monitor_hooks.on_request], "response": [monitor_hooks.on_response]},
            ) as client:
                return await deliver(
                    deliveries,
                    f"{base_url}/webhooks/dyte",
                    key,
                    faults=faults,
                    client=client,
                    concurrency=options.concurrency,
                    retry_delay=options.retry_delay,
                )

        try:
            outcome["stats"] = asyncio.run(go())
        except BaseException as exc:  # reported by the caller
            outcome["error"] = exc

    sender = threading.Thread(target=send, name="chaos-deliver", daemon=True)
    delivery_started = time.monotonic()
    sender.start()
    pending_actions = set(milestones.values())
    while sender.is_alive() or pending_actions:
        try:
            name = monitor_hooks.reached.get(timeout=0.05)
        except Empty:
            if sender.is_alive() or not pending_actions:
                continue
            name = sorted(pending_actions)[0]  # delivery ended before the milestone: act now
        pending_actions.discard(name)
        # Each action lets the paused deliveries go itself, at its right moment.
        if name == "kill":
            _kill_and_restart(options, report, env, log_dir, workers, children, monitor, monitor_hooks, console)
        elif name == "cut" and proxy is not None:
            _cut_database(options, report, proxy, monitor, monitor_hooks, base_url, workers, console)
    sender.join()
    report.timings["delivery"] = time.monotonic() - delivery_started
    if "error" in outcome:
        raise RuntimeError(f"delivery failed: {outcome['error']!r}")
    stats = outcome["stats"]
    report.dropped, report.duplicated, report.reordered = stats.dropped, stats.duplicated, stats.reordered
    report.http_requests, report.retried = stats.attempts, stats.retried
    report.acknowledged = stats.sent
    report.failed_after_retries = stats.failed
    report.failed_by_status = {str(k): v for k, v in stats.failed_status.items()}
    report.status_counts = monitor_hooks.statuses
    report.unique_sent = len(monitor_hooks.attempted)
    report.unique_acknowledged = len(monitor_hooks.acknowledged)
    _say(
        console,
        f"delivered in {report.timings['delivery']:.1f} s: {stats.attempts} requests, {stats.sent} acknowledged, "
        f"{monitor_hooks.statuses.get(503, 0)} x 503, {stats.failed} given up",
    )
    if receiver.pid != receiver_pid or not receiver.alive():
        report.problems.append("the receiver process died or was restarted")

    drain_started = time.monotonic()
    _wait_drained(options, report, env, log_dir, children, monitor, console, drain_started)
    report.timings["drain"] = time.monotonic() - drain_started

    with monitor.connect() as connection:
        stored = set(connection.execute(text("SELECT delivery_id FROM webhook_events")).scalars())
        report.event_rows = int(connection.execute(text("SELECT count(*) FROM webhook_events")).scalar_one())
        report.event_status = dict(
            connection.execute(text("SELECT status, count(*) FROM webhook_events GROUP BY status")).all()
        )
        report.task_status = dict(
            connection.execute(text("SELECT status, count(*) FROM reconcile_tasks GROUP BY status")).all()
        )
        if report.kill.get("victim_prefix"):
            report.kill["claims_left_with_victim"] = int(
                connection.execute(
                    text("SELECT count(*) FROM webhook_events WHERE locked_by LIKE :p"),
                    {"p": report.kill["victim_prefix"] + "%"},
                ).scalar_one()
            )
    report.unique_stored = len(stored)
    report.acknowledged_missing = sorted(monitor_hooks.acknowledged - stored)
    report.stored_never_sent = sorted(stored - monitor_hooks.attempted)
    report.duplicate_rows = duplicate_rows(monitor)

    for child in workers:
        # A worker still starting (the replacement, when the drain was quick)
        # has no SIGTERM handler yet: let it finish starting first.
        deadline = time.monotonic() + 30.0
        while (
            child.alive()
            and time.monotonic() < deadline
            and "worker_started" not in child.log_path.read_text(errors="replace")
        ):
            time.sleep(0.05)
        if child.alive():
            child.signal(signal.SIGTERM)
    for child in workers:
        if child.proc is not None and child.name.endswith("(killed)"):
            continue
        report.exit_codes[f"{child.name} pid {child.pid}"] = child.wait(30) if child.proc else None
    receiver.signal(signal.SIGTERM)
    report.exit_codes[f"receiver pid {receiver.pid}"] = receiver.wait(30)


def _sqlite_write_lock_free(monitor: Engine) -> bool:
    """True when no connection holds the SQLite write lock of ``monitor``'s database right now."""
    import sqlite3

    probe = sqlite3.connect(make_url(monitor.url).database, timeout=0, isolation_level=None)
    try:
        probe.execute("BEGIN IMMEDIATE")
        probe.execute("ROLLBACK")
        return True
    except sqlite3.OperationalError:
        return False
    finally:
        probe.close()


def _pause_without_write_lock(children: list[ChildProcess], monitor: Engine, timeout: float = 10.0) -> None:
    """SIGSTOP ``children`` at a moment none of them holds a write lock others would wait on.

    PostgreSQL: any moment (row locks of a stopped worker are skipped by the
    others' ``SKIP LOCKED`` claims). SQLite: one writer at a time, so stop,
    check the write lock is free, else let them run a little and retry.
    """
    deadline = time.monotonic() + timeout
    while True:
        for child in children:
            child.signal(signal.SIGSTOP)
        if (
            monitor.dialect.name != "sqlite"
            or not children
            or _sqlite_write_lock_free(monitor)
            or time.monotonic() > deadline
        ):
            return
        for child in children:
            child.signal(signal.SIGCONT)
        time.sleep(0.002)


def _kill_and_restart(
    options: ChaosOptions,
    report: ChaosReport,
    env: dict[str, str],
    log_dir: Path,
    workers: list[ChildProcess],
    children: list[ChildProcess],
    monitor: Engine,
    hooks: _DeliveryMonitor,
    console: Any,
) -> None:
    """SIGKILL worker 0 at a moment it holds claimed events (and, if possible, no reconcile task), then start a new one.

    Deliveries are held at the kill milestone until the other workers are
    paused, so the events that follow go to the victim.
    """
    victim = workers[0]
    prefix = victim.worker_id_prefix
    deadline = time.monotonic() + 10.0
    events = tasks = 0
    # Claims last only milliseconds now, so sample with the victim stopped:
    # SIGSTOP freezes what it holds while the claims are read. The other
    # workers pause meanwhile, so the new events go to the victim.
    others = [w for w in workers[1:] if w.alive()]
    _pause_without_write_lock(others, monitor)
    hooks.resume()
    try:
        while time.monotonic() < deadline:
            victim.signal(signal.SIGSTOP)
            events, tasks = _claims(monitor, prefix)
            if events and not tasks:
                break
            victim.signal(signal.SIGCONT)
            time.sleep(0.003)
        victim.signal(signal.SIGKILL)
    finally:
        for other in others:
            other.signal(signal.SIGCONT)
    code = victim.wait(10)
    victim.name += " (killed)"
    report.kill = {
        "victim_pid": victim.pid,
        "victim_prefix": prefix,
        "event_claims_at_kill": events,
        "task_claims_at_kill": tasks,
        "exit_code": code,
        "killed_at": round(time.monotonic(), 3),
    }
    replacement = ChildProcess("worker-0b", worker_argv(), env, log_dir / "worker-0b.log").start()
    workers[0] = replacement
    workers.append(victim)  # keep it listed for exit codes (skipped) and cleanup
    children.append(replacement)
    report.kill["replacement_pid"] = replacement.pid
    _say(
        console,
        f"SIGKILLed worker pid {victim.pid} holding {events} claimed event(s); restarted as pid {replacement.pid}",
    )


def _cut_database(
    options: ChaosOptions,
    report: ChaosReport,
    proxy: TcpProxy,
    monitor: Engine,
    hooks: _DeliveryMonitor,
    base_url: str,
    workers: list[ChildProcess],
    console: Any,
) -> None:
    """Make the database unreachable for ``cut_seconds`` while webhooks keep coming, then restore it."""
    # Prefer a moment when no reconciliation task is claimed: a task claimed when the database
    # goes away keeps its 120 s lease (see the report of issue 5.x), which only slows the drain.
    deadline = time.monotonic() + 5.0
    while time.monotonic() < deadline and _claims(monitor)[1]:
        time.sleep(0.005)
    reset = proxy.cut()
    cut_at = time.monotonic()
    hooks.cut_active.set()
    hooks.resume()
    _say(console, f"database cut ({reset} connections reset)")
    time.sleep(min(0.5, options.cut_seconds / 2))
    readyz_status, readyz_body = http_get(base_url, "/readyz")
    while time.monotonic() - cut_at < options.cut_seconds:
        time.sleep(0.05)
    proxy.restore()
    hooks.cut_active.clear()
    restored_at = time.monotonic()
    recovered = None
    while time.monotonic() - restored_at < 30:
        if http_get(base_url, "/readyz", timeout=2)[0] == 200:
            recovered = time.monotonic() - restored_at
            break
        time.sleep(0.1)
    running = [w for w in workers if not w.name.endswith("(killed)")]
    alive = [w.pid for w in running if w.alive()]
    report.cut = {
        "seconds": round(restored_at - cut_at, 2),
        "connections_reset": reset,
        "readyz_during_cut": readyz_status,
        "readyz_detail": (readyz_body or {}).get("database"),
        "responses_during_cut": dict(hooks.statuses_during_cut),
        "ready_again_after_seconds": None if recovered is None else round(recovered, 2),
        "workers_alive_after": len(alive),
        "workers_total": len(running),
    }
    _say(
        console,
        f"database restored after {report.cut['seconds']} s; /readyz during the cut: {readyz_status}; "
        f"ready again after {report.cut['ready_again_after_seconds']} s",
    )


def _wait_drained(
    options: ChaosOptions,
    report: ChaosReport,
    env: dict[str, str],
    log_dir: Path,
    children: list[ChildProcess],
    monitor: Engine,
    console: Any,
    drain_started: float,
) -> None:
    """Poll until no event is open, no reconcile task is pending and every session is reconciled."""
    deadline = drain_started + options.drain_timeout
    sweeper: ChildProcess | None = None
    sweeper_done_at: float | None = None
    last: dict[str, int] | None = None
    last_said = 0.0
    while time.monotonic() < deadline:
        try:
            state = _drain_state(monitor)
        except Exception:  # the monitor's own connection hiccuped: try again
            time.sleep(0.5)
            continue
        if state != last and time.monotonic() - last_said >= 2.0:
            _say(console, "drain: " + ", ".join(f"{k} {v}" for k, v in state.items()))
            last, last_said = state, time.monotonic()
        idle = state["events_open"] == 0 and state["tasks_pending"] == 0
        if idle and state["sessions_unreconciled"] == 0:
            return
        if idle and sweeper is None and time.monotonic() - drain_started > 1.5:
            # Sessions whose meeting.ended was lost are found by the stale-session sweep, which a
            # long-running worker does once a minute; `worker --once` (as a cron would) sweeps at once.
            sweeper = ChildProcess("sweeper", worker_argv("--once"), env, log_dir / "sweeper.log").start()
            children.append(sweeper)
            report.sweeper_used = True
            _say(
                console,
                f"{state['sessions_unreconciled']} session(s) never reconciled: `receiver worker --once` sweeps",
            )
        if sweeper is not None and sweeper_done_at is None and not sweeper.alive():
            sweeper_done_at = time.monotonic()
        if idle and sweeper_done_at is not None and time.monotonic() - sweeper_done_at > 10:
            break  # nothing left to do, yet sessions are unreconciled: reported below
        time.sleep(0.25)
    state = _drain_state(monitor)
    if state["events_open"] or state["tasks_pending"] or state["sessions_unreconciled"]:
        report.problems.append(
            f"not drained within {options.drain_timeout:.0f} s: " + ", ".join(f"{k} {v}" for k, v in state.items())
        )


def _final_checks(report: ChaosReport) -> None:
    if report.acknowledged_missing:
        report.problems.append(
            f"{len(report.acknowledged_missing)} acknowledged deliveries are not stored: {report.acknowledged_missing[:5]}"
        )
    if report.stored_never_sent:
        report.problems.append(f"{len(report.stored_never_sent)} stored delivery ids were never sent")
    if report.event_rows != report.unique_stored:
        report.problems.append(f"{report.event_rows} event rows for {report.unique_stored} delivery ids")
    for name, count in report.duplicate_rows.items():
        if count:
            report.problems.append(f"duplicate rows in {name}: {count}")
    if report.event_status.get("dead"):
        report.problems.append(f"{report.event_status['dead']} dead events")
    if report.task_status.get("dead"):
        report.problems.append(f"{report.task_status['dead']} dead reconcile tasks")
    if report.attendance_problems:
        report.problems.append(
            f"attendance differs from the truth in {report.sessions - report.sessions_equal} session(s): {report.attendance_problems[:3]}"
        )
    if report.recording_problems:
        report.problems.append(f"recordings differ from the truth: {report.recording_problems[:3]}")
    if report.kill:  # noqa: SIM102
        if report.kill.get("claims_left_with_victim"):
            report.problems.append(
                f"{report.kill['claims_left_with_victim']} events still claimed by the killed worker"
            )
    if report.cut:
        if report.cut.get("readyz_during_cut") != 503:
            report.problems.append(
                f"/readyz answered {report.cut.get('readyz_during_cut')} during the database cut, not 503"
            )
        during = report.cut.get("responses_during_cut", {})
        if any(status >= 500 and status != 503 for status in during):
            report.problems.append(f"webhooks got {during} during the cut (only 503 is right)")
        if report.cut.get("ready_again_after_seconds") is None:
            report.problems.append("the receiver did not become ready again after the database came back")
        if report.cut.get("workers_alive_after") != report.cut.get("workers_total"):
            report.problems.append("a worker died during the database cut")
    for name, code in report.exit_codes.items():
        # uvicorn (>= 0.29) re-raises the SIGTERM it handled once the graceful shutdown is done.
        if code != 0 and not (name.startswith("receiver") and code == -signal.SIGTERM):
            report.problems.append(f"{name} exited with {code} after SIGTERM")
    if report.failed_after_retries:
        # Not a loss (never acknowledged), but with these retries and outage lengths none should be.
        report.problems.append(f"{report.failed_after_retries} deliveries were given up after Dyte's retries")
    other_errors = {s: n for s, n in report.status_counts.items() if s >= 500 and s != 503}
    if other_errors:
        report.problems.append(f"unexpected server errors: {other_errors}")


# ---------------------------------------------------------------------------
# Output and the click command
# ---------------------------------------------------------------------------


def print_report(report: ChaosReport, options: ChaosOptions, console: Any) -> None:
    """Print the figures of ``report`` as rich tables."""
    from rich.table import Table

    table = Table(title="receiver bench chaos", show_header=True, header_style="bold")
    table.add_column("figure")
    table.add_column("value", justify="right")
    table.add_column("note")

    def row(name: str, value: Any, note: str = "") -> None:
        table.add_row(name, str(value), note)

    def section(name: str) -> None:
        table.add_row(f"[bold cyan]{name}[/bold cyan]", "", "")

    section("setup")
    row("database", report.dialect, report.database + (" via TCP proxy" if report.cut else ""))
    if report.dialect == "sqlite":
        row("database cut", "skipped", "SQLite is a local file: there is no connection to cut")
    row(
        "world",
        f"{report.sessions} sessions",
        f"{report.peers} peers, {report.recordings} recordings, {report.livestreams} livestreams",
    )
    row(
        "workers",
        options.workers,
        f"lease {options.lease_seconds:g} s, REST timeout {options.rest_timeout_seconds:g} s",
    )
    section("webhook delivery (Dyte side)")
    row("deliveries planned", report.deliveries_planned)
    row("dropped", report.dropped, f"{options.drop:.0%} never sent")
    row("duplicated", report.duplicated, f"{options.duplicate:.0%} sent twice")
    row("reordered", report.reordered, f"{options.reorder:.0%} held back, sent last")
    row("POSTs scheduled", report.scheduled_posts, "copies, duplicates included")
    row("POSTs sent", report.http_requests, f"HTTP requests, {report.retried} retries included")
    row("acknowledged (2xx)", report.acknowledged)
    row("503s seen", report.status_counts.get(503, 0), "database unavailable: Dyte retries")
    others = {s: n for s, n in sorted(report.status_counts.items()) if not 200 <= s < 300 and s != 503}
    row("other non-2xx", sum(others.values()), str(others) if others else "")
    row(
        "failed after retries",
        report.failed_after_retries,
        str(report.failed_by_status) if report.failed_by_status else "",
    )
    section("Dyte REST faults")
    row("REST calls", report.rest_calls)
    row(
        "faults injected",
        sum(report.rest_faults.values()),
        ", ".join(f"{k}: {v}" for k, v in report.rest_faults.items()),
    )
    section("process faults")
    if report.kill:
        row(
            "worker SIGKILL",
            f"pid {report.kill['victim_pid']}",
            f"holding {report.kill['event_claims_at_kill']} claimed events; restarted as pid {report.kill['replacement_pid']}; "
            f"left with it at the end: {report.kill.get('claims_left_with_victim', '?')}",
        )
    if report.cut:
        row(
            "database cut",
            f"{report.cut['seconds']} s",
            f"{report.cut['connections_reset']} connections reset; /readyz {report.cut['readyz_during_cut']} "
            f"{report.cut['readyz_detail']}; webhooks during the cut {report.cut['responses_during_cut']}; "
            f"ready again after {report.cut['ready_again_after_seconds']} s; workers alive {report.cut['workers_alive_after']}/{report.cut['workers_total']}",
        )
    row("stale-session sweep", "worker --once" if report.sweeper_used else "not needed")
    section("receiver side")
    row("unique deliveries sent", report.unique_sent)
    row("unique deliveries acknowledged", report.unique_acknowledged)
    row("events stored (unique delivery ids)", report.unique_stored, f"{report.event_rows} rows")
    row("acknowledged but not stored", len(report.acknowledged_missing), "must be 0")
    row("event status", ", ".join(f"{k} {v}" for k, v in sorted(report.event_status.items())))
    row("reconcile tasks", ", ".join(f"{k} {v}" for k, v in sorted(report.task_status.items())))
    for name, count in report.duplicate_rows.items():
        row(f"duplicate keys: {name}", count, "must be 0")
    section("against ground truth")
    row("sessions equal to truth", f"{report.sessions_equal}/{report.sessions}")
    row("recordings equal to truth", f"{report.recordings_equal}/{report.recordings_total}")
    for name, code in report.exit_codes.items():
        note = "after SIGTERM"
        if name.startswith("receiver") and code == -signal.SIGTERM:
            note += " (graceful; uvicorn re-raises the signal after shutdown)"
        row(f"exit code {name}", code, note)
    section("time")
    for name in ("delivery", "drain", "total"):
        if name in report.timings:
            row(f"{name}", f"{report.timings[name]:.1f} s")
    console.print(table)
    if report.problems:
        console.print("[bold red]FAILED[/bold red]")
        for problem in report.problems:
            console.print(f"  - {problem}")
        if report.log_dir:
            console.print(f"service logs kept in {report.log_dir}")
    else:
        console.print(
            "[bold green]OK[/bold green]: no acknowledged event lost, no duplicate rows, reports equal the truth"
        )


@click.command("chaos")
@click.option(
    "--sessions", default=50, show_default=True, type=click.IntRange(1, 10_000), help="Sessions in the sandbox world."
)
@click.option(
    "--participants", default=520, show_default=True, type=click.IntRange(1, 1_000_000), help="Peers over all sessions."
)
@click.option(
    "--drop", default=0.2, show_default=True, type=click.FloatRange(0, 1), help="Share of webhooks Dyte never sends."
)
@click.option(
    "--duplicate",
    default=0.3,
    show_default=True,
    type=click.FloatRange(0, 1),
    help="Share sent twice (same dyte-uuid).",
)
@click.option(
    "--reorder", default=0.3, show_default=True, type=click.FloatRange(0, 1), help="Share held back and sent last."
)
@click.option(
    "--rest-error-rate",
    default=0.1,
    show_default=True,
    type=click.FloatRange(0, 1),
    help="Share of REST calls failing, split evenly among 500, 429 (retry-after 1 s) and timeouts.",
)
@click.option(
    "--database-url",
    help="Where to run: a PostgreSQL server URL (a scratch database is created and dropped) or a SQLite file URL (a scratch file beside it). Default: PostgreSQL on 127.0.0.1:5432 if it answers, else a temporary SQLite file.",
)
@click.option("--workers", default=2, show_default=True, type=click.IntRange(1, 32), help="Worker processes.")
@click.option(
    "--seed", default=7, show_default=True, type=int, help="Seed of the world, the webhook faults and the REST faults."
)
@click.option(
    "--cut-seconds",
    default=4.0,
    show_default=True,
    type=click.FloatRange(0.5, 12),
    help="How long the database is unreachable (PostgreSQL only).",
)
@click.option(
    "--drain-timeout",
    default=240.0,
    show_default=True,
    type=click.FloatRange(5, 3600),
    help="Seconds to wait for the queue and reconciliation to drain.",
)
@click.option("--keep", is_flag=True, help="Keep the scratch database and the service logs.")
def chaos_command(**kwargs: Any) -> None:
    """Chaos run: faulty Dyte webhooks and REST, a worker SIGKILL and a database outage; compare with the truth.

    \b
    Starts the Dyte sandbox, a scratch database (behind a TCP proxy on
    PostgreSQL), `receiver serve --no-worker` and N `receiver worker`
    processes; delivers the world's webhooks with drops, duplicates and
    re-ordering (retrying non-2xx like Dyte); SIGKILLs a worker holding
    claims and restarts it; cuts the database for a few seconds (PostgreSQL);
    drains; then checks: every acknowledged delivery stored, no duplicate
    rows, attendance and recordings equal to the ground truth. Exit 1 if not.
    """
    from rich.console import Console

    console = Console(highlight=False, width=max(Console().width, 140))
    options = ChaosOptions(
        sessions=kwargs["sessions"],
        participants=kwargs["participants"],
        drop=kwargs["drop"],
        duplicate=kwargs["duplicate"],
        reorder=kwargs["reorder"],
        rest_error_rate=kwargs["rest_error_rate"],
        database_url=kwargs["database_url"],
        workers=kwargs["workers"],
        seed=kwargs["seed"],
        cut_seconds=kwargs["cut_seconds"],
        drain_timeout=kwargs["drain_timeout"],
        keep=kwargs["keep"],
    )
    if options.participants < options.sessions:
        raise click.BadParameter("--participants must be at least --sessions (every session has a host)")
    try:
        report = run_chaos(options, console)
    except (RuntimeError, ValueError, OSError) as exc:
        click.echo(f"error: {type(exc).__name__}: {exc}", err=True)
        sys.exit(1)
    print_report(report, options, console)
    sys.exit(0 if report.ok else 1)
