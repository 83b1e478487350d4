"""Tests of the Dyte sandbox: scenario, REST fake, webhook payloads and faulty delivery."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.testclient import TestClient

from receiver.providers.dyte.signature import (
    generate_private_key,
    load_public_key,
    public_keys_from_document,
    verify_signature,
)
from receiver.sandbox.app import RestFaults, SandboxState, create_sandbox_app
from receiver.sandbox.cli import load_or_create_key, sandbox_command
from receiver.sandbox.scenario import build_scenario, demo_world
from receiver.sandbox.server import start_sandbox_in_thread
from receiver.sandbox.webhooks import MAX_RETRIES, FaultPlan, deliver, events_for
from receiver.timeparse import parse_timestamp

PAYLOADS = Path("/work/shared/dyte/payloads")
AUTH = ("sandbox-org", "sandbox-key")


@pytest.fixture(scope="module")
def key():
    return generate_private_key()


@pytest.fixture
def state(key):
    return SandboxState(world=build_scenario(3, 3, 30), private_key=key)


@pytest.fixture
def client(state):
    return _client(create_sandbox_app(state))


def _client(app, auth=AUTH) -> TestClient:
    """A TestClient sending HTTP Basic credentials (``None``: no credentials)."""
    test_client = TestClient(app)
    if auth is not None:
        test_client.auth = auth
    return test_client


def _shape(value):
    """Nested key structure of a JSON value (values dropped), for shape comparisons."""
    if isinstance(value, dict):
        return {k: _shape(v) for k, v in value.items()}
    return None


class Collector:
    """A tiny receiver: records every POST; answers a scripted status per dyte-uuid attempt."""

    def __init__(self, fail_first: int = 0, always: int | None = None) -> None:
        self.requests: list[tuple[dict[str, str], bytes]] = []
        self.fail_first = fail_first
        self.always = always
        self.attempts: Counter = Counter()

    async def endpoint(self, request: Request) -> Response:
        body = await request.body()
        self.requests.append((dict(request.headers), body))
        uid = request.headers["dyte-uuid"]
        self.attempts[uid] += 1
        if self.always is not None:
            return Response(status_code=self.always)
        if self.attempts[uid] <= self.fail_first:
            return Response(status_code=503)
        return JSONResponse({"ok": True})

    def transport(self) -> httpx.ASGITransport:
        return httpx.ASGITransport(app=Starlette(routes=[Route("/hook", self.endpoint, methods=["POST"])]))


def _run_deliver(deliveries, key, collector: Collector, **kwargs):
    async def go():
        async with httpx.AsyncClient(transport=collector.transport(), base_url="http://collector") as http:
            return await deliver(deliveries, "http://collector/hook", key, client=http, **kwargs)

    return asyncio.run(go())


# -- scenario ------------------------------------------------------------


def test_scenario_is_deterministic_per_seed():
    """The same seed yields the same world and the same deliveries; another seed differs."""
    a, b, c = build_scenario(11, 4, 40), build_scenario(11, 4, 40), build_scenario(12, 4, 40)
    assert a == b
    assert [d.uuid for d in events_for(a)] == [d.uuid for d in events_for(b)]
    assert [d.payload for d in events_for(a)] == [d.payload for d in events_for(b)]
    assert a.sessions[0].id != c.sessions[0].id


@pytest.mark.parametrize("seed", [0, 1, 2, 3, 4])
def test_scenario_has_rejoins_two_devices_anonymous_and_host_at_end(seed):
    """Every seed includes a rejoin, overlapping peers of one person, a peer without custom id and a peer connected at the end."""
    world = build_scenario(seed, 3, 24)
    assert len(world.all_peers()) == 24
    session = world.sessions[0]
    by_person: dict[str, list] = {}
    for peer in session.peers:
        assert session.started_at <= peer.joined_at < peer.left_at <= session.ended_at
        if peer.custom_participant_id:
            by_person.setdefault(peer.custom_participant_id, []).append(peer)
    groups = [sorted(ps, key=lambda p: p.joined_at) for ps in by_person.values() if len(ps) > 1]
    assert any(g[1].joined_at >= g[0].left_at for g in groups), "no rejoin"
    assert any(g[1].joined_at < g[0].left_at for g in groups), "no two-device overlap"
    assert any(p.custom_participant_id is None for p in session.peers)
    assert session.end_reason == "HOST_ENDED_MEETING"
    assert any(p.left_at == session.ended_at for p in session.peers)
    assert all(dt.tzinfo is not None for p in world.all_peers() for dt in (p.joined_at, p.left_at))


def test_demo_world_ground_truth():
    """The demo world has 2 sessions, the scripted recording/livestream histories and a two-device person."""
    world = demo_world()
    assert len(world.meetings) == 1 and len(world.sessions) == 2
    intervals = world.expected_intervals(world.sessions[0].id)
    assert Counter(i["participant_key"] for i in intervals)["carol"] == 2
    assert any(i["participant_key"] == i["peer_id"] for i in intervals)
    assert [s for s, _ in world.recordings[0].statuses] == ["INVOKED", "RECORDING", "UPLOADING", "UPLOADED"]
    assert [s for s, _ in world.livestreams[0].statuses] == ["LIVE", "OFFLINE"]
    (final,) = world.recordings_final()
    assert final["status"] == "UPLOADED" and final["file_size"] > 0 and final["duration"] > 0


# -- webhook payloads ----------------------------------------------------


def test_payload_shapes_match_real_examples():
    """Generated payloads have the same key structure as the real Dyte payload files."""
    deliveries = events_for(demo_world())

    def first(event, pred=lambda d: True):
        return next(d.payload for d in deliveries if d.event == event and pred(d))

    rec = lambda status: lambda d: d.payload.get("recording", {}).get("status") == status  # noqa: E731
    expected = {
        "meeting-started.json": first("meeting.started"),
        "meeting-ended.json": first("meeting.ended"),
        "meeting-participantLeft.json": first(
            "meeting.participantLeft", lambda d: "customParticipantId" in d.payload["participant"]
        ),
        "meeting-participantJoined.json": first(
            "meeting.participantJoined", lambda d: "customParticipantId" in d.payload["participant"]
        ),
        "meeting-chatSynced.json": first("meeting.chatSynced"),
        "meeting-transcript.json": first("meeting.transcript"),
        "meeting-summary.json": first("meeting.summary"),
        "recording-statusUpdate-recording.json": first("recording.statusUpdate", rec("RECORDING")),
        "recording-statusUpdate-uploaded.json": first("recording.statusUpdate", rec("UPLOADED")),
        "livestreaming-statusUpdate-live.json": first("livestreaming.statusUpdate"),
    }
    for name, payload in expected.items():
        real = json.loads((PAYLOADS / name).read_text())
        if name == "meeting-started.json":
            real["meeting"].pop("roomName", None), payload["meeting"].pop("roomName", None)
        assert _shape(payload) == _shape(real), name
    uploading = first("recording.statusUpdate", rec("UPLOADING"))
    assert "sessionId" not in uploading["meeting"]
    uploaded = first("recording.statusUpdate", rec("UPLOADED"))["recording"]
    assert isinstance(uploaded["stopReason"], str)
    assert parse_timestamp(uploaded["startedTime"]) == demo_world().recordings[0].started_at
    assert " " in uploaded["downloadUrlExpiry"] and uploaded["downloadUrlExpiry"].endswith("Z")


def test_events_chronological_and_ended_a_minute_after_last_leave():
    """Deliveries are ordered by time, uuids unique, and meeting.ended follows the last leave by >= 60 s."""
    world = build_scenario(5, 4, 30)
    deliveries = events_for(world)
    assert [d.at for d in deliveries] == sorted(d.at for d in deliveries)
    assert len({d.uuid for d in deliveries}) == len(deliveries)
    for session in world.sessions:
        ended = next(d for d in deliveries if d.event == "meeting.ended" and d.session_id == session.id)
        assert ended.at >= session.last_leave + timedelta(seconds=60)
        assert ended.payload["reason"] == session.end_reason
        assert ended.payload["meeting"]["status"] == "LIVE"


# -- REST ----------------------------------------------------------------


def test_rest_requires_basic_auth(state):
    """Requests without or with wrong Basic credentials get 401 {"message": "Unauthorized"}."""
    app = create_sandbox_app(state)
    assert _client(app, None).get("/v2/sessions").status_code == 401
    response = _client(app, ("sandbox-org", "wrong")).get("/v2/sessions")
    assert response.status_code == 401 and response.json() == {"message": "Unauthorized"}
    assert _client(app).get("/v2/sessions").status_code == 200


def test_sessions_envelope_detail_and_time_filter(client, state):
    """GET /v2/sessions returns data.sessions with ActiveSession fields; the detail is data.session; start_time filters."""
    body = client.get("/v2/sessions").json()
    assert body["success"] is True
    sessions = body["data"]["sessions"]
    assert {s["id"] for s in sessions} == {s.id for s in state.world.sessions}
    assert {"id", "associated_id", "status", "started_at", "ended_at", "minutes_consumed"} <= set(sessions[0])
    one = client.get(f"/v2/sessions/{sessions[0]['id']}").json()
    assert one["data"]["session"]["id"] == sessions[0]["id"]
    second_start = state.world.sessions[1].started_at.isoformat().replace("+00:00", "Z")
    filtered = client.get("/v2/sessions", params={"start_time": second_start}).json()["data"]["sessions"]
    assert {s["id"] for s in filtered} == {s.id for s in state.world.sessions[1:]}
    assert client.get("/v2/sessions/nope").status_code == 404


def test_participants_paging_over_three_pages_and_minutes(client, state):
    """Participants page over 3 pages with the spec's paging object, and duration is minutes = (left-joined)/60."""
    session = state.world.sessions[0]
    n = len(session.peers)
    per_page = -(-n // 3)
    seen = []
    for page_no in (1, 2, 3):
        body = client.get(
            f"/v2/sessions/{session.id}/participants", params={"page_no": page_no, "per_page": per_page}
        ).json()
        paging = body["data"]["paging"]
        assert paging["total_count"] == n
        assert paging["start_offset"] == (page_no - 1) * per_page + 1
        assert paging["end_offset"] == min(page_no * per_page, n)
        seen += body["data"]["participants"]
    assert len(seen) == n and {p["id"] for p in seen} == {p.peer_id for p in session.peers}
    peers = {p.peer_id: p for p in session.peers}
    for row in seen:
        peer = peers[row["id"]]
        assert row["duration"] == pytest.approx((peer.left_at - peer.joined_at).total_seconds() / 60, abs=1e-4)
        assert parse_timestamp(row["joined_at"]) == peer.joined_at
        assert row["custom_participant_id"] == peer.custom_participant_id
        assert {"user_id", "display_name", "preset_name", "left_at"} <= set(row)


def test_recordings_and_livestreams_shapes(client, state):
    """Recordings list has top-level paging and bytes/seconds fields; livestream endpoints carry the stream key."""
    body = client.get("/v2/recordings", params={"per_page": 1}).json()
    assert body["paging"]["total_count"] == len(state.world.recordings) and len(body["data"]) == 1
    rec = state.world.recordings[0]
    one = client.get(f"/v2/recordings/{rec.id}").json()["data"]
    assert one["status"] == rec.status and one["file_size"] == rec.file_size
    assert one["recording_duration"] == rec.duration and one["session_id"] == rec.session_id
    stream = state.world.livestreams[0]
    detail = client.get(f"/v2/livestreams/{stream.id}").json()
    assert detail["data"]["livestream"]["stream_key"] == stream.stream_key
    assert detail["data"]["livestream"]["status"] == "IDLE"  # webhook OFFLINE is REST IDLE
    assert detail["data"]["sessions"][0]["ingest_seconds"] == stream.ingest_seconds
    by_meeting = client.get(f"/v2/meetings/{stream.meeting_id}/livestream").json()
    assert stream.id in {s["id"] for s in by_meeting["data"]["livestreams"]}
    assert client.get(f"/v2/meetings/{stream.meeting_id}").json()["data"]["id"] == stream.meeting_id
    assert all("streamKey" not in d.payload for d in events_for(state.world))


def test_webhooks_crud(client):
    """Webhooks can be created (201), listed, fetched, replaced, patched and deleted per the spec."""
    assert client.get("/v2/webhooks").json() == {"success": True, "data": []}
    bad = client.post("/v2/webhooks", json={"url": "https://x.test/h", "events": ["meeting.started"]})
    assert bad.status_code == 400 and bad.json()["error"]["message"] == 'BAD_REQUEST: "name" is required'
    created = client.post("/v2/webhooks", json={"name": "a", "url": "https://x.test/h", "events": ["meeting.started"]})
    assert created.status_code == 201
    hook = created.json()["data"]
    assert hook["enabled"] is True and {"created_at", "updated_at"} <= set(hook)
    assert client.get("/v2/webhooks").json()["data"] == [hook]
    put = client.put(
        f"/v2/webhooks/{hook['id']}", json={"name": "b", "url": "https://y.test/h", "events": ["meeting.ended"]}
    ).json()
    assert put["data"]["name"] == "b" and put["data"]["events"] == ["meeting.ended"]
    patched = client.patch(f"/v2/webhooks/{hook['id']}", json={"enabled": False}).json()["data"]
    assert patched["enabled"] is False and patched["url"] == "https://y.test/h"
    assert client.get("/v2/webhooks/not-a-guid").status_code == 400
    assert client.delete(f"/v2/webhooks/{hook['id']}").json()["data"]["id"] == hook["id"]
    assert client.get(f"/v2/webhooks/{hook['id']}").status_code == 404


def test_rest_faults_500_and_429_with_retry_after(key):
    """With fault rates set, the API answers 500s and 429s carrying retry-after, and logs them."""
    state = SandboxState(
        world=demo_world(),
        private_key=key,
        rest_faults=RestFaults(error_rate=0.4, rate_limit_rate=0.4, retry_after_seconds=4, seed=1),
    )
    client = _client(create_sandbox_app(state))
    responses = [client.get("/v2/sessions") for _ in range(40)]
    statuses = Counter(r.status_code for r in responses)
    assert statuses[500] and statuses[429] and statuses[200]
    assert all(r.headers["retry-after"] == "4" for r in responses if r.status_code == 429)
    assert Counter(s for _, _, s in state.calls) == statuses


def test_rest_timeout_fault_stalls(key):
    """A timeout fault stalls longer than the client's timeout."""
    state = SandboxState(
        world=demo_world(), private_key=key, rest_faults=RestFaults(timeout_rate=1.0, timeout_seconds=0.5)
    )

    async def go():
        transport = httpx.ASGITransport(app=create_sandbox_app(state))
        async with httpx.AsyncClient(transport=transport, base_url="http://sandbox", auth=AUTH) as http:
            with pytest.raises(asyncio.TimeoutError):
                await asyncio.wait_for(http.get("/v2/sessions"), timeout=0.1)

    asyncio.run(go())
    assert state.calls == [("GET", "/v2/sessions", 504)]


# -- signing and delivery ------------------------------------------------


def test_well_known_key_verifies_delivered_signature(client, state, key):
    """The public key from /.well-known/webhooks.json verifies a delivered body's dyte-signature over the raw bytes."""
    document = client.get("/.well-known/webhooks.json").json()
    assert document["success"] is True and document["data"]["publicKey"].startswith("-----BEGIN PUBLIC KEY-----")
    public = load_public_key(document["data"]["publicKey"])
    assert len(public_keys_from_document(document)) == 1
    collector = Collector()
    deliveries = events_for(state.world)[:5]
    stats = _run_deliver(deliveries, key, collector, webhook_id="hook-1")
    assert stats.sent == 5
    for (headers, body), delivery in zip(
        sorted(collector.requests, key=lambda r: r[0]["dyte-uuid"]),
        sorted(deliveries, key=lambda d: d.uuid),
        strict=False,
    ):
        assert headers["content-type"] == "application/json"
        assert headers["dyte-webhook-id"] == "hook-1" and headers["dyte-uuid"] == delivery.uuid
        assert body == json.dumps(delivery.payload, separators=(",", ":")).encode()
        assert verify_signature(body, headers["dyte-signature"], [public]) == "raw"


def test_deliver_counts_drops_and_duplicates(key):
    """deliver() drops and duplicates per the FaultPlan, reuses dyte-uuid for copies and is deterministic per seed."""
    world = build_scenario(2, 3, 24)
    deliveries = events_for(world)
    ended = world.sessions[0].id
    plan = FaultPlan(drop=0.2, duplicate=0.2, reorder=0.1, seed=9, always_drop={("meeting.ended", ended)})
    collector = Collector()
    stats = _run_deliver(deliveries, key, collector, faults=plan)
    assert stats.dropped > 0 and stats.duplicated > 0 and stats.failed == 0
    assert len(collector.requests) == stats.sent == len(deliveries) - stats.dropped + stats.duplicated
    per_uuid = Counter(h["dyte-uuid"] for h, _ in collector.requests)
    assert sum(1 for c in per_uuid.values() if c == 2) == stats.duplicated
    ended_uuid = next(d.uuid for d in deliveries if d.event == "meeting.ended" and d.session_id == ended)
    assert ended_uuid not in per_uuid
    again = _run_deliver(deliveries, key, Collector(), faults=plan)
    assert (again.sent, again.dropped, again.duplicated, again.reordered) == (
        stats.sent,
        stats.dropped,
        stats.duplicated,
        stats.reordered,
    )


def test_deliver_retries_non_2xx_then_gives_up(key):
    """Non-2xx answers are retried (same uuid) up to 5 times; permanent failures are counted by status."""
    deliveries = events_for(demo_world())[:3]
    flaky = Collector(fail_first=2)
    stats = _run_deliver(deliveries, key, flaky)
    assert stats.sent == 3 and stats.retried == 6 and all(v == 3 for v in flaky.attempts.values())
    broken = Collector(always=500)
    stats = _run_deliver(deliveries, key, broken)
    assert stats.sent == 0 and stats.failed_status == Counter({500: 3})
    assert all(v == 1 + MAX_RETRIES for v in broken.attempts.values())


# -- server thread and CLI -----------------------------------------------


def test_start_sandbox_in_thread_serves_real_http(key):
    """start_sandbox_in_thread serves the API on a free port and stops cleanly."""
    state = SandboxState(world=demo_world(), private_key=key)
    base_url, stop = start_sandbox_in_thread(state)
    try:
        response = httpx.get(f"{base_url}/v2/sessions", auth=AUTH, timeout=5)
        assert response.status_code == 200 and len(response.json()["data"]["sessions"]) == 2
    finally:
        stop()
    with pytest.raises(httpx.HTTPError):
        httpx.get(f"{base_url}/v2/sessions", auth=AUTH, timeout=1)


def test_cli_help_and_key_file(tmp_path):
    """Every CLI option has help text, and --key-file keys are created once and then reused."""
    assert all(p.help for p in sandbox_command.params if p.name)
    assert "--deliver-to" in CliRunner().invoke(sandbox_command, ["--help"]).output
    path = tmp_path / "sandbox.pem"
    first = load_or_create_key(path)
    assert (path.stat().st_mode & 0o777) == 0o600
    assert load_or_create_key(path).private_numbers() == first.private_numbers()
