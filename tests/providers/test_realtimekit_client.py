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
from cloudflare.types.realtime_kit import livestream_get_all_livestreams_params as sdk_all_livestreams_params
from cloudflare.types.realtime_kit import livestream_get_all_livestreams_response as sdk_all_livestreams
from cloudflare.types.realtime_kit import (
    livestream_get_livestream_session_for_livestream_id_params as sdk_livestream_params,
)
from cloudflare.types.realtime_kit import (
    livestream_get_livestream_session_for_livestream_id_response as sdk_livestream,
)
from cloudflare.types.realtime_kit import meeting_get_meeting_by_id_response as sdk_meeting
from cloudflare.types.realtime_kit import recording_get_one_recording_response as sdk_recording
from cloudflare.types.realtime_kit import recording_get_recordings_params as sdk_recordings_params
from cloudflare.types.realtime_kit import recording_get_recordings_response as sdk_recordings
from cloudflare.types.realtime_kit import session_get_session_details_params as sdk_session_params
from cloudflare.types.realtime_kit import session_get_session_details_response as sdk_session
from cloudflare.types.realtime_kit import session_get_session_participants_params as sdk_participants_params
from cloudflare.types.realtime_kit import session_get_session_participants_response as sdk_participants
from cloudflare.types.realtime_kit import session_get_sessions_params as sdk_sessions_params
from cloudflare.types.realtime_kit import session_get_sessions_response as sdk_sessions
from cloudflare.types.realtime_kit import webhook_create_webhook_response as sdk_webhook_created
from cloudflare.types.realtime_kit import webhook_get_webhooks_response as sdk_webhooks
from prometheus_client import REGISTRY

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
    """data.participants has no paging: the client walks page_no until an empty page; id is the peer id.

    Without totals a short page may be a capped one (see the next test), so
    the shared paginator confirms the end with one more call.
    """
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
    assert [r.url.params["page_no"] for r in server.requests] == ["1", "2", "3", "4"]
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


def test_calls_are_counted_under_the_realtimekit_provider_label():
    """receiver_dyte_api_calls_total keeps its name for both providers; provider="realtimekit" tells RTK's calls apart."""
    settings = Settings(
        provider="realtimekit", realtimekit_account_id=ACCOUNT, realtimekit_app_id=APP, realtimekit_api_token=TOKEN
    )
    server = Server({("GET", "/sessions/s-9"): lambda r: cf_error(404, 7003, "no such session")})
    built = build_client(settings, transport=httpx.MockTransport(server))
    assert built is not None
    labels = {"provider": "realtimekit", "method": "GET", "endpoint": "/sessions/{session_id}", "status": "404"}
    before = REGISTRY.get_sample_value("receiver_dyte_api_calls_total", labels) or 0.0
    with pytest.raises(ProviderNotFound):
        run(built.get_session("s-9"))
    run(built.aclose())
    assert REGISTRY.get_sample_value("receiver_dyte_api_calls_total", labels) == before + 1
    assert REGISTRY.get_sample_value("receiver_dyte_api_calls_total", {**labels, "provider": "dyte"}) is None


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


# --------------------------------------------------------------------------- issue #18: what reconciliation lists


def sdk_query_names(params_type: Any) -> set[str]:
    """The query parameters an SDK ``*Params`` TypedDict allows (the path ids excluded)."""
    return set(params_type.__annotations__) - {"account_id", "app_id"}


def test_participants_of_a_server_capping_the_page_size_without_paging_are_all_listed():
    """Asked for 100 a page, the server serves 2 and says no totals: every participant still comes."""
    people = [participant(n) for n in range(5)]

    def page(request: httpx.Request) -> httpx.Response:
        page_no, per_page = int(request.url.params["page_no"]), int(request.url.params["per_page"])
        size = min(per_page, 2)
        chunk = people[(page_no - 1) * size : page_no * size]
        return ok(
            sdk_participants.SessionGetSessionParticipantsResponse(
                success=True, data=sdk_participants.Data(participants=chunk)
            )
        )

    server = Server({("GET", "/sessions/sess-1/participants"): page})
    got = run(client(server).list_session_participants("sess-1"))
    assert [p.peer_id for p in got] == [f"peer-{n}" for n in range(5)]
    assert [r.url.params["page_no"] for r in server.requests] == ["1", "2", "3", "4"]


def test_sessions_listing_is_walked_to_its_total_when_the_page_size_is_capped():
    """Top-level paging says 5, the server serves 2 a page: the walk goes on with 2 and reports each page."""
    sessions = [dict(SESSION, id=f"sess-{n}") for n in range(5)]

    def page(request: httpx.Request) -> httpx.Response:
        page_no, per_page = int(request.url.params["page_no"]), int(request.url.params["per_page"])
        size = min(per_page, 2)
        start = (page_no - 1) * size
        chunk = sessions[start : start + size]
        return ok(
            sdk_sessions.SessionGetSessionsResponse(
                success=True,
                data=sdk_sessions.Data(sessions=[sdk_sessions.DataSession(**s) for s in chunk]),
                paging=sdk_sessions.Paging(total_count=5, start_offset=start + 1, end_offset=start + len(chunk)),
            )
        )

    server = Server({("GET", "/sessions"): page})
    pages: list[tuple[int, int, int | None]] = []

    async def collect() -> list[str]:
        return [s.id async for s in client(server).iter_sessions(on_page=lambda *args: pages.append(args))]

    assert run(collect()) == [f"sess-{n}" for n in range(5)]
    assert [r.url.params["per_page"] for r in server.requests] == ["100", "2", "2"]
    assert pages == [(1, 2, 5), (2, 4, 5), (3, 5, 5)]


def test_breakout_rooms_and_peer_events_are_asked_for_and_read(caplog: pytest.LogCaptureFixture):
    """include_breakout_rooms / include_peer_events as the SDK sends them; rooms are sessions, events upper-cased.

    A participant that is not an object is skipped with a warning; an
    unreadable time is logged once, naming the field, not the object.
    """
    room = dict(SESSION, id="sess-1-room-a", meeting_display_name="Room A", ended_at="2026-03-02T09:40:00.000Z")
    details = sdk_session.SessionGetSessionDetailsResponse(
        success=True, data=sdk_session.Data(**SESSION, breakout_rooms=[room, "not a room"])
    )
    person = sdk_participants.DataParticipant(
        id="peer-7",
        custom_participant_id="student-7",
        joined_at="2026-03-02T09:01:00.000Z",
        left_at="2026-03-02T09:30:00.000Z",
        peer_events=[
            sdk_participants.DataParticipantPeerEvent(
                id="e1", peer_id="peer-7", event_name="PEER_CREATED", created_at="2026-03-02T09:00:59.000Z"
            ),
            sdk_participants.DataParticipantPeerEvent(
                id="e2", peer_id="peer-7", event_name="PEER_JOINING", created_at="2026-03-02T09:01:00.000Z"
            ),
            sdk_participants.DataParticipantPeerEvent(
                id="e3", peer_id="peer-7", event_name="PEER_LEAVING", created_at="2026-03-02T09:30:00.000Z"
            ),
        ],
    )
    listing = json.loads(
        sdk_participants.SessionGetSessionParticipantsResponse(
            success=True, data=sdk_participants.Data(participants=[person])
        ).to_json()
    )
    listing["data"]["participants"] += ["garbage", {"id": "peer-8", "joined_at": "yesterday-ish"}]

    def participants(request: httpx.Request) -> httpx.Response:
        if request.url.params["page_no"] != "1":
            return ok(
                sdk_participants.SessionGetSessionParticipantsResponse(success=True, data=sdk_participants.Data())
            )
        return httpx.Response(200, json=listing)

    server = Server(
        {("GET", "/sessions/sess-1"): lambda r: ok(details), ("GET", "/sessions/sess-1/participants"): participants}
    )
    rtk = client(server)
    session = run(rtk.get_session("sess-1", include_breakout_rooms=True))
    assert [b.id for b in session.breakout_rooms] == ["sess-1-room-a"]
    assert session.breakout_rooms[0].ended_at == datetime(2026, 3, 2, 9, 40, tzinfo=UTC)
    with caplog.at_level("WARNING"):
        got = run(rtk.list_session_participants("sess-1", include_peer_events=True))
    assert [p.peer_id for p in got] == ["peer-7", "peer-8"]
    assert [e.event_name for e in got[0].peer_events] == ["PEER_CREATED", "PEER_JOINING", "PEER_LEAVING"]
    assert got[1].joined_at is None and got[1].invalid_fields == ("joined_at",)
    assert "item skipped" in caplog.text and "unreadable joined_at 'yesterday-ish'" in caplog.text
    first, second = server.requests[0], server.requests[1]
    assert first.url.params["include_breakout_rooms"] == "true"
    assert set(first.url.params) <= sdk_query_names(sdk_session_params.SessionGetSessionDetailsParams)
    assert second.url.params["include_peer_events"] == "true"
    assert set(second.url.params) <= sdk_query_names(sdk_participants_params.SessionGetSessionParticipantsParams)
    plain = run(client(server).get_session("sess-1"))
    assert plain.id == "sess-1" and "include_breakout_rooms" not in server.requests[-1].url.params


def recording_item(n: int, session_id: str | None) -> sdk_recordings.Data:
    return sdk_recordings.Data(
        id=f"rec-{n}",
        invoked_time=datetime(2026, 3, 2, 9, n, tzinfo=UTC),
        output_file_name=f"rec-{n}.mp4",
        status="UPLOADED",
        session_id=session_id,
        file_size=2048.5,
        recording_duration=60 * n,
        meeting=sdk_recordings.DataMeeting(
            id="meet-1", created_at=datetime(2026, 1, 1, tzinfo=UTC), updated_at=datetime(2026, 1, 1, tzinfo=UTC)
        ),
    )


def test_recordings_of_a_meeting_are_listed_page_by_page():
    """GET recordings?meeting_id=: bare data array, top-level paging; the meeting comes from the nested object."""
    items = [recording_item(n, "sess-1" if n % 2 else None) for n in range(1, 4)]

    def page(request: httpx.Request) -> httpx.Response:
        page_no, per_page = int(request.url.params["page_no"]), int(request.url.params["per_page"])
        start = (page_no - 1) * per_page
        chunk = items[start : start + per_page]
        return ok(
            sdk_recordings.RecordingGetRecordingsResponse(
                success=True,
                data=chunk,
                paging=sdk_recordings.Paging(total_count=3, start_offset=start + 1, end_offset=start + len(chunk)),
            )
        )

    server = Server({("GET", "/recordings"): page})
    got = run(client(server, per_page=2).list_recordings(meeting_id="meet-1"))
    assert [(r.id, r.meeting_id, r.session_id) for r in got] == [
        ("rec-1", "meet-1", "sess-1"),
        ("rec-2", "meet-1", None),
        ("rec-3", "meet-1", "sess-1"),
    ]
    assert got[0].file_size == 2048 and got[2].recording_duration == 180
    assert [r.url.params["page_no"] for r in server.requests] == ["1", "2"]
    assert {r.url.params["meeting_id"] for r in server.requests} == {"meet-1"}
    assert set(server.requests[0].url.params) <= sdk_query_names(sdk_recordings_params.RecordingGetRecordingsParams)


def livestream_fields(livestream_id: str, meeting_id: str | None) -> dict[str, Any]:
    return dict(
        id=livestream_id,
        meeting_id=meeting_id,
        name=f"stream {livestream_id}",
        status="IDLE",
        stream_key=f"sk_{livestream_id}_PLANTED",
        disabled="false",
        created_at=datetime(2026, 3, 2, 9, 0, tzinfo=UTC),
    )


def livestreams_server(runs: dict[str, list[dict[str, Any]]], meetings: dict[str, str | None]) -> Server:
    """GET livestreams (a bare data array of SDK livestream objects) and GET livestreams/{id}, one run a page."""

    def all_livestreams(request: httpx.Request) -> httpx.Response:
        page_no, per_page = int(request.url.params["page_no"]), int(request.url.params["per_page"])
        ids = sorted(meetings)
        start = (page_no - 1) * per_page
        chunk = ids[start : start + per_page]
        data = [json.loads(sdk_all_livestreams.Data(**livestream_fields(i, meetings[i])).to_json()) for i in chunk]
        paging = {"total_count": len(ids), "start_offset": start + 1, "end_offset": start + len(chunk)}
        return httpx.Response(200, json={"success": True, "data": data, "paging": paging})

    def one_livestream(request: httpx.Request) -> httpx.Response:
        livestream_id = request.url.path.rsplit("/", 1)[-1]
        if livestream_id not in runs:
            return cf_error(404, 404, f"No livestream found with id {livestream_id}")
        page_no = int(request.url.params["page_no"])
        mine = runs[livestream_id]
        run_ = mine[page_no - 1] if page_no <= len(mine) else None
        fields = {k: v for k, v in livestream_fields(livestream_id, meetings.get(livestream_id)).items()}
        fields["created_at"] = fields["created_at"].isoformat()
        return ok(
            sdk_livestream.LivestreamGetLivestreamSessionForLivestreamIDResponse(
                success=True,
                data=sdk_livestream.Data(
                    livestream=sdk_livestream.DataLivestream(**fields),
                    session=sdk_livestream.DataSession(**run_) if run_ else None,
                    paging=sdk_livestream.DataPaging(
                        total_count=len(mine), start_offset=page_no, end_offset=min(page_no, len(mine))
                    ),
                ),
            )
        )

    routes: dict[tuple[str, str], Callable[[httpx.Request], httpx.Response]] = {
        ("GET", "/livestreams"): all_livestreams
    }
    for livestream_id in set(meetings) | set(runs):
        routes[("GET", f"/livestreams/{livestream_id}")] = one_livestream
    return Server(routes)


def run_fields(run_id: str, livestream_id: str, started: datetime, viewer_seconds: float) -> dict[str, Any]:
    return dict(
        id=run_id,
        livestream_id=livestream_id,
        started_time=started,
        stopped_time=started + (datetime(2026, 1, 1, 0, 10) - datetime(2026, 1, 1)),
        ingest_seconds=600,
        viewer_seconds=viewer_seconds,
    )


def test_a_meetings_livestreams_come_from_the_apps_listing():
    """No listing by meeting on RealtimeKit: GET livestreams is walked and the meeting's are kept, keys secret."""
    server = livestreams_server({}, {"ls-a": "meet-1", "ls-b": "meet-2", "ls-c": "meet-1", "ls-d": None})
    got = run(client(server, per_page=3).list_meeting_livestreams("meet-1"))
    assert [(s.id, s.meeting_id, s.disabled) for s in got] == [("ls-a", "meet-1", False), ("ls-c", "meet-1", False)]
    assert all(s.stream_key is not None and "PLANTED" not in repr(s) for s in got)
    assert [r.url.params["page_no"] for r in server.requests] == ["1", "2"]
    assert set(server.requests[0].url.params) <= sdk_query_names(
        sdk_all_livestreams_params.LivestreamGetAllLivestreamsParams
    )


def test_a_livestreams_runs_are_walked_one_session_a_page():
    """GET livestreams/{id}: the SDK's data.session (one run) with data.paging: every run comes, seconds kept."""
    t0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
    runs = {"ls-a": [run_fields("run-1", "ls-a", t0, 120.0), run_fields("run-2", "ls-a", t0.replace(hour=11), 30.5)]}
    server = livestreams_server(runs, {"ls-a": "meet-1"})
    got = run(client(server).list_livestream_sessions("ls-a"))
    assert [(r.id, r.livestream_id, r.viewer_seconds, r.ingest_seconds) for r in got] == [
        ("run-1", "ls-a", 120.0, 600.0),
        ("run-2", "ls-a", 30.5, 600.0),
    ]
    assert got[0].started_time == t0 and got[0].session_id is None
    assert [r.url.params["per_page"] for r in server.requests] == ["100", "1"]
    assert set(server.requests[0].url.params) <= sdk_query_names(
        sdk_livestream_params.LivestreamGetLivestreamSessionForLivestreamIDParams
    )


def test_a_sessions_livestream_runs_are_those_of_its_meeting_while_it_was_live():
    """No sessions/{id}/livestream-sessions on RealtimeKit: runs of the meeting's livestreams started during the
    session are its runs (session_id set); earlier or later runs, other meetings' and a deleted livestream are not."""
    start = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
    runs = {
        "ls-a": [
            run_fields("before", "ls-a", start.replace(hour=8), 10.0),
            run_fields("during", "ls-a", start.replace(minute=5), 120.0),
            run_fields("after", "ls-a", start.replace(hour=11), 10.0),
        ],
        "ls-b": [run_fields("other-meeting", "ls-b", start.replace(minute=5), 10.0)],
    }
    server = livestreams_server(runs, {"ls-a": "meet-1", "ls-b": "meet-2", "ls-gone": "meet-1"})
    server.routes[("GET", "/sessions/sess-1")] = lambda r: ok(
        sdk_session.SessionGetSessionDetailsResponse(success=True, data=sdk_session.Data(**SESSION))
    )
    got = run(client(server).list_session_livestream_sessions("sess-1"))
    assert [(r.id, r.session_id, r.livestream_id, r.viewer_seconds) for r in got] == [
        ("during", "sess-1", "ls-a", 120.0)
    ]
    with pytest.raises(ProviderNotFound):
        run(client(server).list_session_livestream_sessions("sess-unknown"))


def test_listings_tolerate_unusable_items_and_a_missing_endpoint_is_not_found(caplog: pytest.LogCaptureFixture):
    """A recording that is not an object (or has no id) is skipped with a warning; the rest are kept."""
    good = json.loads(recording_item(1, "sess-1").to_json())
    body = {"success": True, "data": [good, 42, {"status": "UPLOADED"}], "paging": {"total_count": 3}}
    server = Server({("GET", "/recordings"): lambda r: httpx.Response(200, json=body)})
    with caplog.at_level("WARNING"):
        got = run(client(server).list_recordings(meeting_id="meet-1"))
    assert [r.id for r in got] == ["rec-1"]
    assert caplog.text.count("GET /recordings: item skipped") == 2
    with pytest.raises(ProviderNotFound):
        run(client(Server({})).list_meeting_livestreams("meet-1"))


def test_the_listings_use_the_sdk_paths_and_query_values():
    """The listings reconciliation adds hit the SDK methods' paths, with the SDK's spelling of the options."""
    sdk_seen: set[tuple[str, str, str]] = set()
    ours_seen: set[tuple[str, str, str]] = set()

    def recorder(seen: set[tuple[str, str, str]]) -> Callable[[httpx.Request], httpx.Response]:
        def handler(request: httpx.Request) -> httpx.Response:
            params = request.url.params
            options = "&".join(
                f"{k}={params[k]}" for k in sorted(params) if k not in {"page_no", "per_page"}
            )  # the SDK sends no paging parameters unless asked
            path = request.url.raw_path.decode().split("?")[0]
            seen.add((request.method, path, options))
            data: Any = {"participants": []} if path.endswith("/participants") else []
            return httpx.Response(200, json={"success": True, "data": data})

        return handler

    async def sdk_calls() -> None:
        http = httpx.AsyncClient(transport=httpx.MockTransport(recorder(sdk_seen)))
        async with AsyncCloudflare(api_token=TOKEN, http_client=http, max_retries=0) as cf:
            rk, ids = cf.realtime_kit, {"account_id": ACCOUNT, "app_id": APP}
            await rk.sessions.get_session_details("s-1", include_breakout_rooms=True, **ids)
            await rk.sessions.get_session_participants("s-1", include_peer_events=True, **ids)
            await rk.recordings.get_recordings(meeting_id="m-1", **ids)
            await rk.livestreams.get_all_livestreams(**ids)
            await rk.livestreams.get_livestream_session_for_livestream_id("l-1", **ids)

    async def our_calls() -> None:
        async with client(recorder(ours_seen)) as rtk:
            with pytest.raises(ProviderResponseError):
                await rtk.get_session("s-1", include_breakout_rooms=True)  # the canned data is no session
            await rtk.list_session_participants("s-1", include_peer_events=True)
            await rtk.list_recordings(meeting_id="m-1")
            await rtk.list_meeting_livestreams("m-1")
            await rtk.list_livestream_sessions("l-1")

    run(sdk_calls())
    run(our_calls())
    assert ours_seen == sdk_seen
