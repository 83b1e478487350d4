"""The sandbox speaking RealtimeKit: Cloudflare paths, Bearer auth, v4 error envelope, rtk-* deliveries, exports.

The official ``cloudflare`` SDK is pointed at the sandbox: what it can call
and read, a receiver configured for RealtimeKit can too.
"""

from __future__ import annotations

import asyncio
import shlex
import subprocess
import sys
from collections import Counter

import httpx
import pytest
from cloudflare import AsyncCloudflare
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.testclient import TestClient

from receiver.providers.dyte.signature import generate_private_key, public_keys_from_document, verify_signature
from receiver.sandbox.app import RestFaults, SandboxState, create_sandbox_app
from receiver.sandbox.cli import export_lines
from receiver.sandbox.scenario import build_scenario, demo_world
from receiver.sandbox.webhooks import deliver, events_for
from receiver.settings import Settings

PREFIX = "/client/v4/accounts/sandbox-account/realtime/kit/sandbox-app"
BEARER = {"authorization": "Bearer sandbox-token"}


@pytest.fixture(scope="module")
def key():
    return generate_private_key()


@pytest.fixture
def state(key):
    return SandboxState(world=build_scenario(3, 3, 30), private_key=key, provider="realtimekit")


@pytest.fixture
def client(state):
    return TestClient(create_sandbox_app(state), headers=BEARER)


def test_bearer_token_is_required_and_refusals_use_cloudflare_s_envelope(state):
    app = create_sandbox_app(state)
    anonymous = TestClient(app).get(f"{PREFIX}/sessions")
    wrong = TestClient(app, headers={"authorization": "Bearer nope"}).get(f"{PREFIX}/sessions")
    basic = TestClient(app).get(f"{PREFIX}/sessions", auth=("sandbox-org", "sandbox-key"))
    for response in (anonymous, wrong, basic):
        assert response.status_code == 403
        assert response.json() == {
            "success": False,
            "errors": [{"code": 10000, "message": "Authentication error"}],
            "messages": [],
            "result": None,
        }
    assert TestClient(app, headers=BEARER).get(f"{PREFIX}/sessions").status_code == 200
    assert TestClient(app, headers=BEARER).get("/v2/sessions").status_code == 404  # no Dyte paths


def test_paths_outside_the_app_and_unknown_objects_are_cloudflare_404s(client):
    other_app = client.get("/client/v4/accounts/sandbox-account/realtime/kit/other-app/sessions")
    assert other_app.status_code == 404 and other_app.json()["errors"][0]["code"] == 404
    assert "Could not route" in other_app.json()["errors"][0]["message"]
    missing = client.get(f"{PREFIX}/sessions/nope")
    assert missing.status_code == 404 and missing.json()["errors"] == [
        {"code": 404, "message": "No session found with id nope"}
    ]


def test_session_detail_is_data_and_participants_have_no_paging(client, state):
    session = state.world.sessions[0]
    detail = client.get(f"{PREFIX}/sessions/{session.id}").json()
    assert detail["success"] is True and detail["data"]["id"] == session.id and "session" not in detail["data"]
    page = client.get(f"{PREFIX}/sessions/{session.id}/participants", params={"per_page": 2, "page_no": 1}).json()
    assert set(page["data"]) == {"participants"} and "paging" not in page
    assert len(page["data"]["participants"]) == 2
    listing = client.get(f"{PREFIX}/sessions").json()
    assert listing["paging"]["total_count"] == len(state.world.sessions) and set(listing["data"]) == {"sessions"}


def test_livestream_disabled_is_a_string_and_webhooks_create_with_201(client, state):
    stream = state.world.livestreams[0]
    livestream = client.get(f"{PREFIX}/livestreams/{stream.id}").json()["data"]["livestream"]
    assert livestream["disabled"] == "false" and livestream["stream_key"] == stream.stream_key
    created = client.post(
        f"{PREFIX}/webhooks", json={"name": "a", "url": "https://x.test/h", "events": ["meeting.started"]}
    )
    assert created.status_code == 201 and created.json()["data"]["enabled"] is True
    bad = client.post(f"{PREFIX}/webhooks", json={"url": "https://x.test/h", "events": ["meeting.started"]})
    assert bad.status_code == 400 and bad.json()["errors"][0]["message"] == 'BAD_REQUEST: "name" is required'


def test_rate_limit_fault_is_cloudflare_s_429_with_retry_after(key):
    state = SandboxState(
        world=demo_world(),
        private_key=key,
        provider="realtimekit",
        rest_faults=RestFaults(rate_limit_rate=0.5, retry_after_seconds=3, seed=2),
    )
    client = TestClient(create_sandbox_app(state), headers=BEARER)
    responses = [client.get(f"{PREFIX}/sessions") for _ in range(20)]
    limited = [r for r in responses if r.status_code == 429]
    assert limited and Counter(r.status_code for r in responses)[200]
    assert all(r.headers["retry-after"] == "3" and r.json()["errors"][0]["code"] == 971 for r in limited)


def test_the_official_sdk_reads_the_sandbox(state):
    """cloudflare.AsyncCloudflare, pointed at the sandbox, lists sessions, participants and webhooks."""
    session = state.world.sessions[0]

    async def go():
        http = httpx.AsyncClient(transport=httpx.ASGITransport(app=create_sandbox_app(state)))
        async with AsyncCloudflare(
            api_token="sandbox-token", base_url="http://sandbox.test/client/v4", http_client=http, max_retries=0
        ) as cf:
            ids = {"account_id": "sandbox-account", "app_id": "sandbox-app"}
            sessions = await cf.realtime_kit.sessions.get_sessions(**ids, per_page=100)
            detail = await cf.realtime_kit.sessions.get_session_details(session.id, **ids)
            people = await cf.realtime_kit.sessions.get_session_participants(session.id, **ids, per_page=100)
            created = await cf.realtime_kit.webhooks.create_webhook(
                events=["meeting.ended"], name="sdk", url="https://x.test/h", **ids
            )
            hooks = await cf.realtime_kit.webhooks.get_webhooks(**ids)
            return sessions, detail, people, created, hooks

    sessions, detail, people, created, hooks = asyncio.run(go())
    assert {s.id for s in sessions.data.sessions} == {s.id for s in state.world.sessions}
    assert detail.data.id == session.id and detail.data.associated_id == session.meeting_id
    assert {p.id for p in people.data.participants} == {p.peer_id for p in session.peers}
    assert [h.id for h in hooks.data] == [created.data.id] and created.data.events == ["meeting.ended"]


def test_deliveries_carry_rtk_headers_signed_with_the_published_key(client, state, key):
    seen: list[tuple[dict[str, str], bytes]] = []

    async def hook(request: Request) -> Response:
        seen.append((dict(request.headers), await request.body()))
        return JSONResponse({"ok": True})

    collector = Starlette(routes=[Route("/hook", hook, methods=["POST"])])
    deliveries = events_for(state.world)[:5]

    async def go():
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=collector), base_url="http://c") as http:
            return await deliver(deliveries, "http://c/hook", key, client=http, header_prefix="rtk", webhook_id="w")

    stats = asyncio.run(go())
    assert stats.sent == 5
    keys = public_keys_from_document(client.get("/.well-known/webhooks.json").json())
    for headers, body in seen:
        assert not any(name.startswith("dyte-") for name in headers)
        assert headers["rtk-webhook-id"] == "w" and headers["rtk-uuid"]
        assert verify_signature(body, headers["rtk-signature"], keys) == "raw"


def test_receiver_environment_builds_working_settings(state):
    """The exported variables are real settings: PROVIDER=realtimekit, Cloudflare base URL, app, token, key URLs."""
    env = state.receiver_environment("http://127.0.0.1:8787")
    assert env == {
        "PROVIDER": "realtimekit",
        "REALTIMEKIT_API_BASE_URL": "http://127.0.0.1:8787/client/v4",
        "REALTIMEKIT_ACCOUNT_ID": "sandbox-account",
        "REALTIMEKIT_APP_ID": "sandbox-app",
        "REALTIMEKIT_API_TOKEN": "sandbox-token",
        "DYTE_WEBHOOK_KEYS_URL": "http://127.0.0.1:8787/.well-known/webhooks.json",
        "REALTIMEKIT_WEBHOOK_KEYS_URL": "http://127.0.0.1:8787/.well-known/webhooks.json",
    }
    settings = Settings(**{name.lower(): value for name, value in env.items()})
    assert settings.api_credentials_set and settings.provider == "realtimekit"
    dyte = SandboxState(world=demo_world(), private_key=state.private_key).receiver_environment("http://h:1")
    assert dyte["PROVIDER"] == "dyte" and dyte["DYTE_API_BASE_URL"] == "http://h:1/v2"
    assert dyte["DYTE_ORG_ID"] == "sandbox-org" and dyte["DYTE_API_KEY"] == "sandbox-key"
    assert export_lines({"A": "x y", "B": "z"}) == ["export A='x y'", "export B=z"]


@pytest.mark.slow
def test_sandbox_command_prints_exports_that_parse_as_shell(tmp_path):
    """`receiver sandbox --provider realtimekit` prints export lines a shell accepts, then serves."""
    process = subprocess.Popen(
        [sys.executable, "-m", "receiver.cli", "sandbox", "--provider", "realtimekit", "--port", "0", "--demo"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=tmp_path,
    )
    try:
        lines = []
        assert process.stdout is not None
        for line in process.stdout:
            lines.append(line.rstrip("\n"))
            if line.startswith("Press Ctrl-C"):
                break
    finally:
        process.terminate()
        process.wait(timeout=10)
        if process.stdout is not None:
            process.stdout.close()
    exports = [line.strip() for line in lines if line.strip().startswith("export ")]
    names = [shlex.split(line)[1].split("=", 1)[0] for line in exports]
    assert names[0] == "PROVIDER" and "REALTIMEKIT_API_TOKEN" in names and "REALTIMEKIT_API_BASE_URL" in names
    assert lines[0].startswith("RealtimeKit sandbox listening on http://127.0.0.1:")
    script = "; ".join(exports) + '; printf "%s|%s" "$PROVIDER" "$REALTIMEKIT_APP_ID"'
    assert subprocess.run(["sh", "-c", script], capture_output=True, text=True).stdout == "realtimekit|sandbox-app"
