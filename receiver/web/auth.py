"""Bearer-token authentication for the reports API (``/api``) and the pages (``/ui``).

Tokens come from ``API_TOKENS`` (comma-separated; blanks ignored). Every
comparison uses :func:`hmac.compare_digest` against every configured token,
so timing tells nothing about which token or how much of it matched.

* API: ``Authorization: Bearer <token>`` only. Missing or wrong: 401 with
  ``WWW-Authenticate: Bearer realm="receiver"`` (``error="invalid_token"``
  when a token was sent but is wrong).
* Pages: the same header, **or** the HttpOnly cookie :data:`COOKIE_NAME`.
  A browser gets the cookie by opening any page once with ``?token=<token>``:
  the answer sets the cookie (``HttpOnly; SameSite=Strict; Path=/ui``, plus
  ``Secure`` over HTTPS) and redirects (303) to the same URL without the
  token, so it does not stay in the address bar or history.
* Form posts from pages (the event retry button) also carry a CSRF field,
  :func:`csrf_token` (an HMAC of the caller's token), checked when the
  caller authenticated with the cookie.
* ``API_TOKENS`` unset or empty: the API and the pages answer 503
  ``not_configured`` (only ``GET /api/openapi.json`` is served).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable

from starlette.requests import Request

from receiver.settings import Settings

__all__ = ["COOKIE_NAME", "TokenAuth", "bearer_token", "csrf_token"]

#: Name of the page-session cookie (holds the token itself; HttpOnly, SameSite=Strict, Path=/ui).
COOKIE_NAME = "receiver_token"
#: ``WWW-Authenticate`` realm of 401 answers.
REALM = "receiver"
# Longest token accepted in a header, cookie or query (bytes); longer values are wrong tokens.
_MAX_TOKEN_LENGTH = 4096


def bearer_token(request: Request) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header (scheme case-insensitive), else None."""
    header = request.headers.get("authorization")
    if not header:
        return None
    scheme, _, value = header.strip().partition(" ")
    if scheme.lower() != "bearer":
        return None
    value = value.strip()
    return value or None


def csrf_token(token: str) -> str:
    """The CSRF field value for forms of a caller holding ``token``: hex HMAC-SHA256 of a fixed label."""
    return hmac.new(token.encode("utf-8", "surrogatepass"), b"receiver-ui-csrf", hashlib.sha256).hexdigest()


class TokenAuth:
    """The configured bearer tokens and the constant-time check against them."""

    def __init__(self, tokens: Iterable[str]) -> None:
        """Keep the non-blank ``tokens`` (whitespace around each is stripped)."""
        self._tokens = [t.strip().encode("utf-8") for t in tokens if t and t.strip()]

    @classmethod
    def from_settings(cls, settings: Settings) -> TokenAuth:
        """Tokens from ``settings.api_tokens`` (comma-separated); none when unset."""
        raw = settings.api_tokens.get_secret_value() if settings.api_tokens is not None else ""
        return cls(raw.split(","))

    @property
    def configured(self) -> bool:
        """True when at least one token is configured (otherwise the API and pages answer 503)."""
        return bool(self._tokens)

    def check(self, token: str | None) -> bool:
        """True when ``token`` equals one of the configured tokens (constant time per token)."""
        if not token or not self._tokens:
            return False
        candidate = token.encode("utf-8", "surrogatepass")
        if len(candidate) > _MAX_TOKEN_LENGTH:
            return False
        matched = False
        for expected in self._tokens:
            matched |= hmac.compare_digest(candidate, expected)
        return matched

    @staticmethod
    def check_csrf(token: str, value: str | None) -> bool:
        """True when ``value`` is :func:`csrf_token` of ``token`` (constant time)."""
        if not value:
            return False
        return hmac.compare_digest(csrf_token(token).encode(), value.encode("utf-8", "surrogatepass"))

    @staticmethod
    def challenge(error: bool) -> str:
        """The ``WWW-Authenticate`` value of a 401; ``error`` when a wrong token was sent."""
        if error:
            return f'Bearer realm="{REALM}", error="invalid_token"'
        return f'Bearer realm="{REALM}"'
