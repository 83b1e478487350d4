"""``receiver outbound list`` and ``receiver outbound retry``: the outbox from a terminal."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from click.testing import CliRunner
from sqlalchemy.orm import Session as OrmSession

from receiver.cli.main import cli
from receiver.db.engine import make_engine
from receiver.db.models import OutboundDelivery

T0 = datetime(2026, 12, 1, 9, tzinfo=UTC)


def run(args: list[str], db_url: str):
    return CliRunner().invoke(cli, args, env={"DATABASE_URL": db_url, "LOG_LEVEL": "WARNING"}, catch_exceptions=False)


def _store(db_url: str, *statuses: str) -> None:
    engine = make_engine(db_url)
    with OrmSession(engine) as db, db.begin():
        for number, status in enumerate(statuses, start=1):
            db.add(
                OutboundDelivery(
                    webhook_id=f"msg_{number:032x}",
                    event_type="session.attendance",
                    session_id=f"s-{number}",
                    payload='{"data":{"attendance":[{"display_name":"Private Person"}]}}',
                    payload_sha256=f"{number:064x}",
                    status=status,
                    attempts=3,
                    next_attempt_at=T0 + timedelta(hours=1),
                    last_status_code=503 if status != "delivered" else 200,
                    last_error="HTTP 503 Service Unavailable" if status != "delivered" else None,
                    created_at=T0,
                    updated_at=T0,
                )
            )
    engine.dispose()


def _states(db_url: str) -> dict[int, tuple[str, int]]:
    engine = make_engine(db_url)
    with OrmSession(engine) as db:
        rows = {d.id: (d.status, d.attempts) for d in db.query(OutboundDelivery)}
    engine.dispose()
    return rows


def test_list_shows_deliveries_newest_first_without_bodies(db_url):
    """JSON rows newest first, filtered by state; the table ends with the counts; bodies never printed."""
    _store(db_url, "delivered", "dead", "failed")
    rows = json.loads(run(["outbound", "list", "--format", "json"], db_url).output)
    assert [r["id"] for r in rows] == [3, 2, 1] and rows[1]["last_error"] == "HTTP 503 Service Unavailable"
    assert [
        r["id"] for r in json.loads(run(["outbound", "list", "--status", "dead", "--format", "json"], db_url).output)
    ] == [2]
    table = run(["outbound", "list"], db_url).output
    assert "outbound: delivered 1, failed 1, dead 1" in table and "Private Person" not in table


def test_retry_one_or_all_dead_and_refuse_the_rest(db_url):
    """retry ID requeues a dead one; --dead all dead ones; a delivered or unknown one is refused with a reason."""
    _store(db_url, "delivered", "dead", "failed", "dead")
    assert "1 outbound delivery requeued" in run(["outbound", "retry", "2"], db_url).output
    assert _states(db_url)[2] == ("pending", 0)
    refused = run(["outbound", "retry", "1"], db_url)
    assert refused.exit_code != 0 and "is delivered" in refused.output
    assert "no outbound delivery 99" in run(["outbound", "retry", "99"], db_url).output
    assert "1 outbound delivery requeued" in run(["outbound", "retry", "--dead"], db_url).output
    assert _states(db_url) == {1: ("delivered", 3), 2: ("pending", 0), 3: ("failed", 3), 4: ("pending", 0)}
    assert run(["outbound", "retry"], db_url).exit_code == 2  # usage: ID, --dead or --failed
