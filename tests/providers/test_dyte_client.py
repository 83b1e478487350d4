"""Tests of the Dyte REST client, its models, the rate limiter and the retry policy.

HTTP goes through ``httpx.MockTransport`` with bodies shaped like the
examples of ``shared/dyte/openapi-v2.yaml``; sleeping and clocks are fakes,
so nothing here waits in real time.
"""

from __future__ import annotations

import asyncio
import base64
import random
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from receiver.providers.dyte.client import (
    DyteAPIError,
    DyteAuthError,
    DyteClient,
    DyteNotFound,
    DyteRateLimited,
    DyteResponseError,
    DyteStatusError,
    DyteTransportError,
)
from receiver.providers.dyte.rest_models import (
    ApiLivestream,
    ApiParticipant,
    ApiRecording,
    ApiSession,
    ApiWebhook,
)
from receiver.providers.ratelimit import RateLimiter
from receiver.retry import RetryPolicy

BASE_URL = "https://api.dyte.io/v2"
ORG_ID = "c94c437b-592a-4a39-b9e2-47ef1451e43b"
API_KEY = "sk-test-9f3a1c0e77SECRETKEY"
BASIC = "Basic " + base64.b64encode(f"{ORG_ID}:{API_KEY}".encode()).decode()


# --------------------------------------------------------------------------- fakes and helpers


class FakeTime:
    """A fake monotonic clock whose ``sleep`` records the delay and advances the clock."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds
        await asyncio.sleep(0)


class Recorder:
    """MockTransport handler that serves queued responses (or raises queued exceptions) and records requests."""

    def __init__(self, *steps: Any) -> None:
        self.steps = list(steps)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        step = self.steps.pop(0) if len(self.steps) > 1 else self.steps[0]
        if isinstance(step, Exception):
            raise step
        if callable(step):
            return step(request)
        return step


def ok(data: Any, paging: dict[str, Any] | None = None, status: int = 200) -> httpx.Response:
    body: dict[str, Any] = {"success": True, "data": data}
    if paging is not None:
        body["paging"] = paging
    return httpx.Response(status, json=body)


def error(status: int, message: str = "error", headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.Response(
        status, json={"success": False, "error": {"code": status, "message": message}}, headers=headers
    )


def make_client(handler: Callable[[httpx.Request], httpx.Response], **kwargs: Any) -> tuple[DyteClient, FakeTime]:
    fake = FakeTime()
    kwargs.setdefault("limiter", RateLimiter(2000, clock=fake.clock, sleep=fake.sleep))
    client = DyteClient(
        BASE_URL,
        ORG_ID,
        API_KEY,
        transport=httpx.MockTransport(handler),
        sleep=fake.sleep,
        rng=random.Random(7),
        **kwargs,
    )
    return client, fake


def run(client: DyteClient, make_coro: Callable[[DyteClient], Any]) -> Any:
    """Run ``make_coro(client)`` in a fresh event loop and close the client afterwards."""

    async def main() -> Any:
        async with client:
            return await make_coro(client)

    return asyncio.run(main())


# Shapes copied from the spec's examples (ParticipantListSuccess, GetActiveSessionSuccessResponse, ...).
SPEC_PARTICIPANT_MARK = {
    "id": "005f4e0c-4d08-4d4e-a391-a76be75cd296",
    "user_id": "0a08343d-a9dc-45f0-9feb-6a64afcc4f81",
    "custom_participant_id": "83qi0i",
    "display_name": "Mark",
    "preset_name": "webinar_participant",
    "joined_at": "2023-02-01T10:51:08.030Z",
    "left_at": "2023-02-01T10:56:56.612Z",
    "duration": 5.8097,
    "created_at": "2023-02-01T10:51:08.039Z",
    "updated_at": "2023-02-01T10:56:56.618Z",
}
SPEC_PARTICIPANT_HENRY = {
    "id": "51fdf95f-d893-471a-922b-7db7adb14453",
    "user_id": "85e7f0fd-7c16-45e9-9d68-f17ef007c4eb",
    "custom_participant_id": "3uggr",
    "display_name": "Henry",
    "preset_name": "webinar_participant",
    "joined_at": '2023-02-01T10:50:36.846Z"',  # sic: the spec's example has a stray quote
    "left_at": "2023-02-01T10:57:32.424Z",
    "duration": 6.9263,
    "created_at": "2023-02-01T10:50:36.853Z",
    "updated_at": "2023-02-01T10:57:32.431Z",
}
SPEC_SESSION = {
    "id": "813432c7-3c5a-45e2-9acf-eef7061c7584",
    "associated_id": "6bf2b8be-04dd-4191-b602-1128921a306b",
    "type": "meeting",
    "status": "LIVE",
    "live_participants": 1,
    "max_concurrent_participants": 2,
    "minutes_consumed": 2.3434,
    "started_at": "2022-01-12T14:21:34.388Z",
    "ended_at": "null",
    "created_at": "2022-01-12T14:21:34.398Z",
    "updated_at": "2022-01-12T14:26:00.784Z",
}
SPEC_RECORDING = {
    "id": "ab920f84-2d19-4013-99c7-5b80291d0188",
    "download_url": "https://dyte-recordings.example/test.mp4",
    "download_url_expiry": "2023-04-21 04:46:55.608944Z",
    "audio_download_url": None,
    "file_size": "2044680",
    "session_id": "5a0c5abd-97a3-4dac-b2d2-19ed3d7bb3c2",
    "output_file_name": "missxh-vxtest_1681447566346.mp4",
    "status": "uploaded",
    "invoked_time": "2023-04-14T04:45:58.000Z",
    "started_time": "2023-04-14 04:46:08.306221Z",
    "stopped_time": "2023-04-14 04:46:55.420986Z",
    "recording_duration": "47",
    "storage_config": None,
    "start_reason": {"reason": "API_CALL", "caller": {"type": "ORGANIZATION"}},
    "stop_reason": {"reason": "ALL_PEERS_LEFT"},
}
SPEC_LIVESTREAM_DATA = {
    "livestream": {
        "id": "b60ef3da-fbbb-441b-9168-8235b0035248",
        "name": None,
        "ingest_server": "rtmps://2ec802dd47b0.global-contribute.live-video.net:443/app/",
        "stream_key": "sk_ap-south-1_x3lKBdJa8UDN_3q6PPLMJnqnbnhyrkXrOG504MUsxnZ",
        "status": "LIVE",
        "meeting_id": "bbb87945-df1c-49d9-8159-262a7ae6cfde",
        "playback_url": "https://2ec802dd47b0.ap-south-1.playback.live-video.net/x.m3u8",
        "created_at": "2023-07-15T07:08:26.634Z",
        "updated_at": "2023-07-15T07:08:40.726Z",
        "disabled": False,
    },
    "sessions": [
        {
            "id": "cf55a850-c3fd-46b5-b5d2-25b3b9aa1686",
            "livestream_id": "b60ef3da-fbbb-441b-9168-8235b0035248",
            "started_time": "2023-07-15T07:08:39.000Z",
        }
    ],
}
SPEC_WEBHOOK = {
    "id": "901e9adf-ebd9-41f0-9098-28171bc04ddd",
    "name": "test",
    "events": ["meeting.started"],
    "url": "https://new-test-url.com",
    "enabled": True,
    "created_at": "2021-09-09T10:25:12.330Z",
    "updated_at": "2021-09-09T10:25:12.376Z",
}


def participant(n: int) -> dict[str, Any]:
    return {**SPEC_PARTICIPANT_MARK, "id": f"p-{n:04d}", "custom_participant_id": f"c-{n:04d}", "duration": n / 10}


def participants_pages(total: int) -> Callable[[httpx.Request], httpx.Response]:
    """Serve ``total`` participants by page_no/per_page, with paging inside ``data`` as in the spec example."""

    def handler(request: httpx.Request) -> httpx.Response:
        page_no = int(request.url.params["page_no"])
        per_page = int(request.url.params["per_page"])
        start = (page_no - 1) * per_page
        items = [participant(n) for n in range(start, min(total, start + per_page))]
        paging = {"total_count": total, "start_offset": start + 1, "end_offset": start + len(items)}
        return ok({"participants": items, "paging": paging})

    return handler


# --------------------------------------------------------------------------- pagination and shapes


def test_participants_pagination_three_pages_in_order() -> None:
    """250 participants served over 3 pages of 100 come back complete and in order."""
    recorder = Recorder(participants_pages(250))
    client, _ = make_client(recorder, per_page=100)
    result = run(client, lambda c: c.list_session_participants("sess-1"))
    assert [p.id for p in result] == [f"p-{n:04d}" for n in range(250)]
    assert [r.url.params["page_no"] for r in recorder.requests] == ["1", "2", "3"]
    assert {r.url.params["per_page"] for r in recorder.requests} == {"100"}
    assert {r.url.path for r in recorder.requests} == {"/v2/sessions/sess-1/participants"}


def test_participant_duration_is_minutes() -> None:
    """The spec's ``duration`` (minutes) is kept as ``duration_minutes`` and converted only by ``duration_seconds``."""
    client, _ = make_client(Recorder(ok({"participants": [SPEC_PARTICIPANT_MARK]})))
    (mark,) = run(client, lambda c: c.list_session_participants("s"))
    assert mark.duration_minutes == pytest.approx(5.8097)
    assert mark.duration_seconds == pytest.approx(348.582)
    assert mark.peer_id == mark.id  # the spec's participant id is the peer id
    assert mark.participant_key == "83qi0i"
    assert mark.joined_at == datetime(2023, 2, 1, 10, 51, 8, 30000, tzinfo=UTC)


def test_participant_key_falls_back_to_peer_id() -> None:
    """Without a custom participant id, ``participant_key`` is the peer id (an explicit ``peer_id`` wins over ``id``)."""
    p = ApiParticipant.model_validate({"id": "x1", "custom_participant_id": "null", "peer_id": "peer-9"})
    assert p.participant_key == "peer-9"
    assert ApiParticipant.model_validate({"id": "x2"}).participant_key == "x2"


def test_spec_example_stray_quote_lands_in_invalid_fields() -> None:
    """The spec's own ``joined_at`` with a stray quote becomes None and is listed in ``invalid_fields``."""
    client, _ = make_client(Recorder(ok({"participants": [SPEC_PARTICIPANT_MARK, SPEC_PARTICIPANT_HENRY]})))
    mark, henry = run(client, lambda c: c.list_session_participants("s"))
    assert mark.invalid_fields == ()
    assert henry.joined_at is None
    assert henry.invalid_fields == ("joined_at",)
    assert henry.left_at == datetime(2023, 2, 1, 10, 57, 32, 424000, tzinfo=UTC)


def test_stray_character_timestamp_does_not_raise() -> None:
    """A timestamp with a stray character is set to None and recorded, other fields still parse."""
    session = ApiSession.model_validate(
        {**SPEC_SESSION, "started_at": "2023-01-25X04:51:35Z", "ended_at": "2023-01-25 04:51:35.903816Z!"}
    )
    assert session.started_at is None and session.ended_at is None
    assert session.invalid_fields == ("started_at", "ended_at")
    assert session.created_at == datetime(2022, 1, 12, 14, 21, 34, 398000, tzinfo=UTC)


def test_null_strings_numeric_strings_and_space_timestamps() -> None:
    """``"null"`` strings, numbers as strings and ``2023-01-25 04:51:35.903816Z`` all parse."""
    session = ApiSession.model_validate(
        {
            **SPEC_SESSION,
            "live_participants": "12",
            "max_concurrent_participants": "null",
            "minutes_consumed": "12.5",
            "meeting_display_name": "null",
            "started_at": "2023-01-25 04:51:35.903816Z",
            "unknown_extra": {"ignored": True},
        }
    )
    assert session.live_participants == 12
    assert session.max_concurrent_participants is None
    assert session.minutes_consumed == 12.5
    assert session.meeting_display_name is None
    assert session.ended_at is None  # "null" in the spec example
    assert session.started_at == datetime(2023, 1, 25, 4, 51, 35, 903816, tzinfo=UTC)
    assert session.invalid_fields == ()

    recording = ApiRecording.model_validate(SPEC_RECORDING)
    assert recording.file_size == 2044680 and isinstance(recording.file_size, int)
    assert recording.recording_duration == 47.0
    assert recording.status == "UPLOADED"
    assert recording.stopped_time == datetime(2023, 4, 14, 4, 46, 55, 420986, tzinfo=UTC)
    assert recording.download_url_expiry == datetime(2023, 4, 21, 4, 46, 55, 608944, tzinfo=UTC)
    assert recording.audio_download_url is None


def test_models_are_frozen_and_require_id() -> None:
    """Models are immutable, and only a missing id is a validation error."""
    session = ApiSession.model_validate({"id": "s"})
    with pytest.raises(Exception):  # noqa: B017
        session.status = "ENDED"  # type: ignore[misc]
    with pytest.raises(Exception):  # noqa: B017
        ApiSession.model_validate({"id": "null", "status": "LIVE"})


def test_get_session_unwraps_data_session() -> None:
    """``GET /sessions/{id}`` answers ``data.session`` (spec GetSessionDetails), which is unwrapped."""
    recorder = Recorder(ok({"session": SPEC_SESSION}))
    client, _ = make_client(recorder)
    session = run(client, lambda c: c.get_session(SPEC_SESSION["id"]))
    assert session.id == SPEC_SESSION["id"]
    assert session.associated_id == "6bf2b8be-04dd-4191-b602-1128921a306b"
    assert session.status == "LIVE" and session.ended_at is None
    assert recorder.requests[0].url.path == f"/v2/sessions/{SPEC_SESSION['id']}"


def test_iter_sessions_sends_time_range_and_stops_at_total_count() -> None:
    """``iter_sessions`` passes ISO ``start_time``/``end_time`` and stops once ``end_offset >= total_count``."""

    def handler(request: httpx.Request) -> httpx.Response:
        page = int(request.url.params["page_no"])
        items = [{**SPEC_SESSION, "id": f"s{page}-{i}"} for i in range(2)]
        return ok({"sessions": items}, paging={"total_count": 4, "start_offset": 2 * page - 1, "end_offset": 2 * page})

    recorder = Recorder(handler)
    client, _ = make_client(recorder, per_page=2)
    start = datetime(2024, 5, 1, tzinfo=UTC)
    end = datetime(2024, 5, 2, 12, 30, tzinfo=UTC)

    async def collect(c: DyteClient) -> list[ApiSession]:
        return [s async for s in c.iter_sessions(start_time=start, end_time=end)]

    sessions = run(client, collect)
    assert [s.id for s in sessions] == ["s1-0", "s1-1", "s2-0", "s2-1"]
    assert len(recorder.requests) == 2
    params = recorder.requests[0].url.params
    assert params["start_time"] == "2024-05-01T00:00:00Z"
    assert params["end_time"] == "2024-05-02T12:30:00Z"


def test_paginator_stops_on_empty_and_repeated_pages() -> None:
    """A full page followed by an empty page, or a server ignoring ``page_no``, does not loop forever."""
    full = ok({"participants": [participant(0), participant(1)]})
    recorder = Recorder(full, ok({"participants": []}))
    client, _ = make_client(recorder, per_page=2)
    assert len(run(client, lambda c: c.list_session_participants("s"))) == 2
    assert len(recorder.requests) == 2

    same = Recorder(lambda request: ok({"participants": [participant(0), participant(1)]}))
    client, _ = make_client(same, per_page=2)
    assert len(run(client, lambda c: c.list_session_participants("s"))) == 2
    assert len(same.requests) == 2


def test_get_recording_meeting_and_livestream() -> None:
    """Recording, meeting and livestream lookups hit the spec paths and unwrap their objects."""

    def handler(request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if path.startswith("/v2/recordings/"):
            return ok({**SPEC_RECORDING, "meeting": {"id": "m-1"}})
        if path.startswith("/v2/meetings/"):
            return ok(
                {
                    "id": "7f951e37-492b-45dd-8256-7f1660341c17",
                    "title": "Standup",
                    "status": "ACTIVE",
                    "created_at": "2022-11-04T18:22:11.369Z",
                    "updated_at": "2022-11-04T18:22:11.369Z",
                    "record_on_start": False,
                }
            )
        if path.startswith("/v2/livestreams/"):
            return ok(SPEC_LIVESTREAM_DATA, paging={"total_count": 1, "start_offset": 1, "end_offset": 1})
        return error(404)

    recorder = Recorder(handler)
    client, _ = make_client(recorder)

    async def calls(c: DyteClient) -> tuple[Any, Any, Any]:
        return (await c.get_recording("r-1"), await c.get_meeting("m-1"), await c.get_livestream("ls-1"))

    recording, meeting, livestream = run(client, calls)
    assert recording.meeting_id == "m-1" and recording.session_id == SPEC_RECORDING["session_id"]
    assert meeting.title == "Standup" and meeting.status == "ACTIVE"
    assert livestream.id == "b60ef3da-fbbb-441b-9168-8235b0035248"
    assert livestream.status == "LIVE" and livestream.meeting_id == "bbb87945-df1c-49d9-8159-262a7ae6cfde"
    assert [r.url.path for r in recorder.requests] == [
        "/v2/recordings/r-1",
        "/v2/meetings/m-1",
        "/v2/livestreams/ls-1",
    ]


def test_livestream_secrets_never_in_repr_or_json_dump() -> None:
    """The stream key and ingest URL are SecretStr: masked in repr and ``model_dump(mode="json")``."""
    livestream = ApiLivestream.model_validate(SPEC_LIVESTREAM_DATA["livestream"])
    key = SPEC_LIVESTREAM_DATA["livestream"]["stream_key"]
    assert key not in repr(livestream) and key not in str(livestream)
    dumped = livestream.model_dump(mode="json")
    assert key not in str(dumped) and "global-contribute" not in str(dumped)
    assert livestream.stream_key is not None and livestream.stream_key.get_secret_value() == key


# --------------------------------------------------------------------------- retries and errors


def test_429_with_retry_after_then_success() -> None:
    """A 429 with ``retry-after: 2`` is retried after sleeping exactly 2 s, then succeeds."""
    recorder = Recorder(error(429, "Too Many Requests", headers={"retry-after": "2"}), ok({"session": SPEC_SESSION}))
    client, fake = make_client(recorder)
    session = run(client, lambda c: c.get_session("s"))
    assert session.id == SPEC_SESSION["id"]
    assert fake.sleeps == [2.0]
    assert len(recorder.requests) == 2


def test_429_retry_after_is_capped_and_exhaustion_raises_rate_limited() -> None:
    """A huge ``retry-after`` is capped at 60 s and a persistent 429 raises DyteRateLimited."""
    recorder = Recorder(error(429, headers={"retry-after": "3600"}))
    client, fake = make_client(recorder, retry=RetryPolicy(max_attempts=3))
    with pytest.raises(DyteRateLimited) as info:
        run(client, lambda c: c.get_meeting("m"))
    assert info.value.status_code == 429 and info.value.retry_after_seconds == 60.0
    assert fake.sleeps == [60.0, 60.0]
    assert len(recorder.requests) == 3


def test_500_502_then_success_after_three_attempts() -> None:
    """5xx answers are retried with backoff and the third attempt succeeds."""
    recorder = Recorder(error(500), error(502), ok(SPEC_RECORDING))
    client, fake = make_client(recorder)
    recording = run(client, lambda c: c.get_recording("r"))
    assert recording.id == SPEC_RECORDING["id"]
    assert len(recorder.requests) == 3
    assert len(fake.sleeps) == 2
    assert 0.25 <= fake.sleeps[0] <= 0.5 and 0.5 <= fake.sleeps[1] <= 1.0


def test_persistent_500_raises_status_error_after_max_attempts() -> None:
    """A 500 on every attempt raises DyteStatusError after exactly ``max_attempts`` requests."""
    recorder = Recorder(error(500, "boom"))
    client, fake = make_client(recorder)
    with pytest.raises(DyteStatusError) as info:
        run(client, lambda c: c.get_recording("r"))
    assert info.value.status_code == 500 and "boom" in info.value.body_excerpt
    assert len(recorder.requests) == RetryPolicy().max_attempts == 5
    assert len(fake.sleeps) == 4


def test_read_timeouts_then_success() -> None:
    """``httpx.ReadTimeout`` raised by the transport is retried until the answer comes."""
    recorder = Recorder(
        httpx.ReadTimeout("read timed out"), httpx.ConnectError("refused"), ok({"session": SPEC_SESSION})
    )
    client, fake = make_client(recorder)
    session = run(client, lambda c: c.get_session("s"))
    assert session.id == SPEC_SESSION["id"]
    assert len(recorder.requests) == 3 and len(fake.sleeps) == 2
    assert client.calls_by_endpoint[("GET", "/sessions/{session_id}", "ReadTimeout")] == 1


def test_persistent_timeout_raises_transport_error() -> None:
    """Timeouts on every attempt raise DyteTransportError naming the cause."""
    recorder = Recorder(httpx.ReadTimeout("read timed out"))
    client, _ = make_client(recorder, retry=RetryPolicy(max_attempts=2))
    with pytest.raises(DyteTransportError) as info:
        run(client, lambda c: c.get_session("s"))
    assert info.value.cause == "ReadTimeout" and isinstance(info.value, DyteAPIError)
    assert len(recorder.requests) == 2


def test_404_raises_not_found_without_retry() -> None:
    """A 404 raises DyteNotFound after a single request and no sleep."""
    recorder = Recorder(error(404, "No session found"))
    client, fake = make_client(recorder)
    with pytest.raises(DyteNotFound) as info:
        run(client, lambda c: c.get_session("missing"))
    assert info.value.status_code == 404 and isinstance(info.value, DyteStatusError)
    assert len(recorder.requests) == 1 and fake.sleeps == []


def test_other_4xx_is_not_retried() -> None:
    """A 400 raises DyteStatusError at once."""
    recorder = Recorder(error(400, 'BAD_REQUEST: "id" must be a valid GUID'))
    client, _ = make_client(recorder)
    with pytest.raises(DyteStatusError) as info:
        run(client, lambda c: c.delete_webhook("not-a-guid"))
    assert info.value.status_code == 400 and len(recorder.requests) == 1


def test_401_raises_auth_error_without_secrets() -> None:
    """A 401 raises DyteAuthError whose message holds neither the API key nor the Basic token, even if echoed."""
    token = BASIC.split()[1]
    recorder = Recorder(httpx.Response(401, text=f'{{"message": "Unauthorized {API_KEY} {token}"}}'))
    client, _ = make_client(recorder)
    with pytest.raises(DyteAuthError) as info:
        run(client, lambda c: c.list_webhooks())
    text = str(info.value) + repr(info.value) + info.value.body_excerpt
    assert API_KEY not in text and token not in text and "Unauthorized" in text
    assert info.value.status_code == 401 and len(recorder.requests) == 1
    assert API_KEY not in repr(client)


def test_basic_auth_header_is_sent() -> None:
    """Every request carries HTTP Basic ``org_id:api_key``."""
    recorder = Recorder(ok([SPEC_WEBHOOK]))
    client, _ = make_client(recorder)
    run(client, lambda c: c.list_webhooks())
    assert recorder.requests[0].headers["authorization"] == BASIC


def test_non_envelope_success_body_raises_response_error() -> None:
    """A 2xx answer that is not JSON raises DyteResponseError."""
    client, _ = make_client(Recorder(httpx.Response(200, text="<html>gateway</html>")))
    with pytest.raises(DyteResponseError):
        run(client, lambda c: c.get_meeting("m"))


def test_post_is_not_retried_on_5xx() -> None:
    """``POST /webhooks`` is not retried on a 500, which could otherwise create a duplicate."""
    recorder = Recorder(error(500), ok(SPEC_WEBHOOK, status=201))
    client, _ = make_client(recorder)
    with pytest.raises(DyteStatusError):
        run(client, lambda c: c.create_webhook("test", "https://new-test-url.com", ["meeting.started"]))
    assert len(recorder.requests) == 1


def test_limiter_acquired_before_every_attempt_and_metrics_recorded() -> None:
    """Each attempt passes the limiter; counters and ``on_call`` see path templates, not ids."""
    calls: list[tuple[str, str, Any, float]] = []
    fake_limiter_time = FakeTime()
    limiter = RateLimiter(2000, clock=fake_limiter_time.clock, sleep=fake_limiter_time.sleep)
    recorder = Recorder(error(503), httpx.ReadTimeout("slow"), ok({"session": SPEC_SESSION}))
    client, _ = make_client(recorder, limiter=limiter, on_call=lambda *args: calls.append(args))
    run(client, lambda c: c.get_session("abc-123"))
    assert limiter.total_calls == 3
    assert client.calls_by_endpoint == {
        ("GET", "/sessions/{session_id}", 503): 1,
        ("GET", "/sessions/{session_id}", "ReadTimeout"): 1,
        ("GET", "/sessions/{session_id}", 200): 1,
    }
    assert [(m, p, s) for m, p, s, _ in calls] == [
        ("GET", "/sessions/{session_id}", 503),
        ("GET", "/sessions/{session_id}", "ReadTimeout"),
        ("GET", "/sessions/{session_id}", 200),
    ]
    assert all(seconds >= 0 for *_, seconds in calls)


def test_webhook_crud_request_shapes() -> None:
    """List, create, patch and delete webhooks use the spec's methods, paths and bodies."""
    import json

    def handler(request: httpx.Request) -> httpx.Response:
        if request.method == "GET":
            return ok([SPEC_WEBHOOK])
        if request.method == "POST":
            return ok({**SPEC_WEBHOOK, **json.loads(request.content)}, status=201)
        if request.method == "PATCH":
            return ok({**SPEC_WEBHOOK, **json.loads(request.content)})
        return ok(SPEC_WEBHOOK)

    recorder = Recorder(handler)
    client, _ = make_client(recorder)

    async def crud(c: DyteClient) -> tuple[Any, ...]:
        listed = await c.list_webhooks()
        created = await c.create_webhook("receiver", "https://hooks.example/dyte", ("meeting.ended",), enabled=False)
        updated = await c.update_webhook(SPEC_WEBHOOK["id"], enabled=True, events=["meeting.started"])
        deleted = await c.delete_webhook(SPEC_WEBHOOK["id"])
        return listed, created, updated, deleted

    listed, created, updated, deleted = run(client, crud)
    assert listed == [ApiWebhook.model_validate(SPEC_WEBHOOK)]
    assert listed[0].events == ("meeting.started",) and listed[0].enabled is True
    assert created.name == "receiver" and created.enabled is False and created.events == ("meeting.ended",)
    assert updated.enabled is True
    assert deleted is None
    methods = [(r.method, r.url.path) for r in recorder.requests]
    wid = SPEC_WEBHOOK["id"]
    assert methods == [
        ("GET", "/v2/webhooks"),
        ("POST", "/v2/webhooks"),
        ("PATCH", f"/v2/webhooks/{wid}"),
        ("DELETE", f"/v2/webhooks/{wid}"),
    ]
    assert json.loads(recorder.requests[1].content) == {
        "name": "receiver",
        "url": "https://hooks.example/dyte",
        "events": ["meeting.ended"],
        "enabled": False,
    }
    assert json.loads(recorder.requests[2].content) == {"enabled": True, "events": ["meeting.started"]}
    with pytest.raises(TypeError):
        asyncio.run(client.update_webhook(wid, secret="x"))


# --------------------------------------------------------------------------- rate limiter and retry policy


def test_rate_limiter_2500_calls_at_2000_per_minute() -> None:
    """With a fake clock, no 60-second window holds more than 2000 of 2500 calls and at least 15 s are waited."""
    fake = FakeTime()
    limiter = RateLimiter(2000, clock=fake.clock, sleep=fake.sleep)
    admitted: list[float] = []

    async def main() -> None:
        for _ in range(2500):
            await limiter.acquire()
            admitted.append(fake.now)

    asyncio.run(main())
    assert limiter.total_calls == 2500
    assert all(admitted[i + 2000] - admitted[i] >= 60.0 for i in range(len(admitted) - 2000))
    assert limiter.total_wait_seconds >= 15.0
    assert fake.now - 1000.0 >= 15.0


def test_rate_limiter_many_concurrent_tasks() -> None:
    """Concurrent tasks sharing one limiter never exceed the budget in any window."""
    fake = FakeTime()
    limiter = RateLimiter(50, clock=fake.clock, sleep=fake.sleep)
    admitted: list[float] = []

    async def one() -> float:
        waited = await limiter.acquire()
        admitted.append(fake.now)
        return waited

    async def main() -> list[float]:
        return await asyncio.gather(*(one() for _ in range(175)))

    waits = asyncio.run(main())
    admitted.sort()
    assert len(admitted) == 175 and limiter.total_calls == 175
    assert all(admitted[i + 50] - admitted[i] >= 60.0 for i in range(len(admitted) - 50))
    assert admitted == [1000.0] * 50 + [1060.0] * 50 + [1120.0] * 50 + [1180.0] * 25
    assert min(waits) == 0.0 and max(waits) > 0.0
    assert limiter.total_wait_seconds == pytest.approx(sum(waits))


def test_retry_policy_schedule_and_exhaustion() -> None:
    """Delays double from ``base_seconds`` up to ``max_seconds``, jittered into ``[1 - jitter, 1]``."""
    policy = RetryPolicy()
    rng = random.Random(1)
    for attempt, raw in [(1, 0.5), (2, 1.0), (3, 2.0), (4, 4.0), (8, 30.0), (10_000, 30.0)]:
        delay = policy.delay_seconds(attempt, rng)
        assert raw * 0.5 <= delay <= raw
    assert RetryPolicy(jitter=0.0).delay_seconds(3) == 2.0
    assert [policy.exhausted(a) for a in (1, 4, 5, 6)] == [False, False, True, True]
    with pytest.raises(ValueError):
        RetryPolicy(jitter=1.5)
