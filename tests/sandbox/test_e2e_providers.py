"""The whole path for each provider: signed delivery -> worker -> reconciliation -> attendance report.

For Dyte and for RealtimeKit, on SQLite and PostgreSQL: the sandbox (real
HTTP, its own key document) speaks the provider's dialect; every webhook of
the demo world is posted signed to the provider's route, except both of
one guest's (so only the REST API knows the guest); the worker applies the
events and reconciles with the provider's REST API; the attendance report
equals the world's ground truth, the guest included, added by the API.
"""

from __future__ import annotations

import asyncio

import pytest
from starlette.testclient import TestClient

from receiver.db.engine import make_engine
from receiver.providers.dyte.signature import generate_private_key, sign_body
from receiver.providers.registry import webhook_path
from receiver.reports.queries import ReportFilter, attendance_report
from receiver.sandbox import SandboxState, demo_world, events_for, start_sandbox_in_thread
from receiver.sandbox.groundtruth import compare_attendance, expected_attendance
from receiver.sandbox.simulation import drain, simulation_settings
from receiver.service import build_service_app


@pytest.mark.parametrize("provider", ["dyte", "realtimekit"])
def test_delivery_worker_reconciliation_report(provider, db_url):
    world = demo_world()
    key = generate_private_key()
    state = SandboxState(world=world, private_key=key, provider=provider)
    session = world.sessions[0]
    guest = next(p for p in session.peers if p.custom_participant_id is None)
    deliveries = events_for(world)
    only_api = [
        d for d in deliveries if d.payload.get("participant", {}).get("peerId") == guest.peer_id
    ]  # joined and left
    assert len(only_api) == 2
    prefix = state.dialect.header_prefix

    sandbox_url, stop_sandbox = start_sandbox_in_thread(state)
    try:
        settings = simulation_settings(db_url, sandbox_url, state)
        assert settings.provider == provider
        with TestClient(build_service_app(settings, run_worker=False)) as client:
            for delivery in deliveries:
                if delivery in only_api:
                    continue
                body = delivery.body()
                headers = {
                    "content-type": "application/json",
                    f"{prefix}-signature": sign_body(body, key),
                    f"{prefix}-uuid": delivery.uuid,
                    f"{prefix}-webhook-id": "wh-e2e",
                }
                response = client.post(webhook_path(provider), content=body, headers=headers)
                assert response.status_code == 200, response.text
        engine = make_engine(db_url)
        try:
            before = attendance_report(engine, ReportFilter(session_id=session.id))
            assert guest.peer_id not in {r["participant_key"] for r in before}
            result = asyncio.run(drain(settings, engine))
            assert result.reconciled >= len(world.sessions)
            rows = attendance_report(engine)
        finally:
            engine.dispose()
    finally:
        stop_sandbox()

    assert compare_attendance(rows, expected_attendance(world)) == []
    guest_row = next(r for r in rows if r["participant_key"] == guest.peer_id)
    assert guest_row["session_id"] == session.id and guest_row["provenance"] == "api"
    assert all(r["session_reconciled"] for r in rows)
    rest = [(method, path) for method, path, status in state.calls if path != "/.well-known/webhooks.json"]
    assert rest and all(path.startswith(state.dialect.prefix(state)) for _, path in rest)
    assert ("GET", f"{state.dialect.prefix(state)}/sessions/{session.id}/participants") in rest
    assert any(path == "/.well-known/webhooks.json" for _, path, _ in state.calls)  # the key came from the document


@pytest.mark.parametrize("provider", ["dyte", "realtimekit"])
def test_demo_command_matches_ground_truth(provider, tmp_path):
    """`receiver demo --provider X` exits 0 and prints OK (reports equal the sandbox's ground truth)."""
    from click.testing import CliRunner

    from receiver.cli.main import cli

    database = f"sqlite:///{tmp_path / 'demo.db'}"
    result = CliRunner().invoke(cli, ["demo", "--provider", provider, "--database-url", database])
    assert result.exit_code == 0, result.output
    label = {"dyte": "Dyte", "realtimekit": "RealtimeKit"}[provider]
    assert f"Sandbox {label}: 1 meeting, 2 sessions" in result.output
    assert f"reconciliations with the {label} REST API" in result.output
    assert "OK: attendance for 8 person-sessions and 1 recording(s) equal the sandbox's ground truth" in result.output
