"""POST /api/erasures: the operator endpoint of receiver forget (data: test_api's scripted meetings)."""

from __future__ import annotations

import hashlib
import json

import pytest
from pydantic import SecretStr
from sqlalchemy import select
from starlette.testclient import TestClient
from test_api import AUTH, OTHER_TOKEN, TOKEN, analyst_client, build_dataset

from receiver.db.engine import make_engine
from receiver.db.models import AuditEntry, Erasure
from receiver.processing.suppression import subject_digest
from receiver.settings import Settings


@pytest.fixture
def client(settings: Settings):
    """An API client on test_api's scripted meetings: TOKEN is the operator ``ops``, OTHER_TOKEN an analyst."""
    api = settings.model_copy(update={"api_tokens": SecretStr(f"ops:operator:{TOKEN},{OTHER_TOKEN}")})
    engine = make_engine(api.database_url)
    build_dataset(engine)
    with analyst_client(api) as c:
        yield c
    engine.dispose()


def post(client: TestClient, payload: object, **headers: str):
    return client.post(
        "/api/erasures",
        content=json.dumps(payload).encode(),
        headers={"Content-Type": "application/json", **AUTH, **headers},
    )


def keys(client: TestClient) -> set[str]:
    return {row["participant_key"] for row in client.get("/api/attendance", headers=AUTH).json()["items"]}


def test_erasure_needs_the_token(client: TestClient) -> None:
    response = client.post("/api/erasures", json={"participant": "frank"})
    assert response.status_code == 401 and "frank" in keys(client)


def test_dry_run_then_erasure_removes_the_person_and_records_who_asked(client: TestClient) -> None:
    """200 for the dry run (nothing changes), 201 for the erasure; Frank is gone from the reports; the audit row names the token's fingerprint."""
    dry = post(client, {"custom_participant_id": "frank", "dry_run": True})
    assert dry.status_code == 200 and dry.json()["intervals_deleted"] == 1 and dry.json()["erasure_id"] is None
    assert "frank" in keys(client)

    done = post(client, {"custom_participant_id": "frank", "reference": "DSR-2026-114"})
    assert done.status_code == 201, done.text
    result = done.json()
    assert (result["intervals_deleted"], result["sessions_touched"], result["dry_run"]) == (1, 1, False)
    assert result["subject_sha256"] == subject_digest("frank") and "frank" not in done.text.lower()
    assert "frank" not in keys(client) and {"alice", "bob"} <= keys(client)
    fingerprint = hashlib.sha256(TOKEN.encode()).hexdigest()[:12]
    with client.app.state.engine.connect() as connection:
        audit = connection.execute(select(Erasure)).mappings().one()
    assert (audit["requested_by"], audit["reference"]) == (f"api:{fingerprint}", "DSR-2026-114")
    assert TOKEN not in json.dumps({k: str(v) for k, v in audit.items()})
    with client.app.state.engine.connect() as connection:
        logged = connection.execute(select(AuditEntry)).mappings().all()
    assert [(r["actor"], r["action"], r["target"], r["source"]) for r in logged] == [
        ("ops", "erase", f"erasure:{result['erasure_id']}", "api")
    ]
    assert "frank" not in json.dumps({k: str(v) for r in logged for k, v in r.items()})


def test_an_analyst_token_may_not_erase(client: TestClient) -> None:
    """Erasing needs the operator role: an analyst gets 403, nothing changes, the refusal is audited."""
    response = post(client, {"participant": "frank"}, Authorization=f"Bearer {OTHER_TOKEN}")
    assert response.status_code == 403 and response.json()["error"] == "forbidden"
    assert "frank" in keys(client)
    with client.app.state.engine.connect() as connection:
        assert connection.execute(select(Erasure)).first() is None
        denied = connection.execute(select(AuditEntry)).mappings().one()
    assert (denied["actor"], denied["outcome"], denied["target"]) == ("token-2", "denied", "/api/erasures")


@pytest.mark.parametrize(
    ("body", "headers", "status", "detail"),
    [
        (b'{"participant":"frank"}', {"Content-Type": "text/plain"}, 415, "application/json"),
        (b"{" + b" " * 5000 + b"}", {}, 413, "exceeds 4096 bytes"),
        (b'{"participant":', {}, 400, "not valid JSON"),
        (b'["frank"]', {}, 400, "JSON object"),
        (b"{}", {}, 400, "exactly one of"),
        (b'{"participant":"frank","user_id":"u"}', {}, 400, "exactly one of"),
        (b'{"participant":"frank","dryrun":true}', {}, 400, "unknown field 'dryrun'"),
        (b'{"participant":"   "}', {}, 400, "empty identifier"),
        (b'{"participant":7}', {}, 400, "must be a string"),
        (b'{"participant":"frank","dry_run":"yes"}', {}, 400, "true or false"),
        (b'{"participant":"frank","reference":' + json.dumps("x" * 201).encode() + b"}", {}, 400, "longer than 200"),
    ],
    ids=["415", "413", "bad-json", "array", "none", "two", "misspelt", "blank", "number", "dry-run", "reference"],
)
def test_bad_requests_get_a_clear_4xx_and_erase_nothing(
    client: TestClient, body: bytes, headers: dict[str, str], status: int, detail: str
) -> None:
    response = client.post(
        "/api/erasures", content=body, headers={"Content-Type": "application/json", **AUTH, **headers}
    )
    assert response.status_code == status and detail in response.json()["detail"]
    assert "frank" in keys(client)
