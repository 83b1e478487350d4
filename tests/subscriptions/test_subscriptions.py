"""Webhook subscription management against the sandbox Dyte API (no network): ensure, CLI, start-up, enforcement."""

from __future__ import annotations

import asyncio
import json
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import click
import httpx
import pytest
from click.testing import CliRunner
from helpers import compact, post_signed
from sqlalchemy import select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session as OrmSession
from starlette.testclient import TestClient

from receiver.cli.context import Context
from receiver.cli.subscriptions import subscribe, subscriptions
from receiver.db.models import ManagedSubscription
from receiver.providers.dyte.client import DyteClient
from receiver.providers.dyte.signature import generate_private_key
from receiver.sandbox import SandboxState, SandboxWebhook, World, create_sandbox_app
from receiver.service import build_service_app
from receiver.settings import ALL_EVENTS, Settings
from receiver.subscriptions.ensure import ensure_subscription
from receiver.subscriptions.spec import SubscriptionSpec, same_url, webhook_url
from receiver.subscriptions.wiring import ManagedWebhookIds

PUBLIC_URL = "https://hooks.example.com"
TARGET = PUBLIC_URL + "/webhooks/dyte"
BASE_URL = "http://sandbox.test/v2"
WRITES = {"POST", "PUT", "PATCH", "DELETE"}
SPEC = SubscriptionSpec(name="receiver", url=TARGET, events=ALL_EVENTS)


@pytest.fixture(scope="module")
def sandbox_key():
    """The sandbox's webhook signing key (unused by these tests, required by SandboxState)."""
    return generate_private_key()


@pytest.fixture
def sandbox(sandbox_key) -> SandboxState:
    """An empty sandbox world: no webhooks yet."""
    return SandboxState(world=World(), private_key=sandbox_key)


def transport(state: SandboxState) -> httpx.ASGITransport:
    """An httpx transport into the sandbox app."""
    return httpx.ASGITransport(app=create_sandbox_app(state))


def client_for(state: SandboxState, tr: httpx.AsyncBaseTransport | None = None) -> DyteClient:
    """A Dyte client on the sandbox (own transport unless given)."""
    return DyteClient(BASE_URL, state.org_id, state.api_key, transport=tr or transport(state))


def writes(state: SandboxState) -> list[tuple[str, str, int]]:
    """The write calls the sandbox received."""
    return [call for call in state.calls if call[0] in WRITES]


def add_hook(
    state: SandboxState,
    *,
    name: str = "receiver",
    url: str = TARGET,
    events=ALL_EVENTS,
    enabled: bool = True,
    age_minutes: float = 60,
    hook_id: str | None = None,
) -> SandboxWebhook:
    """Put a webhook into the sandbox world directly (no API call)."""
    import uuid

    when = datetime.now(UTC) - timedelta(minutes=age_minutes)
    hook = SandboxWebhook(
        id=hook_id or str(uuid.uuid4()),
        name=name,
        url=url,
        events=list(events),
        enabled=enabled,
        created_at=when,
        updated_at=when,
    )
    state.world.webhooks.append(hook)
    return hook


def ensure(state: SandboxState, engine: Engine | None, spec: SubscriptionSpec = SPEC, **kwargs: Any):
    """Run ensure_subscription once with a fresh client."""

    async def run():
        async with client_for(state) as client:
            return await ensure_subscription(client, spec, engine=engine, **kwargs)

    return asyncio.run(run())


def managed_rows(engine: Engine) -> list[ManagedSubscription]:
    """Rows of managed_subscriptions."""
    with OrmSession(engine, expire_on_commit=False) as db:
        return list(db.execute(select(ManagedSubscription)).scalars())


def service_settings(db_settings: Settings, **overrides: Any) -> Settings:
    """The test settings plus PUBLIC_URL, sandbox credentials and a fast retry policy."""
    values = db_settings.model_dump()
    values.update(
        public_url=PUBLIC_URL,
        dyte_api_base_url=BASE_URL,
        dyte_org_id="sandbox-org",
        dyte_api_key="sandbox-key",
        subscription_retry_base_seconds=0.05,
        subscription_retry_max_seconds=0.2,
    )
    values.update(overrides)
    return Settings(**values)


def wait_for_state(client: TestClient, wanted: str, seconds: float = 10.0) -> dict[str, Any]:
    """Poll /readyz (which must stay 200) until the subscription state is ``wanted``; returns the body."""
    deadline = time.monotonic() + seconds
    body: dict[str, Any] = {}
    while time.monotonic() < deadline:
        response = client.get("/readyz")
        assert response.status_code == 200, response.text
        body = response.json()
        if body["subscription"]["state"] == wanted:
            return body
        time.sleep(0.02)
    raise AssertionError(f"subscription state never became {wanted!r}: {body}")


class FlakyTransport(httpx.AsyncBaseTransport):
    """Raises ConnectError while ``down``; otherwise forwards to the sandbox."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner = inner
        self.down = True
        self.refused = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if self.down:
            self.refused += 1
            raise httpx.ConnectError("connection refused (Dyte down)", request=request)
        return await self.inner.handle_async_request(request)


class BarrierTransport(httpx.AsyncBaseTransport):
    """Holds the first response until ``barrier`` is full, so concurrent replicas all list before any creates."""

    def __init__(self, inner: httpx.AsyncBaseTransport, barrier: asyncio.Barrier) -> None:
        self.inner = inner
        self.barrier = barrier
        self.first = True

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self.inner.handle_async_request(request)
        if self.first:
            self.first = False
            await self.barrier.wait()
        return response


class SlowFirstTransport(httpx.AsyncBaseTransport):
    """Delays the first response by ``seconds`` (lets concurrent replicas overlap)."""

    def __init__(self, inner: httpx.AsyncBaseTransport, seconds: float = 0.2) -> None:
        self.inner = inner
        self.seconds = seconds
        self.first = True

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self.inner.handle_async_request(request)
        if self.first:
            self.first = False
            await asyncio.sleep(self.seconds)
        return response


# --------------------------------------------------------------------------- helpers


def test_webhook_url_and_same_url():
    """The target is PUBLIC_URL + /webhooks/dyte, and URL comparison ignores case, default port and trailing slash."""
    assert webhook_url("https://hooks.example.com/") == TARGET
    assert webhook_url(TARGET) == TARGET
    assert same_url("HTTPS://Hooks.Example.com:443/webhooks/dyte/", TARGET)
    assert not same_url("https://other.example.com/webhooks/dyte", TARGET)


def test_subscription_events_setting_parses_and_validates():
    """SUBSCRIPTION_EVENTS is comma separated, defaults to all nine, accepts `all`, and rejects unknown names."""
    assert Settings().subscription_events.split(",") == list(ALL_EVENTS)
    assert Settings(subscription_events="all").subscription_events.split(",") == list(ALL_EVENTS)
    assert (
        Settings(subscription_events=" meeting.started , meeting.ended").subscription_events
        == "meeting.started,meeting.ended"
    )
    with pytest.raises(ValueError, match="meeting.bogus"):
        Settings(subscription_events="meeting.started,meeting.bogus")


# --------------------------------------------------------------------------- ensure


def test_first_start_creates(sandbox, engine):
    """With no webhook at Dyte, ensure creates one (one POST) and records its id."""
    result = ensure(sandbox, engine)
    assert [c[:2] for c in writes(sandbox)] == [("POST", "/v2/webhooks")]
    [hook] = sandbox.world.webhooks
    assert (hook.name, hook.url, hook.enabled, tuple(hook.events)) == ("receiver", TARGET, True, ALL_EVENTS)
    assert result.webhook_id == hook.id and result.summary == "create"
    [row] = managed_rows(engine)
    assert row.webhook_id == hook.id and row.url == TARGET and json.loads(row.events) == list(ALL_EVENTS)


def test_unchanged_restart_makes_no_write_call(sandbox, engine):
    """A second ensure with the same configuration only lists webhooks."""
    first = ensure(sandbox, engine)
    sandbox.calls.clear()
    second = ensure(sandbox, engine)
    assert writes(sandbox) == []
    assert second.webhook_id == first.webhook_id and second.summary == "unchanged"
    assert "nothing to do" in second.lines()[0]


def test_changed_events_give_exactly_one_patch(sandbox, engine):
    """Changing the configured events updates the existing webhook with a single PATCH."""
    ensure(sandbox, engine)
    sandbox.calls.clear()
    spec = SubscriptionSpec(name="receiver", url=TARGET, events=("meeting.started", "meeting.ended"))
    result = ensure(sandbox, engine, spec)
    [call] = writes(sandbox)
    assert call[0] == "PATCH" and call[2] == 200
    [hook] = sandbox.world.webhooks
    assert sorted(hook.events) == ["meeting.ended", "meeting.started"]
    assert result.summary == "update"
    assert json.loads(managed_rows(engine)[0].events) == ["meeting.started", "meeting.ended"]


def test_same_events_in_other_order_are_not_rewritten(sandbox):
    """Events are compared as a set: Dyte's order does not cause a PATCH."""
    add_hook(sandbox, events=tuple(reversed(ALL_EVENTS)))
    ensure(sandbox, None)
    assert writes(sandbox) == []


def test_disabled_webhook_is_reenabled(sandbox, engine):
    """A disabled managed webhook is re-enabled with one PATCH (events untouched)."""
    hook = add_hook(sandbox, enabled=False)
    result = ensure(sandbox, engine)
    assert [c[0] for c in writes(sandbox)] == ["PATCH"]
    assert hook.enabled is True and result.webhook_id == hook.id
    assert "enabled false -> true" in result.lines()[0]


def test_duplicates_at_our_url_keep_the_oldest(sandbox, engine):
    """Several of ours at the URL: the oldest is kept and the others deleted."""
    oldest = add_hook(sandbox, age_minutes=120)
    newer = add_hook(sandbox, age_minutes=10)
    result = ensure(sandbox, engine)
    assert [c[0] for c in writes(sandbox)] == ["DELETE"]
    assert [h.id for h in sandbox.world.webhooks] == [oldest.id]
    assert result.webhook_id == oldest.id
    assert any(line.startswith(f"deleted duplicate webhook {newer.id}") for line in result.lines())


def test_ensure_forgets_rows_of_webhooks_gone_from_dyte(sandbox, engine):
    """A managed row whose webhook no longer exists at Dyte is removed; the kept one stays."""
    first = ensure(sandbox, engine)
    sandbox.world.webhooks.clear()
    second = ensure(sandbox, engine)
    assert second.webhook_id != first.webhook_id
    assert [r.webhook_id for r in managed_rows(engine)] == [second.webhook_id]


def test_three_replicas_at_once_leave_exactly_one(sandbox, engine):
    """Three concurrent ensures (own clients, same database) create exactly one webhook with one POST."""

    async def main():
        # Each replica's first answer is slow: without the lock all three would list before anyone creates.
        clients = [client_for(sandbox, SlowFirstTransport(transport(sandbox))) for _ in range(3)]
        try:
            return await asyncio.gather(*(ensure_subscription(c, SPEC, engine=engine) for c in clients))
        finally:
            for c in clients:
                await c.aclose()

    results = asyncio.run(main())
    [hook] = sandbox.world.webhooks
    assert {r.webhook_id for r in results} == {hook.id}
    assert [c[0] for c in writes(sandbox)] == ["POST"]
    assert [r.webhook_id for r in managed_rows(engine)] == [hook.id]


def test_three_replicas_without_lock_still_leave_one(sandbox):
    """Without any lock (replicas on different databases), create-then-dedupe still leaves exactly one webhook."""

    async def main():
        barrier = asyncio.Barrier(3)  # every replica has listed (and seen nothing) before anyone creates
        clients = [client_for(sandbox, BarrierTransport(transport(sandbox), barrier)) for _ in range(3)]
        try:
            return await asyncio.gather(*(ensure_subscription(c, SPEC, lock=False) for c in clients))
        finally:
            for c in clients:
                await c.aclose()

    results = asyncio.run(main())
    [hook] = sandbox.world.webhooks
    assert hook.url == TARGET
    assert sum(1 for c in writes(sandbox) if c[0] == "POST") == 3
    assert sum(1 for c in writes(sandbox) if c[0] == "DELETE" and c[2] == 200) == 2
    assert hook.id in {r.webhook_id for r in results}


# --------------------------------------------------------------------------- CLI


@click.group()
def root() -> None:
    """A bare root group for the registered commands."""


root.add_command(subscribe)
root.add_command(subscriptions)


def run_cli(args: list[str], settings: Settings, state: SandboxState | None = None):
    """Invoke the registered commands with a Context on ``settings`` and the sandbox transport."""
    obj = Context(settings)
    if state is not None:
        obj.dyte_transport = transport(state)  # type: ignore[attr-defined]
    try:
        return CliRunner().invoke(root, args, obj=obj)
    finally:
        obj.close()  # what the `receiver` group does when a command ends


def test_subscribe_cli_creates_then_is_idempotent(sandbox, settings):
    """`receiver subscribe` prints what it did; a second run writes nothing."""
    s = service_settings(settings)
    first = run_cli(["subscribe"], s, sandbox)
    assert first.exit_code == 0, first.output
    [hook] = sandbox.world.webhooks
    assert f"created webhook {hook.id} 'receiver' -> {TARGET} (9 events)" in first.output
    sandbox.calls.clear()
    second = run_cli(["subscribe"], s, sandbox)
    assert second.exit_code == 0 and "nothing to do" in second.output
    assert writes(sandbox) == []


def test_subscribe_dry_run_writes_nothing(sandbox, settings):
    """--dry-run reports the create/update/delete it would make and makes no write call and no row."""
    s = service_settings(settings)
    add_hook(sandbox, url="https://old.example.com/webhooks/dyte")
    result = run_cli(["subscribe", "--dry-run", "--prune"], s, sandbox)
    assert result.exit_code == 0, result.output
    assert "would create webhook 'receiver'" in result.output
    assert "would prune webhook" in result.output and "dry run: nothing was changed" in result.output
    assert writes(sandbox) == [] and len(sandbox.world.webhooks) == 1

    hook = add_hook(sandbox, enabled=False, events=("meeting.started",))
    add_hook(sandbox, age_minutes=5)
    sandbox.calls.clear()
    result = run_cli(["subscribe", "--dry-run"], s, sandbox)
    assert result.exit_code == 0, result.output
    assert f"would update webhook {hook.id}" in result.output and "would delete duplicate webhook" in result.output
    assert writes(sandbox) == [] and hook.enabled is False
    context = Context(s)
    try:
        assert managed_rows(context.engine) == []
    finally:
        context.close()


def test_subscribe_prune_deletes_only_ours_pointing_elsewhere(sandbox, settings):
    """--prune deletes webhooks with our name and another URL, never webhooks with another name."""
    s = service_settings(settings)
    ours_here = add_hook(sandbox)
    ours_elsewhere = add_hook(sandbox, url="https://old.example.com/webhooks/dyte")
    theirs_elsewhere = add_hook(sandbox, name="analytics", url="https://analytics.example.com/hook")
    theirs_here = add_hook(sandbox, name="manual", url=TARGET)

    without = run_cli(["subscribe"], s, sandbox)
    assert without.exit_code == 0 and "`receiver subscribe --prune` deletes them" in without.output
    assert writes(sandbox) == []

    result = run_cli(["subscribe", "--prune"], s, sandbox)
    assert result.exit_code == 0, result.output
    assert [c[:2] for c in writes(sandbox)] == [("DELETE", f"/v2/webhooks/{ours_elsewhere.id}")]
    assert {h.id for h in sandbox.world.webhooks} == {ours_here.id, theirs_elsewhere.id, theirs_here.id}
    assert f"pruned webhook {ours_elsewhere.id}" in result.output
    assert theirs_here.id in result.output  # reported, left alone


def test_subscribe_requires_public_url_and_credentials(settings):
    """Without PUBLIC_URL and credentials, subscribe exits 3 (configuration) with one line naming the variables."""
    result = run_cli(["subscribe"], settings)
    assert result.exit_code == 3
    assert "PUBLIC_URL, DYTE_ORG_ID, DYTE_API_KEY" in result.output
    only_url = run_cli(["subscribe"], service_settings(settings, public_url=None))
    assert only_url.exit_code == 3 and "PUBLIC_URL" in only_url.output and "DYTE_ORG_ID" not in only_url.output


def test_subscribe_reports_bad_credentials(sandbox, settings):
    """Wrong credentials give a one-line error naming DYTE_ORG_ID and DYTE_API_KEY (exit 8: provider refused)."""
    result = run_cli(["subscribe"], service_settings(settings, dyte_api_key="wrong"), sandbox)
    assert result.exit_code == 8 and "check DYTE_ORG_ID and DYTE_API_KEY" in result.output


def test_subscriptions_list_marks_ours(sandbox, settings):
    """`subscriptions list` shows every webhook with ours marked, as JSON and as a table."""
    s = service_settings(settings)
    ours = add_hook(sandbox)
    theirs = add_hook(
        sandbox, name="analytics", url="https://analytics.example.com/hook", events=("meeting.ended",), enabled=False
    )
    result = run_cli(["subscriptions", "list", "--format", "json"], s, sandbox)
    assert result.exit_code == 0, result.output
    rows = {r["id"]: r for r in json.loads(result.output)}
    assert rows[ours.id]["ours"] is True and rows[ours.id]["points_here"] is True
    assert rows[theirs.id]["ours"] is False and rows[theirs.id]["enabled"] is False
    assert rows[theirs.id]["events"] == ["meeting.ended"] and rows[theirs.id]["url"] == theirs.url
    table = run_cli(["subscriptions", "list"], s, sandbox)
    assert table.exit_code == 0 and ours.id in table.output and "analytics" in table.output
    assert writes(sandbox) == []


# --------------------------------------------------------------------------- serve


def test_serve_creates_subscription_at_startup(sandbox, settings):
    """The service app ensures the subscription in the background and /readyz shows state ok with the id."""
    app = build_service_app(service_settings(settings), run_worker=False, dyte_transport=transport(sandbox))
    with TestClient(app) as client:
        body = wait_for_state(client, "ok")
    [hook] = sandbox.world.webhooks
    assert body["subscription"]["webhook_id"] == hook.id and body["subscription"]["attempts"] == 1
    assert body["status"] == "ready"


def _subscription_ok_gauge(client: TestClient) -> float:
    """The value of ``receiver_subscription_ok`` on the app's /metrics."""
    [line] = [x for x in client.get("/metrics").text.splitlines() if x.startswith("receiver_subscription_ok ")]
    return float(line.split()[1])


def test_dyte_down_at_startup_does_not_block_readiness(sandbox, settings):
    """With Dyte unreachable, /readyz stays 200 with state retrying, then turns ok once Dyte is back."""
    flaky = FlakyTransport(transport(sandbox))
    app = build_service_app(service_settings(settings), run_worker=False, dyte_transport=flaky)
    with TestClient(app) as client:
        body = wait_for_state(client, "retrying")
        assert "ConnectError" in body["subscription"]["last_error"]
        assert body["status"] == "ready"
        assert _subscription_ok_gauge(client) == 0.0
        flaky.down = False
        body = wait_for_state(client, "ok")
        assert _subscription_ok_gauge(client) == 1.0
    assert flaky.refused >= 2
    assert body["subscription"]["attempts"] >= 2 and body["subscription"]["last_error"] is None
    [hook] = sandbox.world.webhooks
    assert body["subscription"]["webhook_id"] == hook.id


def test_startup_disabled_by_setting_or_missing_public_url(sandbox, settings):
    """SUBSCRIPTION_ENSURE_ON_START=false (or no PUBLIC_URL) leaves the state disabled and calls nothing."""
    for s in (
        service_settings(settings, subscription_ensure_on_start=False),
        service_settings(settings, public_url=None),
    ):
        app = build_service_app(s, run_worker=False, dyte_transport=transport(sandbox))
        with TestClient(app) as client:
            time.sleep(0.1)
            body = client.get("/readyz").json()
        assert body["subscription"]["state"] == "disabled" and body["subscription"]["reason"]
    assert sandbox.calls == []


def test_startup_bad_credentials_is_error_state(sandbox, settings):
    """A 401 from Dyte is a permanent error: state error, readiness unaffected."""
    app = build_service_app(
        service_settings(settings, dyte_api_key="wrong"), run_worker=False, dyte_transport=transport(sandbox)
    )
    with TestClient(app) as client:
        body = wait_for_state(client, "error")
    assert (
        "ProviderAuthError" in body["subscription"]["last_error"] and "wrong" not in body["subscription"]["last_error"]
    )


def test_enforce_webhook_id_refuses_unknown_subscriptions(sandbox, settings, signing_key):
    """With SUBSCRIPTION_ENFORCE_WEBHOOK_ID, a delivery from an unknown webhook id gets 403 and ours gets 200."""
    s = service_settings(settings, subscription_enforce_webhook_id=True)
    app = build_service_app(s, run_worker=False, dyte_transport=transport(sandbox))
    body = compact({"event": "meeting.started", "meeting": {"id": "m-1", "sessionId": "s-1"}})
    with TestClient(app) as client:
        webhook_id = wait_for_state(client, "ok")["subscription"]["webhook_id"]
        refused = post_signed(client, body, signing_key, webhook_id="not-ours")
        accepted = post_signed(client, body, signing_key, webhook_id=webhook_id)
    assert refused.status_code == 403 and refused.json()["error"] == "unknown_subscription"
    assert accepted.status_code == 200, accepted.text


def test_managed_webhook_ids_cache_refreshes_at_most_every_few_seconds(sandbox, engine):
    """The allowed-ids cache re-reads the table only after max_age_seconds, and at once on reload()."""
    now = [100.0]
    cache = ManagedWebhookIds(engine, max_age_seconds=5.0, clock=lambda: now[0])
    assert cache() == set()
    result = ensure(sandbox, engine)
    assert cache() == set()  # still cached
    now[0] += 5.0
    assert cache() == {result.webhook_id}
    sandbox.world.webhooks.clear()
    second = ensure(sandbox, engine)
    assert cache.reload() == {second.webhook_id}
