"""Listings of the Dyte REST client against a valid but unfriendly API (issue #18).

Paging driven by the server's totals (capped page sizes, short pages,
overlapping offsets, no ``paging`` at all), participants with missing or
unreadable optional fields, and the recording / livestream listings. HTTP
goes through ``httpx.MockTransport``; nothing sleeps for real.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from receiver.providers.base import ProviderClient
from receiver.providers.dyte.client import DyteClient
from receiver.providers.ratelimit import RateLimiter

BASE_URL = "https://api.dyte.io/v2"


async def _no_sleep(seconds: float) -> None:
    await asyncio.sleep(0)


def make_client(handler: Callable[[httpx.Request], httpx.Response], per_page: int = 100) -> DyteClient:
    return DyteClient(
        BASE_URL,
        "org",
        "sk-listing-SECRET",
        transport=httpx.MockTransport(handler),
        per_page=per_page,
        sleep=_no_sleep,
        limiter=RateLimiter(100_000, sleep=_no_sleep),
        rng=random.Random(1),
    )


def run(client: DyteClient, make_coro: Callable[[DyteClient], Any]) -> Any:
    async def main() -> Any:
        async with client:
            return await make_coro(client)

    return asyncio.run(main())


def sessions_of(client: DyteClient, **kwargs: Any) -> list[str]:
    async def collect(c: DyteClient) -> list[str]:
        return [s.id async for s in c.iter_sessions(**kwargs)]

    return run(client, collect)


def capped_server(total: int, cap: int, *, paging: bool = True) -> tuple[Callable[..., httpx.Response], list[dict]]:
    """``GET /sessions`` of ``total`` sessions that never serves more than ``cap`` a page (offsets by served size)."""
    seen: list[dict] = []

    def handler(request: httpx.Request) -> httpx.Response:
        page_no, per_page = int(request.url.params["page_no"]), int(request.url.params["per_page"])
        seen.append({"page_no": page_no, "per_page": per_page})
        size = min(per_page, cap)
        start = (page_no - 1) * size
        items = [{"id": f"s-{n:03d}", "associated_id": "m-1"} for n in range(start, min(total, start + size))]
        body: dict[str, Any] = {"success": True, "data": {"sessions": items}}
        if paging:
            body["paging"] = {"total_count": total, "start_offset": start + 1, "end_offset": start + len(items)}
        return httpx.Response(200, json=body)

    return handler, seen


def test_a_server_capping_the_page_size_is_walked_to_its_total_count() -> None:
    """Asked for 100 a page, the server serves 25 of 60: every session comes, in 3 calls, none lost."""
    handler, seen = capped_server(60, 25)
    pages: list[tuple[int, int, int | None]] = []
    ids = sessions_of(make_client(handler), on_page=lambda *args: pages.append(args))
    assert ids == [f"s-{n:03d}" for n in range(60)]
    assert [s["page_no"] for s in seen] == [1, 2, 3]
    assert [s["per_page"] for s in seen] == [100, 25, 25]
    assert pages == [(1, 25, 60), (2, 50, 60), (3, 60, 60)]


def test_a_short_page_does_not_end_the_walk_when_the_total_says_more() -> None:
    """Page 1 comes back one short (the server filtered an item out) but total_count says 5: page 2 is fetched."""

    def handler(request: httpx.Request) -> httpx.Response:
        page_no = int(request.url.params["page_no"])
        if page_no == 1:
            items, paging = ["a", "b"], {"total_count": 5, "start_offset": 1, "end_offset": 3}
        elif page_no == 2:
            items, paging = ["d", "e"], {"total_count": 5, "start_offset": 4, "end_offset": 5}
        else:
            raise AssertionError("walked past total_count")
        return httpx.Response(
            200, json={"success": True, "data": {"sessions": [{"id": i} for i in items]}, "paging": paging}
        )

    assert sessions_of(make_client(handler, per_page=3)) == ["a", "b", "d", "e"]


def test_overlapping_pages_yield_each_item_once() -> None:
    """A server whose pages overlap (offsets 1-3, then 3-5) yields each session once."""
    pages = {1: ["a", "b", "c"], 2: ["c", "d", "e"]}

    def handler(request: httpx.Request) -> httpx.Response:
        page_no = int(request.url.params["page_no"])
        items = pages.get(page_no, [])
        paging = {"total_count": 5, "start_offset": 2 * page_no - 1, "end_offset": 2 * page_no + 1}
        return httpx.Response(
            200, json={"success": True, "data": {"sessions": [{"id": i} for i in items]}, "paging": paging}
        )

    assert sessions_of(make_client(handler, per_page=3)) == ["a", "b", "c", "d", "e"]


def test_without_paging_the_walk_goes_on_until_an_empty_page() -> None:
    """No ``paging`` object and a capped page size: pages are walked until one is empty."""
    handler, seen = capped_server(7, 3, paging=False)
    assert sessions_of(make_client(handler, per_page=3)) == [f"s-{n:03d}" for n in range(7)]
    assert [s["page_no"] for s in seen] == [1, 2, 3, 4]


def test_participants_with_missing_or_unusable_fields_are_kept_one_by_one(caplog: pytest.LogCaptureFixture) -> None:
    """No id, an id that is an object, a bad timestamp, a non-object item: the listing still succeeds.

    The unreadable value is logged once with its field name, never the rest of the participant.
    """
    participants = [
        {"user_id": "u-1", "display_name": "No Id", "joined_at": "2023-02-01T10:50:00.000Z", "duration": 2},
        {"id": {"weird": True}, "custom_participant_id": "c-2", "display_name": "Object Id"},
        "not an object",
        {
            "id": "p-3",
            "display_name": "Henry SECRET-NAME",
            "joined_at": '2023-02-01T10:50:36.846Z"',
            "left_at": "2023-02-01T10:57:32.424Z",
            "duration": 6.9263,
        },
    ]

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"success": True, "data": {"participants": participants}})

    client = make_client(handler)
    with caplog.at_level(logging.WARNING, logger="receiver.providers.http"):

        async def twice(c: DyteClient) -> Any:
            first = await c.list_session_participants("s-1")
            await c.list_session_participants("s-1")
            return first

        result = run(client, twice)
    assert [p.participant_key for p in result] == ["u-1", "c-2", "p-3"]
    assert result[0].id is None and result[0].peer_id is None and result[0].duration_minutes == 2
    assert result[1].id is None and result[1].invalid_fields == ("id",)
    assert result[2].joined_at is None and result[2].invalid_fields == ("joined_at",)
    unreadable = [r.getMessage() for r in caplog.records if "unreadable joined_at" in r.getMessage()]
    assert len(unreadable) == 1 and "2023-02-01T10:50:36.846Z" in unreadable[0]
    assert "SECRET-NAME" not in caplog.text
    assert any("item skipped" in r.getMessage() for r in caplog.records)


def test_recording_and_livestream_listings_read_the_spec_shapes() -> None:
    """GET /recordings?meeting_id (bare data), /meetings/{id}/livestream (data.livestreams),
    /sessions/{id}/livestream-sessions (data.data, or one object), /livestreams/{id} (data.sessions)."""
    requests: list[httpx.Request] = []
    single_object = {"flag": False}

    def handler(request: httpx.Request) -> httpx.Response:
        requests.append(request)
        path = request.url.path
        if path == "/v2/recordings":
            data: Any = [
                {
                    "id": "r-1",
                    "session_id": "s-1",
                    "meeting": {"id": "m-1"},
                    "status": "UPLOADED",
                    "file_size": 1234.5,
                    "stop_reason": {"reason": "ALL_PEERS_LEFT", "caller": {"type": "ORGANIZATION"}},
                }
            ]
            return httpx.Response(200, json={"success": True, "data": data, "paging": {"total_count": 1}})
        if path == "/v2/meetings/m-1/livestream":
            data = {"livestreams": [{"id": "ls-1", "status": "idle", "meeting_id": "m-1", "stream_key": "sk_x"}]}
        elif path == "/v2/sessions/s-1/livestream-sessions":
            item = {"id": "lss-1", "livestream_id": "ls-1", "viewer_seconds": 116.1, "ingest_seconds": "118"}
            data = item if single_object["flag"] else {"data": [item], "paging": {"total_count": 1}}
        elif path == "/v2/livestreams/ls-1":
            data = {"livestream": {"id": "ls-1"}, "sessions": [{"id": "lss-1", "viewer_seconds": 60}]}
        else:
            return httpx.Response(404, json={"success": False})
        return httpx.Response(200, json={"success": True, "data": data})

    async def everything(c: DyteClient) -> Any:
        return (
            await c.list_recordings(meeting_id="m-1"),
            await c.list_meeting_livestreams("m-1"),
            await c.list_session_livestream_sessions("s-1"),
            await c.list_livestream_sessions("ls-1"),
        )

    client = make_client(handler)
    assert isinstance(client, ProviderClient)
    recordings, livestreams, runs, stream_runs = run(client, everything)
    assert requests[0].url.params["meeting_id"] == "m-1"
    assert [(r.id, r.meeting_id, r.session_id, r.file_size, r.stop_reason) for r in recordings] == [
        ("r-1", "m-1", "s-1", 1234, "ALL_PEERS_LEFT")
    ]
    assert [(ls.id, ls.status) for ls in livestreams] == [("ls-1", "IDLE")]
    assert [(r.id, r.livestream_id, r.session_id, r.viewer_seconds, r.ingest_seconds) for r in runs] == [
        ("lss-1", "ls-1", "s-1", 116.1, 118.0)
    ]
    assert [(r.id, r.viewer_seconds) for r in stream_runs] == [("lss-1", 60.0)]
    single_object["flag"] = True
    [run_] = run(make_client(handler), lambda c: c.list_session_livestream_sessions("s-1"))
    assert run_.id == "lss-1" and run_.session_id == "s-1"


def test_get_session_asks_for_breakout_rooms_and_participants_for_peer_events() -> None:
    """The flags become the spec's query parameters; breakout rooms come back as sessions."""
    requests: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        requests.append(request)
        if request.url.path.endswith("/participants"):
            participant = {
                "id": "p-1",
                "joined_at": "2023-02-01T10:51:08.030Z",
                "peer_events": [
                    {"peer_id": "peer-1", "event_name": "PEER_JOINING", "created_at": "2023-02-01T10:51:50.786Z"},
                    "junk",
                ],
            }
            return httpx.Response(200, json={"success": True, "data": {"participants": [participant]}})
        session = {"id": "s-1", "breakout_rooms": [{"id": "b-1", "associated_id": "m-b", "ended_at": None}, 7]}
        return httpx.Response(200, json={"success": True, "data": {"session": session}})

    async def both(c: DyteClient) -> Any:
        return await c.get_session("s-1", include_breakout_rooms=True), await c.list_session_participants(
            "s-1", include_peer_events=True
        )

    session, participants = run(make_client(handler), both)
    assert requests[0].url.params["include_breakout_rooms"] == "true"
    assert requests[1].url.params["include_peer_events"] == "true"
    assert [b.id for b in session.breakout_rooms] == ["b-1"]
    [event] = participants[0].peer_events
    assert (event.peer_id, event.event_name) == ("peer-1", "PEER_JOINING")
    assert event.created_at == datetime(2023, 2, 1, 10, 51, 50, 786000, tzinfo=UTC)
