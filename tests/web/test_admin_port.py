"""ADMIN_PORT: only /webhooks/*, /healthz and a terse /readyz on the main port; the rest on the admin port.

The split is by each connection's local port (ASGI ``scope["server"]``):
TestClient takes it from the URL, and the end-to-end case runs uvicorn on
two real sockets through :func:`receiver.service.build_server`, as
``receiver serve --admin-port`` does.
"""

from __future__ import annotations

import threading
import time

import httpx
import pytest
from click.testing import CliRunner
from helpers import compact, signed_headers
from pydantic import SecretStr
from starlette.testclient import TestClient

from receiver.cli.main import cli
from receiver.devtools.bench.servers import free_port
from receiver.errors import ConfigurationError
from receiver.service import build_server, build_service_app
from receiver.web.api import analyst_routes
from receiver.web.app import create_app

TOKEN = "admin-port-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
ADMIN = 9001
ADMIN_ONLY = ("/metrics", "/api/sessions", "/api/openapi.json", "/ui/sessions", "/ui/login")


@pytest.fixture
def split_settings(settings):
    return settings.model_copy(update={"admin_port": ADMIN, "api_tokens": SecretStr(TOKEN)})


def test_main_port_serves_only_webhooks_and_health(split_settings, signing_key) -> None:
    """On the main port: webhooks work, /healthz works, /readyz says only ready; /metrics, /api, /ui are 404."""
    app = create_app(split_settings, extra_routes=analyst_routes(split_settings))
    with TestClient(app, base_url="http://testserver:8000") as public:
        body = compact({"event": "meeting.started", "meeting": {"id": "m1", "sessionId": "s1"}})
        assert public.post("/webhooks/dyte", content=body, headers=signed_headers(body, signing_key)).status_code == 200
        assert public.get("/healthz").json() == {"status": "ok"}
        ready = public.get("/readyz")
        assert ready.status_code == 200 and ready.json() == {"status": "ready"}
        for path in ADMIN_ONLY:
            response = public.get(path, headers=AUTH)
            assert response.status_code == 404, path
            assert response.json()["error"] == "not_found"


def test_admin_port_serves_everything_and_the_details(split_settings) -> None:
    """On the admin port: metrics, the API, the pages and the detailed /readyz."""
    app = create_app(split_settings, extra_routes=analyst_routes(split_settings))
    with TestClient(app, base_url=f"http://testserver:{ADMIN}") as admin:
        ready = admin.get("/readyz").json()
        assert ready["status"] == "ready" and ready["database"]["reachable"] is True
        assert admin.get("/metrics").status_code == 200
        assert admin.get("/api/sessions", headers=AUTH).status_code == 200
        assert admin.get("/ui/sessions", headers=AUTH).status_code == 200


def test_without_an_admin_port_one_port_serves_all(settings) -> None:
    """ADMIN_PORT unset: everything on the one port, /readyz with details (as before)."""
    unsplit = settings.model_copy(update={"api_tokens": SecretStr(TOKEN)})
    with TestClient(create_app(unsplit, extra_routes=analyst_routes(unsplit))) as client:
        assert "database" in client.get("/readyz").json()
        assert client.get("/metrics").status_code == 200
        assert client.get("/api/sessions", headers=AUTH).status_code == 200


def test_uvicorn_on_two_real_ports(split_settings, sqlite_url, signing_key) -> None:
    """build_server (what `receiver serve --admin-port` runs) listens on both ports; each answers its own paths."""
    public_port, admin_port = free_port(), free_port()
    settings = split_settings.model_copy(update={"database_url": sqlite_url, "admin_port": admin_port})
    app = build_service_app(settings, run_worker=False)
    server, sockets = build_server(app, host="127.0.0.1", port=public_port, admin_port=admin_port)
    thread = threading.Thread(target=server.run, kwargs={"sockets": sockets}, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 20
        while not server.started:
            assert time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.05)
        public, admin = f"http://127.0.0.1:{public_port}", f"http://127.0.0.1:{admin_port}"
        body = compact({"event": "meeting.started", "meeting": {"id": "m2", "sessionId": "s2"}})
        headers = signed_headers(body, signing_key)
        assert httpx.post(f"{public}/webhooks/dyte", content=body, headers=headers).status_code == 200
        assert httpx.get(f"{public}/readyz").json() == {"status": "ready"}
        assert httpx.get(f"{public}/metrics").status_code == 404
        assert httpx.get(f"{public}/api/sessions", headers=AUTH).status_code == 404
        assert httpx.get(f"{admin}/metrics").status_code == 200
        assert httpx.get(f"{admin}/api/events", headers=AUTH).json()["total"] == 1
        assert "database" in httpx.get(f"{admin}/readyz").json()
    finally:
        server.should_exit = True
        thread.join(timeout=15)


def test_admin_port_must_differ_and_is_in_the_help() -> None:
    """--admin-port equal to --port is refused; `receiver serve --help` documents the option."""
    with pytest.raises(ConfigurationError):
        build_server(None, host="127.0.0.1", port=8000, admin_port=8000)  # type: ignore[arg-type]
    help_text = CliRunner().invoke(cli, ["serve", "--help"]).output
    assert "--admin-port" in help_text and "/webhooks/*" in help_text
