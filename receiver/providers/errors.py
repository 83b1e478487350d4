"""Errors of the providers' REST clients (Dyte, RealtimeKit): one family for both.

Everything derives from :class:`ProviderAPIError`, itself a
:class:`receiver.errors.ProviderError`. Messages name the method and path
template, never credentials.
"""

from __future__ import annotations

from receiver.errors import ProviderError

__all__ = [
    "ProviderAPIError",
    "ProviderTransportError",
    "ProviderStatusError",
    "ProviderRateLimited",
    "ProviderNotFound",
    "ProviderAuthError",
    "ProviderResponseError",
]


class ProviderAPIError(ProviderError):
    """Base of every error raised by a provider's REST client."""


class ProviderTransportError(ProviderAPIError):
    """No HTTP answer: connect error, timeout or broken connection, after the allowed retries.

    Attributes:
        method, path: the request (path with ids, no query string).
        cause: class name of the underlying ``httpx`` exception.
    """

    def __init__(self, message: str, *, method: str = "", path: str = "", cause: str = "") -> None:
        super().__init__(message)
        self.method = method
        self.path = path
        self.cause = cause


class ProviderStatusError(ProviderAPIError):
    """The provider answered with a non-2xx status.

    Attributes:
        status_code: the HTTP status.
        body_excerpt: first ``BODY_EXCERPT_CHARS`` characters of the body,
            scrubbed of credentials (never any header).
        method, path: the request (path with ids, no query string).
        provider_label: the provider's name in the message (``Dyte``, ``RealtimeKit``).
    """

    def __init__(
        self, status_code: int, body_excerpt: str = "", *, method: str = "", path: str = "", provider: str = "Dyte"
    ) -> None:
        self.provider_label = provider
        self.status_code = status_code
        self.body_excerpt = body_excerpt
        self.method = method
        self.path = path
        where = f"{method} {path} " if method or path else ""
        super().__init__(f"{self.provider_label} API {where}returned HTTP {status_code}: {body_excerpt}".rstrip(": "))


class ProviderRateLimited(ProviderStatusError):
    """HTTP 429 still returned after the allowed retries; ``retry_after_seconds`` is the last ``retry-after`` (or None)."""

    def __init__(
        self,
        status_code: int = 429,
        body_excerpt: str = "",
        *,
        method: str = "",
        path: str = "",
        provider: str = "Dyte",
        retry_after_seconds: float | None = None,
    ) -> None:
        super().__init__(status_code, body_excerpt, method=method, path=path, provider=provider)
        self.retry_after_seconds = retry_after_seconds


class ProviderNotFound(ProviderStatusError):
    """HTTP 404: the object does not exist (or is not visible to these credentials). Never retried."""


class ProviderAuthError(ProviderStatusError):
    """HTTP 401 or 403: bad credentials (Dyte organization id / API key, RealtimeKit API token) or missing permission. Never retried."""


class ProviderResponseError(ProviderAPIError):
    """A 2xx answer that is not JSON, not the ``{"success", "data", "paging"}`` envelope, or not the expected object."""
