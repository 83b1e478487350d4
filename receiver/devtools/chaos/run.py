"""The chaos run itself: :func:`run_chaos` builds the world, starts everything, acts, drains and checks."""

from __future__ import annotations

import asyncio
import shutil
import signal
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from queue import Empty
from typing import Any

import httpx
from sqlalchemy import create_engine, text
from sqlalchemy.engine import Engine, make_url

from receiver.db.engine import make_engine, normalise_url
from receiver.devtools.bench.scratch import scratch_database
from receiver.devtools.bench.servers import free_port
from receiver.devtools.chaos.actions import DeliveryMonitor, cut_database, kill_and_restart, say, wait_drained
from receiver.devtools.chaos.checks import compare_with_truth, duplicate_rows, final_checks
from receiver.devtools.chaos.plan import ChaosOptions, ChaosReport
from receiver.devtools.chaos.processes import (
    ChildProcess,
    default_database_url,
    serve_argv,
    service_env,
    wait_until_ready,
    worker_argv,
)
from receiver.devtools.tcpproxy import TcpProxy, proxied_url
from receiver.providers.dyte.signature import generate_private_key
from receiver.sandbox import (
    FaultPlan,
    RestFaults,
    SandboxState,
    build_scenario,
    deliver,
    events_for,
    start_sandbox_in_thread,
)
from receiver.sandbox.webhooks import plan_schedule

__all__ = ["run_chaos"]


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
            say(console, f"scratch database {report.database} ({report.dialect}); logs in {log_dir}")
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
                truth_engine = make_engine(direct_url)
                try:
                    compare_with_truth(truth_engine, world, report)
                finally:
                    truth_engine.dispose()
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
    final_checks(report)
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
    say(console, f"receiver pid {receiver.pid} on {base_url}; workers {[w.pid for w in workers]}")

    milestones: dict[int, str] = {}
    if options.kill_worker and workers:
        milestones[max(1, report.scheduled_posts * 25 // 100)] = "kill"
    if options.cut_database and proxy is not None:
        milestones[max(2, report.scheduled_posts * 55 // 100)] = "cut"
    monitor_hooks = DeliveryMonitor(milestones, pausing={"kill", "cut"})
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
            kill_and_restart(options, report, env, log_dir, workers, children, monitor, monitor_hooks, console)
        elif name == "cut" and proxy is not None:
            cut_database(options, report, proxy, monitor, monitor_hooks, base_url, workers, console)
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
    say(
        console,
        f"delivered in {report.timings['delivery']:.1f} s: {stats.attempts} requests, {stats.sent} acknowledged, "
        f"{monitor_hooks.statuses.get(503, 0)} x 503, {stats.failed} given up",
    )
    if receiver.pid != receiver_pid or not receiver.alive():
        report.problems.append("the receiver process died or was restarted")

    drain_started = time.monotonic()
    wait_drained(options, report, env, log_dir, children, monitor, console, drain_started)
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
