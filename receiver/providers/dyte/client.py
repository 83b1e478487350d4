"""Async client for the Dyte v2 REST API (``https://api.dyte.io/v2``), used for reconciliation.

Paths and response shapes follow ``shared/dyte/openapi-v2.yaml``; facts
(auth, envelope, paging, rate limit) are in ``shared/dyte/FACTS.md``.

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

No message, log line or exception carries the API key or the
``Authorization`` header; response excerpts are scrubbed of both.

Retries (:meth:`DyteClient._request`): the shared :class:`RateLimiter` is
acquired before every attempt; transport errors, timeouts, 5xx and 429 are
retried per :class:`RetryPolicy` (429 waits ``retry-after`` seconds, capped at
60 s, when the header is present); other 4xx are not. ``POST`` (not
idempotent: a retried create could make duplicates) is only retried when the
request was surely not processed: connect errors/timeouts, pool timeouts and
429.
"""

from __future__ import annotations

import asyncio
import base64
import collections
import logging
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, TypeVar
from urllib.parse import quote

import httpx
from pydantic import ValidationError

from receiver.providers.dyte.rest_models import (
    ApiLivestream,
    ApiLivestreamSession,
    ApiMeeting,
    ApiParticipant,
    ApiRecording,
    ApiSession,
    ApiWebhook,
    DyteModel,
    Page,
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
]

log = logging.getLogger(__name__)

DEFAULT_BASE_URL = "https://api.dyte.io/v2"
#: Longest ``retry-after`` honoured on a 429, in seconds.
MAX_RETRY_AFTER_SECONDS = 60.0
#: Characters of a response body kept in :class:`DyteStatusError`.
BODY_EXCERPT_CHARS = 300
#: Hard stop for a paginator whose server never signals the end.
MAX_PAGES = 10_000
#: Characters of an unreadable field value shown in the warning that names it.
UNREADABLE_VALUE_CHARS = 80
#: Unreadable (item, field) pairs remembered per client, so each is logged once.
MAX_REMEMBERED_UNREADABLE = 10_000
#: Fields accepted by :meth:`DyteClient.update_webhook` (spec ``PatchWebhookRequest``).
WEBHOOK_PATCH_FIELDS = frozenset({"name", "url", "events", "enabled"})

_M = TypeVar("_M", bound=DyteModel)
OnCall = Callable[[str, str, "int | str", float], object]
#: ``on_page(page_no, items_so_far, total_count_or_None)``, called after each page of a listing.
OnPage = Callable[[int, int, "int | None"], object]


# --------------------------------------------------------------------------- errors


# The error classes are the provider-neutral ones of receiver.providers.errors;
# the Dyte names stay as aliases.
DyteAPIError = ProviderAPIError
DyteTransportError = ProviderTransportError
DyteStatusError = ProviderStatusError
DyteRateLimited = ProviderRateLimited
DyteNotFound = ProviderNotFound
DyteAuthError = ProviderAuthError
DyteResponseError = ProviderResponseError


# --------------------------------------------------------------------------- helpers


@dataclass(frozen=True)
class ApiResult:
    """An unwrapped envelope: ``data`` (any JSON value, ``None`` for an empty body) and its ``paging``, if any."""

    data: Any
    paging: Page | None
    status_code: int


def _parse_retry_after(value: str | None) -> float | None:
    """Seconds from a ``retry-after`` header (delta-seconds or HTTP-date), clamped to [0, MAX]; None if absent/garbled."""
    if value is None:
        return None
    text = value.strip()
    if not text:
        return None
    try:
        seconds = float(text)
    except ValueError:
        try:
            when = parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - datetime.now(UTC)).total_seconds()
    if seconds != seconds:  # NaN
        return None
    return min(MAX_RETRY_AFTER_SECONDS, max(0.0, seconds))


def _extract_list(data: Any, list_key: str | None) -> list[Any]:
    """The item list inside ``data``: ``list_key`` is ``None``/``"data"`` (bare array) or ``"sessions"``/``"data.sessions"``."""
    key = list_key or ""
    if key == "data":
        key = ""
    elif key.startswith("data."):
        key = key[len("data.") :]
    node = data
    for part in filter(None, key.split(".")):
        if node is None:
            return []
        if not isinstance(node, Mapping):
            raise DyteResponseError(f"expected an object holding {list_key!r}, got {type(node).__name__}")
        node = node.get(part)
    if node is None:
        return []
    if not isinstance(node, list):
        raise DyteResponseError(f"expected a list at {list_key!r}, got {type(node).__name__}")
    return node


def _item_identity(item: Any) -> Any:
    return item.get("id") if isinstance(item, Mapping) else repr(item)


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


def _raw_value(model: type[DyteModel], raw: Mapping[str, Any], name: str) -> Any:
    """The value ``raw`` carried for field ``name`` (its own key, camelCase key, or a renamed source key)."""
    keys = [name, "".join(part.capitalize() if i else part for i, part in enumerate(name.split("_")))]
    keys += [source for source, target in model._renames.items() if target == name]
    for key in keys:
        if key in raw:
            return raw[key]
    return None


# --------------------------------------------------------------------------- client


class DyteClient:
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
            status)``, one count per attempt; ``status`` is the HTTP status
            (int) or, when no answer came, the exception class name
            (e.g. ``"ReadTimeout"``). Templates look like
            ``"/sessions/{session_id}"``.

    Use as ``async with DyteClient(...) as client:`` or call :meth:`aclose`.
    """

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
        if per_page < 1:
            raise ValueError("per_page must be >= 1")
        self.base_url = base_url.rstrip("/")
        self.org_id = org_id
        self.provider_name = "dyte"
        self.retry = retry
        self.per_page = int(per_page)
        # A built limiter pairs the real monotonic clock with the real sleep:
        # an injected fake ``sleep`` would never advance ``time.monotonic``.
        self.limiter = limiter if limiter is not None else RateLimiter(calls_per_minute)
        self.on_call = on_call
        self.calls_by_endpoint: collections.Counter[tuple[str, str, int | str]] = collections.Counter()
        self._sleep = sleep
        self._rng = rng
        self._unreadable_logged: set[tuple[str, str, str]] = set()
        token = base64.b64encode(f"{org_id}:{api_key}".encode()).decode("ascii")
        self._secrets = tuple(s for s in (api_key, token) if s)
        self._http = httpx.AsyncClient(
            base_url=self.base_url,
            auth=httpx.BasicAuth(org_id, api_key),
            transport=transport,
            timeout=httpx.Timeout(timeout_seconds),
            headers={"Accept": "application/json", "User-Agent": "receiver-dyte-client/1"},
            follow_redirects=False,
        )

    def __repr__(self) -> str:
        return f"DyteClient(base_url={self.base_url!r}, org_id={self.org_id!r})"

    async def __aenter__(self) -> DyteClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the underlying HTTP connection pool; the client is unusable afterwards."""
        await self._http.aclose()

    # ------------------------------------------------------------------ plumbing

    def _scrub(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text

    def _excerpt(self, response: httpx.Response) -> str:
        try:
            text = response.text
        except Exception:  # undecodable body
            text = repr(response.content[:BODY_EXCERPT_CHARS])
        return self._scrub(" ".join(text[: BODY_EXCERPT_CHARS * 2].split())[:BODY_EXCERPT_CHARS])

    def _record(self, method: str, template: str, outcome: int | str, seconds: float) -> None:
        self.calls_by_endpoint[(method, template, outcome)] += 1
        if self.on_call is not None:
            try:
                self.on_call(method, template, outcome, seconds)
            except Exception:
                log.exception("dyte on_call callback failed for %s %s", method, template)

    async def _backoff(self, method: str, template: str, attempt: int, outcome: int | str, delay: float) -> None:
        log.warning(
            "dyte %s %s attempt %d/%d failed (%s); retrying in %.2fs",
            method,
            template,
            attempt,
            self.retry.max_attempts,
            outcome,
            delay,
        )
        await self._sleep(delay)

    async def _request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        path_params: Mapping[str, str] | None = None,
    ) -> ApiResult:
        """Send one API call with rate limiting and retries, and unwrap the envelope.

        ``path`` is a template such as ``"/sessions/{session_id}"``; ids come
        in ``path_params`` and are percent-encoded (so ``/`` in an id cannot
        change the route). The template is what ``calls_by_endpoint`` and
        ``on_call`` see.

        Returns:
            :class:`ApiResult` with ``data`` and ``paging`` (top-level
            ``paging``, or ``data.paging`` as in the participants example).

        Raises:
            DyteTransportError, DyteRateLimited, DyteStatusError (5xx after
            retries, other 4xx), DyteNotFound, DyteAuthError,
            DyteResponseError (see module docstring).
        """
        method = method.upper()
        url = path.format(**{k: quote(str(v), safe="") for k, v in (path_params or {}).items()})
        query = {k: v for k, v in (params or {}).items() if v is not None}
        idempotent = method != "POST"
        attempt = 0
        while True:
            attempt += 1
            await self.limiter.acquire()
            started = time.perf_counter()
            try:
                response = await self._http.request(method, url, params=query or None, json=json)
            except httpx.TransportError as exc:
                elapsed = time.perf_counter() - started
                name = type(exc).__name__
                self._record(method, path, name, elapsed)
                unsent = isinstance(exc, (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout))
                if self.retry.exhausted(attempt) or not (idempotent or unsent):
                    raise DyteTransportError(
                        f"Dyte API {method} {url} failed after {attempt} attempt(s): {name}",
                        method=method,
                        path=url,
                        cause=name,
                    ) from exc
                await self._backoff(method, path, attempt, name, self.retry.delay_seconds(attempt, self._rng))
                continue
            except httpx.HTTPError as exc:  # not a transport problem (e.g. invalid URL): not retried
                name = type(exc).__name__
                self._record(method, path, name, time.perf_counter() - started)
                raise DyteTransportError(
                    f"Dyte API {method} {url} failed: {name}", method=method, path=url, cause=name
                ) from exc
            elapsed = time.perf_counter() - started
            status = response.status_code
            self._record(method, path, status, elapsed)
            if 200 <= status < 300:
                return self._unwrap(method, url, response)

            excerpt = self._excerpt(response)
            delay: float | None = None
            if status == 429:
                retry_after = _parse_retry_after(response.headers.get("retry-after"))
                error: DyteStatusError = DyteRateLimited(
                    status, excerpt, method=method, path=url, retry_after_seconds=retry_after
                )
                retryable = True
                delay = retry_after
            elif status >= 500:
                error = DyteStatusError(status, excerpt, method=method, path=url)
                retryable = idempotent
            elif status == 404:
                raise DyteNotFound(status, excerpt, method=method, path=url)
            elif status in (401, 403):
                raise DyteAuthError(status, excerpt, method=method, path=url)
            else:
                raise DyteStatusError(status, excerpt, method=method, path=url)
            if not retryable or self.retry.exhausted(attempt):
                raise error
            if delay is None:
                delay = self.retry.delay_seconds(attempt, self._rng)
            await self._backoff(method, path, attempt, status, delay)

    def _unwrap(self, method: str, url: str, response: httpx.Response) -> ApiResult:
        """Unwrap ``{"success": ..., "data": ..., "paging": ...}``; the one place that knows the envelope."""
        if not response.content.strip():
            return ApiResult(data=None, paging=None, status_code=response.status_code)
        try:
            body = response.json()
        except ValueError:
            raise DyteResponseError(
                f"Dyte API {method} {url}: HTTP {response.status_code} body is not JSON: {self._excerpt(response)}"
            ) from None
        if not isinstance(body, Mapping) or ("data" not in body and "success" not in body):
            raise DyteResponseError(f"Dyte API {method} {url}: answer is not an envelope: {self._excerpt(response)}")
        if body.get("success") is False:
            raise DyteResponseError(f"Dyte API {method} {url}: success=false: {self._excerpt(response)}")
        data = body.get("data")
        raw_paging = body.get("paging")
        if raw_paging is None and isinstance(data, Mapping):
            raw_paging = data.get("paging")
        paging = Page.model_validate(raw_paging) if isinstance(raw_paging, Mapping) else None
        return ApiResult(data=data, paging=paging, status_code=response.status_code)

    def _model(self, model: type[_M], value: Any, what: str) -> _M:
        if not isinstance(value, Mapping):
            raise DyteResponseError(f"{what}: expected an object, got {type(value).__name__}")
        try:
            return model.model_validate(value)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(map(str, e['loc'])) or '<root>'}: {e['msg']}"
                for e in exc.errors(include_input=False, include_url=False)
            )
            raise DyteResponseError(f"{what}: invalid {model.__name__}: {problems}") from None

    def _listed(self, model: type[_M], items: Iterable[Any], what: str) -> list[_M]:
        """Validate the items of a listing one by one: an item that is not a usable object is skipped
        with a warning (the others are kept), and each unreadable field is logged once (see :meth:`_validated`)."""
        found: list[_M] = []
        for item in items:
            try:
                found.append(self._validated(model, item, what))
            except DyteResponseError as exc:
                log.warning("%s: item skipped: %s", what, exc)
        return found

    def _validated(self, model: type[_M], item: Any, what: str) -> _M:
        """:meth:`_model`, then one warning per unreadable field naming the field and an excerpt of its
        value (never the whole object), once per (item id, field) for the client's lifetime."""
        obj = self._model(model, item, what)
        if obj.invalid_fields and isinstance(item, Mapping):
            identity = str(getattr(obj, "id", None) or "?")
            for name in obj.invalid_fields:
                key = (what, identity, name)
                if key in self._unreadable_logged:
                    continue
                if len(self._unreadable_logged) < MAX_REMEMBERED_UNREADABLE:
                    self._unreadable_logged.add(key)
                value = self._scrub(repr(_raw_value(model, item, name)))[:UNREADABLE_VALUE_CHARS]
                log.warning("%s: %s %s: unreadable %s %s (kept as null)", what, model.__name__, identity, name, value)
        return obj

    async def _paginate(
        self,
        path: str,
        list_key: str | Callable[[Any], list[Any]] | None,
        params: Mapping[str, Any] | None = None,
        *,
        path_params: Mapping[str, str] | None = None,
        on_page: OnPage | None = None,
    ) -> AsyncIterator[Any]:
        """Yield raw items of every page of ``GET path``, walking ``page_no`` from 1 with ``per_page``.

        ``list_key`` locates the list: ``"data.sessions"`` / ``"sessions"``,
        ``"data.participants"``, or ``"data"`` / ``None`` for a bare array;
        or a function from ``data`` to the list.

        The walk is driven by the server's ``paging`` (spec
        ``PagingResponse``: ``total_count``, 1-based ``start_offset`` /
        ``end_offset``), never by a short page: a server that caps the page
        size (asked 100, answers 25 of 60) is walked on with the size it
        actually serves until ``total_count`` items came. Items seen on an
        earlier page (same ``id``: overlapping offsets) are skipped; a gap in
        the offsets is logged. It stops when ``total_count`` items came (or
        ``end_offset >= total_count``), on an empty page, when a page repeats
        the previous one (server ignoring ``page_no``), or after
        ``MAX_PAGES`` pages. Without ``paging`` it walks until an empty or
        repeated page (one extra call).

        ``on_page(page_no, items_so_far, total_count)`` is called after each
        page (``total_count`` None when the server does not say).
        """
        base = dict(params or {})
        per_page = self.per_page
        previous_ids: tuple[Any, ...] | None = None
        seen: set[Any] = set()
        fetched = 0
        expected_offset = 1
        for page_no in range(1, MAX_PAGES + 1):
            result = await self._request(
                "GET", path, params={**base, "page_no": page_no, "per_page": per_page}, path_params=path_params
            )
            items = list_key(result.data) if callable(list_key) else _extract_list(result.data, list_key)
            paging = result.paging
            total = paging.total_count if paging is not None else None
            if not items:
                if total is not None and fetched < total:
                    log.warning("dyte GET %s: page %d is empty after %d of %d items", path, page_no, fetched, total)
                return
            ids = tuple(_item_identity(item) for item in items)
            if ids == previous_ids:
                log.warning("dyte GET %s: page %d repeats page %d; stopping", path, page_no, page_no - 1)
                return
            previous_ids = ids
            if paging is not None and paging.start_offset is not None and paging.start_offset > expected_offset:
                log.warning(
                    "dyte GET %s: page %d starts at item %d, expected %d (items may be missing)",
                    path,
                    page_no,
                    paging.start_offset,
                    expected_offset,
                )
            for item, identity in zip(items, ids, strict=True):
                if isinstance(item, Mapping) and isinstance(identity, (str, int)):
                    if identity in seen:
                        continue  # overlapping pages: already yielded
                    seen.add(identity)
                fetched += 1
                yield item
            if paging is not None and paging.end_offset is not None:
                expected_offset = paging.end_offset + 1
            else:
                expected_offset += len(items)
            if on_page is not None:
                on_page(page_no, fetched, total)
            if total is not None:
                if fetched >= total or (paging is not None and (paging.end_offset or 0) >= total):
                    return
                if page_no == 1 and len(items) < per_page:
                    # The server capped the page size: walk on with the size it serves, so
                    # page_no * per_page lands where the next page really starts.
                    log.info("dyte GET %s: server serves %d items a page (asked %d)", path, len(items), per_page)
                    per_page = len(items)
        log.warning("dyte GET %s: stopped after %d pages", path, MAX_PAGES)

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
        return [self._model(ApiWebhook, item, "GET /webhooks") for item in _extract_list(result.data, "data")]

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
        unknown = set(fields) - WEBHOOK_PATCH_FIELDS
        if unknown:
            raise TypeError(f"update_webhook() got unexpected field(s): {', '.join(sorted(unknown))}")
        if not fields:
            raise TypeError("update_webhook() needs at least one of: " + ", ".join(sorted(WEBHOOK_PATCH_FIELDS)))
        body = dict(fields)
        if "events" in body and body["events"] is not None:
            body["events"] = list(body["events"])
        result = await self._request(
            "PATCH", "/webhooks/{webhook_id}", json=body, path_params={"webhook_id": webhook_id}
        )
        return self._model(ApiWebhook, result.data, "PATCH /webhooks/{webhook_id}")

    async def delete_webhook(self, webhook_id: str) -> None:
        """``DELETE /webhooks/{webhook_id}``; raises DyteNotFound when it does not exist."""
        await self._request("DELETE", "/webhooks/{webhook_id}", path_params={"webhook_id": webhook_id})
