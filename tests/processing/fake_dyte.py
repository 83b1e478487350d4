"""A Dyte v2 REST API that is valid per the spec but unfriendly, served through ``httpx.MockTransport``.

Shapes follow ``shared/dyte/openapi-v2.yaml`` (``data.sessions``,
``data.session``, ``data.participants`` with ``paging`` inside ``data``, a
bare ``data`` array for recordings, ``data.livestreams``, ``data.data`` for
livestream sessions). Knobs for the unfriendly parts:

* ``page_cap``: never serve more than this many items a page (offsets follow
  the served size, ``paging`` tells the truth);
* ``failures``: ``{(path, page_no): n}`` answers 503 to the first ``n``
  requests of that page (``page_no`` None: any request of the path);
  ``n < 0`` fails forever;
* objects are stored as given, so tests put in missing ids, odd values,
  stray quotes, fractions.

``calls`` records ``(path, params)`` of every request.
"""

from __future__ import annotations

import asyncio
import random
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import httpx

from receiver.providers.dyte.client import DyteClient
from receiver.providers.ratelimit import RateLimiter
from receiver.retry import RetryPolicy

__all__ = ["FakeDyte", "fake_client"]


@dataclass
class FakeDyte:
    """The fake's world (plain spec-shaped dicts) and its unfriendly knobs."""

    sessions: dict[str, dict[str, Any]] = field(default_factory=dict)
    participants: dict[str, list[Any]] = field(default_factory=lambda: defaultdict(list))
    recordings: list[dict[str, Any]] = field(default_factory=list)
    meeting_livestreams: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    session_livestream_sessions: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    livestreams: dict[str, dict[str, Any]] = field(default_factory=dict)
    meetings: dict[str, dict[str, Any]] = field(default_factory=dict)
    page_cap: int | None = None
    failures: dict[tuple[str, int | None], int] = field(default_factory=dict)
    calls: list[tuple[str, dict[str, str]]] = field(default_factory=list)

    # ------------------------------------------------------------------ serving

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.handle)

    def _fail(self, path: str, page_no: int | None) -> bool:
        for key in ((path, page_no), (path, None)):
            left = self.failures.get(key)
            if left:
                if left > 0:
                    self.failures[key] = left - 1
                return True
        return False

    def _page(self, request: httpx.Request, items: list[Any]) -> tuple[list[Any], dict[str, int]]:
        page_no = int(request.url.params.get("page_no", 1))
        per_page = int(request.url.params.get("per_page", 20))
        size = min(per_page, self.page_cap) if self.page_cap else per_page
        start = (page_no - 1) * size
        page = items[start : start + size]
        return page, {"total_count": len(items), "start_offset": start + 1, "end_offset": start + len(page)}

    def handle(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path.removeprefix("/v2")
        params = dict(request.url.params)
        self.calls.append((path, params))
        page_no = int(params["page_no"]) if "page_no" in params else None
        if self._fail(path, page_no):
            return httpx.Response(503, json={"success": False, "error": {"code": 503, "message": "unavailable"}})
        parts = path.strip("/").split("/")
        if parts == ["sessions"]:
            page, paging = self._page(request, list(self.sessions.values()))
            return _ok({"sessions": [_without_breakouts(s) for s in page], "paging": paging})
        if parts[0] == "sessions" and len(parts) == 2:
            session = self.sessions.get(parts[1])
            if session is None:
                return _not_found()
            if params.get("include_breakout_rooms") != "true":
                session = _without_breakouts(session)
            return _ok({"session": session})
        if parts[0] == "sessions" and parts[2:] == ["participants"]:
            if parts[1] not in self.sessions:
                return _not_found()
            people = self.participants.get(parts[1], [])
            if params.get("include_peer_events") != "true":
                people = [
                    {k: v for k, v in p.items() if k != "peer_events"} if isinstance(p, dict) else p for p in people
                ]
            page, paging = self._page(request, people)
            return _ok({"participants": page, "paging": paging})
        if parts[0] == "sessions" and parts[2:] == ["livestream-sessions"]:
            page, paging = self._page(request, self.session_livestream_sessions.get(parts[1], []))
            return _ok({"data": page, "paging": paging})
        if parts == ["recordings"]:
            wanted = params.get("meeting_id")
            recs = [r for r in self.recordings if not wanted or _meeting_of(r) == wanted]
            page, paging = self._page(request, [_listed(r) for r in recs])
            return _ok(page, paging)
        if parts[0] == "recordings" and len(parts) == 2:
            found = next((r for r in self.recordings if r["id"] == parts[1]), None)
            return _ok(found) if found is not None else _not_found()
        if parts[0] == "meetings" and parts[2:] == ["livestream"]:
            page, paging = self._page(request, self.meeting_livestreams.get(parts[1], []))
            return _ok({"livestreams": page}, paging)
        if parts[0] == "meetings" and len(parts) == 2:
            meeting = self.meetings.get(parts[1])
            return _ok(meeting) if meeting is not None else _not_found()
        if parts[0] == "livestreams" and len(parts) == 2:
            stream = self.livestreams.get(parts[1])
            if stream is None:
                return _not_found()
            page, paging = self._page(request, stream.get("sessions", []))
            return _ok({"livestream": stream["livestream"], "sessions": page}, paging)
        return _not_found()


def _ok(data: Any, paging: dict[str, int] | None = None) -> httpx.Response:
    body: dict[str, Any] = {"success": True, "data": data}
    if paging is not None:
        body["paging"] = paging
    return httpx.Response(200, json=body)


def _not_found() -> httpx.Response:
    return httpx.Response(404, json={"success": False, "error": {"code": 404, "message": "not found"}})


def _without_breakouts(session: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in session.items() if k != "breakout_rooms"}


def _meeting_of(recording: dict[str, Any]) -> str | None:
    return recording.get("meeting_id") or (recording.get("meeting") or {}).get("id")


def _listed(recording: dict[str, Any]) -> dict[str, Any]:
    """A listing item: no start/stop reasons (only ``GET /recordings/{id}`` has them), a nested ``meeting``."""
    item = {k: v for k, v in recording.items() if k not in ("start_reason", "stop_reason", "meeting_id")}
    item["meeting"] = {"id": _meeting_of(recording)}
    return item


async def _no_sleep(seconds: float) -> None:
    await asyncio.sleep(0)


def fake_client(fake: FakeDyte, *, per_page: int = 100, attempts: int = 2) -> DyteClient:
    """A DyteClient on the fake: no real sleeping, ``attempts`` tries per request."""
    return DyteClient(
        "https://api.dyte.io/v2",
        "org-fake",
        "sk-fake-SECRET",
        transport=fake.transport(),
        per_page=per_page,
        retry=RetryPolicy(base_seconds=0.0, max_seconds=0.0, max_attempts=attempts),
        sleep=_no_sleep,
        limiter=RateLimiter(1_000_000, sleep=_no_sleep),
        rng=random.Random(3),
    )
