"""The inbox partitioned by month on PostgreSQL (migration 0014): partitions, dedupe across months, the purge's
drops, the conversion of a populated table; and the pure month arithmetic."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from alembic import command
from click.testing import CliRunner
from prometheus_client import REGISTRY
from sqlalchemy import create_engine, func, select, text, update
from sqlalchemy.engine import Engine

from receiver.cli.main import cli
from receiver.db import partitions
from receiver.db.engine import alembic_config, make_engine
from receiver.db.models import PARSE_OK, WebhookEvent
from receiver.db.partitions import (
    InboxPartition,
    add_months,
    ensure_months,
    list_partitions,
    missing_months,
    month_start,
    parse_bound,
    partition_name,
)
from receiver.enums import EventStatus
from receiver.ingest.inbox import Delivery, StoreOutcome
from receiver.processing.inbox_upkeep import InboxUpkeep
from receiver.processing.retention import Purge
from receiver.web.app import make_committer

NOW = datetime.now(UTC)
THIS_MONTH = month_start(NOW)


def _raise(name: str, error: str) -> None:
    raise AssertionError(f"{name}: {error}")


# -- pure -----------------------------------------------------------------------------------------------------------


def test_month_arithmetic_crosses_years_in_utc():
    moment = datetime(2026, 12, 31, 23, 30, tzinfo=UTC)
    assert month_start(moment) == datetime(2026, 12, 1, tzinfo=UTC)
    assert add_months(month_start(moment), 1) == datetime(2027, 1, 1, tzinfo=UTC)
    assert add_months(datetime(2027, 1, 1, tzinfo=UTC), -13) == datetime(2025, 12, 1, tzinfo=UTC)
    # 00:30 on 1 January at UTC+02:00 is still December in UTC.
    assert partition_name(datetime.fromisoformat("2027-01-01T00:30:00+02:00")) == "webhook_events_2026_12"


def test_partition_bounds_are_read_from_postgresql_text():
    assert parse_bound("p", "DEFAULT").is_default
    old = parse_bound("p", "FOR VALUES FROM (MINVALUE) TO ('2027-01-01 00:00:00+00')")
    assert (old.lower, old.upper) == (None, datetime(2027, 1, 1, tzinfo=UTC))
    month = parse_bound("p", "FOR VALUES FROM ('2026-12-01 00:00:00+00') TO ('2027-01-01 00:00:00+00')")
    assert month.lower == datetime(2026, 12, 1, tzinfo=UTC)
    with pytest.raises(ValueError, match="unexpected partition bound"):
        parse_bound("p", "FOR VALUES IN ('a')")


def test_missing_months_skips_what_the_converted_table_covers():
    converted = InboxPartition("webhook_events_unpartitioned", None, datetime(2027, 1, 1, tzinfo=UTC))
    default = InboxPartition("webhook_events_default", None, None, is_default=True)
    now = datetime(2026, 12, 15, tzinfo=UTC)
    assert missing_months([converted, default], now, ahead=2) == [
        datetime(2027, 1, 1, tzinfo=UTC),
        datetime(2027, 2, 1, tzinfo=UTC),
    ]
    assert missing_months([], now, ahead=0) == [datetime(2026, 12, 1, tzinfo=UTC)]


# -- PostgreSQL -----------------------------------------------------------------------------------------------------


@pytest.fixture
def pg_engine(pg_url: str) -> Iterator[Engine]:
    """An engine on the shared test database; partitions a test adds are dropped after it (other tests expect
    old rows in the DEFAULT partition), and dropped ones are not recreated (their months hold no rows)."""
    engine = make_engine(pg_url)
    with engine.connect() as connection:
        before = {p.name for p in list_partitions(connection)}
    yield engine
    with engine.begin() as connection:
        for partition in list_partitions(connection):
            if partition.name not in before:
                connection.execute(text(f'DROP TABLE "{partition.name}"'))
    engine.dispose()


def delivery(delivery_id: str, body: bytes, received_at: datetime) -> Delivery:
    return Delivery(delivery_id, "hook", "meeting.started", body, "raw", received_at, PARSE_OK, meeting_id="m")


def store(engine: Engine, deliveries: list[Delivery]) -> list[StoreOutcome]:
    """Through the production writer (asyncpg group commit), one delivery after another."""

    async def run() -> list[StoreOutcome]:
        committer = make_committer(engine)
        await committer.start()
        try:
            return [await committer.submit(d) for d in deliveries]
        finally:
            await committer.stop()

    return asyncio.run(run())


def rows(engine: Engine) -> list[tuple[str, str, int]]:
    """(delivery_id, partition, duplicate_count) of every stored event."""
    with engine.connect() as connection:
        return [
            tuple(row)
            for row in connection.execute(
                text("SELECT delivery_id, tableoid::regclass::text, duplicate_count FROM webhook_events ORDER BY id")
            )
        ]


def test_migrated_inbox_has_this_month_the_next_ones_and_a_default(pg_engine):
    """An empty inbox converts to month partitions from this month on; the worker's upkeep tops them up."""
    with pg_engine.connect() as connection:
        names = [p.name for p in list_partitions(connection)]
    assert names[0] == partition_name(THIS_MONTH)
    assert names[-1] == "webhook_events_default"
    upkeep = InboxUpkeep(pg_engine)
    created = upkeep.tick(NOW)
    assert created == [partition_name(add_months(THIS_MONTH, partitions.MONTHS_AHEAD))]
    assert InboxUpkeep(pg_engine).tick(NOW) == []  # idempotent
    # An event of a month nobody created still goes in (the DEFAULT partition).
    far = add_months(THIS_MONTH, 40)
    assert store(pg_engine, [delivery("far", b'{"far":1}', far)]) == [StoreOutcome.STORED]
    assert rows(pg_engine) == [("far", "webhook_events_default", 0)]


def test_dedupe_holds_across_a_month_boundary(pg_engine):
    """A retry received in the next month is a duplicate; its body under a new id is a replay; one row each."""
    last_month = add_months(THIS_MONTH, -1)
    ensure_months(pg_engine, last_month, ahead=0, on_error=_raise)
    before_midnight = THIS_MONTH - timedelta(seconds=1)
    after_midnight = THIS_MONTH + timedelta(seconds=1)
    assert store(pg_engine, [delivery("d-1", b'{"n":1}', before_midnight)]) == [StoreOutcome.STORED]
    outcomes = store(
        pg_engine,
        [
            delivery("d-1", b'{"n":1}', after_midnight),  # Dyte's retry, after midnight UTC
            delivery("d-1", b'{"n":2}', after_midnight),  # the id reused with another body
            delivery("d-2", b'{"n":1}', after_midnight),  # the stored body under a fresh id
            delivery("d-3", b'{"n":3}', after_midnight),
        ],
    )
    assert outcomes == [StoreOutcome.DUPLICATE, StoreOutcome.CONFLICT, StoreOutcome.REPLAY, StoreOutcome.STORED]
    assert rows(pg_engine) == [
        ("d-1", partition_name(last_month), 2),
        ("d-3", partition_name(THIS_MONTH), 0),
    ]


def test_keys_outlive_nothing_past_the_dedupe_window(pg_engine):
    """Keys older than the window are pruned; a delivery retried after that is stored again (documented)."""
    old = NOW - partitions.DEDUPE_WINDOW - timedelta(days=2)
    assert store(pg_engine, [delivery("old", b'{"o":1}', old)]) == [StoreOutcome.STORED]
    assert partitions.prune_keys(pg_engine, NOW - partitions.DEDUPE_WINDOW) == 1
    assert store(pg_engine, [delivery("old", b'{"o":1}', NOW)]) == [StoreOutcome.STORED]


def test_purge_drops_old_handled_months_and_keeps_months_with_unhandled_events(pg_engine):
    """Months wholly before the cutoff: dropped when every event is handled, else purged row by row."""
    three_ago, two_ago = add_months(THIS_MONTH, -3), add_months(THIS_MONTH, -2)
    for month in (three_ago, two_ago):
        ensure_months(pg_engine, month, ahead=0, on_error=_raise)
    store(
        pg_engine,
        [delivery(f"a-{i}", f'{{"a":{i}}}'.encode(), three_ago + timedelta(days=i)) for i in range(5)]
        + [delivery(f"b-{i}", f'{{"b":{i}}}'.encode(), two_ago + timedelta(days=i)) for i in range(3)]
        + [delivery("now", b'{"now":1}', NOW)],
    )
    with pg_engine.begin() as connection:
        connection.execute(update(WebhookEvent).values(status=EventStatus.DONE))
        connection.execute(
            update(WebhookEvent).where(WebhookEvent.delivery_id == "b-0").values(status=EventStatus.DEAD)
        )
    run = Purge(pg_engine, add_months(THIS_MONTH, -1))
    summary = run.run()
    assert summary.partitions == [partition_name(three_ago)]
    assert summary.partition_rows == 5 and summary.partition_bytes > 0
    assert 0 < summary.lock_seconds < 2
    assert summary.bodies == 2  # b-1, b-2: row-wise; b-0 (dead) keeps its body
    with pg_engine.connect() as connection:
        names = {p.name for p in list_partitions(connection)}
        kept = {
            row[0]: row[1]
            for row in connection.execute(select(WebhookEvent.delivery_id, func.length(WebhookEvent.raw_body)))
        }
    assert partition_name(three_ago) not in names and partition_name(two_ago) in names
    assert kept == {"b-0": 7, "b-1": 0, "b-2": 0, "now": 9}
    # The dropped month's deliveries are still known to ingest (keys), within the window: a late retry adds
    # nothing (told apart from a replay only while the row exists, so it is answered as one).
    assert store(pg_engine, [delivery("a-4", b'{"a":4}', NOW)]) == [StoreOutcome.REPLAY]
    assert "a-4" not in {row[0] for row in rows(pg_engine)}


@pytest.fixture
def scratch_url(pg_url: str) -> Iterator[str]:
    """An empty scratch database (for migrating step by step), dropped afterwards."""
    name = f"receiver_partitions_{uuid.uuid4().hex[:8]}"
    admin_url = pg_url.rsplit("/", 1)[0] + "/postgres"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield pg_url.rsplit("/", 1)[0] + "/" + name
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def test_converting_a_populated_inbox_keeps_every_row_and_downgrade_restores_a_plain_table(scratch_url):
    """0005 → 0014 attaches the old rows as one partition (no row lost, ids go on); 0014 → 0005 copies them back."""
    cfg = alembic_config(scratch_url)
    command.upgrade(cfg, "0005")
    engine = make_engine(scratch_url)
    try:
        old = NOW - timedelta(days=70)
        with engine.begin() as connection:
            connection.execute(
                text(
                    "INSERT INTO webhook_events (delivery_id, raw_body, body_sha256, unique_body_sha256, "
                    "signature_scheme, received_at, parse_status, status, attempts, duplicate_count, conflict_count) "
                    "SELECT 'old-' || g, body, digest, digest, 'raw', :old + g * interval '1 day', 'ok', 'done', "
                    "0, 0, 0 FROM generate_series(1, 60) AS g, "
                    "LATERAL (SELECT convert_to('body-' || g, 'UTF8') AS body) AS b, "
                    "LATERAL (SELECT encode(sha256(body), 'hex') AS digest) AS d"
                ),
                {"old": old},
            )
        command.upgrade(cfg, "head")
        with engine.connect() as connection:
            placed = {
                row[0]: row[1]
                for row in connection.execute(
                    text("SELECT tableoid::regclass::text, count(*) FROM webhook_events GROUP BY 1")
                )
            }
            names = [p.name for p in list_partitions(connection)]
        assert placed == {"webhook_events_unpartitioned": 60}
        assert names[0] == "webhook_events_unpartitioned" and names[-1] == "webhook_events_default"
        # Recent old keys are still enforced; new rows get ids after the old ones.
        assert store(engine, [delivery("old-60", b"body-60", NOW), delivery("new", b"new", NOW)]) == [
            StoreOutcome.DUPLICATE,
            StoreOutcome.STORED,
        ]
        with engine.connect() as connection:
            newest = connection.execute(select(func.max(WebhookEvent.id))).scalar_one()
        assert newest > 60  # the sequence goes on (a skipped duplicate may leave a gap, as ON CONFLICT did)
        engine.dispose()
        command.downgrade(cfg, "0005")
        with engine.connect() as connection:
            assert connection.execute(select(func.count()).select_from(WebhookEvent)).scalar_one() == 61
            kind = connection.execute(text("SELECT relkind FROM pg_class WHERE relname = 'webhook_events'")).scalar()
            assert kind == "r"
        store(engine, [delivery("after", b"after", NOW)])
        with engine.connect() as connection:
            assert connection.execute(select(func.max(WebhookEvent.id))).scalar_one() > newest
    finally:
        engine.dispose()


def test_receiver_purge_says_which_months_it_would_drop_then_drops_them(pg_engine, pg_url):
    """`receiver purge --dry-run` names the droppable month; `receiver purge` drops it and says so."""
    old = add_months(THIS_MONTH, -3)
    ensure_months(pg_engine, old, ahead=0, on_error=_raise)
    store(pg_engine, [delivery(f"o-{i}", f'{{"o":{i}}}'.encode(), old + timedelta(days=i)) for i in range(3)])
    with pg_engine.begin() as connection:
        connection.execute(update(WebhookEvent).values(status=EventStatus.DONE))
    env = {"DATABASE_URL": pg_url, "RAW_RETENTION_DAYS": "45"}
    runner = CliRunner()
    dry = runner.invoke(cli, ["purge", "--dry-run"], env=env)
    assert dry.exit_code == 0, dry.output
    assert f"would drop 1 month partition(s) whole: {partition_name(old)}" in dry.output
    done = runner.invoke(cli, ["purge"], env=env)
    assert done.exit_code == 0, done.output
    assert f"dropped 1 month partition(s) of the inbox ({partition_name(old)}): 3 events" in done.output
    with pg_engine.connect() as connection:
        assert partition_name(old) not in {p.name for p in list_partitions(connection)}


def test_a_month_that_cannot_be_created_is_counted_and_the_others_still_are(pg_engine):
    """Rows of month +5 already in DEFAULT: that month fails (counted, logged), months +3 and +4 are created."""
    blocked = add_months(THIS_MONTH, 5)
    assert store(pg_engine, [delivery("early", b'{"early":1}', blocked)]) == [StoreOutcome.STORED]
    failures = REGISTRY.get_sample_value("receiver_inbox_partition_failures_total") or 0.0
    created = InboxUpkeep(pg_engine, months_ahead=5).tick(NOW)
    assert created == [partition_name(add_months(THIS_MONTH, 3)), partition_name(add_months(THIS_MONTH, 4))]
    assert REGISTRY.get_sample_value("receiver_inbox_partition_failures_total") == failures + 1
    assert rows(pg_engine) == [("early", "webhook_events_default", 0)]
