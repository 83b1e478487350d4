"""The service's error hierarchy: every error it raises on purpose is a :class:`ReceiverError`.

* :class:`ConfigurationError` - settings missing or inconsistent (start-up).
* :class:`ProviderError` - the provider's REST API failed or refused
  (:mod:`receiver.providers` subclasses it per case: auth, not found,
  rate limited, unavailable).
* :class:`HTTPError` - an HTTP answer for a client's mistake (status,
  machine-readable ``error`` code, human ``detail``); one handler in
  :mod:`receiver.web.app` renders it as JSON. Never a 500.
* :class:`StorageUnavailable` - the database cannot be reached.

The CLI turns a ``ReceiverError`` into a one-line message on stderr and a
non-zero exit code (:mod:`receiver.cli`), never a traceback.
"""

from __future__ import annotations

__all__ = ["ReceiverError", "ConfigurationError", "ProviderError", "HTTPError", "StorageUnavailable"]


class ReceiverError(Exception):
    """Base of every error the service raises deliberately."""


class ConfigurationError(ReceiverError):
    """Settings are missing or inconsistent; the message names the setting."""


class ProviderError(ReceiverError):
    """The provider's REST API failed (after retries) or refused the call."""


class StorageUnavailable(ReceiverError):
    """The database did not answer (connection refused, timed out, or hung)."""


class HTTPError(ReceiverError):
    """An HTTP error answer: ``status_code``, an ``error`` code and a human ``detail``.

    Rendered as ``{"error": ..., "detail": ...}`` with ``status_code``.
    ``detail`` never echoes secrets or request bodies.
    """

    def __init__(self, status_code: int, error: str, detail: str = "", headers: dict[str, str] | None = None) -> None:
        super().__init__(detail or error)
        self.status_code = status_code
        self.error = error
        self.detail = detail
        self.headers = headers or {}

    @property
    def status(self) -> int:
        """The HTTP status (same as ``status_code``)."""
        return self.status_code
