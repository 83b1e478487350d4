"""Test helpers: signed deliveries, app clients, reading the inbox."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.engine import Engine
from starlette.testclient import TestClient

from receiver.db.models import WebhookEvent
from receiver.providers.dyte.signature import sign_body
from receiver.settings import Settings
from receiver.web.app import create_app


def compact(payload: Any) -> bytes:
    """The bytes Dyte would send for ``payload``."""
    return json.dumps(payload, separators=(",", ":")).encode()


def signed_headers(
    body: bytes, key, *, delivery_id: str | None = None, webhook_id: str = "wh-test", prefix: str = "dyte"
) -> dict[str, str]:
    """Headers of a delivery of ``body`` signed with ``key``: Dyte's (``prefix="dyte"``) or RealtimeKit's (``"rtk"``)."""
    return {
        "content-type": "application/json",
        f"{prefix}-signature": sign_body(body, key),
        f"{prefix}-uuid": delivery_id or str(uuid.uuid4()),
        f"{prefix}-webhook-id": webhook_id,
    }


def post_signed(client: TestClient, body: bytes, key, **kwargs: Any):
    """POST ``body`` to /webhooks/dyte with a valid signature."""
    return client.post("/webhooks/dyte", content=body, headers=signed_headers(body, key, **kwargs))


def app_client(settings: Settings, **kwargs: Any) -> TestClient:
    """A TestClient on a fresh app (use as a context manager to run the lifespan)."""
    return TestClient(create_app(settings, **kwargs), raise_server_exceptions=True)


def stored_events(engine: Engine) -> list[WebhookEvent]:
    """Every row of the inbox, oldest first (detached)."""
    from sqlalchemy.orm import Session

    with Session(engine, expire_on_commit=False) as db:
        return list(db.execute(select(WebhookEvent).order_by(WebhookEvent.id)).scalars())


def bench_database_url(dialect: str, tmp_path: Path) -> str:
    """The database URL a tiny bench run uses: a SQLite file in ``tmp_path``, or the test PostgreSQL server.

    The bench makes its own scratch database on that server. Skips the test
    (with the connection error as the reason) when PostgreSQL does not answer.
    """
    from conftest import PG_ADMIN_URL, postgres_unavailable_reason

    if dialect != "postgresql":
        return f"sqlite:///{tmp_path / 'bench.db'}"
    reason = postgres_unavailable_reason()
    if reason:
        pytest.skip(reason)
    return PG_ADMIN_URL
