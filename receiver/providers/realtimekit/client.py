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
``GET recordings/{id}``                         ``data`` (``RecordingGetOneRecordingResponse``)
``GET livestreams/{id}``                        ``data.livestream`` (+ ``data.session``, ``data.paging``);
                                                ``disabled`` is a string
``GET meetings/{id}``                           ``data`` (``MeetingGetMeetingByIDResponse``)
``GET/POST webhooks``, ``PATCH/DELETE           ``data`` (a bare array for the list); ``POST`` answers 201
webhooks/{id}``
failures                                        Cloudflare's v4 envelope ``{"success": false, "errors":
                                                [{"code", "message"}], "messages", "result": null}``
==============================================  =====================================================

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
    ApiMeeting,
    ApiParticipant,
    ApiRecording,
    ApiSession,
    ApiWebhook,
)
from receiver.providers.http import OnCall, RestClient, extract_list, webhook_patch_body
from receiver.providers.ratelimit import RateLimiter
from receiver.retry import RetryPolicy
from receiver.timeparse import to_iso

__all__ = [
    "RealtimeKitClient",
    "DEFAULT_BASE_URL",
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

    async def get_session(self, session_id: str) -> ApiSession:
        """``GET sessions/{session_id}`` -> the session in ``data`` (SDK ``SessionGetSessionDetailsResponse``).

        A Dyte-shaped ``data.session`` is read too. Raises ProviderNotFound for an unknown id.
        """
        template = "/sessions/{session_id}"
        result = await self._request("GET", template, path_params={"session_id": session_id})
        data = result.data
        if isinstance(data, Mapping) and isinstance(data.get("session"), Mapping):
            data = data["session"]
        return self._model(ApiSession, data, f"GET {template}")

    async def list_session_participants(self, session_id: str) -> list[ApiParticipant]:
        """All participants of a session: every page of ``GET sessions/{session_id}/participants``.

        The list is ``data.participants`` (SDK ``SessionGetSessionParticipantsResponse``),
        without ``paging``: pages are walked with ``page_no``/``per_page``
        until a short or empty page. A participant's ``id`` is its peer id;
        ``duration_minutes`` is in minutes (SDK ``duration``).
        """
        template = "/sessions/{session_id}/participants"
        return [
            self._model(ApiParticipant, item, f"GET {template}")
            async for item in self._paginate(template, "data.participants", path_params={"session_id": session_id})
        ]

    async def iter_sessions(
        self, *, start_time: datetime | None = None, end_time: datetime | None = None
    ) -> AsyncIterator[ApiSession]:
        """Every session of the app, all pages of ``GET sessions`` (``data.sessions``, top-level ``paging``).

        ``start_time`` / ``end_time`` become the SDK's ``start_time`` /
        ``end_time`` query parameters (ISO 8601 UTC with ``Z``; naive values are UTC).
        """
        params = {"start_time": to_iso(start_time), "end_time": to_iso(end_time)}
        async for item in self._paginate("/sessions", "data.sessions", params):
            yield self._model(ApiSession, item, "GET /sessions")

    # ------------------------------------------------------------------ recordings, livestreams, meetings

    async def get_recording(self, recording_id: str) -> ApiRecording:
        """``GET recordings/{recording_id}`` -> ``data`` (SDK ``RecordingGetOneRecordingResponse``).

        ``file_size`` in bytes, ``recording_duration`` in seconds; the
        meeting id is read from ``meeting_id`` or a nested ``meeting.id``.
        """
        template = "/recordings/{recording_id}"
        result = await self._request("GET", template, path_params={"recording_id": recording_id})
        return self._model(ApiRecording, result.data, f"GET {template}")

    async def get_livestream(self, livestream_id: str) -> ApiLivestream:
        """``GET livestreams/{livestream_id}`` -> ``data.livestream`` (SDK
        ``LivestreamGetLivestreamSessionForLivestreamIDResponse``).

        The livestream session beside it is not returned; ``stream_key`` and
        ``ingest_server`` come back as ``SecretStr``.
        """
        template = "/livestreams/{livestream_id}"
        result = await self._request("GET", template, path_params={"livestream_id": livestream_id})
        data = result.data
        if isinstance(data, Mapping) and isinstance(data.get("livestream"), Mapping):
            data = data["livestream"]
        return self._model(ApiLivestream, data, f"GET {template}")

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
