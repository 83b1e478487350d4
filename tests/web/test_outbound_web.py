"""The outbound deliveries made visible: ``/api/outbound`` (+ retry) and the ``/ui/outbound`` page."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta

import pytest
from pydantic import SecretStr
from sqlalchemy import select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session as OrmSession
from starlette.testclient import TestClient
from test_api import AUTH, OTHER_TOKEN, TOKEN, analyst_client

from receiver.db.models import AuditEntry, OutboundDelivery
from receiver.settings import Settings
from receiver.web.openapi import openapi_document

SECRET = "whsec_" + base64.b64encode(b"page-test-key-of-at-least-24-bytes").decode()
URL = "https://sheets.example/hooks/tok-5a4b3c2d1e"
ANALYST = {"Authorization": f"Bearer {OTHER_TOKEN}"}
T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


def _delivery(number: int, status: str, *, session_id: str = "s-1", code: int | None = None, error: str | None = None):
    return OutboundDelivery(
        webhook_id=f"msg_{number:032x}",
        event_type="session.attendance",
        session_id=session_id,
        payload=json.dumps({"data": {"attendance": [{"display_name": "Private Person"}]}}),
        payload_sha256=f"{number:064x}",
        status=status,
        attempts={"pending": 0, "delivered": 1, "failed": 2, "dead": 8}[status],
        next_attempt_at=T0 + timedelta(minutes=number),
        last_status_code=code,
        last_error=error,
        created_at=T0 + timedelta(minutes=number),
        updated_at=T0 + timedelta(minutes=number),
        delivered_at=T0 if status == "delivered" else None,
    )


@pytest.fixture
def outbound_client(settings: Settings):
    """The API and pages (TOKEN: operator, OTHER_TOKEN: analyst) with four deliveries (ids 1..4: delivered, failed,
    dead, pending of another session)."""
    configured = settings.model_copy(
        update={
            "api_tokens": SecretStr(f"ops:operator:{TOKEN}, {OTHER_TOKEN}"),
            "outbound_webhook_url": URL,
            "outbound_webhook_secret": SecretStr(SECRET),
        }
    )
    with analyst_client(configured) as client:
        engine: Engine = client.app.state.engine
        with OrmSession(engine) as db, db.begin():
            db.add_all(
                [
                    _delivery(1, "delivered", code=204),
                    _delivery(2, "failed", code=500, error="HTTP 500 Internal Server Error"),
                    _delivery(3, "dead", error="ConnectError: [Errno 111] Connection refused"),
                    _delivery(4, "pending", session_id="s-2"),
                ]
            )
        yield client


def test_api_lists_deliveries_newest_first_with_filters_and_never_the_body(outbound_client: TestClient):
    """GET /api/outbound: newest first, status and session filters, X-Total-Count; no body, no names."""
    answer = outbound_client.get("/api/outbound", headers=ANALYST)
    assert answer.status_code == 200 and answer.headers["x-total-count"] == "4"
    items = answer.json()["items"]
    assert [i["id"] for i in items] == [4, 3, 2, 1]
    assert items[2]["last_status_code"] == 500 and items[2]["last_error"] == "HTTP 500 Internal Server Error"
    assert "payload" not in items[0] and "Private Person" not in answer.text
    schema = openapi_document()["components"]["schemas"]["OutboundDelivery"]
    assert list(items[0]) == list(schema["properties"])
    dead = outbound_client.get("/api/outbound?status=dead", headers=ANALYST).json()
    assert [i["id"] for i in dead["items"]] == [3] and dead["total"] == 1
    other = outbound_client.get("/api/outbound?session_id=s-2", headers=ANALYST).json()
    assert [i["id"] for i in other["items"]] == [4]
    paged = outbound_client.get("/api/outbound?limit=2&offset=1", headers=ANALYST).json()
    assert [i["id"] for i in paged["items"]] == [3, 2] and paged["total"] == 4


@pytest.mark.parametrize(
    ("query", "status"), [("status=zombie", 400), ("status=", 400), ("limit=0", 400), ("colour=red", 400)]
)
def test_api_refuses_bad_parameters_with_400(outbound_client: TestClient, query: str, status: int):
    """A bad state, limit or an unknown parameter is a 400 JSON error, never a 500 or everything."""
    answer = outbound_client.get(f"/api/outbound?{query}", headers=ANALYST)
    assert answer.status_code == status and answer.json()["error"] == "bad_request"


def test_api_needs_a_token(outbound_client: TestClient):
    """Without a token: 401, like every /api route."""
    assert outbound_client.get("/api/outbound").status_code == 401
    assert outbound_client.post("/api/outbound/3/retry").status_code == 401


def test_operator_sends_a_dead_delivery_again_and_it_is_audited(outbound_client: TestClient):
    """Retry: dead back to pending, attempts 0, same webhook-id; analyst 403; delivered/pending 409; unknown 404."""
    assert outbound_client.post("/api/outbound/3/retry", headers=ANALYST).status_code == 403
    answer = outbound_client.post("/api/outbound/3/retry", headers=AUTH)
    assert answer.status_code == 200 and answer.json() == {"requeued": True, "id": 3}
    engine: Engine = outbound_client.app.state.engine
    with OrmSession(engine) as db:
        row = db.get(OutboundDelivery, 3)
        assert (row.status, row.attempts, row.webhook_id) == ("pending", 0, f"msg_{3:032x}")
        assert row.next_attempt_at <= datetime.now(UTC)
        actions = [(a.action, a.target, a.outcome) for a in db.execute(select(AuditEntry)).scalars()]
    assert ("retry_outbound", "outbound:3", "ok") in actions
    assert ("retry", "/api/outbound/3/retry", "denied") in actions  # the API guard names the path
    for delivery_id in (1, 3, 4):  # delivered, now pending, pending
        assert outbound_client.post(f"/api/outbound/{delivery_id}/retry", headers=AUTH).status_code == 409
    assert outbound_client.post("/api/outbound/99/retry", headers=AUTH).status_code == 404
    assert outbound_client.post("/api/outbound/x/retry", headers=AUTH).status_code == 400


def test_page_shows_the_deliveries_the_receivers_host_only_and_send_again_buttons(outbound_client: TestClient):
    """/ui/outbound: counts by state, rows with attempts and answers, the host but not the URL's token."""
    html = outbound_client.get("/ui/outbound", headers=AUTH).text
    assert "sheets.example" in html and "tok-5a4b3c2d1e" not in html and SECRET not in html
    assert "Private Person" not in html
    assert 'href="/ui/outbound"' in outbound_client.get("/ui/events", headers=AUTH).text  # linked from the event log
    assert "dead (1)" in html and "delivered (1)" in html
    assert "HTTP 500 Internal Server Error" in html and "Connection refused" in html
    assert html.count('action="/ui/outbound/') == 2  # failed and dead: operator buttons
    assert 'action="/ui/outbound/' not in outbound_client.get("/ui/outbound", headers=ANALYST).text
    only_dead = outbound_client.get("/ui/outbound?status=dead", headers=AUTH).text
    assert only_dead.count('class="delivery"') == 1
    assert outbound_client.get("/ui/outbound?status=zombie", headers=AUTH).status_code == 400


def test_page_retry_requeues_and_returns_to_the_list(outbound_client: TestClient):
    """The operator's form requeues the delivery and redirects to the list with a notice."""
    answer = outbound_client.post("/ui/outbound/2/retry", headers=AUTH, follow_redirects=False)
    assert answer.status_code == 303 and answer.headers["location"] == "/ui/outbound?retried=2"
    assert "Delivery 2 requeued" in outbound_client.get(answer.headers["location"], headers=AUTH).text
    assert outbound_client.post("/ui/outbound/1/retry", headers=AUTH).status_code == 409
