"""The RealtimeKit REST client, checked against the official Cloudflare SDK (``cloudflare`` 5.9).

Paths: the SDK's async client and ours make the same call against a mock
transport; method, path and query parameter names must agree. Shapes: every
answer served here is an instance of the SDK's own response type
(``cloudflare.types.realtime_kit.*``) dumped to JSON, so a change in the
SDK's shapes that our parsing misses fails here. Errors: Cloudflare's v4
envelope, retries and the Bearer token's absence from every message.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from cloudflare import AsyncCloudflare
from cloudflare.types.realtime_kit import (
    livestream_get_livestream_session_for_livestream_id_response as sdk_livestream,
)
from cloudflare.types.realtime_kit import meeting_get_meeting_by_id_response as sdk_meeting
from cloudflare.types.realtime_kit import recording_get_one_recording_response as sdk_recording
from cloudflare.types.realtime_kit import session_get_session_details_response as sdk_session
from cloudflare.types.realtime_kit import session_get_session_participants_response as sdk_participants
from cloudflare.types.realtime_kit import session_get_sessions_params as sdk_sessions_params
from cloudflare.types.realtime_kit import session_get_sessions_response as sdk_sessions
from cloudflare.types.realtime_kit import webhook_create_webhook_response as sdk_webhook_created
from cloudflare.types.realtime_kit import webhook_get_webhooks_response as sdk_webhooks

from receiver.providers.base import ProviderClient
from receiver.providers.errors import (
    ProviderAuthError,
    ProviderNotFound,
    ProviderRateLimited,
    ProviderResponseError,
    ProviderStatusError,
)
from receiver.providers.realtimekit.client import RATE_WINDOW_SECONDS, RealtimeKitClient, cloudflare_errors_summary
from receiver.providers.registry import build_client
from receiver.retry import RetryPolicy
from receiver.settings import Settings

ACCOUNT, APP, TOKEN = "acc-0001", "app-0001", "cf-TOKEN-planted-9d2e"
PREFIX = f"/client/v4/accounts/{ACCOUNT}/realtime/kit/{APP}"
BASE = "https://api.cloudflare.com/client/v4"
FAST = RetryPolicy(base_seconds=0, max_seconds=0, max_attempts=3, jitter=0)
EVENTS = ["meeting.started", "meeting.ended"]


def ok(model: Any, status: int = 200) -> httpx.Response:
    """An answer whose body is an SDK response model, as JSON."""
    return httpx.Response(status, json=json.loads(model.to_json()))


def cf_error(status: int, code: int, message: str, headers: dict[str, str] | None = None) -> httpx.Response:
    """Cloudflare's v4 error envelope."""
    body = {"success": False, "errors": [{"code": code, "message": message}], "messages": [], "result": None}
    return httpx.Response(status, json=body, headers=headers)


class Server:
    """A mock RealtimeKit: routes ``(method, path after the app prefix)`` to answers; records requests."""

    def __init__(self, routes: dict[tuple[str, str], Callable[[httpx.Request], httpx.Response]]) -> None:
        self.routes = routes
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        path = request.url.path
        assert path.startswith(PREFIX), path
        handler = self.routes.get((request.method, path[len(PREFIX) :]))
        if handler is None:
            return cf_error(404, 7003, f"No route for {request.method} {path}")
        return handler(request)


def client(handler: Callable[[httpx.Request], httpx.Response], **kwargs: Any) -> RealtimeKitClient:
    kwargs.setdefault("retry", FAST)
    return RealtimeKitClient(BASE, ACCOUNT, APP, TOKEN, transport=httpx.MockTransport(handler), **kwargs)


def run(coro: Any) -> Any:
    return asyncio.run(coro)


# --------------------------------------------------------------------------- SDK response instances

SESSION = dict(
    id="sess-1",
    associated_id="meet-1",
    created_at="2026-03-02T09:00:00.000Z",
    live_participants=0,
    max_concurrent_participants=3,
    meeting_display_name="Weekly",
    minutes_consumed=42.5,
    organization_id=APP,
    started_at="2026-03-02T09:00:00.000Z",
    status="ENDED",
    type="meeting",
    updated_at="2026-03-02T10:00:00.000Z",
    ended_at="2026-03-02T10:00:00.000Z",
)


def participant(n: int) -> sdk_participants.DataParticipant:
    return sdk_participants.DataParticipant(
        id=f"peer-{n}",
        custom_participant_id=f"student-{n}" if n % 2 else None,
        display_name=f"Person {n}",
        duration=12.5,
        joined_at="2026-03-02T09:01:00.000Z",
        left_at="2026-03-02T09:13:30.000Z",
        preset_name="group_call_participant",
        user_id=f"user-{n}",
    )


def webhook_fields(webhook_id: str = "wh-1", **over: Any) -> dict[str, Any]:
    fields: dict[str, Any] = dict(
        id=webhook_id,
        created_at=datetime(2026, 3, 1, tzinfo=UTC),
        updated_at=datetime(2026, 3, 1, tzinfo=UTC),
        enabled=True,
        events=EVENTS,
        name="receiver",
        url="https://hooks.example.com/webhooks/realtimekit",
    )
    fields.update(over)
    return fields


def test_session_details_put_the_session_itself_in_data():
    """GET sessions/{id}: data is the session (not data.session, as in Dyte)."""
    server = Server(
        {
            ("GET", "/sessions/sess-1"): lambda r: ok(
                sdk_session.SessionGetSessionDetailsResponse(success=True, data=sdk_session.Data(**SESSION))
            )
        }
    )
    session = run(client(server).get_session("sess-1"))
    assert session.id == "sess-1" and session.meeting_id == "meet-1" and session.status == "ENDED"
    assert session.ended_at == datetime(2026, 3, 2, 10, 0, tzinfo=UTC) and session.minutes_consumed == 42.5
    assert server.requests[0].headers["authorization"] == f"Bearer {TOKEN}"


def test_participants_without_paging_are_walked_page_by_page():
    """data.participants has no paging: the client walks page_no until a short page; id is the peer id."""
    people = [participant(n) for n in range(5)]

    def page(request: httpx.Request) -> httpx.Response:
        page_no, per_page = int(request.url.params["page_no"]), int(request.url.params["per_page"])
        chunk = people[(page_no - 1) * per_page : page_no * per_page]
        return ok(
            sdk_participants.SessionGetSessionParticipantsResponse(
                success=True, data=sdk_participants.Data(participants=chunk)
            )
        )

    server = Server({("GET", "/sessions/sess-1/participants"): page})
    got = run(client(server, per_page=2).list_session_participants("sess-1"))
    assert [p.peer_id for p in got] == [f"peer-{n}" for n in range(5)]
    assert [r.url.params["page_no"] for r in server.requests] == ["1", "2", "3"]
    first = got[1]
    assert first.participant_key == "student-1" and first.duration_minutes == 12.5 and first.duration_seconds == 750.0
    assert first.joined_at == datetime(2026, 3, 2, 9, 1, tzinfo=UTC)
    assert got[0].participant_key == "peer-0"  # no custom id: the peer id


def test_sessions_listing_follows_the_top_level_paging():
    sessions = [dict(SESSION, id=f"sess-{n}") for n in range(3)]

    def page(request: httpx.Request) -> httpx.Response:
        page_no, per_page = int(request.url.params["page_no"]), int(request.url.params["per_page"])
        start = (page_no - 1) * per_page
        chunk = sessions[start : start + per_page]
        return ok(
            sdk_sessions.SessionGetSessionsResponse(
                success=True,
                data=sdk_sessions.Data(sessions=[sdk_sessions.DataSession(**s) for s in chunk]),
                paging=sdk_sessions.Paging(total_count=3, start_offset=start + 1, end_offset=start + len(chunk)),
            )
        )

    server = Server({("GET", "/sessions"): page})

    async def collect() -> list[str]:
        rtk = client(server, per_page=2)
        return [s.id async for s in rtk.iter_sessions(start_time=datetime(2026, 3, 1, tzinfo=UTC))]

    assert run(collect()) == ["sess-0", "sess-1", "sess-2"]
    assert server.requests[0].url.params["start_time"] == "2026-03-01T00:00:00Z"
    assert set(server.requests[0].url.params) <= set(sdk_sessions_params.SessionGetSessionsParams.__annotations__)


def test_recording_livestream_and_meeting_shapes():
    """Recording: bytes and seconds; livestream: data.livestream with the secret stream key; meeting: data."""
    recording = sdk_recording.RecordingGetOneRecordingResponse(
        success=True,
        data=sdk_recording.Data(
            id="rec-1",
            invoked_time=datetime(2026, 3, 2, 9, 5, tzinfo=UTC),
            output_file_name="rec-1.mp4",
            status="UPLOADED",
            session_id="sess-1",
            download_url="https://storage.example/rec-1.mp4",
            download_url_expiry=datetime(2026, 3, 9, tzinfo=UTC),
            file_size=1048576.0,
            recording_duration=3300,
            stop_reason=sdk_recording.DataStopReason(reason="ALL_PEERS_LEFT"),
        ),
    )
    livestream = sdk_livestream.LivestreamGetLivestreamSessionForLivestreamIDResponse(
        success=True,
        data=sdk_livestream.Data(
            livestream=sdk_livestream.DataLivestream(
                id="ls-1",
                meeting_id="meet-1",
                status="LIVE",
                stream_key="sk_live_PLANTED",
                ingest_server="rtmps://ingest.example/live",
                disabled="false",
                playback_url="https://play.example/ls-1.m3u8",
            ),
            session=sdk_livestream.DataSession(id="lss-1", ingest_seconds=60),
        ),
    )
    meeting = sdk_meeting.MeetingGetMeetingByIDResponse(
        success=True,
        data=sdk_meeting.Data(
            id="meet-1",
            title="Weekly",
            status="ACTIVE",
            created_at=datetime(2026, 1, 1, tzinfo=UTC),
            updated_at=datetime(2026, 1, 2, tzinfo=UTC),
        ),
    )
    server = Server(
        {
            ("GET", "/recordings/rec-1"): lambda r: ok(recording),
            ("GET", "/livestreams/ls-1"): lambda r: ok(livestream),
            ("GET", "/meetings/meet-1"): lambda r: ok(meeting),
        }
    )
    rtk = client(server)
    rec = run(rtk.get_recording("rec-1"))
    assert (rec.status, rec.session_id, rec.file_size, rec.recording_duration) == ("UPLOADED", "sess-1", 1048576, 3300)
    assert rec.download_url_expiry == datetime(2026, 3, 9, tzinfo=UTC) and rec.invalid_fields == ()
    stream = run(client(server).get_livestream("ls-1"))
    assert stream.id == "ls-1" and stream.status == "LIVE" and stream.disabled is False
    assert stream.stream_key is not None and "sk_live_PLANTED" not in repr(stream)
    assert stream.stream_key.get_secret_value() == "sk_live_PLANTED"
    got_meeting = run(client(server).get_meeting("meet-1"))
    assert (got_meeting.id, got_meeting.title, got_meeting.status) == ("meet-1", "Weekly", "ACTIVE")


def test_webhooks_list_create_201_update_delete():
    store = {"wh-1": webhook_fields()}

    def listing(request: httpx.Request) -> httpx.Response:
        return ok(
            sdk_webhooks.WebhookGetWebhooksResponse(success=True, data=[sdk_webhooks.Data(**f) for f in store.values()])
        )

    def create(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        store["wh-2"] = webhook_fields("wh-2", **body)
        data = sdk_webhook_created.Data(**store["wh-2"])
        return ok(sdk_webhook_created.WebhookCreateWebhookResponse(success=True, data=data), status=201)

    def patch(request: httpx.Request) -> httpx.Response:
        store["wh-1"].update(json.loads(request.content))
        data = sdk_webhook_created.Data(**store["wh-1"])
        return ok(sdk_webhook_created.WebhookCreateWebhookResponse(success=True, data=data))

    def delete(request: httpx.Request) -> httpx.Response:
        if "wh-2" not in store:
            return cf_error(404, 404, "No webhook found with id wh-2")
        data = sdk_webhook_created.Data(**store.pop("wh-2"))
        return ok(sdk_webhook_created.WebhookCreateWebhookResponse(success=True, data=data))

    server = Server(
        {
            ("GET", "/webhooks"): listing,
            ("POST", "/webhooks"): create,
            ("PATCH", "/webhooks/wh-1"): patch,
            ("DELETE", "/webhooks/wh-2"): delete,
        }
    )

    async def scenario() -> None:
        async with client(server) as rtk:
            [hook] = await rtk.list_webhooks()
            assert hook.events == tuple(EVENTS) and hook.enabled
            created = await rtk.create_webhook("second", "https://b.example/hook", ["meeting.ended"])
            assert created.id == "wh-2" and created.events == ("meeting.ended",) and created.name == "second"
            updated = await rtk.update_webhook("wh-1", enabled=False, events=("meeting.started",))
            assert updated.enabled is False and updated.events == ("meeting.started",)
            await rtk.delete_webhook("wh-2")
            assert [h.id for h in await rtk.list_webhooks()] == ["wh-1"]
            with pytest.raises(ProviderNotFound):
                await rtk.delete_webhook("wh-2")

    run(scenario())
    create_request = next(r for r in server.requests if r.method == "POST")
    assert json.loads(create_request.content) == {
        "name": "second",
        "url": "https://b.example/hook",
        "events": ["meeting.ended"],
        "enabled": True,
    }


# --------------------------------------------------------------------------- paths: same as the SDK's


def test_every_call_uses_the_sdk_path_method_and_bearer_auth():
    """Each ProviderClient call hits the same method and path as the SDK method for it, with the same auth."""
    sdk_seen: list[tuple[str, str, str | None]] = []
    ours_seen: list[tuple[str, str, str | None]] = []

    def recorder(seen: list[tuple[str, str, str | None]]) -> Callable[[httpx.Request], httpx.Response]:
        def handler(request: httpx.Request) -> httpx.Response:
            raw_path = request.url.raw_path.decode().split("?")[0]  # ids stay percent-encoded
            seen.append((request.method, raw_path, request.headers.get("authorization")))
            return httpx.Response(200, json={"success": True, "data": {"id": "x", "participants": [], "sessions": []}})

        return handler

    async def sdk_calls() -> None:
        http = httpx.AsyncClient(transport=httpx.MockTransport(recorder(sdk_seen)))
        async with AsyncCloudflare(api_token=TOKEN, http_client=http, max_retries=0) as cf:
            rk, ids = cf.realtime_kit, {"account_id": ACCOUNT, "app_id": APP}
            await rk.sessions.get_session_details("s/1", **ids)
            await rk.sessions.get_session_participants("s/1", **ids)
            await rk.sessions.get_sessions(**ids)
            await rk.recordings.get_one_recording("r-1", **ids)
            await rk.livestreams.get_livestream_session_for_livestream_id("l-1", **ids)
            await rk.meetings.get_meeting_by_id("m-1", **ids)
            await rk.webhooks.get_webhooks(**ids)
            await rk.webhooks.create_webhook(events=["meeting.ended"], name="n", url="https://x.example", **ids)
            await rk.webhooks.edit_webhook("w-1", enabled=True, **ids)
            await rk.webhooks.delete_webhook("w-1", **ids)

    async def our_calls() -> None:
        async with client(recorder(ours_seen)) as rtk:
            for call in (
                rtk.get_session("s/1"),
                rtk.list_session_participants("s/1"),
                rtk.get_recording("r-1"),
                rtk.get_livestream("l-1"),
                rtk.get_meeting("m-1"),
                rtk.list_webhooks(),
                rtk.create_webhook("n", "https://x.example", ["meeting.ended"]),
                rtk.update_webhook("w-1", enabled=True),
                rtk.delete_webhook("w-1"),
            ):
                try:
                    await call
                except ProviderResponseError:
                    pass  # the canned body is not every object; only the request matters here
            _ = [s async for s in rtk.iter_sessions()]

    run(sdk_calls())
    run(our_calls())
    assert sorted(ours_seen) == sorted(sdk_seen)
    assert {auth for _, _, auth in ours_seen} == {f"Bearer {TOKEN}"}
    assert ("GET", f"{PREFIX}/sessions/s%2F1/participants", f"Bearer {TOKEN}") in ours_seen  # ids encoded


def test_the_client_satisfies_the_provider_protocol_and_is_built_from_settings():
    settings = Settings(
        provider="realtimekit", realtimekit_account_id=ACCOUNT, realtimekit_app_id=APP, realtimekit_api_token=TOKEN
    )
    built = build_client(settings)
    assert isinstance(built, RealtimeKitClient) and isinstance(built, ProviderClient)
    assert built.base_url == f"{BASE}/accounts/{ACCOUNT}/realtime/kit/{APP}"
    assert built.limiter.calls_per_minute == 1200 and built.limiter.window_seconds == RATE_WINDOW_SECONDS
    assert TOKEN not in repr(built)
    assert build_client(Settings(provider="realtimekit", realtimekit_api_token=TOKEN)) is None
    run(built.aclose())


# --------------------------------------------------------------------------- errors


def test_cloudflare_error_envelope_is_quoted_and_the_token_never_is():
    """403 with errors[] -> ProviderAuthError naming Cloudflare's message and code; an echoed token is scrubbed."""
    server = Server({("GET", "/sessions/s-1"): lambda r: cf_error(403, 10000, f"Authentication error {TOKEN}")})
    with pytest.raises(ProviderAuthError) as caught:
        run(client(server).get_session("s-1"))
    message = str(caught.value)
    assert message == "RealtimeKit API GET /sessions/s-1 returned HTTP 403: Authentication error *** (code 10000)"
    assert TOKEN not in message + repr(caught.value) + caught.value.body_excerpt
    assert len(server.requests) == 1  # 4xx is not retried


def test_not_found_rate_limited_and_server_errors():
    answers = iter(
        [
            cf_error(429, 971, "Please wait", {"retry-after": "0"}),
            cf_error(502, 1000, "Bad gateway"),
            ok(sdk_session.SessionGetSessionDetailsResponse(success=True, data=sdk_session.Data(**SESSION))),
        ]
    )
    server = Server(
        {
            ("GET", "/sessions/gone"): lambda r: cf_error(404, 404, "No session found with id gone"),
            ("GET", "/sessions/sess-1"): lambda r: next(answers),
            ("GET", "/sessions/busy"): lambda r: cf_error(429, 971, "Please wait", {"retry-after": "0"}),
            ("POST", "/webhooks"): lambda r: cf_error(500, 1000, "Internal error"),
        }
    )
    rtk = client(server)
    with pytest.raises(ProviderNotFound, match=r"HTTP 404: No session found with id gone \(code 404\)"):
        run(rtk.get_session("gone"))
    assert run(client(server).get_session("sess-1")).id == "sess-1"  # 429 then 502 retried
    with pytest.raises(ProviderRateLimited) as limited:
        run(client(server).get_session("busy"))
    assert limited.value.retry_after_seconds == 0 and "RealtimeKit API" in str(limited.value)
    before = len(server.requests)
    with pytest.raises(ProviderStatusError, match="HTTP 500: Internal error"):
        run(client(server).create_webhook("n", "https://x.example", ["meeting.ended"]))
    assert len(server.requests) - before == 1  # a create is never retried after a 5xx


def test_success_false_and_non_envelope_answers_are_response_errors():
    server = Server(
        {
            ("GET", "/meetings/m-1"): lambda r: httpx.Response(
                200, json={"success": False, "errors": [{"code": 9109, "message": "Invalid access token"}]}
            ),
            ("GET", "/meetings/m-2"): lambda r: httpx.Response(200, text="<html>maintenance</html>"),
            ("GET", "/meetings/m-3"): lambda r: httpx.Response(200, json={"success": True, "data": None}),
        }
    )
    with pytest.raises(ProviderResponseError, match=r"success=false: Invalid access token \(code 9109\)"):
        run(client(server).get_meeting("m-1"))
    with pytest.raises(ProviderResponseError, match="not JSON"):
        run(client(server).get_meeting("m-2"))
    with pytest.raises(ProviderResponseError, match="expected an object"):
        run(client(server).get_meeting("m-3"))


def test_errors_summary_reads_both_envelopes():
    assert cloudflare_errors_summary({"errors": [{"code": 7003, "message": "Could not route"}]}) == (
        "Could not route (code 7003)"
    )
    assert cloudflare_errors_summary({"success": False, "error": {"code": 400, "message": "Bad\n input"}}) == (
        "Bad input (code 400)"
    )
    many = {"errors": [{"code": n, "message": f"e{n}"} for n in range(5)]}
    assert cloudflare_errors_summary(many) == "e0 (code 0); e1 (code 1); e2 (code 2); and 2 more"
    assert cloudflare_errors_summary({"errors": []}) is None and cloudflare_errors_summary([1]) is None


def test_empty_credentials_are_refused_at_construction():
    with pytest.raises(ValueError, match="account id and an app id"):
        RealtimeKitClient(BASE, "", APP, TOKEN)
    with pytest.raises(ValueError, match="API token"):
        RealtimeKitClient(BASE, ACCOUNT, APP, " ")
