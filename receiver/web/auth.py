"""Who may call the reports API (``/api``) and the pages (``/ui``): named tokens with roles.

``API_TOKENS`` is a comma-separated list of entries (:func:`parse_api_tokens`):

* ``name:role:token`` - a named token; ``role`` is ``analyst`` (read: every
  page and every ``GET``) or ``operator`` (also the actions: retry, replay,
  bulk retry, refresh links, revoke sign-ins). The name is what the audit
  log records (:mod:`receiver.web.audit`); the token itself is never stored,
  logged or put in a cookie.
* ``token`` - a plain token, kept working from earlier versions as role
  **analyst** (read-only: least privilege; give it a name and the operator
  role to retry from it), named ``token-N`` by its 1-based position.

Names are 1-64 characters of ``A-Z a-z 0-9 . _ -`` and unique; an entry
with colons that is not ``name:role:token`` with a known role is a
configuration error at start-up (a typo in a role must not quietly make an
analyst token), and so is a token shorter than 8 characters.

Every comparison uses :func:`hmac.compare_digest` against every configured
token, so timing tells nothing about which token or how much of it matched.

* API: ``Authorization: Bearer <token>`` only. Missing or wrong: 401 with
  ``WWW-Authenticate: Bearer realm="receiver"`` (``error="invalid_token"``
  when a token was sent but is wrong); a role without the right: 403.
* Pages: a server-side sign-in (:mod:`receiver.web.login`), or the same
  bearer header (scripts). No token is ever accepted in a URL.
* ``API_TOKENS`` unset or empty: the API and the pages answer 503
  ``not_configured`` (only ``GET /api/openapi.json`` is served).
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

from starlette.requests import Request

from receiver.errors import ConfigurationError
from receiver.settings import Settings

__all__ = [
    "ApiToken",
    "Principal",
    "REALM",
    "Role",
    "TokenAuth",
    "bearer_token",
    "parse_api_tokens",
]

#: ``WWW-Authenticate`` realm of 401 answers.
REALM = "receiver"
# Longest token accepted in a header or form (bytes); longer values are wrong tokens.
MAX_TOKEN_LENGTH = 4096
# Shortest token accepted in API_TOKENS (characters).
MIN_TOKEN_LENGTH = 8
_NAME = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


class Role(StrEnum):
    """What a token may do: ``analyst`` reads; ``operator`` also acts (retry, replay, refresh, revoke)."""

    ANALYST = "analyst"
    OPERATOR = "operator"

    def allows(self, needed: Role) -> bool:
        """True when this role includes ``needed`` (operator includes analyst)."""
        return self is Role.OPERATOR or needed is Role.ANALYST


@dataclass(frozen=True)
class Principal:
    """An authenticated caller: the token's ``name`` (what the audit log records) and its ``role``."""

    name: str
    role: Role


@dataclass(frozen=True, repr=False)
class ApiToken:
    """One entry of API_TOKENS. ``repr`` never shows the secret."""

    name: str
    role: Role
    secret: bytes

    def __repr__(self) -> str:
        return f"ApiToken(name={self.name!r}, role={self.role.value!r})"


def parse_api_tokens(raw: str) -> list[ApiToken]:
    """Parse API_TOKENS (see the module docstring); blank entries are skipped.

    Raises:
        ConfigurationError: a malformed entry, an unknown role, a bad or repeated name, a short
            token. The message names the entry by position and name, never the token.
    """
    tokens: list[ApiToken] = []
    for position, entry in enumerate((e.strip() for e in raw.split(",")), start=1):
        if not entry:
            continue
        if ":" in entry:
            parts = entry.split(":", 2)
            if len(parts) != 3:
                raise ConfigurationError(
                    f"API_TOKENS entry {position}: use name:role:token (or a plain token without colons)"
                )
            name, role_text, secret = (part.strip() for part in parts)
            try:
                role = Role(role_text)
            except ValueError:
                raise ConfigurationError(
                    f"API_TOKENS entry {position} ({name!r}): unknown role {role_text!r}; use analyst or operator"
                ) from None
        else:
            name, role, secret = f"token-{position}", Role.ANALYST, entry
        if not _NAME.match(name):
            raise ConfigurationError(f"API_TOKENS entry {position}: name must be 1-64 of A-Z a-z 0-9 . _ -")
        if len(secret) < MIN_TOKEN_LENGTH:
            raise ConfigurationError(
                f"API_TOKENS entry {position} ({name!r}): token shorter than {MIN_TOKEN_LENGTH} characters"
            )
        if any(t.name == name for t in tokens):
            raise ConfigurationError(f"API_TOKENS entry {position}: the name {name!r} is used twice")
        tokens.append(ApiToken(name, role, secret.encode("utf-8", "surrogatepass")))
    return tokens


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


class TokenAuth:
    """The configured named tokens and the constant-time check against them."""

    def __init__(self, tokens: Iterable[ApiToken]) -> None:
        self._tokens = list(tokens)

    @classmethod
    def from_settings(cls, settings: Settings) -> TokenAuth:
        """Tokens from ``settings.api_tokens``; none when unset.

        Raises:
            ConfigurationError: API_TOKENS is malformed (:func:`parse_api_tokens`).
        """
        raw = settings.api_tokens.get_secret_value() if settings.api_tokens is not None else ""
        return cls(parse_api_tokens(raw))

    @property
    def configured(self) -> bool:
        """True when at least one token is configured (otherwise the API and pages answer 503)."""
        return bool(self._tokens)

    def identify(self, token: str | None) -> Principal | None:
        """The principal whose token equals ``token`` (every token compared, constant time each), else None."""
        if not token or not self._tokens:
            return None
        candidate = token.encode("utf-8", "surrogatepass")
        if len(candidate) > MAX_TOKEN_LENGTH:
            return None
        found: ApiToken | None = None
        for entry in self._tokens:
            if hmac.compare_digest(candidate, entry.secret):
                found = entry
        return Principal(found.name, found.role) if found is not None else None

    def check(self, token: str | None) -> bool:
        """True when ``token`` is one of the configured tokens."""
        return self.identify(token) is not None

    def role_of(self, name: str) -> Role | None:
        """The role now configured for the token named ``name`` (None when no such token)."""
        return next((entry.role for entry in self._tokens if entry.name == name), None)

    def fingerprint(self, name: str, key: bytes) -> str | None:
        """HMAC-SHA256 (keyed by ``key``) of the token now configured under ``name``, hex; None when gone.

        A page session stores it at sign-in: when the token of that name is changed or
        removed, the fingerprint no longer matches and the session ends.
        """
        for entry in self._tokens:
            if entry.name == name:
                return hmac.new(key, b"token:" + entry.secret, hashlib.sha256).hexdigest()
        return None

    def derived_secret(self) -> bytes:
        """A signing key derived from every configured token (the default UI_SESSION_SECRET)."""
        digest = hashlib.sha256(b"receiver-ui-session-secret\0")
        for entry in sorted(self._tokens, key=lambda t: t.name):
            digest.update(entry.name.encode() + b"\0" + entry.role.value.encode() + b"\0" + entry.secret + b"\0")
        return digest.digest()

    @staticmethod
    def challenge(error: bool) -> str:
        """The ``WWW-Authenticate`` value of a 401; ``error`` when a wrong token was sent."""
        if error:
            return f'Bearer realm="{REALM}", error="invalid_token"'
        return f'Bearer realm="{REALM}"'
