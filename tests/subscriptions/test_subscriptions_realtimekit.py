"""The managed webhook on RealtimeKit (PROVIDER=realtimekit), against the RealtimeKit sandbox: create, update, prune.

The managed webhook points at PUBLIC_URL/webhooks/realtimekit; every call
goes to the Cloudflare paths with the Bearer token; errors name the
RealtimeKit settings, never the token.
"""

from __future__ import annotations

import json
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import click
import httpx
import pytest
from click.testing import CliRunner
from starlette.testclient import TestClient

from receiver.cli.context import Context
from receiver.cli.errors import ExitCode
from receiver.cli.subscriptions import subscribe, subscriptions
from receiver.providers.dyte.signature import generate_private_key
from receiver.sandbox import SandboxState, SandboxWebhook, World, create_sandbox_app
from receiver.service import build_service_app
from receiver.settings import ALL_EVENTS, Settings

PUBLIC_URL = "https://hooks.example.com"
TARGET = PUBLIC_URL + "/webhooks/realtimekit"
PREFIX = "/client/v4/accounts/sandbox-account/realtime/kit/sandbox-app"
WRITES = {"POST", "PUT", "PATCH", "DELETE"}


@pytest.fixture(scope="module")
def sandbox_key():
    return generate_private_key()


@pytest.fixture
def sandbox(sandbox_key) -> SandboxState:
    """An empty RealtimeKit sandbox app: no webhooks yet."""
    return SandboxState(world=World(), private_key=sandbox_key, provider="realtimekit")


def rtk_settings(db_settings: Settings, **overrides: Any) -> Settings:
    values = db_settings.model_dump()
    values.update(
        provider="realtimekit",
        public_url=PUBLIC_URL,
        realtimekit_api_base_url="http://sandbox.test/client/v4",
        realtimekit_account_id="sandbox-account",
        realtimekit_app_id="sandbox-app",
        realtimekit_api_token="sandbox-token",
        subscription_retry_base_seconds=0.05,
        subscription_retry_max_seconds=0.2,
    )
    values.update(overrides)
    return Settings(**values)


def add_hook(state: SandboxState, *, name: str = "receiver", url: str = TARGET, **fields: Any) -> SandboxWebhook:
    when = datetime.now(UTC) - timedelta(minutes=fields.pop("age_minutes", 60))
    hook = SandboxWebhook(
        id=str(uuid.uuid4()),
        name=name,
        url=url,
        events=list(fields.pop("events", ALL_EVENTS)),
        enabled=fields.pop("enabled", True),
        created_at=when,
        updated_at=when,
    )
    state.world.webhooks.append(hook)
    return hook


def writes(state: SandboxState) -> list[tuple[str, str, int]]:
    return [call for call in state.calls if call[0] in WRITES]


@click.group()
def root() -> None:
    """A bare root group for the registered commands."""


root.add_command(subscribe)
root.add_command(subscriptions)


def run_cli(args: list[str], settings: Settings, state: SandboxState | None = None):
    obj = Context(settings)
    if state is not None:
        obj.dyte_transport = httpx.ASGITransport(app=create_sandbox_app(state))
    try:
        return CliRunner().invoke(root, args, obj=obj)
    finally:
        obj.close()  # what the `receiver` group does when a command ends


def test_subscribe_creates_the_webhook_at_the_realtimekit_url_then_is_idempotent(sandbox, settings):
    s = rtk_settings(settings)
    first = run_cli(["subscribe"], s, sandbox)
    assert first.exit_code == 0, first.output
    [hook] = sandbox.world.webhooks
    assert hook.url == TARGET and hook.enabled and set(hook.events) == set(ALL_EVENTS)
    assert f"created webhook {hook.id} 'receiver' -> {TARGET} (9 events)" in first.output
    assert [(m, p, st) for m, p, st in writes(sandbox)] == [("POST", f"{PREFIX}/webhooks", 201)]
    sandbox.calls.clear()
    second = run_cli(["subscribe"], s, sandbox)
    assert second.exit_code == 0 and "nothing to do" in second.output and writes(sandbox) == []


def test_changed_events_and_disabled_webhook_are_fixed_with_one_patch(sandbox, settings):
    hook = add_hook(sandbox, events=("meeting.started",), enabled=False)
    result = run_cli(["subscribe"], rtk_settings(settings), sandbox)
    assert result.exit_code == 0, result.output
    assert [(m, p) for m, p, _ in writes(sandbox)] == [("PATCH", f"{PREFIX}/webhooks/{hook.id}")]
    assert hook.enabled is True and set(hook.events) == set(ALL_EVENTS)
    assert f"updated webhook {hook.id}" in result.output and "enabled false -> true" in result.output


def test_prune_deletes_our_webhook_still_pointing_at_the_dyte_route(sandbox, settings):
    """After the move, a webhook named 'receiver' at /webhooks/dyte is ours elsewhere: reported, pruned on request."""
    ours_here = add_hook(sandbox)
    old_route = add_hook(sandbox, url=PUBLIC_URL + "/webhooks/dyte")
    theirs = add_hook(sandbox, name="analytics", url="https://analytics.example.com/hook")
    s = rtk_settings(settings)
    without = run_cli(["subscribe"], s, sandbox)
    assert without.exit_code == 0 and old_route.id in without.output and writes(sandbox) == []
    pruned = run_cli(["subscribe", "--prune"], s, sandbox)
    assert pruned.exit_code == 0, pruned.output
    assert [(m, p) for m, p, _ in writes(sandbox)] == [("DELETE", f"{PREFIX}/webhooks/{old_route.id}")]
    assert {h.id for h in sandbox.world.webhooks} == {ours_here.id, theirs.id}


def test_subscriptions_list_marks_the_one_at_the_realtimekit_url(sandbox, settings):
    here = add_hook(sandbox)
    dyte_route = add_hook(sandbox, url=PUBLIC_URL + "/webhooks/dyte")
    result = run_cli(["subscriptions", "list", "--format", "json"], rtk_settings(settings), sandbox)
    assert result.exit_code == 0, result.output
    rows = {row["id"]: row for row in json.loads(result.output)}
    assert rows[here.id]["points_here"] is True and rows[dyte_route.id]["points_here"] is False
    table = run_cli(["subscriptions", "list"], rtk_settings(settings), sandbox)
    assert table.exit_code == 0 and "RealtimeKit webhooks" in table.output


def test_missing_and_refused_credentials_name_the_realtimekit_settings(sandbox, settings):
    missing = run_cli(["subscribe"], rtk_settings(settings, realtimekit_app_id=None, realtimekit_api_token=None))
    assert missing.exit_code == ExitCode.CONFIG
    assert missing.output.strip() == (
        "error: set REALTIMEKIT_APP_ID, REALTIMEKIT_API_TOKEN to manage the RealtimeKit webhook subscription"
    )
    listing = run_cli(["subscriptions", "list"], rtk_settings(settings, realtimekit_account_id=None))
    assert (
        listing.exit_code == ExitCode.CONFIG and "set REALTIMEKIT_ACCOUNT_ID to list the RealtimeKit" in listing.output
    )
    refused = run_cli(["subscribe"], rtk_settings(settings, realtimekit_api_token="cf-WRONG-token"), sandbox)
    assert refused.exit_code == ExitCode.PROVIDER_REFUSED
    assert refused.output.strip() == (
        "error: RealtimeKit refused the credentials (HTTP 403): "
        "check REALTIMEKIT_ACCOUNT_ID, REALTIMEKIT_APP_ID and REALTIMEKIT_API_TOKEN"
    )
    assert sandbox.world.webhooks == []


def test_serve_ensures_the_realtimekit_subscription_at_startup(sandbox, settings):
    app = build_service_app(
        rtk_settings(settings), run_worker=False, dyte_transport=httpx.ASGITransport(app=create_sandbox_app(sandbox))
    )
    with TestClient(app) as client:
        body: dict[str, Any] = {}
        for _ in range(500):
            body = client.get("/readyz").json()
            if body["subscription"]["state"] == "ok":
                break
            time.sleep(0.02)
    [hook] = sandbox.world.webhooks
    assert body["subscription"]["state"] == "ok" and body["subscription"]["webhook_id"] == hook.id
    assert body["subscription"]["url"] == TARGET and hook.url == TARGET
