"""What the chaos run does to the service: the delivery monitor, the worker SIGKILL, the database cut, the drain.

Owns :class:`DeliveryMonitor` (httpx hooks that count answers and hold
deliveries at a milestone), :func:`kill_and_restart`, :func:`cut_database`,
:func:`wait_drained` and :func:`say` (a timestamped progress line).
"""

from __future__ import annotations

import asyncio
import signal
import threading
import time
from collections import Counter
from pathlib import Path
from queue import Queue
from typing import Any

import httpx
from sqlalchemy import text
from sqlalchemy.engine import Engine, make_url

from receiver.devtools.chaos.checks import claims, drain_state
from receiver.devtools.chaos.plan import ChaosOptions, ChaosReport
from receiver.devtools.chaos.processes import ChildProcess, http_get, worker_argv
from receiver.devtools.tcpproxy import TcpProxy

__all__ = ["DeliveryMonitor", "cut_database", "kill_and_restart", "say", "wait_drained"]


class DeliveryMonitor:
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


def say(console: Any, message: str) -> None:
    """Print ``message`` after the wall-clock time, when there is a console."""
    if console is not None:
        console.print(f"[dim]{time.strftime('%H:%M:%S')}[/dim] {message}")


def _sqlite_write_lock_free(monitor: Engine) -> bool:
    """True when no connection holds the SQLite write lock of ``monitor``'s database right now."""
    import sqlite3

    database = make_url(monitor.url).database
    if not database:  # in-memory: no other process can hold its lock
        return True
    probe = sqlite3.connect(database, timeout=0, isolation_level=None)
    try:
        probe.execute("BEGIN IMMEDIATE")
        probe.execute("ROLLBACK")
        return True
    except sqlite3.OperationalError:
        return False
    finally:
        probe.close()


def _postgres_no_open_transaction(monitor: Engine) -> bool:
    """True when no other connection to ``monitor``'s PostgreSQL database is inside a transaction right now."""
    with monitor.connect() as connection:
        open_transactions = connection.execute(
            text(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                " AND pid <> pg_backend_pid() AND xact_start IS NOT NULL"
            )
        ).scalar_one()
    return int(open_transactions) == 0


def _pause_without_write_lock(children: list[ChildProcess], monitor: Engine, timeout: float = 10.0) -> None:
    """SIGSTOP ``children`` at a moment none of them holds a lock others would wait on.

    Stop them, check, else let them run a little and retry (until
    ``timeout`` seconds, then stop them anyway). SQLite: one writer at a
    time, so the write lock must be free. PostgreSQL: no connection may be
    inside a transaction. ``SKIP LOCKED`` claims pass a stopped worker's row
    locks, but writes do not: a worker stopped mid-transaction can hold a
    row the victim then waits on for the whole kill window, so the victim
    dies holding no events.
    """
    lock_free = _sqlite_write_lock_free if monitor.dialect.name == "sqlite" else _postgres_no_open_transaction
    deadline = time.monotonic() + timeout
    while True:
        for child in children:
            child.signal(signal.SIGSTOP)
        if not children or lock_free(monitor) or time.monotonic() > deadline:
            return
        for child in children:
            child.signal(signal.SIGCONT)
        time.sleep(0.002)


def kill_and_restart(
    options: ChaosOptions,
    report: ChaosReport,
    env: dict[str, str],
    log_dir: Path,
    workers: list[ChildProcess],
    children: list[ChildProcess],
    monitor: Engine,
    hooks: DeliveryMonitor,
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
            events, tasks = claims(monitor, prefix)
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
    say(
        console,
        f"SIGKILLed worker pid {victim.pid} holding {events} claimed event(s); restarted as pid {replacement.pid}",
    )


def cut_database(
    options: ChaosOptions,
    report: ChaosReport,
    proxy: TcpProxy,
    monitor: Engine,
    hooks: DeliveryMonitor,
    base_url: str,
    workers: list[ChildProcess],
    console: Any,
) -> None:
    """Make the database unreachable for ``cut_seconds`` while webhooks keep coming, then restore it."""
    # Prefer a moment when no reconciliation task is claimed: a task claimed when the database
    # goes away keeps its 120 s lease (see the report of issue 5.x), which only slows the drain.
    deadline = time.monotonic() + 5.0
    while time.monotonic() < deadline and claims(monitor)[1]:
        time.sleep(0.005)
    reset = proxy.cut()
    cut_at = time.monotonic()
    hooks.cut_active.set()
    hooks.resume()
    say(console, f"database cut ({reset} connections reset)")
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
    say(
        console,
        f"database restored after {report.cut['seconds']} s; /readyz during the cut: {readyz_status}; "
        f"ready again after {report.cut['ready_again_after_seconds']} s",
    )


def wait_drained(
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
            state = drain_state(monitor)
        except Exception:  # the monitor's own connection hiccuped: try again
            time.sleep(0.5)
            continue
        if state != last and time.monotonic() - last_said >= 2.0:
            say(console, "drain: " + ", ".join(f"{k} {v}" for k, v in state.items()))
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
            say(
                console,
                f"{state['sessions_unreconciled']} session(s) never reconciled: `receiver worker --once` sweeps",
            )
        if sweeper is not None and sweeper_done_at is None and not sweeper.alive():
            sweeper_done_at = time.monotonic()
        if idle and sweeper_done_at is not None and time.monotonic() - sweeper_done_at > 10:
            break  # nothing left to do, yet sessions are unreconciled: reported below
        time.sleep(0.25)
    state = drain_state(monitor)
    if state["events_open"] or state["tasks_pending"] or state["sessions_unreconciled"]:
        report.problems.append(
            f"not drained within {options.drain_timeout:.0f} s: " + ", ".join(f"{k} {v}" for k, v in state.items())
        )
