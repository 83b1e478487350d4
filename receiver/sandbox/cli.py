"""``receiver sandbox``: run a local Dyte or RealtimeKit fake (REST API + signed webhooks)."""

from __future__ import annotations

import asyncio
import os
import shlex
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import click

from receiver.providers.dyte.signature import generate_private_key, load_private_key, private_key_pem
from receiver.sandbox.app import RestFaults, SandboxState
from receiver.sandbox.scenario import build_scenario, demo_world
from receiver.sandbox.server import start_sandbox_in_thread
from receiver.sandbox.webhooks import FaultPlan, deliver, events_for, for_webhook
from receiver.sandbox.world import WEBHOOK_EVENTS, SandboxWebhook, World

__all__ = ["sandbox_command", "start_sandbox_in_thread", "load_or_create_key", "export_lines"]


def load_or_create_key(path: Path | None):
    """Load the RSA private key PEM at ``path``; create and save one (mode 0600) if missing.

    With ``path`` None a fresh key is generated and not saved.
    """
    if path is None:
        return generate_private_key()
    if path.exists():
        return load_private_key(path.read_bytes())
    key = generate_private_key()
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(private_key_pem(key))
    return key


def export_lines(environment: dict[str, str]) -> list[str]:
    """``export NAME=value`` lines (values shell-quoted), one per variable, in the given order."""
    return [f"export {name}={shlex.quote(value)}" for name, value in environment.items()]


def _probability(ctx: click.Context, param: click.Parameter, value: float) -> float:
    if not 0.0 <= value <= 1.0:
        raise click.BadParameter("must be between 0 and 1")
    return value


@click.command("sandbox")
@click.option(
    "--provider",
    type=click.Choice(["dyte", "realtimekit"], case_sensitive=False),
    default="dyte",
    show_default=True,
    help="API to speak: dyte (/v2, HTTP Basic, dyte-* webhook headers) or realtimekit (Cloudflare paths, "
    "Bearer token, Cloudflare error envelope, rtk-* webhook headers).",
)
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to listen on.")
@click.option("--port", default=8787, show_default=True, type=int, help="Port to listen on (0 = any free port).")
@click.option(
    "--seed", default=7, show_default=True, type=int, help="Seed of the generated scenario and of the fault draws."
)
@click.option(
    "--sessions",
    default=3,
    show_default=True,
    type=click.IntRange(min=0),
    help="Sessions in the generated scenario (ignored with --demo).",
)
@click.option(
    "--participants",
    default=24,
    show_default=True,
    type=click.IntRange(min=0),
    help="Total peers (connections) over all sessions, at least --sessions (ignored with --demo).",
)
@click.option(
    "--demo/--no-demo",
    default=False,
    show_default=True,
    help="Serve the small hand-scripted demo world instead of a generated scenario.",
)
@click.option(
    "--recordings/--no-recordings", default=True, show_default=True, help="Give generated sessions recordings."
)
@click.option(
    "--livestreams/--no-livestreams", default=True, show_default=True, help="Give generated sessions livestreams."
)
@click.option(
    "--org-id",
    default="sandbox-org",
    show_default=True,
    help="Dyte organisation id: the HTTP Basic user name, also written into payloads.",
)
@click.option("--api-key", default="sandbox-key", show_default=True, help="Dyte API key: the HTTP Basic password.")
@click.option(
    "--account-id",
    default="sandbox-account",
    show_default=True,
    help="RealtimeKit: the Cloudflare account id in the REST paths.",
)
@click.option(
    "--app-id",
    default="sandbox-app",
    show_default=True,
    help="RealtimeKit: the app id in the REST paths, also written into payloads.",
)
@click.option(
    "--api-token", default="sandbox-token", show_default=True, help="RealtimeKit: the accepted Bearer API token."
)
@click.option(
    "--key-file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="RSA private key PEM used to sign webhooks; loaded if it exists, else created there (0600). Without it a throw-away key is used.",
)
@click.option(
    "--deliver-to",
    metavar="URL",
    default=None,
    help="After start, POST the world's webhooks (signed) to this receiver URL, registering it as a webhook subscription.",
)
@click.option(
    "--drop",
    default=0.0,
    show_default=True,
    type=float,
    callback=_probability,
    help="Probability that a webhook delivery is never sent.",
)
@click.option(
    "--duplicate",
    default=0.0,
    show_default=True,
    type=float,
    callback=_probability,
    help="Probability that a delivery is sent twice with the same dyte-uuid (rtk-uuid).",
)
@click.option(
    "--reorder",
    default=0.0,
    show_default=True,
    type=float,
    callback=_probability,
    help="Probability that a delivery is held back and sent after all others.",
)
@click.option(
    "--delay",
    "delay_seconds",
    default=0.0,
    show_default=True,
    type=float,
    help="Seconds to pause before sending the held-back (re-ordered) deliveries.",
)
@click.option(
    "--concurrency",
    default=8,
    show_default=True,
    type=click.IntRange(min=1),
    help="Webhook requests in flight at once.",
)
@click.option(
    "--error-rate",
    default=0.0,
    show_default=True,
    type=float,
    callback=_probability,
    help="Probability that a REST call answers 500.",
)
@click.option(
    "--rate-limit-rate",
    default=0.0,
    show_default=True,
    type=float,
    callback=_probability,
    help="Probability that a REST call answers 429 with retry-after.",
)
@click.option(
    "--timeout-rate",
    default=0.0,
    show_default=True,
    type=float,
    callback=_probability,
    help="Probability that a REST call stalls --timeout-seconds before answering.",
)
@click.option(
    "--timeout-seconds",
    default=30.0,
    show_default=True,
    type=float,
    help="How long a timeout fault stalls, in seconds.",
)
@click.option(
    "--retry-after",
    "retry_after_seconds",
    default=1,
    show_default=True,
    type=click.IntRange(min=0),
    help="Value of the retry-after header (seconds) on 429 answers.",
)
@click.option(
    "--exit-after-delivery",
    is_flag=True,
    default=False,
    help="With --deliver-to: stop once the webhooks are delivered instead of serving until Ctrl-C.",
)
def sandbox_command(
    provider: str,
    host: str,
    port: int,
    seed: int,
    sessions: int,
    participants: int,
    demo: bool,
    recordings: bool,
    livestreams: bool,
    org_id: str,
    api_key: str,
    account_id: str,
    app_id: str,
    api_token: str,
    key_file: Path | None,
    deliver_to: str | None,
    drop: float,
    duplicate: float,
    reorder: float,
    delay_seconds: float,
    concurrency: int,
    error_rate: float,
    rate_limit_rate: float,
    timeout_rate: float,
    timeout_seconds: float,
    retry_after_seconds: int,
    exit_after_delivery: bool,
) -> None:
    """Run a local provider fake: its REST API, the webhook public key, and signed webhooks.

    Prints the environment variables that point a receiver at it (PROVIDER,
    the REST base URL, credentials, key document URLs) as `export` lines.
    """
    provider = provider.lower()
    payload_org = app_id if provider == "realtimekit" else org_id
    try:
        world: World = (
            demo_world(org_id=payload_org)
            if demo
            else build_scenario(seed, sessions, participants, recordings, livestreams, org_id=payload_org)
        )
    except ValueError as exc:
        raise click.UsageError(str(exc)) from exc
    key = load_or_create_key(key_file)
    state = SandboxState(
        world=world,
        private_key=key,
        org_id=org_id,
        api_key=api_key,
        provider=provider,
        account_id=account_id,
        app_id=app_id,
        api_token=api_token,
        rest_faults=RestFaults(
            error_rate=error_rate,
            rate_limit_rate=rate_limit_rate,
            timeout_rate=timeout_rate,
            timeout_seconds=timeout_seconds,
            retry_after_seconds=retry_after_seconds,
            seed=seed,
        ),
    )
    hook = None
    if deliver_to:
        now = datetime.now(UTC)
        hook = SandboxWebhook(
            id=str(uuid.uuid4()),
            name="sandbox --deliver-to",
            url=deliver_to,
            events=list(WEBHOOK_EVENTS),
            enabled=True,
            created_at=now,
            updated_at=now,
        )
        world.webhooks.append(hook)

    base_url, stop = start_sandbox_in_thread(state, host, port)
    try:
        peers = len(world.all_peers())
        dialect = state.dialect
        click.echo(f"{dialect.label} sandbox listening on {base_url}")
        click.echo(f"  REST API          : {base_url}{dialect.prefix(state)}")
        if provider == "realtimekit":
            click.echo(f"  account / app     : {account_id} / {app_id}")
            click.echo(f"  API token         : {api_token}   (Authorization: Bearer)")
        else:
            click.echo(f"  org id / api key  : {org_id} / {api_key}   (HTTP Basic)")
        click.echo(f"  webhook public key: {base_url}/.well-known/webhooks.json")
        click.echo(
            f"  world             : {len(world.meetings)} meeting(s), {len(world.sessions)} session(s), "
            f"{peers} peer(s), {len(world.recordings)} recording(s), {len(world.livestreams)} livestream(s)"
        )
        if key_file:
            click.echo(f"  signing key file  : {key_file}")
        click.echo("Point a receiver at it:")
        for line in export_lines(state.receiver_environment(base_url)):
            click.echo(f"  {line}")
        if deliver_to and hook is not None:
            deliveries = for_webhook(events_for(world), hook)
            click.echo(f"Delivering {len(deliveries)} webhook(s) to {deliver_to} (webhook id {hook.id}) ...")
            faults = FaultPlan(drop=drop, duplicate=duplicate, reorder=reorder, delay_seconds=delay_seconds, seed=seed)
            stats = asyncio.run(
                deliver(
                    deliveries,
                    deliver_to,
                    key,
                    faults=faults,
                    concurrency=concurrency,
                    webhook_id=hook.id,
                    header_prefix=dialect.header_prefix,
                )
            )
            click.echo(
                f"  sent={stats.sent} dropped={stats.dropped} duplicated={stats.duplicated} "
                f"reordered={stats.reordered} attempts={stats.attempts} failed={stats.failed} "
                f"{dict(stats.failed_status) if stats.failed else ''}".rstrip()
            )
            if exit_after_delivery:
                return
        click.echo("Press Ctrl-C to stop.")
        while True:
            time.sleep(1)
    except KeyboardInterrupt:
        click.echo("Stopping.")
    finally:
        stop()
