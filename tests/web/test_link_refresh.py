"""Expired download links: pages and the API queue a refresh for the worker, never call the provider themselves.

Data: :func:`test_api.build_dataset` (recording ``r-1``'s link expired in
2020, ``r-2``'s expires in 2099). The provider is an ``httpx.MockTransport``
that counts every call: requests must make none; the worker's reconciler
makes them.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from pydantic import SecretStr
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session as OrmSession
from starlette.testclient import TestClient
from test_api import AUTH, TOKEN, build_dataset

from receiver.db.engine import make_engine
from receiver.db.models import AuditEntry, ReconcileTask, Recording
from receiver.processing.links import MIN_REFRESH_INTERVAL_SECONDS, LinkState, queue_link_refresh
from receiver.processing.reconcile import Reconciler
from receiver.providers.dyte.client import DyteClient
from receiver.service import build_service_app


class FakeDyte:
    """GET /recordings/{id}: a fresh link for ``r-1``, 404 for anything in ``gone``; counts calls."""

    def __init__(self) -> None:
        self.calls: list[str] = []
        self.gone: set[str] = set()

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.calls.append(request.url.path)
        recording_id = request.url.path.rsplit("/", 1)[-1]
        if recording_id in self.gone or not request.url.path.startswith("/v2/recordings/"):
            return httpx.Response(404, json={"success": False, "error": {"message": "not found"}})
        data = {
            "id": recording_id,
            "status": "UPLOADED",
            "download_url": f"https://fresh.example.com/{recording_id}.mp4?sig=new",
            "download_url_expiry": "2099-06-01T00:00:00.000Z",
        }
        return httpx.Response(200, json={"success": True, "data": data})


@pytest.fixture
def fake() -> FakeDyte:
    return FakeDyte()


@pytest.fixture
def link_settings(settings):
    return settings.model_copy(
        update={
            "api_tokens": SecretStr(f"ops:operator:{TOKEN}"),
            "dyte_org_id": "org",
            "dyte_api_key": SecretStr("key"),
            "dyte_api_base_url": "http://dyte.test/v2",
            "reconcile_enabled": True,
            "subscription_ensure_on_start": False,
        }
    )


@pytest.fixture
def engine(link_settings):
    eng = make_engine(link_settings.database_url)
    build_dataset(eng)
    yield eng
    eng.dispose()


@pytest.fixture
def client(link_settings, engine, fake):
    app = build_service_app(link_settings, run_worker=False, dyte_transport=httpx.MockTransport(fake))
    with TestClient(app) as c:
        yield c


def _tasks(engine) -> list[tuple[str, str]]:
    with OrmSession(engine) as db:
        rows = db.execute(
            select(ReconcileTask.object_id, ReconcileTask.status).where(ReconcileTask.kind == "recording")
        ).all()
    return sorted((object_id, status) for object_id, status in rows)


def _run_worker_reconciler(engine, fake: FakeDyte) -> None:
    async def go() -> None:
        client = DyteClient("http://dyte.test/v2", "org", "key", transport=httpx.MockTransport(fake))
        reconciler = Reconciler(engine, client, worker_id="test-worker", stale_session_seconds=10**9)
        while await reconciler.run_due(now=datetime.now(UTC) + timedelta(seconds=1)):
            pass
        await reconciler.aclose()

    asyncio.run(go())


def _reset_recording_tasks(engine) -> None:
    """The dataset's events armed tasks; mark them all done long ago (a settled index: only new work is due)."""
    with OrmSession(engine) as db, db.begin():
        db.execute(update(ReconcileTask).values(status="done", done_at=datetime(2026, 1, 1, tzinfo=UTC)))


def test_page_and_api_queue_the_refresh_and_call_no_provider(client, engine, fake) -> None:
    """Viewing the recordings page or the API arms one recording task for the expired r-1 only; no provider call;
    the page says "link expired, refresh queued"; viewing again arms nothing more."""
    _reset_recording_tasks(engine)
    html = client.get("/ui/recordings", headers=AUTH).text
    assert "link expired, refresh queued" in html
    assert _tasks(engine) == [("r-1", "pending"), ("r-2", "done")]
    assert client.get("/api/recordings", headers=AUTH).status_code == 200
    assert client.get("/ui/recordings", headers=AUTH).status_code == 200
    assert _tasks(engine) == [("r-1", "pending"), ("r-2", "done")]
    with OrmSession(engine) as db:
        assert db.execute(select(func.count()).select_from(ReconcileTask)).scalar_one() >= 2
    assert fake.calls == []


def test_the_worker_refreshes_the_queued_link(client, engine, fake) -> None:
    """The worker's reconciler fetches the queued recording (one provider call) and the page shows the fresh link."""
    _reset_recording_tasks(engine)
    client.get("/ui/recordings", headers=AUTH)
    _run_worker_reconciler(engine, fake)
    assert fake.calls == ["/v2/recordings/r-1"]
    html = client.get("/ui/recordings", headers=AUTH).text
    assert "https://fresh.example.com/r-1.mp4?sig=new" in html and "link expired" not in html
    assert fake.calls == ["/v2/recordings/r-1"]


def test_a_404_is_remembered_and_not_asked_again(client, engine, fake) -> None:
    """The provider answers 404 for r-1: it is marked (api_missing_at), the page says Dyte no longer has it, and
    later views queue nothing, so the worker asks no more."""
    _reset_recording_tasks(engine)
    fake.gone.add("r-1")
    client.get("/api/recordings", headers=AUTH)
    _run_worker_reconciler(engine, fake)
    assert fake.calls == ["/v2/recordings/r-1"]
    with OrmSession(engine) as db:
        assert db.get(Recording, "r-1").api_missing_at is not None
    html = client.get("/ui/recordings", headers=AUTH).text
    assert "Dyte no longer has this recording" in html
    client.get("/api/recordings", headers=AUTH)
    _run_worker_reconciler(engine, fake)
    assert fake.calls == ["/v2/recordings/r-1"]
    assert _tasks(engine) == [("r-1", "done"), ("r-2", "done")]


def test_without_credentials_nothing_is_queued(settings, engine) -> None:
    """No DYTE_ORG_ID/DYTE_API_KEY: no worker can refresh, so nothing is queued and the page says why."""
    _reset_recording_tasks(engine)
    plain = settings.model_copy(update={"api_tokens": SecretStr(TOKEN), "subscription_ensure_on_start": False})
    with TestClient(build_service_app(plain, run_worker=False)) as c:
        assert "no Dyte credentials to refresh it" in c.get("/ui/recordings", headers=AUTH).text
    assert _tasks(engine) == [("r-1", "done"), ("r-2", "done")]


def test_queue_link_refresh_rules(engine) -> None:
    """Queued once; a pending task is not re-armed; a task done within the interval is 'recently refreshed';
    after the interval it is queued again; a 404-marked recording is 'missing'."""
    _reset_recording_tasks(engine)
    now = datetime.now(UTC)
    assert queue_link_refresh(engine, ["r-1", "r-1"], now) == {"r-1": LinkState.QUEUED}
    assert queue_link_refresh(engine, ["r-1"], now) == {"r-1": LinkState.QUEUED}
    with OrmSession(engine) as db, db.begin():
        db.execute(update(ReconcileTask).where(ReconcileTask.object_id == "r-1").values(status="done", done_at=now))
    assert queue_link_refresh(engine, ["r-1"], now) == {"r-1": LinkState.RECENT}
    later = now + timedelta(seconds=MIN_REFRESH_INTERVAL_SECONDS + 1)
    assert queue_link_refresh(engine, ["r-1"], later) == {"r-1": LinkState.QUEUED}
    with OrmSession(engine) as db, db.begin():
        db.execute(update(Recording).where(Recording.recording_id == "r-2").values(api_missing_at=now))
    assert queue_link_refresh(engine, ["r-2"], now) == {"r-2": LinkState.MISSING}
    assert queue_link_refresh(engine, ["r-2"], now, enabled=False) == {"r-2": LinkState.NOT_CONFIGURED}


def test_an_operator_forces_a_refresh_of_every_expired_link(client, engine, fake) -> None:
    """The operator's "Refresh every expired link" (a 404-marked one too) queues them all without a provider call
    and is audited; the button is there for an operator with credentials configured."""
    _reset_recording_tasks(engine)
    with OrmSession(engine) as db, db.begin():
        db.execute(update(Recording).where(Recording.recording_id == "r-1").values(api_missing_at=datetime.now(UTC)))
    assert "Refresh every expired link" in client.get("/ui/recordings", headers=AUTH).text
    response = client.post("/ui/recordings/refresh", headers=AUTH, follow_redirects=False)
    assert response.status_code == 303 and response.headers["location"] == "/ui/recordings?refreshed=1"
    assert _tasks(engine) == [("r-1", "pending"), ("r-2", "done")]
    with OrmSession(engine) as db:
        assert db.get(Recording, "r-1").api_missing_at is None
        entry = db.execute(select(AuditEntry).order_by(AuditEntry.id.desc())).scalars().first()
    assert (entry.actor, entry.action, entry.target, entry.outcome) == ("ops", "refresh_links", "recordings:all", "ok")
    assert "1 expired link queued for refresh" in client.get("/ui/recordings?refreshed=1", headers=AUTH).text
    assert fake.calls == []
