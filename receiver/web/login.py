"""Signing in to the pages: ``POST /ui/login`` exchanges a token for a server-side session; ``POST /ui/logout``.

* No token in any URL: ``/ui/...?token=`` is refused (400) and never sets a
  cookie or redirects with it (a token in a URL stays in history, proxy logs
  and ``Referer`` headers).
* ``POST /ui/login`` (form field ``token``) checks the token
  (:class:`receiver.web.auth.TokenAuth`), stores a session row
  (:class:`receiver.db.models.UiSession`: the SHA-256 of a random 256-bit id,
  the token's *name* and role, a keyed fingerprint of the token, expiry) and
  sets the cookie :data:`COOKIE_NAME` = the id signed with itsdangerous
  (``URLSafeTimedSerializer``, expiring with the session). The cookie never
  holds the token; it is ``HttpOnly``, ``SameSite=Strict``, ``Path=/ui``, and
  ``Secure`` over HTTPS: directly, via ``X-Forwarded-Proto: https`` from a
  ``TRUSTED_PROXIES`` address, or always with ``UI_COOKIE_SECURE``.
* A session ends at ``UI_SESSION_SECONDS`` (default 8 h), at ``POST
  /ui/logout``, when an operator revokes it (``/ui/audit``), or when its
  token is changed or removed from API_TOKENS (the fingerprint no longer
  matches). Expired rows are deleted at the next sign-in.
* Every form post of a signed-in page carries a CSRF field (an HMAC of the
  session id) and must come from this origin (``Sec-Fetch-Site`` /
  ``Origin``); the login form is origin-checked too (login CSRF). Scripts may
  send ``Authorization: Bearer`` instead of a cookie (no CSRF field needed).
* Failed sign-ins are logged (never the token) and throttled per client
  address: more than :data:`MAX_FAILED_LOGINS` in :data:`FAILED_LOGIN_WINDOW_SECONDS`
  answers 429. Sign-ins and sign-outs go to the audit log.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import ipaddress
import secrets
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import structlog
from itsdangerous import BadSignature, URLSafeTimedSerializer
from sqlalchemy import delete, select, update
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session as OrmSession
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from receiver.db.models import UiSession
from receiver.errors import HTTPError
from receiver.settings import Settings
from receiver.web import audit
from receiver.web.auth import Principal, Role, TokenAuth, bearer_token
from receiver.web.templating import SECURITY_HEADERS, render

__all__ = [
    "COOKIE_NAME",
    "FAILED_LOGIN_WINDOW_SECONDS",
    "MAX_FAILED_LOGINS",
    "PageAuth",
    "PageSession",
    "SessionStore",
    "login_routes",
]

log = structlog.get_logger("receiver.web.login")

#: Name of the page-session cookie (a signed random id; never a token).
COOKIE_NAME = "receiver_session"
#: Failed sign-ins allowed per client address per window before 429.
MAX_FAILED_LOGINS = 20
#: The window of :data:`MAX_FAILED_LOGINS`, seconds.
FAILED_LOGIN_WINDOW_SECONDS = 300.0
# Largest form body read, bytes.
_MAX_FORM_BYTES = 8192
# last_seen_at is written at most this often per session, seconds.
_TOUCH_SECONDS = 60.0

Handler = Callable[[Request], Awaitable[Response]]


@dataclass(frozen=True)
class PageSession:
    """A valid sign-in: who (``principal``), the CSRF value of its forms, its row key and expiry (UTC)."""

    session_hash: str
    principal: Principal
    csrf: str
    expires_at: datetime


class SessionStore:
    """Signs session cookies and keeps the server-side rows (:class:`receiver.db.models.UiSession`).

    Args:
        auth: the configured tokens (fingerprints, the derived default secret).
        secret: the cookie signing key (UI_SESSION_SECRET); default derived from the tokens.
        lifetime_seconds: UI_SESSION_SECONDS.
    """

    def __init__(self, auth: TokenAuth, secret: bytes | None, lifetime_seconds: float) -> None:
        self._auth = auth
        self._key = secret or auth.derived_secret()
        self._serializer = URLSafeTimedSerializer(self._key, salt="receiver.ui.session")
        self.lifetime_seconds = lifetime_seconds

    @staticmethod
    def _hash(session_id: str) -> str:
        return hashlib.sha256(session_id.encode()).hexdigest()

    def _csrf(self, session_id: str) -> str:
        return hmac.new(self._key, b"csrf:" + session_id.encode(), hashlib.sha256).hexdigest()

    def sign_in(self, engine: Engine, principal: Principal, now: datetime, client: str | None) -> str:
        """Store a new session for ``principal``; returns the cookie value (the signed id). Deletes expired rows."""
        fingerprint = self._auth.fingerprint(principal.name, self._key)
        if fingerprint is None:  # the token vanished between the check and now
            raise HTTPError(401, "unauthorized", "that token is no longer configured")
        session_id = secrets.token_urlsafe(32)
        with OrmSession(engine) as db, db.begin():
            db.execute(delete(UiSession).where(UiSession.expires_at <= now))
            db.add(
                UiSession(
                    session_hash=self._hash(session_id),
                    token_name=principal.name,
                    role=principal.role.value,
                    token_fingerprint=fingerprint,
                    created_at=now,
                    expires_at=now + timedelta(seconds=self.lifetime_seconds),
                    last_seen_at=now,
                    client=client,
                )
            )
        return self._serializer.dumps(session_id)

    def resolve(self, engine: Engine, cookie: str | None, now: datetime) -> PageSession | None:
        """The valid session of a cookie value, else None (bad signature, expired, revoked, token changed)."""
        if not cookie or len(cookie) > 512:
            return None
        try:
            session_id = self._serializer.loads(cookie, max_age=int(self.lifetime_seconds))
        except BadSignature:
            return None
        if not isinstance(session_id, str):
            return None
        session_hash = self._hash(session_id)
        with OrmSession(engine) as db:
            row = db.get(UiSession, session_hash)
            if row is None or row.revoked_at is not None or row.expires_at <= now:
                return None
            name, role_text, fingerprint = row.token_name, row.role, row.token_fingerprint
            expires_at, last_seen = row.expires_at, row.last_seen_at
        current = self._auth.fingerprint(name, self._key)
        if current is None or not hmac.compare_digest(current, fingerprint):
            return None
        principal = Principal(name, Role(role_text))
        if self._auth.role_of(name) is not principal.role:  # the token's role was changed: sign in again
            return None
        if (now - last_seen).total_seconds() >= _TOUCH_SECONDS:
            with engine.begin() as connection:
                connection.execute(
                    update(UiSession).where(UiSession.session_hash == session_hash).values(last_seen_at=now)
                )
        return PageSession(session_hash, principal, self._csrf(session_id), expires_at)

    def revoke(self, engine: Engine, session_hash: str, now: datetime) -> bool:
        """End one session (sign-out or an operator's revoke); True when it was active."""
        with engine.begin() as connection:
            result = connection.execute(
                update(UiSession)
                .where(UiSession.session_hash == session_hash, UiSession.revoked_at.is_(None))
                .values(revoked_at=now)
            )
        return bool(result.rowcount)

    def active(self, engine: Engine, now: datetime) -> list[dict[str, Any]]:
        """Sessions neither revoked nor expired, newest first (no secrets: the row key is a hash)."""
        with OrmSession(engine) as db:
            rows = db.execute(
                select(UiSession)
                .where(UiSession.revoked_at.is_(None), UiSession.expires_at > now)
                .order_by(UiSession.created_at.desc())
            ).scalars()
            return [
                {
                    "session_hash": r.session_hash,
                    "token_name": r.token_name,
                    "role": r.role,
                    "created_at": r.created_at,
                    "last_seen_at": r.last_seen_at,
                    "expires_at": r.expires_at,
                    "client": r.client,
                }
                for r in rows
            ]


@dataclass
class _FailureThrottle:
    """Failed sign-ins per client address in a sliding window (in memory, per process)."""

    limit: int = MAX_FAILED_LOGINS
    window: float = FAILED_LOGIN_WINDOW_SECONDS
    clock: Callable[[], float] = time.monotonic
    _seen: dict[str, deque[float]] = field(default_factory=dict)

    def blocked(self, client: str) -> bool:
        times = self._seen.get(client)
        if not times:
            return False
        cutoff = self.clock() - self.window
        while times and times[0] < cutoff:
            times.popleft()
        return len(times) >= self.limit

    def failed(self, client: str) -> None:
        if len(self._seen) > 10_000:  # bounded memory under a spray of addresses
            self._seen.clear()
        self._seen.setdefault(client, deque()).append(self.clock())


class PageAuth:
    """Everything a page needs to know who is asking: tokens, the session store, cookie settings."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.tokens = TokenAuth.from_settings(settings)
        secret = settings.ui_session_secret.get_secret_value().encode() if settings.ui_session_secret else None
        self.sessions = SessionStore(self.tokens, secret, settings.ui_session_seconds)
        self._proxies = settings.trusted_proxy_networks()
        self.throttle = _FailureThrottle()

    def is_https(self, request: Request) -> bool:
        """True over HTTPS: the connection's scheme, or X-Forwarded-Proto from a TRUSTED_PROXIES address."""
        if request.scope.get("scheme") == "https":
            return True
        host = request.client.host if request.client else None
        if not host or not self._proxies:
            return False
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            return False
        if not any(address in network for network in self._proxies):
            return False
        forwarded = request.headers.get("x-forwarded-proto", "").split(",")[0].strip().lower()
        return forwarded == "https"

    def set_cookie(self, request: Request, response: Response, value: str) -> None:
        """Set the session cookie: HttpOnly, SameSite=Strict, Path=/ui, Secure when HTTPS or forced."""
        response.set_cookie(
            COOKIE_NAME,
            value,
            max_age=int(self.sessions.lifetime_seconds),
            path="/ui",
            httponly=True,
            samesite="strict",
            secure=self.settings.ui_cookie_secure or self.is_https(request),
        )

    @staticmethod
    def clear_cookie(response: Response) -> None:
        """Delete the session cookie (same attributes)."""
        response.delete_cookie(COOKIE_NAME, path="/ui", httponly=True, samesite="strict")


# --------------------------------------------------------------------------
# Request helpers
# --------------------------------------------------------------------------


def same_origin(request: Request) -> bool:
    """False for a form post another site made the browser send (``Sec-Fetch-Site``, else ``Origin`` vs ``Host``)."""
    site = request.headers.get("sec-fetch-site")
    if site is not None:
        return site in ("same-origin", "none")
    origin = request.headers.get("origin")
    if origin is None or origin == "null":
        return origin is None
    return urlsplit(origin).netloc.lower() == request.headers.get("host", "").lower()


async def read_form(request: Request) -> dict[str, str]:
    """An ``application/x-www-form-urlencoded`` body (at most 8 KiB) as field -> first value."""
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > _MAX_FORM_BYTES:
            raise HTTPError(413, "payload_too_large", "form too large")
    fields = parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True)
    return {name: values[0] for name, values in fields.items()}


def safe_next(value: str | None) -> str:
    """Where to go after signing in: a local ``/ui/`` path only (no scheme, host or ``//``), else /ui/sessions."""
    if value and value.startswith("/ui/") and "//" not in value and "\\" not in value and len(value) <= 500:
        return value
    return "/ui/sessions"


def page_error(status: int, title: str, message: str, headers: dict[str, str] | None = None) -> Response:
    """An error page."""
    return render("error.html", status_code=status, headers=headers, title=title, message=message)


def login_page(
    request: Request, *, status: int = 200, message: str | None = None, headers: dict[str, str] | None = None
) -> Response:
    """The sign-in form (also the body of every 401 page, so a browser can sign in right there)."""
    next_path = request.url.path if request.url.path.startswith("/ui/") and request.method == "GET" else None
    if request.url.path == "/ui/login":
        next_path = request.query_params.get("next")
    return render(
        "login.html",
        status_code=status,
        headers=headers,
        title="Sign in",
        message=message,
        next=safe_next(next_path),
    )


def _engine(request: Request) -> Engine:
    return request.app.state.engine


def _client(request: Request) -> str | None:
    return audit.client_address(request.scope.get("client"))


# --------------------------------------------------------------------------
# The guard of every page
# --------------------------------------------------------------------------


def guarded(auth: PageAuth, handler: Handler, *, role: Role = Role.ANALYST, action: str | None = None) -> Handler:
    """Wrap a page ``handler``: who is asking (session cookie or bearer header), CSRF and origin on posts, role.

    Sets ``request.state.principal``, ``.session`` (None with a bearer header), ``.csrf`` (the form
    field value) and, on posts, ``.form``. A role without the right gets a 403 page and, for an
    operator ``action``, a ``denied`` audit row. ``ApiError`` from the handler becomes an error page.
    """

    @functools.wraps(handler)
    async def endpoint(request: Request) -> Response:
        if not auth.tokens.configured:
            return page_error(503, "Not configured", "The pages are disabled: set API_TOKENS.")
        if "token" in request.query_params:
            return page_error(
                400,
                "Token in the address",
                "Tokens are never accepted in a URL (they stay in browser history and server logs). "
                "Sign in at /ui/login instead.",
            )
        header_token = bearer_token(request)
        session: PageSession | None = None
        if header_token is not None:
            principal = auth.tokens.identify(header_token)
            if principal is None:
                return login_page(
                    request,
                    status=401,
                    message="The bearer token is not valid.",
                    headers={"WWW-Authenticate": auth.tokens.challenge(True)},
                )
        else:
            cookie = request.cookies.get(COOKIE_NAME)
            session = await run_in_threadpool(auth.sessions.resolve, _engine(request), cookie, datetime.now(UTC))
            if session is None:
                response = login_page(
                    request,
                    status=401,
                    message="Your sign-in has ended; sign in again." if cookie else None,
                    headers={"WWW-Authenticate": auth.tokens.challenge(False)},
                )
                if cookie:
                    auth.clear_cookie(response)
                return response
            principal = session.principal
        request.state.principal = principal
        request.state.session = session
        request.state.csrf = session.csrf if session is not None else ""
        request.state.page_auth = auth
        try:
            if request.method == "POST":
                request.state.form = await read_form(request)
                if session is not None:
                    sent = request.state.form.get("csrf", "")
                    if not same_origin(request) or not hmac.compare_digest(session.csrf, sent):
                        raise HTTPError(
                            403, "forbidden", "The form is stale or forged (CSRF check failed); reload the page."
                        )
            if not principal.role.allows(role):
                if action is not None:
                    await audit.record_request(
                        request, action, target=request.url.path, principal=principal, outcome="denied"
                    )
                raise HTTPError(403, "forbidden", f"{action or 'This page'} needs the {role.value} role.")
            return await handler(request)
        except HTTPError as exc:
            return page_error(exc.status, exc.error.replace("_", " ").capitalize(), exc.detail)

    return endpoint


# --------------------------------------------------------------------------
# Sign in, sign out
# --------------------------------------------------------------------------


def login_routes(auth: PageAuth) -> list[tuple[str, Handler, list[str]]]:
    """``(path, handler, methods)`` of ``/ui/login`` (GET form, POST sign-in) and ``/ui/logout`` (POST)."""

    async def login_form(request: Request) -> Response:
        if not auth.tokens.configured:
            return page_error(503, "Not configured", "The pages are disabled: set API_TOKENS.")
        cookie = request.cookies.get(COOKIE_NAME)
        if cookie:
            session = await run_in_threadpool(auth.sessions.resolve, _engine(request), cookie, datetime.now(UTC))
            if session is not None:
                target = safe_next(request.query_params.get("next"))
                return RedirectResponse(target, status_code=303, headers=SECURITY_HEADERS)
        return login_page(request)

    async def login(request: Request) -> Response:
        if not auth.tokens.configured:
            return page_error(503, "Not configured", "The pages are disabled: set API_TOKENS.")
        client = _client(request) or "-"
        if not same_origin(request):
            return page_error(403, "Forbidden", "Sign in from this site's own form.")
        if auth.throttle.blocked(client):
            return login_page(
                request,
                status=429,
                message="Too many failed sign-ins from your address; wait a few minutes.",
                headers={"Retry-After": str(int(FAILED_LOGIN_WINDOW_SECONDS))},
            )
        try:
            form = await read_form(request)
        except HTTPError as exc:
            return page_error(exc.status, "Too large", exc.detail)
        principal = auth.tokens.identify(form.get("token", "").strip())
        if principal is None:
            auth.throttle.failed(client)
            log.warning("ui_login_failed", client=client)
            return login_page(request, status=401, message="That token is not valid.")
        now = datetime.now(UTC)
        cookie = await run_in_threadpool(auth.sessions.sign_in, _engine(request), principal, now, client)
        await run_in_threadpool(
            functools.partial(audit.record, _engine(request), principal, "login", target=None, client=client, now=now)
        )
        response = RedirectResponse(safe_next(form.get("next")), status_code=303, headers=SECURITY_HEADERS)
        auth.set_cookie(request, response, cookie)
        return response

    async def logout(request: Request) -> Response:
        session: PageSession | None = request.state.session
        if session is not None:
            await run_in_threadpool(auth.sessions.revoke, _engine(request), session.session_hash, datetime.now(UTC))
        await audit.record_request(request, "logout", target=None)
        response = RedirectResponse("/ui/login", status_code=303, headers=SECURITY_HEADERS)
        auth.clear_cookie(response)
        return response

    return [
        ("/ui/login", login_form, ["GET"]),
        ("/ui/login", login, ["POST"]),
        ("/ui/logout", guarded(auth, logout), ["POST"]),
    ]
