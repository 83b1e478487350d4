"""Signing in to /ui: server-side sessions, cookie attributes, CSRF, roles, confirmations, the audit log, Chromium.

Tokens: ``ops`` (operator, :data:`OPS`) and ``viewer`` (analyst, :data:`VIEWER`).
Data: :func:`test_api.build_dataset` (events 1..5: done, failed, dead,
ignored, processing). The browser test drives headless Chromium through the
DevTools protocol (the pages have no JavaScript; DevTools evaluation is not
subject to their CSP); it needs ``/usr/bin/chromium`` (CI installs it) and
skips with that reason when it is missing.
"""

from __future__ import annotations

import contextlib
import json
import re
import subprocess
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr
from sqlalchemy import select, text, update
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session as OrmSession
from starlette.requests import Request
from starlette.testclient import TestClient
from test_api import build_dataset

from receiver.db.engine import make_engine
from receiver.db.models import AuditEntry, UiSession, WebhookEvent
from receiver.devtools.bench.servers import free_port
from receiver.settings import Settings
from receiver.web.login import COOKIE_NAME, MAX_FAILED_LOGINS, PageAuth

OPS = "ops-token-0123456789"
VIEWER = "viewer-token-0123456789"
TOKENS = f"ops:operator:{OPS},viewer:analyst:{VIEWER}"
CHROMIUM = Path("/usr/bin/chromium")


@pytest.fixture
def login_settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"api_tokens": SecretStr(TOKENS)})


@pytest.fixture
def data_engine(login_settings: Settings):
    engine = make_engine(login_settings.database_url)
    build_dataset(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def app_for(login_settings: Settings, data_engine: Engine):
    """``app_for(**setting_overrides)``: a TestClient on the scripted data (use as a context manager)."""

    def make(base_url: str = "http://testserver", client: tuple[str, int] = ("testclient", 50000), **overrides: Any):
        from receiver.web.api import analyst_routes
        from receiver.web.app import create_app

        configured = login_settings.model_copy(update=overrides)
        return TestClient(
            create_app(configured, extra_routes=analyst_routes(configured)), base_url=base_url, client=client
        )

    return make


def sign_in(client: TestClient, token: str, next_path: str = "/ui/sessions") -> httpx.Response:
    return client.post("/ui/login", data={"token": token, "next": next_path}, follow_redirects=False)


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf" value="([0-9a-f]{64})"', html)
    assert found, "no CSRF field on the page"
    return found.group(1)


def audit_rows(engine: Engine) -> list[tuple[str, str, str, str | None, str]]:
    with OrmSession(engine) as db:
        rows = db.execute(select(AuditEntry).order_by(AuditEntry.id)).scalars().all()
        return [(r.actor, r.role, r.action, r.target, r.outcome) for r in rows]


# --------------------------------------------------------------------------
# Sign in and out
# --------------------------------------------------------------------------


def test_sign_in_sets_a_strict_session_cookie_that_is_not_the_token(app_for, data_engine) -> None:
    """A good token: 303 to `next`, a HttpOnly SameSite=Strict Path=/ui cookie (not Secure over plain HTTP) holding
    a signed id, not the token; the database keeps no token either; the pages then open with the cookie alone."""
    with app_for() as client:
        form = client.get("/ui/login")
        assert form.status_code == 200 and 'type="password"' in form.text
        response = sign_in(client, OPS, "/ui/events?status=dead")
        assert response.status_code == 303 and response.headers["location"] == "/ui/events?status=dead"
        cookie = response.headers["set-cookie"]
        lowered = cookie.lower()
        assert cookie.startswith(f"{COOKIE_NAME}=")
        assert "httponly" in lowered and "samesite=strict" in lowered and "path=/ui" in lowered
        assert "secure" not in lowered
        assert OPS not in cookie
        page = client.get("/ui/events")
        assert page.status_code == 200 and "ops" in page.text and "Sign out" in page.text
        assert client.get("/ui/login", follow_redirects=False).status_code == 303  # already signed in
    with data_engine.connect() as connection:
        stored = " ".join(str(v) for row in connection.execute(text("SELECT * FROM ui_sessions")) for v in row)
    assert OPS not in stored and "ops" in stored and "operator" in stored
    assert audit_rows(data_engine)[-1][:3] == ("ops", "operator", "login")


def test_a_wrong_token_is_refused_and_a_flood_is_throttled(app_for) -> None:
    """A wrong token: 401 with the form and no cookie; after MAX_FAILED_LOGINS failures from one address: 429,
    even with the right token; another address is not affected."""
    with app_for(client=("198.51.100.7", 5000)) as client:
        wrong = sign_in(client, "nope-nope-nope")
        assert wrong.status_code == 401 and "set-cookie" not in wrong.headers and "not valid" in wrong.text
        for _ in range(MAX_FAILED_LOGINS - 1):
            sign_in(client, "nope-nope-nope")
        blocked = sign_in(client, OPS)
        assert blocked.status_code == 429 and "retry-after" in blocked.headers
    with app_for(client=("198.51.100.8", 5000)) as other:
        assert sign_in(other, OPS).status_code == 303


def test_sign_out_revokes_the_session_server_side(app_for, data_engine) -> None:
    """POST /ui/logout (with the CSRF field) ends the session in the database: the cookie, replayed, no longer opens
    a page; sign-out is audited."""
    with app_for() as client:
        sign_in(client, VIEWER)
        cookie = client.cookies.get(COOKIE_NAME)
        page = client.get("/ui/sessions")
        out = client.post("/ui/logout", data={"csrf": csrf_of(page.text)}, follow_redirects=False)
        assert out.status_code == 303 and out.headers["location"] == "/ui/login"
        assert f'{COOKIE_NAME}=""' in out.headers["set-cookie"] or "max-age=0" in out.headers["set-cookie"].lower()
        client.cookies.clear()
        client.cookies.set(COOKIE_NAME, cookie, path="/ui")
        replay = client.get("/ui/sessions", follow_redirects=False)
        assert replay.status_code == 401 and "sign in again" in replay.text
    with OrmSession(data_engine) as db:
        assert db.execute(select(UiSession.revoked_at)).scalar_one() is not None
    assert [r[2] for r in audit_rows(data_engine)] == ["login", "logout"]


def test_sessions_expire_and_end_when_the_token_changes(app_for, data_engine) -> None:
    """An expired row, a token removed from API_TOKENS, or a changed token (same name, same UI_SESSION_SECRET):
    the cookie stops working."""
    secret = {"ui_session_secret": SecretStr("s" * 32)}
    with app_for(**secret) as client:
        sign_in(client, VIEWER)
        cookie = client.cookies.get(COOKIE_NAME)
        assert client.get("/ui/sessions").status_code == 200
        with OrmSession(data_engine) as db, db.begin():
            db.execute(update(UiSession).values(expires_at=datetime.now(UTC) - timedelta(seconds=1)))
        assert client.get("/ui/sessions").status_code == 401
        sign_in(client, VIEWER)
        cookie = client.cookies.get(COOKIE_NAME)
    rotated = {**secret, "api_tokens": SecretStr(f"ops:operator:{OPS},viewer:analyst:a-brand-new-viewer-token")}
    with app_for(**rotated) as client:
        client.cookies.set(COOKIE_NAME, cookie, path="/ui")
        assert client.get("/ui/sessions").status_code == 401
    with app_for(**secret) as client:  # the original token again: the session was never revoked, so it works
        client.cookies.set(COOKIE_NAME, cookie, path="/ui")
        assert client.get("/ui/sessions").status_code == 200


def test_secure_cookie_over_https_trusted_proxies_or_forced(app_for) -> None:
    """Secure is set over HTTPS, when a TRUSTED_PROXIES address says X-Forwarded-Proto: https, or with
    UI_COOKIE_SECURE; an untrusted address saying so is not believed."""
    with app_for(base_url="https://testserver") as client:
        assert "secure" in sign_in(client, OPS).headers["set-cookie"].lower()
    with app_for(ui_cookie_secure=True) as client:
        assert "secure" in sign_in(client, OPS).headers["set-cookie"].lower()
    proxied = {"trusted_proxies": "10.0.0.0/8, 192.0.2.1"}
    for address, expected in (("10.1.2.3", True), ("192.0.2.1", True), ("203.0.113.5", False)):
        with app_for(client=(address, 4000), **proxied) as client:
            response = client.post(
                "/ui/login", data={"token": OPS}, headers={"X-Forwarded-Proto": "https"}, follow_redirects=False
            )
            assert ("secure" in response.headers["set-cookie"].lower()) is expected, address


def test_is_https_reads_only_trusted_forwarded_proto(login_settings) -> None:
    """PageAuth.is_https: the connection's scheme, or the first X-Forwarded-Proto value from a trusted address."""
    auth = PageAuth(login_settings.model_copy(update={"trusted_proxies": "127.0.0.1"}))

    def request(scheme: str, host: str, proto: str | None) -> Request:
        headers = [(b"x-forwarded-proto", proto.encode())] if proto else []
        return Request(
            {
                "type": "http",
                "scheme": scheme,
                "client": (host, 1),
                "headers": headers,
                "path": "/",
                "query_string": b"",
            }
        )

    assert auth.is_https(request("https", "203.0.113.1", None))
    assert auth.is_https(request("http", "127.0.0.1", "https, http"))
    assert not auth.is_https(request("http", "127.0.0.1", "http"))
    assert not auth.is_https(request("http", "203.0.113.1", "https"))


# --------------------------------------------------------------------------
# CSRF and origin
# --------------------------------------------------------------------------


def test_session_posts_need_the_csrf_field_and_this_origin(app_for, data_engine) -> None:
    """With a session cookie, a post without the CSRF field, with a wrong one, or from another site is 403 and
    changes nothing; the page's own form works. A cross-site sign-in form is refused too (login CSRF)."""
    with app_for() as client:
        sign_in(client, OPS)
        csrf = csrf_of(client.get("/ui/events").text)
        assert client.post("/ui/events/3/retry", data={"status": "dead"}).status_code == 403
        assert client.post("/ui/events/3/retry", data={"csrf": "0" * 64}).status_code == 403
        cross = client.post("/ui/events/3/retry", data={"csrf": csrf}, headers={"Sec-Fetch-Site": "cross-site"})
        assert cross.status_code == 403
        other_origin = client.post("/ui/events/3/retry", data={"csrf": csrf}, headers={"Origin": "https://evil.test"})
        assert other_origin.status_code == 403
        with OrmSession(data_engine) as db:
            assert db.execute(select(WebhookEvent.status).where(WebhookEvent.id == 3)).scalar_one() == "dead"
        ok = client.post(
            "/ui/events/3/retry",
            data={"csrf": csrf, "status": "dead"},
            headers={"Sec-Fetch-Site": "same-origin", "Origin": "http://testserver"},
            follow_redirects=False,
        )
        assert ok.status_code == 303 and ok.headers["location"] == "/ui/events?retried=3&status=dead"
        assert "Event 3 requeued" in client.get(ok.headers["location"]).text
    with app_for() as fresh:
        forged_login = fresh.post("/ui/login", data={"token": OPS}, headers={"Sec-Fetch-Site": "cross-site"})
        assert forged_login.status_code == 403 and "set-cookie" not in forged_login.headers


# --------------------------------------------------------------------------
# Roles, confirmations, audit
# --------------------------------------------------------------------------


def test_an_analyst_is_denied_operator_actions(app_for, data_engine) -> None:
    """Signed in as an analyst: no retry buttons, and a forged retry, replay, bulk retry, link refresh or revoke
    post is a 403 page that changes nothing and is audited as denied."""
    with app_for() as client:
        sign_in(client, VIEWER)
        html = client.get("/ui/events").text
        assert "/retry" not in html.replace("retry-dead", "") and "/replay" not in html
        csrf = csrf_of(html)
        for path in (
            "/ui/events/3/retry",
            "/ui/events/1/replay",
            "/ui/events/retry-dead",
            "/ui/recordings/refresh",
            f"/ui/audit/sign-ins/{'a' * 64}/revoke",
        ):
            response = client.post(path, data={"csrf": csrf, "confirm": "yes"})
            assert response.status_code == 403, path
            assert "operator" in response.text
        assert client.get("/ui/events/retry-dead").status_code == 403
    with OrmSession(data_engine) as db:
        states = dict(db.execute(select(WebhookEvent.id, WebhookEvent.status)).all())
    assert states == {1: "done", 2: "failed", 3: "dead", 4: "ignored", 5: "processing"}
    denied = [r for r in audit_rows(data_engine) if r[4] == "denied"]
    assert [(r[0], r[1], r[2]) for r in denied] == [
        ("viewer", "analyst", "retry"),
        ("viewer", "analyst", "replay"),
        ("viewer", "analyst", "bulk_retry"),
        ("viewer", "analyst", "refresh_links"),
        ("viewer", "analyst", "revoke_session"),
        ("viewer", "analyst", "bulk_retry"),
    ]


def test_replay_and_bulk_retry_ask_for_confirmation(app_for, data_engine) -> None:
    """Replay of a done event and retry of every dead event go through a confirmation page; a post without
    confirm=yes is refused; confirmed, they requeue and are audited under the operator's name."""
    with app_for() as client:
        sign_in(client, OPS)
        retry_done = client.post("/ui/events/1/retry", data={"csrf": csrf_of(client.get("/ui/events").text)})
        assert retry_done.url.path == "/ui/events/1/replay"  # a done event is never requeued by the plain button
        confirm = client.get("/ui/events/1/replay")
        assert confirm.status_code == 200 and "Replay event 1?" in confirm.text and 'value="yes"' in confirm.text
        csrf = csrf_of(confirm.text)
        assert client.post("/ui/events/1/replay", data={"csrf": csrf}).status_code == 400
        assert client.post("/ui/events/1/replay", data={"csrf": csrf, "confirm": "yes"}).status_code == 200
        bulk = client.get("/ui/events/retry-dead")
        assert "1 event failed too often" in bulk.text
        assert client.post("/ui/events/retry-dead", data={"csrf": csrf}).status_code == 400
        done = client.post("/ui/events/retry-dead", data={"csrf": csrf, "confirm": "yes"}, follow_redirects=False)
        assert done.headers["location"] == "/ui/events?retried_dead=1"
        audit_html = client.get("/ui/audit").text
        assert "replay" in audit_html and "bulk_retry" in audit_html and "1 events requeued" in audit_html
        assert OPS not in audit_html
    with OrmSession(data_engine) as db:
        states = dict(db.execute(select(WebhookEvent.id, WebhookEvent.status)).all())
    assert states[1] == "pending" and states[3] == "pending"
    assert [r[2:] for r in audit_rows(data_engine) if r[2] != "login"] == [
        ("replay", "event:1", "ok"),
        ("bulk_retry", "events:dead", "ok"),
    ]


def test_an_operator_revokes_someone_elses_sign_in(app_for, data_engine) -> None:
    """The audit page lists active sign-ins; an operator's revoke ends the analyst's session at once."""
    with app_for() as viewer, app_for() as ops:
        sign_in(viewer, VIEWER)
        sign_in(ops, OPS)
        assert viewer.get("/ui/sessions").status_code == 200
        page = ops.get("/ui/audit").text
        hashes = re.findall(r'action="/ui/audit/sign-ins/([0-9a-f]{64})/revoke"', page)
        assert len(hashes) == 2
        with OrmSession(data_engine) as db:
            viewer_hash = db.execute(
                select(UiSession.session_hash).where(UiSession.token_name == "viewer")
            ).scalar_one()
        revoked = ops.post(f"/ui/audit/sign-ins/{viewer_hash}/revoke", data={"csrf": csrf_of(page)})
        assert revoked.status_code == 200 and "The sign-in was revoked" in revoked.text
        assert viewer.get("/ui/sessions").status_code == 401
        assert ops.get("/ui/sessions").status_code == 200
    assert ("ops", "operator", "revoke_session", f"ui_session:{viewer_hash[:12]}", "ok") in audit_rows(data_engine)


# --------------------------------------------------------------------------
# Headless Chromium, through the DevTools protocol
# --------------------------------------------------------------------------


@pytest.fixture
def live_server(sqlite_url: str):
    """The app with the scripted data served by uvicorn on a free loopback port in a thread; yields its base URL."""
    import uvicorn

    from receiver.web.api import analyst_routes
    from receiver.web.app import create_app

    engine = make_engine(sqlite_url)
    build_dataset(engine)
    engine.dispose()
    settings = Settings(database_url=sqlite_url, api_tokens=SecretStr(TOKENS), reconcile_enabled=False)
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(settings, extra_routes=analyst_routes(settings)),
            host="127.0.0.1",
            port=port,
            log_level="warning",
        )
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start within 20 s"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)


class Browser:
    """Headless Chromium driven over its DevTools websocket: navigate, evaluate, read cookies."""

    def __init__(self, profile: Path) -> None:
        from websockets.sync.client import connect

        self.process = subprocess.Popen(
            [
                str(CHROMIUM),
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
                "--remote-debugging-port=0",
                f"--user-data-dir={profile}",
                "about:blank",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        port_file = profile / "DevToolsActivePort"
        deadline = time.monotonic() + 60
        while not (port_file.exists() and port_file.read_text().strip()):
            assert time.monotonic() < deadline, "Chromium did not open its DevTools port"
            assert self.process.poll() is None, "Chromium exited"
            time.sleep(0.1)
        port = port_file.read_text().split()[0]
        pages: list[dict[str, Any]] = []
        while not pages:
            pages = [t for t in httpx.get(f"http://127.0.0.1:{port}/json/list").json() if t["type"] == "page"]
            time.sleep(0.05)
        self._stack = contextlib.ExitStack()
        self.socket = self._stack.enter_context(
            connect(pages[0]["webSocketDebuggerUrl"], max_size=None, open_timeout=30)
        )
        self._id = 0
        self.call("Page.enable")
        self.call("Network.enable")

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        self._id += 1
        self.socket.send(json.dumps({"id": self._id, "method": method, "params": params}))
        while True:
            message = json.loads(self.socket.recv(timeout=60))
            if message.get("id") == self._id:
                assert "error" not in message, message
                return message.get("result", {})

    def wait_for_load(self) -> None:
        while True:
            message = json.loads(self.socket.recv(timeout=60))
            if message.get("method") == "Page.loadEventFired":
                return

    def goto(self, url: str) -> None:
        self.call("Page.navigate", url=url)
        self.wait_for_load()

    def run(self, expression: str, *, navigates: bool = False) -> Any:
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        if navigates:
            self.wait_for_load()
        return result.get("result", {}).get("value")

    def cookies(self) -> list[dict[str, Any]]:
        return self.call("Network.getAllCookies")["cookies"]

    def close(self) -> None:
        try:
            self._stack.close()
        finally:
            self.process.terminate()
            self.process.wait(timeout=20)


@pytest.mark.skipif(not CHROMIUM.exists(), reason="needs /usr/bin/chromium (apt-get install chromium); CI installs it")
def test_chromium_signs_in_sees_the_timeline_and_signs_out(live_server: str, tmp_path: Path) -> None:
    """Headless Chromium: the login form signs in (HttpOnly, SameSite=Strict cookie that is not the token and that
    page script cannot read), the session page draws one timeline bar per interval, Sign out ends the session and
    the old cookie no longer opens a page."""
    browser = Browser(tmp_path / "profile")
    try:
        browser.goto(f"{live_server}/ui/sessions/s-1")
        assert browser.run("document.title").startswith("Sign in")  # the 401 page is the login form
        browser.run(
            f"document.querySelector('input[name=token]').value = {json.dumps(OPS)};"
            "document.querySelector('form.login').submit()",
            navigates=True,
        )
        assert browser.run("location.pathname") == "/ui/sessions/s-1"
        assert browser.run("document.querySelectorAll('rect.timeline-bar').length") == 5
        dom = browser.run("document.documentElement.outerHTML")
        assert 'id="concurrency-curve"' in dom and OPS not in dom
        [cookie] = [c for c in browser.cookies() if c["name"] == COOKIE_NAME]
        assert cookie["httpOnly"] is True and cookie["sameSite"] == "Strict" and cookie["path"] == "/ui"
        assert OPS not in cookie["value"] and browser.run("document.cookie") == ""
        browser.run("document.querySelector('form[action=\"/ui/logout\"]').submit()", navigates=True)
        assert browser.run("location.pathname") == "/ui/login"
        assert not [c for c in browser.cookies() if c["name"] == COOKIE_NAME]
        stale = httpx.get(f"{live_server}/ui/sessions", cookies={COOKIE_NAME: cookie["value"]})
        assert stale.status_code == 401
        browser.goto(f"{live_server}/ui/sessions")
        assert browser.run("document.title").startswith("Sign in")
    finally:
        browser.close()
