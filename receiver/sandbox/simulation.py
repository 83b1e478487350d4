"""Play a sandbox world through the real service, end to end, and check it against ground truth.

Steps: start the sandbox (Dyte or RealtimeKit: REST + key document) and the
receiver (uvicorn, real HTTP) on loopback; POST the world's webhooks signed by
the sandbox's key, with faults (drops, duplicates, reordering); run the worker
until everything due is done (events, then REST reconciliation); compare the
attendance report and the recording index with the world. Used by
``receiver demo``, the end-to-end tests and ``receiver bench chaos``.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.engine import Engine

from receiver.db.engine import make_engine, migrate
from receiver.processing.worker import ProcessResult
from receiver.providers.dyte.signature import generate_private_key
from receiver.providers.registry import webhook_path
from receiver.reports.queries import attendance_report, recordings_report
from receiver.sandbox import (
    FaultPlan,
    RestFaults,
    SandboxState,
    deliver,
    events_for,
    start_sandbox_in_thread,
)
from receiver.sandbox.groundtruth import compare_attendance, compare_recordings, expected_attendance
from receiver.sandbox.localserver import serve_in_thread
from receiver.service import build_service_app, build_worker
from receiver.settings import Settings

__all__ = ["SimulationResult", "simulation_settings", "run_simulation"]


@dataclass
class SimulationResult:
    """What a run did and whether the reports equal the truth."""

    deliveries_planned: int
    delivery_stats: Any
    worker: ProcessResult
    attendance_rows: list[dict[str, Any]]
    recording_rows: list[dict[str, Any]]
    attendance_problems: list[str] = field(default_factory=list)
    recording_problems: list[str] = field(default_factory=list)
    rest_calls: int = 0

    @property
    def matches_truth(self) -> bool:
        """True when attendance and recordings equal the sandbox's ground truth."""
        return not self.attendance_problems and not self.recording_problems


def simulation_settings(database_url: str, sandbox_url: str, state: SandboxState, **overrides: Any) -> Settings:
    """Settings pointing the receiver at a sandbox (its provider, key document, REST API, credentials:
    :meth:`SandboxState.receiver_environment`); no reconcile delay."""
    values: dict[str, Any] = {name.lower(): value for name, value in state.receiver_environment(sandbox_url).items()}
    values |= dict(
        database_url=database_url,
        reconcile_delay_seconds=0,
        stale_session_seconds=0,
        worker_poll_seconds=0.05,
        log_format="console",
    )
    values.update(overrides)
    return Settings(**values)


async def drain(settings: Settings, engine: Engine, *, rounds: int = 3) -> ProcessResult:
    """Run ``worker --once`` until a round does nothing (late tasks armed by earlier rounds run too)."""
    total = ProcessResult()
    for _ in range(rounds):
        worker = build_worker(settings, engine)
        result = await worker.run(once=True)
        for name in ("done", "failed", "ignored", "reconciled"):
            setattr(total, name, getattr(total, name) + getattr(result, name))
        if not (result.done or result.reconciled):
            break
    return total


def run_simulation(
    world: Any,
    *,
    database_url: str,
    faults: FaultPlan | None = None,
    rest_faults: RestFaults | None = None,
    concurrency: int = 8,
    provider: str = "dyte",
) -> SimulationResult:
    """Play ``world`` through sandbox -> HTTP -> inbox -> worker -> reconciliation; compare with truth.

    ``provider`` (``dyte`` or ``realtimekit``) is the sandbox's dialect and
    the receiver's PROVIDER: RealtimeKit deliveries carry ``rtk-*`` headers
    and go to ``/webhooks/realtimekit``, reconciliation uses the Cloudflare
    paths with a Bearer token. ``database_url`` must be migratable (it is
    migrated here). Servers run on 127.0.0.1 free ports and are stopped
    before returning.

    Raises:
        ValueError: unknown provider.
    """
    key = generate_private_key()
    state = SandboxState(world=world, private_key=key, rest_faults=rest_faults or RestFaults(), provider=provider)
    sandbox_url, stop_sandbox = start_sandbox_in_thread(state)
    try:
        migrate(database_url)
        settings = simulation_settings(database_url, sandbox_url, state)
        engine = make_engine(database_url)
        app = build_service_app(settings, run_worker=False)
        receiver_url, stop_receiver = serve_in_thread(app, name="receiver")
        try:
            deliveries = events_for(world)
            stats = asyncio.run(
                deliver(
                    deliveries,
                    f"{receiver_url}{webhook_path(provider)}",
                    key,
                    faults=faults,
                    concurrency=concurrency,
                    header_prefix=state.dialect.header_prefix,
                )
            )
        finally:
            stop_receiver()
        worker_result = asyncio.run(drain(settings, engine))
        attendance = attendance_report(engine)
        recordings = recordings_report(engine)
        engine.dispose()
    finally:
        stop_sandbox()
    return SimulationResult(
        deliveries_planned=len(deliveries),
        delivery_stats=stats,
        worker=worker_result,
        attendance_rows=attendance,
        recording_rows=recordings,
        attendance_problems=compare_attendance(attendance, expected_attendance(world)),
        recording_problems=compare_recordings(recordings, world),
        rest_calls=len(state.calls),
    )
