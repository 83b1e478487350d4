"""Secrets never leak: planted credentials go through every output path and appear in none of them.

Planted: the Dyte API key (DYTE_API_KEY) and the HTTP Basic ``Authorization``
value built from it, an inbound ``Authorization`` header on webhook
deliveries, a livestream ``streamKey`` in webhook bodies, and a storage
signature (``X-Amz-Signature``) in a recording download URL.

Exercised: deliveries over HTTP (accepted and refused), the worker with
reconciliation against a Dyte API answering 401 that echoes the
``Authorization`` header (and the key) back, direct Dyte calls answering
401/500 the same way, ``receiver events show|list``, ``receiver reconcile
list``, ``receiver report recordings`` (which refreshes the expired URL
through the same echoing API), ``receiver --help``, /metrics, /healthz and
/readyz.

Captured: structlog JSON (configured with
:func:`receiver.logging_setup.configure_logging` into the captured stdout),
exception messages and tracebacks, stored error columns, CLI stdout and
stderr, HTTP response bodies.

Decision on the signed storage URL: recording download URLs are meant for
analysts, so ``report recordings`` (and ``events show``, which prints the
stored payload) may show them; logs and error messages may not.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import sys
import traceback
import uuid

import httpx
import pytest
import structlog
from click.testing import CliRunner
from helpers import app_client, compact, signed_headers, stored_events
from pydantic import SecretStr
from sqlalchemy import insert, select
from sqlalchemy.orm import Session as OrmSession

from receiver import redaction
from receiver import service as server
from receiver.cli.main import cli
from receiver.db.engine import make_engine
from receiver.db.models import ReconcileTask, Recording
from receiver.logging_setup import configure_logging
from receiver.processing import worker as worker_module
from receiver.providers.dyte.client import DyteAPIError, DyteClient
from receiver.retry import RetryPolicy
from receiver.service import build_worker

ORG_ID = "org-planted-0001"
API_KEY = "dyteKEY-PLANTED-7c1e0b9a44d2"
BASIC_TOKEN = base64.b64encode(f"{ORG_ID}:{API_KEY}".encode()).decode()
AUTHORIZATION = f"Basic {BASIC_TOKEN}"
INBOUND_TOKEN = "PLANTED-inbound-bearer-5f2d8e"
STREAM_KEY = "live_PLANTED_streamkey_93ab71c0"
AMZ_SIGNATURE = "PLANTEDamzsig4f6c0e1d9b8a7f6e5d4c3b2a1"
SIGNED_URL = (
    "https://dyte-recordings.s3.ap-south-1.amazonaws.com/org/rec-1.mp4?X-Amz-Algorithm=AWS4-HMAC-SHA256"
    f"&X-Amz-Credential=AKIAEXAMPLE%2F20260101%2Fap-south-1%2Fs3%2Faws4_request&X-Amz-Expires=604800&X-Amz-Signature={AMZ_SIGNATURE}"
)
NEVER_ANYWHERE = {
    "API key": API_KEY,
    "Authorization (Basic token)": BASIC_TOKEN,
    "inbound Authorization": INBOUND_TOKEN,
    "stream key": STREAM_KEY,
}


@pytest.fixture
def isolated_logging():
    """Restore the root logger, structlog's configuration and the registered secrets after the test."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    config = structlog.get_config()
    secrets = set(redaction._secret_values)
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    structlog.configure(**config)
    redaction._secret_values.clear()
    redaction._secret_values.update(secrets)


class EchoingDyte:
    """A Dyte API that refuses every call and echoes the Authorization header and the key back."""

    def __init__(self, status: int) -> None:
        self.status = status
        self.seen_authorization: list[str] = []

    def handler(self, request: httpx.Request) -> httpx.Response:
        auth = request.headers.get("authorization", "")
        self.seen_authorization.append(auth)
        password = (
            base64.b64decode(auth.split(" ", 1)[1]).decode().split(":", 1)[1] if auth.startswith("Basic ") else ""
        )
        body = {
            "success": False,
            "error": {"message": f"invalid credentials {auth} (key {password})"},
            "authorization": auth,
        }
        return httpx.Response(self.status, json=body, headers={"www-authenticate": auth, "x-echo-key": password})

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.handler)


def deliveries(session_id: str) -> list[bytes]:
    """The webhook bodies carrying the planted stream key and signed URL."""
    meeting = {"id": "m-secret", "sessionId": session_id, "startedAt": "2026-01-01T10:00:00Z"}
    return [
        compact({"event": "meeting.started", "meeting": meeting}),
        compact(
            {
                "event": "meeting.participantJoined",
                "meeting": meeting,
                "participant": {"peerId": "peer-1", "userDisplayName": "Ada", "joinedAt": "2026-01-01T10:00:05Z"},
            }
        ),
        compact(
            {
                "event": "recording.statusUpdate",
                "meeting": meeting,
                "recording": {
                    "id": "rec-secret",
                    "status": "UPLOADED",
                    "downloadUrl": SIGNED_URL,
                    "audioDownloadUrl": SIGNED_URL.replace("rec-1.mp4", "rec-1.mp3"),
                    "downloadUrlExpiry": "2020-01-01 00:00:00.000000Z",  # expired: `report recordings` refreshes it
                    "startedTime": "2026-01-01 10:01:00.000000Z",
                    "stoppedTime": "2026-01-01 10:30:00.000000Z",
                },
            }
        ),
        compact(
            {
                "event": "livestreaming.statusUpdate",
                "streamId": "ls-secret",
                "status": "LIVE",
                "streamKey": STREAM_KEY,
                "ingestServer": f"rtmps://live.example.com:443/app/{STREAM_KEY}",
            }
        ),
        compact(
            {
                "event": "meeting.ended",
                "meeting": {**meeting, "endedAt": "2026-01-01T11:00:00Z"},
                "reason": "ALL_PARTICIPANTS_LEFT",
            }
        ),
    ]


def _exception_text(exc: BaseException) -> str:
    return "\n".join([str(exc), repr(exc), repr(exc.args), *traceback.format_exception(exc)])


def test_planted_secrets_never_appear_in_logs_errors_cli_or_http(
    settings, signing_key, capsys, monkeypatch, isolated_logging
):
    """Secrets planted in settings, headers, bodies and Dyte's echoed errors appear in no log, error, CLI output or HTTP answer."""
    configure_logging("json", "DEBUG", sys.stdout)
    creds = settings.model_copy(
        update={
            "dyte_org_id": ORG_ID,
            "dyte_api_key": SecretStr(API_KEY),
            "reconcile_enabled": True,
            "reconcile_delay_seconds": 0.0,
        }
    )
    engine = make_engine(creds.database_url)
    http_texts: list[str] = []
    errors: list[str] = []
    cli_out: list[str] = []
    cli_logs: list[str] = []
    dyte = EchoingDyte(401)
    try:
        # 1. Deliveries over HTTP, accepted and refused, each carrying an inbound Authorization header.
        with app_client(creds) as client:
            bodies = deliveries(f"s-{uuid.uuid4().hex[:8]}")
            for body in bodies:
                headers = signed_headers(body, signing_key) | {
                    "authorization": f"Bearer {INBOUND_TOKEN}",
                    "x-api-key": API_KEY,
                }
                response = client.post("/webhooks/dyte", content=body, headers=headers)
                assert response.status_code == 200, response.text
                http_texts.append(response.text)
            livestream = bodies[3]
            refused = [
                (
                    livestream,
                    {
                        "content-type": "application/json",
                        "dyte-signature": "QUJD",
                        "authorization": f"Bearer {INBOUND_TOKEN}",
                    },
                ),
                (
                    livestream[:-20],
                    signed_headers(livestream[:-20], signing_key),
                ),  # signed but truncated: kept, flagged
                (livestream, {"content-type": "text/plain", "authorization": AUTHORIZATION}),
                (
                    compact([{"streamKey": STREAM_KEY}]),
                    signed_headers(compact([{"streamKey": STREAM_KEY}]), signing_key),
                ),
                (
                    compact(
                        {
                            "event": "livestreaming.statusUpdate",
                            "streamId": {"k": 1},
                            "status": 5,
                            "streamKey": STREAM_KEY,
                        }
                    ),
                    None,
                ),
            ]
            for body, headers in refused:
                response = client.post(
                    "/webhooks/dyte", content=body, headers=headers or signed_headers(body, signing_key)
                )
                assert response.status_code < 500
                http_texts.append(response.text)
            for path in ("/metrics", "/healthz", "/readyz"):
                http_texts.append(client.get(path).text)

        # 2. The worker, reconciling against a Dyte API that answers 401 and echoes the credentials.
        result = asyncio.run(build_worker(creds, engine, transport=dyte.transport()).run(once=True))
        assert result.done == len(bodies) and result.reconciled >= 3, result
        assert AUTHORIZATION in dyte.seen_authorization  # the API really saw (and echoed) the credentials
        with OrmSession(engine) as db:
            task_errors = [t.last_error or "" for t in db.execute(select(ReconcileTask)).scalars()]
        assert task_errors and all("401" in e for e in task_errors), task_errors
        errors += task_errors
        errors += [f"{row.parse_error} {row.last_error}" for row in stored_events(engine)]

        # 3. Direct Dyte calls answering 401 and 500 (retried), echoing the Authorization header.
        async def direct(status: int) -> DyteAPIError:
            echo = EchoingDyte(status)
            async with DyteClient(
                creds.dyte_api_base_url,
                ORG_ID,
                API_KEY,
                transport=echo.transport(),
                retry=RetryPolicy(base_seconds=0, max_seconds=0, max_attempts=2),
            ) as client:
                try:
                    await client.get_recording("rec-secret")
                except DyteAPIError as exc:
                    assert echo.seen_authorization and repr(client)
                    return exc
            raise AssertionError("the call should have failed")

        for status in (401, 500):
            exc = asyncio.run(direct(status))
            assert str(status) in str(exc)
            errors.append(_exception_text(exc))
            errors.append(getattr(exc, "body_excerpt", ""))
        errors += [repr(creds), str(creds), creds.model_dump_json()]

        # 4. The CLI, its own logging (JSON to stderr) included; `report recordings` refreshes the expired URL via the echoing API.
        original_client = server.build_dyte_client
        monkeypatch.setattr(
            server, "build_dyte_client", lambda s, transport=None: original_client(s, transport=dyte.transport())
        )
        env = {
            "DATABASE_URL": creds.database_url,
            "DYTE_ORG_ID": ORG_ID,
            "DYTE_API_KEY": API_KEY,
            "LOG_FORMAT": "json",
            "LOG_LEVEL": "DEBUG",
        }
        with OrmSession(engine) as db:
            ids = [str(row.id) for row in stored_events(engine)]
            assert db.get(Recording, "rec-secret").download_url == SIGNED_URL
        commands = [
            ["--help"],
            ["events", "list", "--format", "json"],
            ["reconcile", "list", "--format", "json"],
            ["report", "recordings", "--format", "json"],
            ["report", "recordings"],
        ]
        commands += [["events", "show", event_id] for event_id in ids]
        outputs = {}
        for args in commands:
            outcome = CliRunner().invoke(cli, args, env=env, catch_exceptions=False)
            assert outcome.exit_code == 0, (args, outcome.output)
            cli_out.append(outcome.stdout)
            cli_logs.append(outcome.stderr)
            outputs[" ".join(args)] = outcome.stdout
        assert any("recording_refresh_failed" in text for text in cli_logs)  # the refresh hit the echoing 401
    finally:
        engine.dispose()
        configure_logging("json", "DEBUG", sys.stdout)  # the CLI pointed logging at its own (closed) streams

    captured = capsys.readouterr()
    logs = "\n".join([captured.out, captured.err, *cli_logs])
    assert (
        '"event":"reconcile_failed"' in logs and '"event":"request"' in logs
    )  # the capture did capture (compact JSON lines)
    everything = "\n".join([logs, *errors, *cli_out, *http_texts])
    for what, secret in NEVER_ANYWHERE.items():
        assert secret not in everything, f"the {what} leaked"
    # The signed storage URL: in the analysts' report, never in logs or error messages.
    assert SIGNED_URL in json.dumps(json.loads(outputs["report recordings --format json"]))
    assert AMZ_SIGNATURE not in logs
    assert all(AMZ_SIGNATURE not in text for text in errors + http_texts)


def test_events_show_redacts_stream_keys_wherever_the_payload_puts_them(settings, signing_key, isolated_logging):
    """`receiver events show` redacts streamKey/ingestServer/authorization-like keys at any depth, in objects and lists."""
    payload = {
        "event": "livestreaming.statusUpdate",
        "streamId": "ls-2",
        "status": "LIVE",
        "streamKey": STREAM_KEY,
        "livestream": {
            "stream_key": STREAM_KEY,
            "ingest_server": f"rtmps://x/app/{STREAM_KEY}",
            "rtmp": [{"streamKey": STREAM_KEY}],
        },
        "headers": {"Authorization": AUTHORIZATION, "x-api-key": API_KEY},
    }
    body = compact(payload)
    delivery_id = f"show-{uuid.uuid4().hex[:8]}"
    with app_client(settings) as client:
        assert (
            client.post(
                "/webhooks/dyte", content=body, headers=signed_headers(body, signing_key, delivery_id=delivery_id)
            ).status_code
            == 200
        )
    outcome = CliRunner().invoke(
        cli, ["events", "show", delivery_id], env={"DATABASE_URL": settings.database_url, "LOG_LEVEL": "WARNING"}
    )
    assert outcome.exit_code == 0, outcome.output
    shown = json.loads(outcome.stdout)
    assert shown["payload"]["streamId"] == "ls-2" and shown["payload"]["streamKey"] == redaction.REDACTED
    for what, secret in NEVER_ANYWHERE.items():
        if what != "inbound Authorization":
            assert secret not in outcome.output, f"the {what} leaked"


def test_a_database_error_while_processing_does_not_copy_the_signed_url_into_errors(
    settings, signing_key, capsys, monkeypatch, isolated_logging
):
    """A database error while applying a recording event records the failure without the signed URL among its parameters."""
    real_apply = worker_module.apply_event

    def apply_then_fail(db, event, **kwargs):
        real_apply(db, event, **kwargs)
        # Stands for any database error on a statement that carries the URL (NOT NULL status violated).
        db.execute(
            insert(Recording).values(
                recording_id="rec-broken",
                status=None,
                download_url=event.recording.download_url,
                updated_at=kwargs["now"],
            )
        )

    monkeypatch.setattr(worker_module, "apply_event", apply_then_fail)
    configure_logging("json", "DEBUG", sys.stdout)
    body = deliveries("s-db-error")[2]
    with app_client(settings) as client:
        assert client.post("/webhooks/dyte", content=body, headers=signed_headers(body, signing_key)).status_code == 200
    engine = make_engine(settings.database_url)
    try:
        result = asyncio.run(worker_module.Worker(settings, engine).run(once=True))
        [row] = stored_events(engine)
    finally:
        engine.dispose()
    assert result.failed >= 1 and row.status == "failed" and "IntegrityError" in row.last_error
    logs = capsys.readouterr().out
    assert "event_failed" in logs
    assert AMZ_SIGNATURE not in row.last_error
    assert AMZ_SIGNATURE not in logs
