"""Async client for Cloudflare RealtimeKit's REST API, used for reconciliation, backfill and subscriptions.

Base URL ``https://api.cloudflare.com/client/v4``; every resource is under
``/accounts/{account_id}/realtime/kit/{app_id}/`` and authenticated with
``Authorization: Bearer <Cloudflare API token>`` (``shared/dyte/FACTS.md``,
"RealtimeKit REST API"). Paths, query parameters and response shapes follow
the official SDK ``cloudflare`` 5.9 (``cloudflare.resources.realtime_kit``,
``cloudflare.types.realtime_kit``); where they differ from Dyte v2:

==============================================  =====================================================
call                                            RealtimeKit answer (SDK type)
==============================================  =====================================================
``GET sessions/{id}``                           the session itself in ``data``
                                                (``SessionGetSessionDetailsResponse``; Dyte: ``data.session``)
``GET sessions/{id}/participants``              ``data.participants``, no ``paging``; ``page_no``/``per_page``
                                                still page it (``SessionGetSessionParticipantsResponse``);
                                                a participant's ``id`` is its peer id
``GET sessions``                                ``data.sessions`` + top-level ``paging``
``GET sessions/{id}?include_breakout_rooms``   ``breakout_rooms``: sessions of their own (SDK ``List[object]``)
``GET sessions/{id}/participants?               each participant's ``peer_events`` (``PEER_CREATED``,
include_peer_events``                           ``PEER_JOINING``, ``PEER_LEAVING``)
``GET recordings/{id}``                         ``data`` (``RecordingGetOneRecordingResponse``)
``GET recordings?meeting_id=``                  a bare ``data`` array + top-level ``paging``
                                                (``RecordingGetRecordingsResponse``)
``GET livestreams/{id}``                        ``data.livestream`` (+ ``data.session``, ``data.paging``);
                                                ``disabled`` is a string; its runs are ``data.session``
                                                (SDK) or ``data.sessions`` (Dyte's example), paged
``GET livestreams``                             every livestream of the app (``LivestreamGetAllLivestreamsResponse``;
                                                a bare ``data`` array in practice); no filter by meeting
``GET meetings/{id}``                           ``data`` (``MeetingGetMeetingByIDResponse``)
``GET/POST webhooks``, ``PATCH/DELETE           ``data`` (a bare array for the list); ``POST`` answers 201
webhooks/{id}``
failures                                        Cloudflare's v4 envelope ``{"success": false, "errors":
                                                [{"code", "message"}], "messages", "result": null}``
==============================================  =====================================================

What Dyte has and RealtimeKit does not (SDK 5.9): ``GET
meetings/{id}/livestream`` (a meeting's livestreams) and ``GET
sessions/{id}/livestream-sessions`` (the livestream runs of a meeting
session). :meth:`RealtimeKitClient.list_meeting_livestreams` walks ``GET
livestreams`` and keeps the meeting's; :meth:`RealtimeKitClient.list_session_livestream_sessions`
takes the runs of those livestreams that started while the session was
live (a meeting has one live session at a time).

Listings are paged, validated and logged as
:class:`~receiver.providers.http.RestClient` does for both providers
(paging by the server's totals, items kept one by one).

Rate limit: RealtimeKit calls count toward Cloudflare's API limit of 1200
requests per five minutes per user or token (over it, HTTP 429 and every
call is refused for five minutes): the limiter built here admits at most
``calls_per_five_minutes`` calls in any 300-second window.

Transport, retries and errors are :class:`receiver.providers.http.RestClient`'s
(the same classes and rules as the Dyte client: 404 ``ProviderNotFound``,
401/403 ``ProviderAuthError``, 429 ``ProviderRateLimited`` after retries, ...);
messages start with ``RealtimeKit API`` and quote Cloudflare's error
messages and codes, never the token.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from datetime import datetime
from typing import Any
from urllib.parse import quote

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
from receiver.providers.errors import ProviderNotFound
from receiver.providers.http import OnCall, OnPage, RestClient, extract_list, webhook_patch_body
from receiver.providers.ratelimit import RateLimiter
from receiver.retry import RetryPolicy
from receiver.timeparse import to_iso

__all__ = [
    "RealtimeKitClient",
    "DEFAULT_BASE_URL",
    "livestream_items",
    "livestream_run_items",
    "RATE_WINDOW_SECONDS",
    "app_base_url",
    "cloudflare_errors_summary",
]

DEFAULT_BASE_URL = "https://api.cloudflare.com/client/v4"
#: Cloudflare counts API calls per five minutes.
RATE_WINDOW_SECONDS = 300.0
#: Error entries quoted in a message.
_MAX_ERRORS_QUOTED = 3


def app_base_url(api_base_url: str, account_id: str, app_id: str) -> str:
    """``{api_base_url}/accounts/{account_id}/realtime/kit/{app_id}``, ids percent-encoded.

    Raises:
        ValueError: ``account_id`` or ``app_id`` is empty.
    """
    if not (account_id or "").strip() or not (app_id or "").strip():
        raise ValueError("RealtimeKit needs a Cloudflare account id and an app id")
    account, app = quote(account_id.strip(), safe=""), quote(app_id.strip(), safe="")
    return f"{api_base_url.rstrip('/')}/accounts/{account}/realtime/kit/{app}"


def cloudflare_errors_summary(body: Any) -> str | None:
    """``"Authentication error (code 10000)"`` from a failure envelope, or None when it carries no message.

    Reads Cloudflare's v4 ``errors: [{"code", "message"}]`` (the SDK's
    ``ErrorData``) and, for answers of RealtimeKit's own backend, Dyte's
    ``error: {"code", "message"}``. At most three errors are quoted, joined by ``"; "``.
    """
    if not isinstance(body, Mapping):
        return None
    entries = body.get("errors")
    if not isinstance(entries, list):
        single = body.get("error")
        entries = [single] if isinstance(single, Mapping) else []
    parts = []
    for entry in entries[:_MAX_ERRORS_QUOTED]:
        if not isinstance(entry, Mapping):
            continue
        message = entry.get("message")
        code = entry.get("code")
        if not isinstance(message, str) or not message.strip():
            continue
        text = " ".join(message.split())
        parts.append(f"{text} (code {code})" if isinstance(code, (int, str)) and code != "" else text)
    if not parts:
        return None
    more = len(entries) - _MAX_ERRORS_QUOTED
    return "; ".join(parts) + (f"; and {more} more" if more > 0 else "")


def livestream_items(data: Any) -> list[Any]:
    """The livestreams of ``GET livestreams``: a bare ``data`` array (Dyte's example, the sandbox),
    ``data.livestreams``, or one object in ``data`` (the SDK's ``LivestreamGetAllLivestreamsResponse``)."""
    if isinstance(data, list):
        return list(data)
    if isinstance(data, Mapping):
        if isinstance(data.get("livestreams"), list):
            return list(data["livestreams"])
        if data.get("id") is not None:
            return [data]
    return []


def livestream_run_items(data: Any) -> list[Any]:
    """The runs of ``GET livestreams/{id}``: ``data.sessions`` (Dyte's example), else ``data.session``,
    one object (SDK ``DataSession``) or a list."""
    if not isinstance(data, Mapping):
        return []
    runs = data.get("sessions")
    if isinstance(runs, list):
        return list(runs)
    run = data.get("session")
    if isinstance(run, list):
        return list(run)
    return [run] if isinstance(run, Mapping) else []


class RealtimeKitClient(RestClient):
    """Async RealtimeKit REST client (Cloudflare API) around one long-lived :class:`httpx.AsyncClient`.

    Args:
        api_base_url: Cloudflare API root, ``https://api.cloudflare.com/client/v4``.
        account_id: Cloudflare account id.
        app_id: RealtimeKit app id.
        api_token: Cloudflare API token with RealtimeKit permissions (sent as
            ``Authorization: Bearer``; scrubbed from every message).
        transport: optional httpx transport (``httpx.MockTransport``, the sandbox).
        timeout_seconds: per-request timeout, seconds.
        calls_per_five_minutes: budget of the limiter built when ``limiter`` is
            None (Cloudflare: 1200 per five minutes per token).
        retry, per_page, sleep, limiter, on_call, rng: as for
            :class:`receiver.providers.dyte.client.DyteClient`.

    Raises:
        ValueError: empty account id, app id or token; ``per_page < 1``.

    Use as ``async with RealtimeKitClient(...) as client:`` or call :meth:`aclose`.
    """

    provider_name = "realtimekit"
    provider_label = "RealtimeKit"

    def __init__(
        self,
        api_base_url: str,
        account_id: str,
        app_id: str,
        api_token: str,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        timeout_seconds: float = 10.0,
        calls_per_five_minutes: int = 1200,
        retry: RetryPolicy = RetryPolicy(),
        per_page: int = 100,
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
        limiter: RateLimiter | None = None,
        on_call: OnCall | None = None,
        rng: Any = random,
    ) -> None:
        if not (api_token or "").strip():
            raise ValueError("RealtimeKit needs an API token")
        self.account_id = account_id
        self.app_id = app_id
        bearer = f"Bearer {api_token.strip()}"
        super().__init__(
            app_base_url(api_base_url, account_id, app_id),
            limiter=limiter
            if limiter is not None
            else RateLimiter(calls_per_five_minutes, window_seconds=RATE_WINDOW_SECONDS),
            headers={"Authorization": bearer},
            secrets=(api_token, api_token.strip(), bearer),
            transport=transport,
            timeout_seconds=timeout_seconds,
            retry=retry,
            per_page=per_page,
            sleep=sleep,
            on_call=on_call,
            rng=rng,
            user_agent="receiver-realtimekit-client/1",
        )

    def __repr__(self) -> str:
        return f"RealtimeKitClient(base_url={self.base_url!r})"

    async def __aenter__(self) -> RealtimeKitClient:
        return self

    def _error_excerpt(self, response: httpx.Response) -> str:
        """Cloudflare's error messages and codes when the body is its v4 envelope, else the body excerpt."""
        try:
            summary = cloudflare_errors_summary(response.json())
        except ValueError:
            summary = None
        return self._scrub(summary) if summary else self._excerpt(response)

    # ------------------------------------------------------------------ sessions

    async def get_session(self, session_id: str, *, include_breakout_rooms: bool = False) -> ApiSession:
        """``GET sessions/{session_id}`` -> the session in ``data`` (SDK ``SessionGetSessionDetailsResponse``).

        A Dyte-shaped ``data.session`` is read too. ``include_breakout_rooms``
        asks for the session's ``breakout_rooms`` (SDK
        ``SessionGetSessionDetailsParams``; sessions of their own). Raises
        ProviderNotFound for an unknown id; unreadable fields are logged once each.
        """
        template = "/sessions/{session_id}"
        params = {"include_breakout_rooms": "true"} if include_breakout_rooms else None
        result = await self._request("GET", template, params=params, path_params={"session_id": session_id})
        data = result.data
        if isinstance(data, Mapping) and isinstance(data.get("session"), Mapping):
            data = data["session"]
        return self._validated(ApiSession, data, f"GET {template}")

    async def list_session_participants(
        self, session_id: str, *, include_peer_events: bool = False
    ) -> list[ApiParticipant]:
        """All participants of a session: every page of ``GET sessions/{session_id}/participants``.

        The list is ``data.participants`` (SDK ``SessionGetSessionParticipantsResponse``),
        without ``paging``: pages are walked with ``page_no``/``per_page``
        until an empty page (see :meth:`RestClient._paginate`). A
        participant's ``id`` is its peer id; ``duration_minutes`` is in
        minutes (SDK ``duration``). ``include_peer_events`` asks for each
        participant's ``peer_events`` (SDK ``DataParticipantPeerEvent``). A
        participant that is not an object is skipped with a warning.
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
        """Every session of the app, all pages of ``GET sessions`` (``data.sessions``, top-level ``paging``).

        ``start_time`` / ``end_time`` become the SDK's ``start_time`` /
        ``end_time`` query parameters (ISO 8601 UTC with ``Z``; naive values
        are UTC). ``on_page(page_no, sessions_so_far, total_count)`` follows
        the walk. An item that is not a usable session is skipped with a warning.
        """
        params = {"start_time": to_iso(start_time), "end_time": to_iso(end_time)}
        async for item in self._paginate("/sessions", "data.sessions", params, on_page=on_page):
            for session in self._listed(ApiSession, [item], "GET /sessions"):
                yield session

    # ------------------------------------------------------------------ recordings, livestreams, meetings

    async def get_recording(self, recording_id: str) -> ApiRecording:
        """``GET recordings/{recording_id}`` -> ``data`` (SDK ``RecordingGetOneRecordingResponse``).

        ``file_size`` in bytes, ``recording_duration`` in seconds; the
        meeting id is read from ``meeting_id`` or a nested ``meeting.id``.
        """
        template = "/recordings/{recording_id}"
        result = await self._request("GET", template, path_params={"recording_id": recording_id})
        return self._model(ApiRecording, result.data, f"GET {template}")

    async def list_recordings(self, *, meeting_id: str | None = None) -> list[ApiRecording]:
        """Every page of ``GET recordings`` (SDK ``get_recordings``: a bare ``data`` array, top-level
        ``paging``), for one meeting when ``meeting_id`` is given (the SDK filters by meeting, not by session).

        Items carry ``session_id`` and a nested ``meeting`` (read as
        ``meeting_id``); file_size bytes, recording_duration seconds.
        """
        items = [item async for item in self._paginate("/recordings", "data", {"meeting_id": meeting_id})]
        return self._listed(ApiRecording, items, "GET /recordings")

    async def get_livestream(self, livestream_id: str) -> ApiLivestream:
        """``GET livestreams/{livestream_id}`` -> ``data.livestream`` (SDK
        ``LivestreamGetLivestreamSessionForLivestreamIDResponse``).

        The livestream sessions beside it are :meth:`list_livestream_sessions`;
        ``stream_key`` and ``ingest_server`` come back as ``SecretStr``.
        """
        template = "/livestreams/{livestream_id}"
        result = await self._request("GET", template, path_params={"livestream_id": livestream_id})
        data = result.data
        if isinstance(data, Mapping) and isinstance(data.get("livestream"), Mapping):
            data = data["livestream"]
        return self._model(ApiLivestream, data, f"GET {template}")

    async def list_meeting_livestreams(self, meeting_id: str) -> list[ApiLivestream]:
        """The meeting's livestreams: every page of ``GET livestreams`` (SDK ``get_all_livestreams``),
        those whose ``meeting_id`` is this meeting.

        RealtimeKit has no listing by meeting (Dyte's ``GET
        meetings/{id}/livestream``), so the app's livestreams are walked:
        one call per ``per_page`` livestreams of the app. Stream keys come
        back as ``SecretStr`` (never stored).
        """
        items = [item async for item in self._paginate("/livestreams", livestream_items)]
        return [
            stream
            for stream in self._listed(ApiLivestream, items, "GET /livestreams")
            if stream.meeting_id == meeting_id
        ]

    async def list_livestream_sessions(self, livestream_id: str) -> list[ApiLivestreamSession]:
        """Every page of the runs of ``GET livestreams/{livestream_id}`` (``data.session`` in the SDK,
        ``data.sessions`` in Dyte's example; ``paging`` in ``data`` or at the top).

        ``viewer_seconds`` and ``ingest_seconds`` are seconds; the meeting
        session is not named there (``session_id`` stays None unless sent).
        """
        template = "/livestreams/{livestream_id}"
        items = [
            item
            async for item in self._paginate(
                template, livestream_run_items, path_params={"livestream_id": livestream_id}
            )
        ]
        return self._listed(ApiLivestreamSession, items, f"GET {template}")

    async def list_session_livestream_sessions(self, session_id: str) -> list[ApiLivestreamSession]:
        """The livestream runs of a meeting session, with ``session_id`` = this session.

        RealtimeKit has no ``GET sessions/{id}/livestream-sessions`` (Dyte's).
        The runs are those of the session's meeting's livestreams
        (:meth:`list_meeting_livestreams`, :meth:`list_livestream_sessions`)
        that started (else were invoked, else created) while the session was
        live: from its ``started_at`` to its ``ended_at`` (still live: no
        end). A meeting has one live session at a time, so such a run
        streamed this session. Calls: the session, the app's livestreams,
        then one listing per livestream of the meeting; a livestream deleted
        meanwhile (404) is skipped. Raises ProviderNotFound for an unknown session.
        """
        session = await self.get_session(session_id)
        if not session.meeting_id or session.started_at is None:
            return []
        start, end = session.started_at, session.ended_at
        found: list[ApiLivestreamSession] = []
        for stream in await self.list_meeting_livestreams(session.meeting_id):
            try:
                runs = await self.list_livestream_sessions(stream.id)
            except ProviderNotFound:
                continue
            for run in runs:
                began = run.started_time or run.invoked_time or run.created_at
                if began is None or began < start or (end is not None and began > end):
                    continue
                found.append(
                    run.model_copy(update={"session_id": session_id, "livestream_id": run.livestream_id or stream.id})
                )
        return found

    async def get_meeting(self, meeting_id: str) -> ApiMeeting:
        """``GET meetings/{meeting_id}`` -> ``data`` (SDK ``MeetingGetMeetingByIDResponse``)."""
        template = "/meetings/{meeting_id}"
        result = await self._request("GET", template, path_params={"meeting_id": meeting_id})
        return self._model(ApiMeeting, result.data, f"GET {template}")

    # ------------------------------------------------------------------ webhooks

    async def list_webhooks(self) -> list[ApiWebhook]:
        """``GET webhooks`` -> ``data`` as a bare array (SDK ``WebhookGetWebhooksResponse``; not paginated)."""
        result = await self._request("GET", "/webhooks")
        return [self._model(ApiWebhook, item, "GET /webhooks") for item in extract_list(result.data, "data")]

    async def create_webhook(self, name: str, url: str, events: Iterable[str], enabled: bool = True) -> ApiWebhook:
        """``POST webhooks`` with ``{name, url, events, enabled}`` (SDK ``WebhookCreateWebhookParams``) -> 201, the webhook.

        Not retried on 5xx or read timeouts (a retry could create a duplicate).
        """
        body = {"name": name, "url": url, "events": list(events), "enabled": bool(enabled)}
        result = await self._request("POST", "/webhooks", json=body)
        return self._model(ApiWebhook, result.data, "POST /webhooks")

    async def update_webhook(self, webhook_id: str, **fields: Any) -> ApiWebhook:
        """``PATCH webhooks/{webhook_id}`` with any of ``name``, ``url``, ``events``, ``enabled`` (SDK ``WebhookEditWebhookParams``).

        Raises:
            TypeError: an unknown field name, or no field at all.
        """
        body = webhook_patch_body(fields)
        template = "/webhooks/{webhook_id}"
        result = await self._request("PATCH", template, json=body, path_params={"webhook_id": webhook_id})
        return self._model(ApiWebhook, result.data, f"PATCH {template}")

    async def delete_webhook(self, webhook_id: str) -> None:
        """``DELETE webhooks/{webhook_id}``; raises ProviderNotFound when it does not exist."""
        await self._request("DELETE", "/webhooks/{webhook_id}", path_params={"webhook_id": webhook_id})
