"""The outbound attendance webhook (issue #21 item 5): outbox, Standard Webhooks signature, retries, dead, off.

A reconciled session of the sandbox's demo world is enqueued in the
reconciliation's transaction and POSTed to an in-process receiver
(``httpx.MockTransport``) that checks the signature twice: by the spec's
formula (hmac) and with the ``standardwebhooks`` package's ``verify``.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import time
from datetime import UTC, datetime, timedelta

import httpx
import pytest
import structlog.testing
from sqlalchemy import select, update
from sqlalchemy.orm import Session as OrmSession
from standardwebhooks.webhooks import Webhook
from test_reconcile import apply_all, client_for, sandbox

from receiver.db.models import OutboundDelivery, ParticipantInterval, ReconcileTask
from receiver.processing.outbound import enqueue_session_attendance
from receiver.processing.outbound_sender import OutboundSender, signature_headers
from receiver.processing.reconcile import Reconciler
from receiver.reports.queries import ReportFilter, attendance_report
from receiver.retry import RetryPolicy
from receiver.sandbox import demo_world, events_for
from receiver.service import build_worker
from receiver.settings import Settings

SECRET = "whsec_" + base64.b64encode(b"outbound-test-key-of-32-bytes!!!").decode()
# A receiver URL carrying a token in its path, as many do: it must not reach logs or stored errors.
URL = "https://sheets.example/hooks/tok-9f8e7d6c5b4a"


class Receiver:
    """An in-process webhook receiver: answers from a script of status codes (then 200), keeps what it got."""

    def __init__(self, *statuses: int | Exception) -> None:
        self.script = list(statuses)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        answer = self.script.pop(0) if self.script else 200
        if isinstance(answer, Exception):
            raise answer
        return httpx.Response(answer)

    @property
    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self)


def spec_signature(secret: str, webhook_id: str, timestamp: str, body: bytes) -> str:
    """The Standard Webhooks signature, written out from the spec: base64(HMAC-SHA256(key, id.timestamp.body))."""
    key = base64.b64decode(secret.removeprefix("whsec_"))
    digest = hmac.new(key, f"{webhook_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def reconcile_demo_session(engine, *, outbound: bool = True):
    """Apply one demo session's webhooks and reconcile everything; returns (world session, sandbox state, transport)."""
    world = demo_world()
    state, transport = sandbox(world)
    session = world.sessions[0]
    apply_all(engine, [d for d in events_for(world) if d.session_id == session.id])
    reconcile(engine, state, transport, outbound=outbound)
    return session, state, transport


def reconcile(engine, state, transport, *, outbound: bool = True) -> None:
    async def go() -> None:
        reconciler = Reconciler(
            engine, client_for(state, transport), worker_id="test", stale_session_seconds=0, outbound=outbound
        )
        while await reconciler.run_due(now=datetime.now(UTC) + timedelta(seconds=1)):
            pass
        await reconciler.aclose()

    asyncio.run(go())


def sender(engine, receiver: Receiver, *, max_attempts: int = 8) -> OutboundSender:
    policy = RetryPolicy(base_seconds=5.0, max_seconds=3600.0, max_attempts=max_attempts)
    return OutboundSender(
        engine, url=URL, secret=SECRET, worker_id="w1", retry_policy=policy, transport=receiver.transport
    )


def run_due(outbound: OutboundSender, now: datetime | None = None) -> int:
    async def go() -> int:
        try:
            return await outbound.run_due(now=now)
        finally:
            await outbound.aclose()

    return asyncio.run(go())


def deliveries(engine) -> list[OutboundDelivery]:
    with OrmSession(engine) as db:
        return list(db.execute(select(OutboundDelivery).order_by(OutboundDelivery.id)).scalars())


def test_signature_matches_the_standard_webhooks_test_vector():
    """The published example of the spec (secret, msg id, timestamp, body) gives the published signature."""
    headers = signature_headers(
        "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, '{"test": 2432232314}'
    )
    assert headers == {
        "webhook-id": "msg_p5jXN8AQM9LWM0D4loKWxJek",
        "webhook-timestamp": "1614265330",
        "webhook-signature": "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
    }


def test_a_reconciled_session_is_posted_signed_with_its_attendance_report_rows(engine):
    """One delivery per reconciled session; the receiver verifies it and gets the attendance report's rows."""
    session, _, _ = reconcile_demo_session(engine)
    [queued] = deliveries(engine)
    assert (queued.session_id, queued.status, queued.attempts) == (session.id, "pending", 0)

    receiver = Receiver()
    assert run_due(sender(engine, receiver)) == 1
    [request] = receiver.requests
    body = request.content
    headers = request.headers
    assert str(request.url) == URL and headers["content-type"] == "application/json"
    assert headers["webhook-id"] == queued.webhook_id and headers["webhook-id"].startswith("msg_")
    assert abs(int(headers["webhook-timestamp"]) - time.time()) < 300
    assert headers["webhook-signature"] == spec_signature(
        SECRET, headers["webhook-id"], headers["webhook-timestamp"], body
    )
    payload = Webhook(SECRET).verify(body, dict(headers))  # the reference implementation accepts it

    assert payload["type"] == "session.attendance"
    assert payload["data"]["session"]["session_id"] == session.id
    assert payload["data"]["session"]["ended_at"] is not None
    report = attendance_report(engine, ReportFilter(session_id=session.id))
    assert len(report) > 1
    expected = json.loads(json.dumps(report, default=lambda v: v.isoformat().replace("+00:00", "Z")))
    assert payload["data"]["attendance"] == expected

    [sent] = deliveries(engine)
    assert (sent.status, sent.attempts, sent.last_status_code, sent.last_error) == ("delivered", 1, 200, None)
    assert sent.delivered_at is not None
    assert run_due(sender(engine, Receiver())) == 0  # delivered: never sent again


def test_failures_are_retried_with_backoff_under_the_same_webhook_id(engine):
    """A 500 then a timeout then 200: three attempts, each only once its back-off has passed, one webhook-id."""
    reconcile_demo_session(engine)
    receiver = Receiver(500, httpx.ConnectTimeout("timed out"))
    start = datetime.now(UTC)

    assert run_due(sender(engine, receiver)) == 1
    [failed] = deliveries(engine)
    assert (failed.status, failed.attempts, failed.last_status_code) == ("failed", 1, 500)
    assert failed.last_error == "HTTP 500 Internal Server Error"
    wait = (failed.next_attempt_at - failed.updated_at).total_seconds()
    assert 2.5 <= wait <= 5.0  # 5 s, jittered down by at most half
    assert run_due(sender(engine, receiver), now=start + timedelta(seconds=1)) == 0  # not due yet

    assert run_due(sender(engine, receiver), now=start + timedelta(seconds=6)) == 1
    [failed] = deliveries(engine)
    assert (failed.status, failed.attempts, failed.last_status_code) == ("failed", 2, None)
    assert failed.last_error.startswith("ConnectTimeout")
    assert 5.0 <= (failed.next_attempt_at - failed.updated_at).total_seconds() <= 10.0  # doubled

    assert run_due(sender(engine, receiver), now=start + timedelta(minutes=1)) == 1
    [done] = deliveries(engine)
    assert (done.status, done.attempts, done.last_status_code) == ("delivered", 3, 200)
    assert len({r.headers["webhook-id"] for r in receiver.requests}) == 1
    assert len({r.content for r in receiver.requests}) == 1  # the same frozen body every time


def test_a_delivery_is_dead_after_the_attempt_limit(engine):
    """Every attempt refused: after OUTBOUND_WEBHOOK_MAX_ATTEMPTS the delivery is dead and no longer claimed."""
    reconcile_demo_session(engine)
    receiver = Receiver(503, 503, 503)
    later = datetime.now(UTC)
    for _ in range(2):
        later += timedelta(hours=2)
        assert run_due(sender(engine, receiver, max_attempts=2), now=later) == 1
    [dead] = deliveries(engine)
    assert (dead.status, dead.attempts, dead.last_status_code) == ("dead", 2, 503)
    assert dead.last_error == "HTTP 503 Service Unavailable" and dead.delivered_at is None
    assert run_due(sender(engine, receiver, max_attempts=2), now=later + timedelta(days=1)) == 0
    assert len(receiver.requests) == 2


def test_re_reconciliation_sends_again_only_when_the_attendance_changed(engine):
    """Same attendance: nothing new. A changed interval, or a dead last delivery: a new delivery, new webhook-id."""
    session, state, transport = reconcile_demo_session(engine)
    run_due(sender(engine, Receiver()))
    now = datetime.now(UTC)
    with OrmSession(engine) as db, db.begin():
        assert enqueue_session_attendance(db, session.id, now) is None  # unchanged
    with OrmSession(engine) as db, db.begin():
        interval = db.execute(
            select(ParticipantInterval).where(ParticipantInterval.session_id == session.id).limit(1)
        ).scalar_one()
        interval.left_at = interval.left_at - timedelta(minutes=5)
    with OrmSession(engine) as db, db.begin():
        assert enqueue_session_attendance(db, session.id, now) is not None
    with OrmSession(engine) as db, db.begin():
        db.execute(update(OutboundDelivery).values(status="dead"))
    with OrmSession(engine) as db, db.begin():
        assert enqueue_session_attendance(db, session.id, now) is not None
    rows = deliveries(engine)
    assert [r.status for r in rows] == ["dead", "dead", "pending"]
    assert len({r.webhook_id for r in rows}) == 3
    assert rows[0].payload_sha256 != rows[1].payload_sha256 == rows[2].payload_sha256


def test_the_secret_and_the_url_token_stay_out_of_logs_and_stored_errors(engine):
    """Failed and delivered attempts log the host and the outcome, never the secret or the URL's path.

    (httpx's own request line names the URL at INFO; the service's logging
    keeps the ``httpx`` logger at WARNING, see receiver.logging_setup.)
    """
    reconcile_demo_session(engine)
    receiver = Receiver(httpx.ConnectError(f"cannot connect to {URL} with {SECRET}"))
    with structlog.testing.capture_logs() as entries:
        run_due(sender(engine, receiver))
        [failed] = deliveries(engine)
        run_due(sender(engine, receiver), now=datetime.now(UTC) + timedelta(minutes=1))
    assert failed.last_error == "ConnectError: cannot connect to sheets.example with [redacted]"
    logged = repr(entries)
    assert "outbound_failed" in logged  # (INFO lines may be filtered by an earlier test's logging level)
    assert "sheets.example" in logged
    [row] = deliveries(engine)
    assert row.status == "delivered" and len(receiver.requests) == 2
    for text in (logged, row.payload):
        assert SECRET not in text and SECRET.removeprefix("whsec_") not in text and "tok-9f8e7d6c5b4a" not in text
    assert "tok-9f8e7d6c5b4a" not in repr(sender(engine, receiver))


def _worker_settings(db_url: str, state, **outbound: str) -> Settings:
    """Settings of a worker reconciling against the in-process sandbox at once (no reconcile delay)."""
    return Settings(
        database_url=db_url,
        dyte_org_id=state.org_id,
        dyte_api_key=state.api_key,
        dyte_api_base_url="http://sandbox/v2",
        reconcile_delay_seconds=0,
        **outbound,
    )


def test_the_worker_reconciles_then_posts_and_sends_nothing_when_off(db_url, engine):
    """build_worker as `receiver worker` runs it: URL unset, nothing is enqueued; set, the reconciled session is posted."""
    world = demo_world()
    state, transport = sandbox(world)
    session = world.sessions[0]
    apply_all(engine, [d for d in events_for(world) if d.session_id == session.id])

    off = build_worker(_worker_settings(db_url, state), engine, transport=transport)
    assert off.outbound is None and off.reconciler is not None and not off.reconciler.outbound
    with OrmSession(engine) as db, db.begin():  # reconcile again under the next worker
        db.execute(update(ReconcileTask).values(status="pending", due_at=datetime.now(UTC) - timedelta(seconds=1)))
    asyncio.run(off.run(once=True))
    assert deliveries(engine) == []

    with OrmSession(engine) as db, db.begin():
        db.execute(update(ReconcileTask).values(status="pending", due_at=datetime.now(UTC) - timedelta(seconds=1)))
    receiver = Receiver()
    settings = _worker_settings(db_url, state, outbound_webhook_url=URL, outbound_webhook_secret=SECRET)
    result = asyncio.run(
        build_worker(settings, engine, transport=transport, outbound_transport=receiver.transport).run(once=True)
    )
    assert result.outbound == 1 and len(receiver.requests) == 1
    [request] = receiver.requests
    body = Webhook(SECRET).verify(request.content, dict(request.headers))
    assert body["data"]["session"]["session_id"] == session.id and body["data"]["attendance"]
    assert [(r.session_id, r.status) for r in deliveries(engine)] == [(session.id, "delivered")]


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"outbound_webhook_url": URL}, "OUTBOUND_WEBHOOK_SECRET is not"),
        ({"outbound_webhook_url": "ftp://x", "outbound_webhook_secret": SECRET}, "http:// or https://"),
        ({"outbound_webhook_secret": "abcdefgh-not-whsec"}, "must start with whsec_"),
        ({"outbound_webhook_secret": "whsec_%%%%not-base64"}, "not base64"),
        ({"outbound_webhook_secret": "whsec_c2hvcnQ="}, "shorter than 24 bytes"),
    ],
)
def test_unusable_outbound_settings_are_refused_with_a_clear_reason(overrides, message):
    """A URL without a secret, a non-HTTP URL, or a secret that is not whsec_<base64 of 24+ bytes> is refused."""
    from pydantic import ValidationError

    with pytest.raises(ValidationError) as caught:
        Settings(**overrides)
    assert message in str(caught.value)


def test_erasing_a_person_removes_the_deliveries_that_name_them(engine):
    """receiver forget: the frozen bodies of the person's sessions go (a pending one is never sent); others stay."""
    from receiver.processing.erasure import ErasureRequest, forget

    session, _, _ = reconcile_demo_session(engine)
    [queued] = deliveries(engine)
    person = json.loads(queued.payload)["data"]["attendance"][0]
    with OrmSession(engine) as db, db.begin():
        db.add(
            OutboundDelivery(
                webhook_id="msg_other",
                event_type="session.attendance",
                session_id="another-session",
                payload='{"data":{"attendance":[{"participant_key":"someone-else"}]}}',
                payload_sha256="0" * 64,
                status="delivered",
                attempts=1,
                next_attempt_at=datetime.now(UTC),
                created_at=datetime.now(UTC),
                updated_at=datetime.now(UTC),
            )
        )
    forget(engine, ErasureRequest.build("participant", person["participant_key"], "cli:test"), vacuum=False)
    assert [r.webhook_id for r in deliveries(engine)] == ["msg_other"]
    receiver = Receiver()
    assert run_due(sender(engine, receiver)) == 0 and receiver.requests == []
