"""Async client for the Dyte v2 REST API (``https://api.dyte.io/v2``), used for reconciliation.

Paths and response shapes follow ``shared/dyte/openapi-v2.yaml``; facts
(auth, envelope, paging, rate limit) are in ``shared/dyte/FACTS.md``.
Transport, rate limiting, retries, the envelope and paging are the shared
machinery of :class:`receiver.providers.http.RestClient` (its docstring has
the retry rules); this module holds only what is Dyte's: HTTP Basic
``org_id:api_key``, the 2000 calls/min budget and one method per resource.

Exceptions (every error raised by a :class:`DyteClient` method is one of these)::

    DyteAPIError                      base class
    ├── DyteTransportError            connect errors, timeouts, broken connections
    │                                 (after retries); attribute ``cause`` (exception class name)
    ├── DyteStatusError               non-2xx answer; ``status_code``, ``body_excerpt``,
    │   │                             ``method``, ``path`` (body excerpt only, never headers)
    │   ├── DyteRateLimited           429 after retries; ``retry_after_seconds`` (float | None)
    │   ├── DyteNotFound              404 (not retried)
    │   └── DyteAuthError             401 / 403 (not retried)
    └── DyteResponseError             2xx answer that is not the expected JSON envelope/shape

They are the provider-neutral classes of :mod:`receiver.providers.errors`
under Dyte names. No message, log line or exception carries the API key or
the ``Authorization`` header; response excerpts are scrubbed of both.
"""

from __future__ import annotations

import asyncio
import base64
import random
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from datetime import datetime
from typing import Any

import httpx

from receiver.providers.dyte.rest_models import (
    ApiLivestream,
    ApiLivestreamSession,
    ApiMeeting,
    ApiParticipant,
    ApiRecording,
    ApiSession,
    ApiWebhook,
)
from receiver.providers.errors import (
    ProviderAPIError,
    ProviderAuthError,
    ProviderNotFound,
    ProviderRateLimited,
    ProviderResponseError,
    ProviderStatusError,
    ProviderTransportError,
)
from receiver.providers.http import (
    MAX_RETRY_AFTER_SECONDS,
    WEBHOOK_PATCH_FIELDS,
    ApiResult,
    OnCall,
    OnPage,
    RestClient,
    extract_list,
    webhook_patch_body,
)
from receiver.providers.ratelimit import RateLimiter
from receiver.retry import RetryPolicy
from receiver.timeparse import to_iso

__all__ = [
    "DyteAPIError",
    "DyteTransportError",
    "DyteStatusError",
    "DyteRateLimited",
    "DyteNotFound",
    "DyteAuthError",
    "DyteResponseError",
    "DyteClient",
    "ApiResult",
    "DEFAULT_BASE_URL",
    "MAX_RETRY_AFTER_SECONDS",
    "WEBHOOK_PATCH_FIELDS",
]

DEFAULT_BASE_URL = "https://api.dyte.io/v2"


# The error classes are the provider-neutral ones of receiver.providers.errors;
# the Dyte names stay as aliases.
DyteAPIError = ProviderAPIError
DyteTransportError = ProviderTransportError
DyteStatusError = ProviderStatusError
DyteRateLimited = ProviderRateLimited
DyteNotFound = ProviderNotFound
DyteAuthError = ProviderAuthError
DyteResponseError = ProviderResponseError


def _livestream_session_items(data: Any) -> list[Any]:
    """The items of ``/sessions/{id}/livestream-sessions``: ``data.data`` (spec example), a bare array,
    or one object in ``data`` (spec schema)."""
    if isinstance(data, Mapping):
        if isinstance(data.get("data"), list):
            return list(data["data"])
        if data.get("id") is not None:
            return [data]
        return []
    return list(data) if isinstance(data, list) else []


class DyteClient(RestClient):
    """Async Dyte v2 REST client around one long-lived :class:`httpx.AsyncClient`.

    Args:
        base_url: API root, e.g. ``https://api.dyte.io/v2``.
        org_id, api_key: HTTP Basic credentials ``org_id:api_key``.
        transport: optional httpx transport (``httpx.MockTransport`` in tests).
        timeout_seconds: per-request timeout (connect, read, write, pool).
        calls_per_minute: budget of the limiter built when ``limiter`` is None.
        retry: backoff policy; ``max_attempts`` counts the first try.
        per_page: page size for paginated endpoints.
        sleep: coroutine used for backoff waits (not by a limiter built
            here, which uses ``time.monotonic`` and ``asyncio.sleep``).
        limiter: a shared :class:`RateLimiter` (share one per process); when
            None, one of ``calls_per_minute`` is built. Pass one with a fake
            clock and sleep to fake rate limiting in tests.
        on_call: optional callback ``(method, path_template, status_or_exc_name,
            seconds)`` after every attempt; its exceptions are logged and ignored.
        rng: randomness for jitter (``random`` module by default).

    Attributes:
        calls_by_endpoint: ``Counter`` keyed by ``(method, path_template,
            status)`` (see :class:`~receiver.providers.http.RestClient`).

    Use as ``async with DyteClient(...) as client:`` or call :meth:`aclose`.
    """

    provider_name = "dyte"
    provider_label = "Dyte"

    def __init__(
        self,
        base_url: str,
        org_id: str,
        api_key: str,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        timeout_seconds: float = 10.0,
        calls_per_minute: int = 2000,
        retry: RetryPolicy = RetryPolicy(),
        per_page: int = 100,
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
        limiter: RateLimiter | None = None,
        on_call: OnCall | None = None,
        rng: Any = random,
    ) -> None:
        self.org_id = org_id
        token = base64.b64encode(f"{org_id}:{api_key}".encode()).decode("ascii")
        # A built limiter pairs the real monotonic clock with the real sleep:
        # an injected fake ``sleep`` would never advance ``time.monotonic``.
        super().__init__(
            base_url,
            limiter=limiter if limiter is not None else RateLimiter(calls_per_minute),
            auth=httpx.BasicAuth(org_id, api_key),
            secrets=(api_key, token),
            transport=transport,
            timeout_seconds=timeout_seconds,
            retry=retry,
            per_page=per_page,
            sleep=sleep,
            on_call=on_call,
            rng=rng,
            user_agent="receiver-dyte-client/1",
        )

    def __repr__(self) -> str:
        return f"DyteClient(base_url={self.base_url!r}, org_id={self.org_id!r})"

    async def __aenter__(self) -> DyteClient:
        return self

    # ------------------------------------------------------------------ sessions

    async def get_session(self, session_id: str, *, include_breakout_rooms: bool = False) -> ApiSession:
        """``GET /sessions/{session_id}`` -> the session in ``data.session`` (spec ``GetSessionDetails``).

        ``include_breakout_rooms`` asks for the session's breakout rooms
        (``breakout_rooms``: sessions of their own). Raises DyteNotFound for
        an unknown id, and the other errors of :meth:`_request`.
        """
        params = {"include_breakout_rooms": "true"} if include_breakout_rooms else None
        result = await self._request(
            "GET", "/sessions/{session_id}", params=params, path_params={"session_id": session_id}
        )
        data = result.data
        if isinstance(data, Mapping) and isinstance(data.get("session"), Mapping):
            data = data["session"]
        return self._validated(ApiSession, data, "GET /sessions/{session_id}")

    async def list_session_participants(
        self, session_id: str, *, include_peer_events: bool = False
    ) -> list[ApiParticipant]:
        """All participants of a session, every page of ``GET /sessions/{session_id}/participants`` (``data.participants``), in API order.

        ``duration_minutes`` is in minutes (spec ``duration``).
        ``include_peer_events`` asks for each participant's per-peer
        join/leave events (``peer_events``). A participant that is not an
        object is skipped with a warning; missing optional fields (``id``
        included) are tolerated; unreadable values are logged once each.
        """
        template = "/sessions/{session_id}/participants"
        params = {"include_peer_events": "true"} if include_peer_events else None
        items = [
            item
            async for item in self._paginate(
                template, "data.participants", params, path_params={"session_id": session_id}
            )
        ]
        return self._listed(ApiParticipant, items, f"GET {template}")

    async def iter_sessions(
        self,
        *,
        start_time: datetime | None = None,
        end_time: datetime | None = None,
        on_page: OnPage | None = None,
    ) -> AsyncIterator[ApiSession]:
        """Every session of the organization, all pages of ``GET /sessions`` (``data.sessions``).

        ``start_time`` / ``end_time`` become the spec's ``start_time`` /
        ``end_time`` query parameters, ISO 8601 UTC with ``Z`` (naive values
        are taken as UTC). ``on_page(page_no, sessions_so_far, total_count)``
        follows the walk (see :meth:`_paginate`). An item that is not a usable
        session (no ``id``) is skipped with a warning.
        """
        params = {"start_time": to_iso(start_time), "end_time": to_iso(end_time)}
        async for item in self._paginate("/sessions", "data.sessions", params, on_page=on_page):
            for session in self._listed(ApiSession, [item], "GET /sessions"):
                yield session

    # ------------------------------------------------------------------ recordings, livestreams, meetings

    async def get_recording(self, recording_id: str) -> ApiRecording:
        """``GET /recordings/{recording_id}`` -> ``data`` (spec ``GetRecording``); file_size bytes, recording_duration seconds."""
        result = await self._request("GET", "/recordings/{recording_id}", path_params={"recording_id": recording_id})
        return self._model(ApiRecording, result.data, "GET /recordings/{recording_id}")

    async def get_livestream(self, livestream_id: str) -> ApiLivestream:
        """``GET /livestreams/{livestream_id}`` -> ``data.livestream``.

        This is the spec's lookup by livestream id (the ``streamId`` of
        ``livestreaming.statusUpdate``); ``/meetings/{meeting_id}/livestream``
        is keyed by meeting and ``/livestreams/sessions/{id}`` by livestream
        session. The livestream sessions listed beside it are not returned.
        ``stream_key``/``ingest_server`` come back as ``SecretStr``.
        """
        result = await self._request(
            "GET", "/livestreams/{livestream_id}", path_params={"livestream_id": livestream_id}
        )
        data = result.data
        if isinstance(data, Mapping) and isinstance(data.get("livestream"), Mapping):
            data = data["livestream"]
        return self._model(ApiLivestream, data, "GET /livestreams/{livestream_id}")

    async def get_meeting(self, meeting_id: str) -> ApiMeeting:
        """``GET /meetings/{meeting_id}`` -> ``data`` (spec ``GetMeeting``)."""
        result = await self._request("GET", "/meetings/{meeting_id}", path_params={"meeting_id": meeting_id})
        return self._model(ApiMeeting, result.data, "GET /meetings/{meeting_id}")

    async def list_recordings(self, *, meeting_id: str | None = None) -> list[ApiRecording]:
        """Every page of ``GET /recordings`` (spec ``get_all_recordings``: a bare ``data`` array), for one
        meeting when ``meeting_id`` is given (the spec filters by meeting, not by session).

        Items carry ``session_id`` and a nested ``meeting`` (read as
        ``meeting_id``); file_size bytes, recording_duration seconds.
        """
        items = [item async for item in self._paginate("/recordings", "data", {"meeting_id": meeting_id})]
        return self._listed(ApiRecording, items, "GET /recordings")

    async def list_meeting_livestreams(self, meeting_id: str) -> list[ApiLivestream]:
        """Every page of ``GET /meetings/{meeting_id}/livestream`` (``data.livestreams``): the meeting's livestreams.

        Stream keys come back as ``SecretStr`` (never stored).
        """
        template = "/meetings/{meeting_id}/livestream"
        items = [
            item async for item in self._paginate(template, "data.livestreams", path_params={"meeting_id": meeting_id})
        ]
        return self._listed(ApiLivestream, items, f"GET {template}")

    async def list_session_livestream_sessions(self, session_id: str) -> list[ApiLivestreamSession]:
        """Every page of ``GET /sessions/{session_id}/livestream-sessions``: the livestream runs of a meeting session.

        The spec's example nests the list in ``data.data`` (its schema shows
        one object in ``data``): both are read. Each item gets
        ``session_id`` = this session when it does not say. ``viewer_seconds``
        and ``ingest_seconds`` are seconds.
        """
        template = "/sessions/{session_id}/livestream-sessions"
        items = [
            {"session_id": session_id, **item} if isinstance(item, Mapping) else item
            async for item in self._paginate(
                template, _livestream_session_items, path_params={"session_id": session_id}
            )
        ]
        return self._listed(ApiLivestreamSession, items, f"GET {template}")

    async def list_livestream_sessions(self, livestream_id: str) -> list[ApiLivestreamSession]:
        """Every page of the ``sessions`` of ``GET /livestreams/{livestream_id}``: the runs of one livestream.

        ``viewer_seconds`` and ``ingest_seconds`` are seconds; the meeting
        session is not named there (``session_id`` stays None unless sent).
        """
        template = "/livestreams/{livestream_id}"
        items = [
            item
            async for item in self._paginate(template, "data.sessions", path_params={"livestream_id": livestream_id})
        ]
        return self._listed(ApiLivestreamSession, items, f"GET {template}")

    # ------------------------------------------------------------------ webhooks

    async def list_webhooks(self) -> list[ApiWebhook]:
        """``GET /webhooks`` -> ``data`` as a bare array (spec ``WebhooksListSuccessResponse``; not paginated)."""
        result = await self._request("GET", "/webhooks")
        return [self._model(ApiWebhook, item, "GET /webhooks") for item in extract_list(result.data, "data")]

    async def create_webhook(self, name: str, url: str, events: Iterable[str], enabled: bool = True) -> ApiWebhook:
        """``POST /webhooks`` with ``{name, url, events, enabled}`` (spec ``WebhookRequest``) -> the created webhook.

        Not retried on 5xx or read timeouts (a retry could create a duplicate).
        """
        body = {"name": name, "url": url, "events": list(events), "enabled": bool(enabled)}
        result = await self._request("POST", "/webhooks", json=body)
        return self._model(ApiWebhook, result.data, "POST /webhooks")

    async def update_webhook(self, webhook_id: str, **fields: Any) -> ApiWebhook:
        """``PATCH /webhooks/{webhook_id}`` with any of ``name``, ``url``, ``events``, ``enabled`` -> the updated webhook.

        Raises:
            TypeError: an unknown field name, or no field at all.
        """
        body = webhook_patch_body(fields)
        result = await self._request(
            "PATCH", "/webhooks/{webhook_id}", json=body, path_params={"webhook_id": webhook_id}
        )
        return self._model(ApiWebhook, result.data, "PATCH /webhooks/{webhook_id}")

    async def delete_webhook(self, webhook_id: str) -> None:
        """``DELETE /webhooks/{webhook_id}``; raises DyteNotFound when it does not exist."""
        await self._request("DELETE", "/webhooks/{webhook_id}", path_params={"webhook_id": webhook_id})
