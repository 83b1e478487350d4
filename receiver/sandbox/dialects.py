"""How the sandbox speaks: Dyte v2 or Cloudflare RealtimeKit (the same world, two APIs).

================  ==========================================  =====================================================
                  Dyte (``receiver sandbox``)                 RealtimeKit (``--provider realtimekit``)
================  ==========================================  =====================================================
REST prefix       ``/v2``                                     ``/client/v4/accounts/{account_id}/realtime/kit/{app_id}``
auth              HTTP Basic ``org_id:api_key``               ``Authorization: Bearer <api_token>``
refused auth      401 ``{"message": "Unauthorized"}``         403, Cloudflare ``errors[]`` code 10000
errors            ``{"success": false, "error": {...}}``      ``{"success": false, "errors": [{"code", "message"}],
                                                              "messages": [], "result": null}``
sessions list     ``data.sessions`` + ``data.paging``         ``data.sessions`` + top-level ``paging``
session detail    ``data.session``                            ``data`` is the session
participants      ``data.participants`` + ``data.paging``     ``data.participants``, no paging
livestream        ``disabled`` boolean                        ``disabled`` string (SDK type)
webhook headers   ``dyte-signature``, ``dyte-uuid``, ...      ``rtk-signature``, ``rtk-uuid``, ``rtk-webhook-id``
================  ==========================================  =====================================================

Sources: ``shared/dyte/openapi-v2.yaml`` and ``shared/dyte/FACTS.md`` (Dyte),
``FACTS.md`` "RealtimeKit REST API" and the ``cloudflare`` SDK 5.9 types
(RealtimeKit). Both publish the webhook key at ``/.well-known/webhooks.json``
as ``{"success": true, "data": {"publicKey": "<SPKI PEM>"}}``.
"""

from __future__ import annotations

import base64
import binascii
import hmac
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import JSONResponse

__all__ = ["SandboxDialect", "DYTE", "REALTIMEKIT", "DIALECTS", "dialect_for"]


@dataclass(frozen=True)
class SandboxDialect:
    """One provider's REST conventions (see the module table).

    Attributes:
        name: ``dyte`` or ``realtimekit`` (the value of PROVIDER).
        label: ``Dyte`` or ``RealtimeKit``, for messages.
        header_prefix: ``dyte`` or ``rtk``: webhook deliveries carry
            ``<prefix>-signature``, ``<prefix>-uuid``, ``<prefix>-webhook-id``.
    """

    name: str
    label: str
    header_prefix: str

    def prefix(self, state: Any) -> str:
        """The REST root path for ``state`` (a :class:`~receiver.sandbox.state.SandboxState`)."""
        if self.name == "realtimekit":
            account, app = quote(state.account_id, safe=""), quote(state.app_id, safe="")
            return f"/client/v4/accounts/{account}/realtime/kit/{app}"
        return "/v2"

    def base_url(self, server_url: str, state: Any) -> str:
        """What a receiver sets as the API base URL: DYTE_API_BASE_URL, or REALTIMEKIT_API_BASE_URL (no app path)."""
        if self.name == "realtimekit":
            return f"{server_url}/client/v4"
        return f"{server_url}{self.prefix(state)}"

    def authorized(self, request: Request, state: Any) -> bool:
        """True when the request carries the sandbox's credentials in this dialect's scheme."""
        header = request.headers.get("authorization", "")
        scheme, _, value = header.partition(" ")
        if self.name == "realtimekit":
            return scheme.lower() == "bearer" and hmac.compare_digest(value.strip().encode(), state.api_token.encode())
        if scheme.lower() != "basic":
            return False
        try:
            decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError, ValueError):
            return False
        user, sep, password = decoded.partition(":")
        return (
            bool(sep)
            and hmac.compare_digest(user.encode(), state.org_id.encode())
            and hmac.compare_digest(password.encode(), state.api_key.encode())
        )

    def unauthorized(self) -> JSONResponse:
        """The answer to missing or wrong credentials."""
        if self.name == "realtimekit":
            return self.error(403, "Authentication error", code=10000)
        return JSONResponse({"message": "Unauthorized"}, 401, headers={"www-authenticate": 'Basic realm="dyte"'})

    def error(
        self, status: int, message: str, headers: dict[str, str] | None = None, *, code: int | None = None
    ) -> JSONResponse:
        """An error answer in this dialect's envelope (``code`` defaults to the HTTP status)."""
        code = status if code is None else code
        if self.name == "realtimekit":
            body: dict[str, Any] = {
                "success": False,
                "errors": [{"code": code, "message": message}],
                "messages": [],
                "result": None,
            }
        else:
            body = {"success": False, "error": {"code": code, "message": message}}
        return JSONResponse(body, status, headers=headers)

    def rate_limited(self, retry_after_seconds: int) -> JSONResponse:
        """A 429 with ``retry-after`` (seconds)."""
        headers = {"retry-after": str(retry_after_seconds)}
        if self.name == "realtimekit":
            return self.error(429, "Please wait and consider throttling your request speed", headers, code=971)
        return self.error(429, "Too Many Requests", {**headers, "x-envoy-ratelimited": "true"})

    def session_detail(self, session: dict[str, Any]) -> Any:
        """``data`` of ``GET sessions/{id}``: Dyte wraps the session in ``session``; RealtimeKit does not."""
        return session if self.name == "realtimekit" else {"session": session}

    def sessions_page(
        self, sessions: list[dict[str, Any]], paging: dict[str, int]
    ) -> tuple[dict[str, Any], dict[str, int] | None]:
        """``(data, top-level paging)`` of ``GET sessions``: Dyte nests ``paging`` in ``data``; RealtimeKit's
        is top-level (SDK ``SessionGetSessionsResponse``)."""
        if self.name == "realtimekit":
            return {"sessions": sessions}, paging
        return {"sessions": sessions, "paging": paging}, None

    def participants_page(self, participants: list[dict[str, Any]], paging: dict[str, int]) -> Any:
        """``data`` of ``GET sessions/{id}/participants``: RealtimeKit's has no ``paging``."""
        if self.name == "realtimekit":
            return {"participants": participants}
        return {"participants": participants, "paging": paging}

    def livestream(self, livestream: dict[str, Any]) -> dict[str, Any]:
        """A livestream object: RealtimeKit's ``disabled`` is a string (SDK ``DataLivestream``)."""
        if self.name == "realtimekit" and isinstance(livestream.get("disabled"), bool):
            return {**livestream, "disabled": "true" if livestream["disabled"] else "false"}
        return livestream


DYTE = SandboxDialect(name="dyte", label="Dyte", header_prefix="dyte")
REALTIMEKIT = SandboxDialect(name="realtimekit", label="RealtimeKit", header_prefix="rtk")
DIALECTS = {d.name: d for d in (DYTE, REALTIMEKIT)}


def dialect_for(provider: str) -> SandboxDialect:
    """The dialect of ``provider`` (``dyte`` or ``realtimekit``).

    Raises:
        ValueError: unknown provider.
    """
    try:
        return DIALECTS[provider]
    except KeyError:
        raise ValueError(f"unknown provider {provider!r}; known: {', '.join(DIALECTS)}") from None
