"""The REST machinery both providers' clients share: transport, rate limiting, retries, envelopes, paging.

:class:`RestClient` owns one long-lived :class:`httpx.AsyncClient` and the
rules every call follows, whatever the provider:

* the shared :class:`~receiver.providers.ratelimit.RateLimiter` is acquired
  before every attempt (Dyte: 2000 calls per minute; Cloudflare: 1200 per
  five minutes);
* transport errors, timeouts, 5xx and 429 are retried per
  :class:`~receiver.retry.RetryPolicy` (429 waits ``retry-after`` seconds,
  capped at :data:`MAX_RETRY_AFTER_SECONDS`, when the header is present);
  other 4xx are not. ``POST`` (not idempotent: a retried create could make
  duplicates) is only retried when the request was surely not processed:
  connect errors/timeouts, pool timeouts and 429;
* errors are :mod:`receiver.providers.errors` (404 ``ProviderNotFound``,
  401/403 ``ProviderAuthError``, 429 ``ProviderRateLimited``, other non-2xx
  ``ProviderStatusError``, no answer ``ProviderTransportError``, a 2xx that is
  not the expected envelope or object ``ProviderResponseError``); messages
  read ``"<Provider> API GET /sessions/abc returned HTTP 404: ..."`` and
  never carry a credential: response excerpts are scrubbed of every secret
  the subclass declares, and no header is ever quoted;
* the ``{"success", "data", "paging"}`` envelope (Dyte v2, and RealtimeKit's
  resources under the Cloudflare API) is unwrapped in :meth:`RestClient._unwrap`;
* ``page_no``/``per_page`` paging is walked by :meth:`RestClient._paginate`,
  driven by the server's ``paging`` totals (a capped page size or a short
  page never ends the walk early; overlapping pages yield an item once);
* listings are validated item by item (:meth:`RestClient._listed`): an item
  that is not a usable object is skipped with a warning, and each unreadable
  field is logged once, with an excerpt of its value, never the whole object.

A provider's client subclasses :class:`RestClient`, passes its base URL,
authentication and secrets, and writes one method per resource (paths and
response shapes of its own API); see :mod:`receiver.providers.dyte.client`
and :mod:`receiver.providers.realtimekit.client`.
"""

from __future__ import annotations

import asyncio
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

from receiver.providers.dyte.rest_models import DyteModel, Page
from receiver.providers.errors import (
    ProviderAuthError,
    ProviderNotFound,
    ProviderRateLimited,
    ProviderResponseError,
    ProviderStatusError,
    ProviderTransportError,
)
from receiver.providers.ratelimit import RateLimiter
from receiver.retry import RetryPolicy

__all__ = [
    "RestClient",
    "ApiResult",
    "OnCall",
    "OnPage",
    "parse_retry_after",
    "extract_list",
    "MAX_RETRY_AFTER_SECONDS",
    "BODY_EXCERPT_CHARS",
    "MAX_PAGES",
    "MAX_REMEMBERED_UNREADABLE",
    "UNREADABLE_VALUE_CHARS",
    "WEBHOOK_PATCH_FIELDS",
    "webhook_patch_body",
]

log = logging.getLogger(__name__)

#: Longest ``retry-after`` honoured on a 429, in seconds.
MAX_RETRY_AFTER_SECONDS = 60.0
#: Characters of a response body kept in :class:`ProviderStatusError`.
BODY_EXCERPT_CHARS = 300
#: Hard stop for a paginator whose server never signals the end.
MAX_PAGES = 10_000
#: Characters of an unreadable field value shown in the warning that names it.
UNREADABLE_VALUE_CHARS = 80
#: Unreadable (item, field) pairs remembered per client, so each is logged once.
MAX_REMEMBERED_UNREADABLE = 10_000

#: Fields a webhook PATCH may change (Dyte spec ``PatchWebhookRequest``, SDK ``WebhookEditWebhookParams``).
WEBHOOK_PATCH_FIELDS = frozenset({"name", "url", "events", "enabled"})

_M = TypeVar("_M", bound=DyteModel)
#: ``on_call(method, path_template, status_or_exception_name, seconds)``, after every attempt.
OnCall = Callable[[str, str, "int | str", float], object]
#: ``on_page(page_no, items_so_far, total_count_or_None)``, called after each page of a listing.
OnPage = Callable[[int, int, "int | None"], object]
#: Where a listing's items are: a dotted key (see :func:`extract_list`) or a function from ``data`` to the list.
ListKey = str | Callable[[Any], list[Any]] | None


@dataclass(frozen=True)
class ApiResult:
    """An unwrapped envelope: ``data`` (any JSON value, ``None`` for an empty body), its ``paging``, the HTTP status."""

    data: Any
    paging: Page | None
    status_code: int


def parse_retry_after(value: str | None) -> float | None:
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


def extract_list(data: Any, list_key: str | None) -> list[Any]:
    """The item list inside ``data``: ``list_key`` is ``None``/``"data"`` (bare array) or ``"sessions"``/``"data.sessions"``.

    Raises:
        ProviderResponseError: something other than an object/list is in the way.
    """
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
            raise ProviderResponseError(f"expected an object holding {list_key!r}, got {type(node).__name__}")
        node = node.get(part)
    if node is None:
        return []
    if not isinstance(node, list):
        raise ProviderResponseError(f"expected a list at {list_key!r}, got {type(node).__name__}")
    return node


def webhook_patch_body(fields: Mapping[str, Any]) -> dict[str, Any]:
    """The JSON body of a webhook PATCH: only ``name``, ``url``, ``events`` (as a list), ``enabled``.

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
    return body


def _item_identity(item: Any) -> Any:
    return item.get("id") if isinstance(item, Mapping) else repr(item)


def _raw_value(model: type[DyteModel], raw: Mapping[str, Any], name: str) -> Any:
    """The value ``raw`` carried for field ``name`` (its own key, camelCase key, or a renamed source key)."""
    keys = [name, "".join(part.capitalize() if i else part for i, part in enumerate(name.split("_")))]
    keys += [source for source, target in model._renames.items() if target == name]
    for key in keys:
        if key in raw:
            return raw[key]
    return None


class RestClient:
    """Base of the providers' async REST clients (see the module docstring for the rules).

    Args:
        base_url: API root; resource paths are appended to it
            (``https://api.dyte.io/v2``, or
            ``https://api.cloudflare.com/client/v4/accounts/A/realtime/kit/B``).
        limiter: the shared :class:`RateLimiter` (share one per process and API).
        auth: httpx authentication (e.g. ``httpx.BasicAuth``), or None.
        headers: extra request headers (e.g. ``Authorization: Bearer ...``).
        secrets: strings scrubbed from every excerpt and message (API keys,
            tokens, encoded ``Authorization`` values).
        transport: optional httpx transport (``httpx.MockTransport``, the sandbox).
        timeout_seconds: per-request timeout (connect, read, write, pool).
        retry: backoff policy; ``max_attempts`` counts the first try.
        per_page: page size for paginated endpoints, >= 1.
        sleep: coroutine used for backoff waits (not by the limiter).
        on_call: optional callback ``(method, path_template, status_or_exc_name,
            seconds)`` after every attempt; its exceptions are logged and ignored.
        rng: randomness for jitter (``random`` module by default).
        user_agent: the ``User-Agent`` header.

    Attributes:
        provider_name: ``dyte`` or ``realtimekit`` (set by the subclass).
        provider_label: the provider's name in messages (``Dyte``, ``RealtimeKit``).
        calls_by_endpoint: ``Counter`` keyed by ``(method, path_template,
            status)``, one count per attempt; ``status`` is the HTTP status
            (int) or, when no answer came, the exception class name
            (e.g. ``"ReadTimeout"``). Templates look like ``"/sessions/{session_id}"``.

    Raises:
        ValueError: ``per_page < 1``.
    """

    provider_name = "provider"
    provider_label = "Provider"

    def __init__(
        self,
        base_url: str,
        *,
        limiter: RateLimiter,
        auth: httpx.Auth | None = None,
        headers: Mapping[str, str] | None = None,
        secrets: Iterable[str] = (),
        transport: httpx.AsyncBaseTransport | None = None,
        timeout_seconds: float = 10.0,
        retry: RetryPolicy = RetryPolicy(),
        per_page: int = 100,
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
        on_call: OnCall | None = None,
        rng: Any = random,
        user_agent: str = "receiver/1",
    ) -> None:
        if per_page < 1:
            raise ValueError("per_page must be >= 1")
        self.base_url = base_url.rstrip("/")
        self.retry = retry
        self.per_page = int(per_page)
        self.limiter = limiter
        self.on_call = on_call
        self.calls_by_endpoint: collections.Counter[tuple[str, str, int | str]] = collections.Counter()
        self._sleep = sleep
        self._rng = rng
        self._unreadable_logged: set[tuple[str, str, str]] = set()
        # Longest first: a secret containing another is replaced whole.
        self._secrets = tuple(sorted({s for s in secrets if s}, key=len, reverse=True))
        self._http = httpx.AsyncClient(
            base_url=self.base_url,
            auth=auth,
            transport=transport,
            timeout=httpx.Timeout(timeout_seconds),
            headers={"Accept": "application/json", "User-Agent": user_agent, **dict(headers or {})},
            follow_redirects=False,
        )

    async def __aenter__(self) -> RestClient:
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
        """The first :data:`BODY_EXCERPT_CHARS` characters of the body, whitespace collapsed, secrets scrubbed."""
        try:
            text = response.text
        except Exception:  # undecodable body
            text = repr(response.content[:BODY_EXCERPT_CHARS])
        return self._scrub(" ".join(text[: BODY_EXCERPT_CHARS * 2].split())[:BODY_EXCERPT_CHARS])

    def _error_excerpt(self, response: httpx.Response) -> str:
        """What an error message quotes of a failed answer; subclasses may summarise their error envelope."""
        return self._excerpt(response)

    def _record(self, method: str, template: str, outcome: int | str, seconds: float) -> None:
        self.calls_by_endpoint[(method, template, outcome)] += 1
        if self.on_call is not None:
            try:
                self.on_call(method, template, outcome, seconds)
            except Exception:
                log.exception("%s on_call callback failed for %s %s", self.provider_name, method, template)

    async def _backoff(self, method: str, template: str, attempt: int, outcome: int | str, delay: float) -> None:
        log.warning(
            "%s %s %s attempt %d/%d failed (%s); retrying in %.2fs",
            self.provider_name,
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
        ``on_call`` see. Query parameters whose value is None are left out.

        Returns:
            :class:`ApiResult` with ``data`` and ``paging`` (see :meth:`_unwrap`).

        Raises:
            ProviderTransportError, ProviderRateLimited, ProviderStatusError
            (5xx after retries, other 4xx), ProviderNotFound,
            ProviderAuthError, ProviderResponseError (see the module docstring).
        """
        method = method.upper()
        label = self.provider_label
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
                    raise ProviderTransportError(
                        f"{label} API {method} {url} failed after {attempt} attempt(s): {name}",
                        method=method,
                        path=url,
                        cause=name,
                    ) from exc
                await self._backoff(method, path, attempt, name, self.retry.delay_seconds(attempt, self._rng))
                continue
            except httpx.HTTPError as exc:  # not a transport problem (e.g. invalid URL): not retried
                name = type(exc).__name__
                self._record(method, path, name, time.perf_counter() - started)
                raise ProviderTransportError(
                    f"{label} API {method} {url} failed: {name}", method=method, path=url, cause=name
                ) from exc
            elapsed = time.perf_counter() - started
            status = response.status_code
            self._record(method, path, status, elapsed)
            if 200 <= status < 300:
                return self._unwrap(method, url, response)

            excerpt = self._error_excerpt(response)
            delay: float | None = None
            where = {"method": method, "path": url, "provider": label}
            if status == 429:
                retry_after = parse_retry_after(response.headers.get("retry-after"))
                error: ProviderStatusError = ProviderRateLimited(
                    status, excerpt, retry_after_seconds=retry_after, **where
                )
                retryable = True
                delay = retry_after
            elif status >= 500:
                error = ProviderStatusError(status, excerpt, **where)
                retryable = idempotent
            elif status == 404:
                raise ProviderNotFound(status, excerpt, **where)
            elif status in (401, 403):
                raise ProviderAuthError(status, excerpt, **where)
            else:
                raise ProviderStatusError(status, excerpt, **where)
            if not retryable or self.retry.exhausted(attempt):
                raise error
            if delay is None:
                delay = self.retry.delay_seconds(attempt, self._rng)
            await self._backoff(method, path, attempt, status, delay)

    def _unwrap(self, method: str, url: str, response: httpx.Response) -> ApiResult:
        """Unwrap ``{"success": ..., "data": ..., "paging": ...}``; the one place that knows the envelope.

        ``paging`` is the top-level object, or ``data.paging`` (as in Dyte's
        participants example). An empty body gives ``data=None``.

        Raises:
            ProviderResponseError: not JSON, not an envelope, or ``success: false``.
        """
        label = self.provider_label
        if not response.content.strip():
            return ApiResult(data=None, paging=None, status_code=response.status_code)
        try:
            body = response.json()
        except ValueError:
            raise ProviderResponseError(
                f"{label} API {method} {url}: HTTP {response.status_code} body is not JSON: {self._excerpt(response)}"
            ) from None
        if not isinstance(body, Mapping) or ("data" not in body and "success" not in body):
            raise ProviderResponseError(
                f"{label} API {method} {url}: answer is not an envelope: {self._excerpt(response)}"
            )
        if body.get("success") is False:
            raise ProviderResponseError(f"{label} API {method} {url}: success=false: {self._error_excerpt(response)}")
        data = body.get("data")
        raw_paging = body.get("paging")
        if raw_paging is None and isinstance(data, Mapping):
            raw_paging = data.get("paging")
        paging = Page.model_validate(raw_paging) if isinstance(raw_paging, Mapping) else None
        return ApiResult(data=data, paging=paging, status_code=response.status_code)

    def _model(self, model: type[_M], value: Any, what: str) -> _M:
        """Validate ``value`` as ``model``; ``what`` (e.g. ``"GET /sessions"``) starts the error message.

        Raises:
            ProviderResponseError: ``value`` is not an object or misses what the model requires (``id``).
        """
        if not isinstance(value, Mapping):
            raise ProviderResponseError(f"{what}: expected an object, got {type(value).__name__}")
        try:
            return model.model_validate(value)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(map(str, e['loc'])) or '<root>'}: {e['msg']}"
                for e in exc.errors(include_input=False, include_url=False)
            )
            raise ProviderResponseError(f"{what}: invalid {model.__name__}: {problems}") from None

    def _listed(self, model: type[_M], items: Iterable[Any], what: str) -> list[_M]:
        """Validate the items of a listing one by one: an item that is not a usable object is skipped
        with a warning (the others are kept), and each unreadable field is logged once (see :meth:`_validated`)."""
        found: list[_M] = []
        for item in items:
            try:
                found.append(self._validated(model, item, what))
            except ProviderResponseError as exc:
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
        list_key: ListKey,
        params: Mapping[str, Any] | None = None,
        *,
        path_params: Mapping[str, str] | None = None,
        on_page: OnPage | None = None,
    ) -> AsyncIterator[Any]:
        """Yield raw items of every page of ``GET path``, walking ``page_no`` from 1 with ``per_page``.

        ``list_key`` locates the list: ``"data.sessions"`` / ``"sessions"``,
        ``"data.participants"``, or ``"data"`` / ``None`` for a bare array;
        or a function from ``data`` to the list.

        The walk is driven by the server's ``paging`` (``total_count``,
        1-based ``start_offset`` / ``end_offset``; top level or in ``data``),
        never by a short page: a server that caps the page size (asked 100,
        answers 25 of 60) is walked on with the size it actually serves until
        ``total_count`` items came. Items seen on an earlier page (same
        ``id``: overlapping offsets) are skipped; a gap in the offsets is
        logged. It stops when ``total_count`` items came (or ``end_offset >=
        total_count``), on an empty page, when a page repeats the previous one
        (server ignoring ``page_no``), or after :data:`MAX_PAGES` pages.

        Without ``paging`` (as RealtimeKit's participants listing) it walks
        until an empty or repeated page: a short page may be a capped one, so
        the end is confirmed by one extra call.

        ``on_page(page_no, items_so_far, total_count)`` is called after each
        page (``total_count`` None when the server does not say).
        """
        name = self.provider_name
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
            items = list_key(result.data) if callable(list_key) else extract_list(result.data, list_key)
            paging = result.paging
            total = paging.total_count if paging is not None else None
            if not items:
                if total is not None and fetched < total:
                    log.warning("%s GET %s: page %d is empty after %d of %d items", name, path, page_no, fetched, total)
                return
            ids = tuple(_item_identity(item) for item in items)
            if ids == previous_ids:
                log.warning("%s GET %s: page %d repeats page %d; stopping", name, path, page_no, page_no - 1)
                return
            previous_ids = ids
            if paging is not None and paging.start_offset is not None and paging.start_offset > expected_offset:
                log.warning(
                    "%s GET %s: page %d starts at item %d, expected %d (items may be missing)",
                    name,
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
                    log.info("%s GET %s: server serves %d items a page (asked %d)", name, path, len(items), per_page)
                    per_page = len(items)
        log.warning("%s GET %s: stopped after %d pages", name, path, MAX_PAGES)
