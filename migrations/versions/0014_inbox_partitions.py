"""inbox partitions: webhook_events partitioned by month of receipt (PostgreSQL)

Revision ID: 0014
Revises: 0012
Create Date: 2026-12-07

PostgreSQL only (SQLite keeps one plain table: nothing happens there).

* ``webhook_events`` becomes a table partitioned by RANGE (``received_at``):
  one partition per calendar month (UTC), ``webhook_events_YYYY_MM``, plus
  ``webhook_events_default`` so an insert never fails for want of a
  partition. The worker creates the coming months
  (``receiver.db.partitions.ensure_months``); the retention purge drops
  whole months (``receiver.processing.retention``).
* The existing rows are not copied: the old table, renamed
  ``webhook_events_unpartitioned``, is ATTACHed as the one partition of the
  past (MINVALUE up to the first month after its newest row and after the
  current month); monthly partitions follow it. A CHECK constraint added
  first lets ATTACH skip its own scan. An empty old table is dropped instead.
* A primary key and every unique index of a partitioned table must contain
  the partition key, so the idempotency checks move to
  ``webhook_event_keys`` (``delivery_id`` primary key, the body digest
  unique), an unpartitioned table that a BEFORE INSERT trigger fills: an
  insert whose delivery id or body is already there is skipped, exactly as
  ``ON CONFLICT DO NOTHING`` skipped it before. The keys of the last 30 days
  are copied in; the purge prunes keys older than the dedupe window.
  ``webhook_events`` keeps plain indexes on ``delivery_id`` and
  ``unique_body_sha256`` for look-ups; its primary key is (id, received_at).

Locks and time on a large inbox: everything runs in one transaction holding
ACCESS EXCLUSIVE on the inbox (stop ingest, or let Dyte retry the 503s).
ATTACH builds three indexes on the old rows (primary key, delivery_id,
unique_body_sha256): minutes for tens of millions of rows. See
docs/operations.md, "Inbox partitions".

Downgrade copies every row back into one plain table with the 0005 keys
(a delivery id stored twice after its key was pruned keeps its first row;
a body stored twice keeps its digest on the first row only, as 0005 did).
"""

from __future__ import annotations

from alembic import op

revision = "0014"
down_revision = "0012"
branch_labels = None
depends_on = None

ANALYST_ROLE = "receiver_analyst"

# The old table's index names, freed for the partitioned table's indexes.
OLD_INDEXES = (
    "ix_webhook_events_status_next_attempt_at",
    "ix_webhook_events_session_id",
    "ix_webhook_events_meeting_id",
    "ix_webhook_events_unpurged_received_at",
)

UPGRADE = [
    "ALTER TABLE webhook_events RENAME TO webhook_events_unpartitioned",
    "ALTER TABLE webhook_events_unpartitioned DROP CONSTRAINT pk_webhook_events",
    "ALTER TABLE webhook_events_unpartitioned DROP CONSTRAINT uq_webhook_events_delivery_id",
    "DROP INDEX ux_webhook_events_unique_body_sha256",
    *(f"ALTER INDEX {name} RENAME TO {name.replace('webhook_events', 'webhook_events_old')}" for name in OLD_INDEXES),
    "CREATE TABLE webhook_events (LIKE webhook_events_unpartitioned INCLUDING DEFAULTS) PARTITION BY RANGE (received_at)",
    "ALTER TABLE webhook_events ADD CONSTRAINT pk_webhook_events PRIMARY KEY (id, received_at)",
    "ALTER SEQUENCE webhook_events_id_seq OWNED BY webhook_events.id",
    "ALTER TABLE webhook_events_unpartitioned ALTER COLUMN id DROP DEFAULT",
    "CREATE INDEX ix_webhook_events_delivery_id ON webhook_events (delivery_id)",
    "CREATE INDEX ix_webhook_events_unique_body_sha256 ON webhook_events (unique_body_sha256)",
    "CREATE INDEX ix_webhook_events_status_next_attempt_at ON webhook_events (status, next_attempt_at)",
    "CREATE INDEX ix_webhook_events_session_id ON webhook_events (session_id)",
    "CREATE INDEX ix_webhook_events_meeting_id ON webhook_events (meeting_id)",
    "CREATE INDEX ix_webhook_events_unpurged_received_at ON webhook_events (received_at, id) WHERE purged_at IS NULL",
    """CREATE TABLE webhook_event_keys (
    delivery_id VARCHAR(200) NOT NULL,
    body_sha256 VARCHAR(64),
    received_at TIMESTAMP WITH TIME ZONE NOT NULL,
    CONSTRAINT pk_webhook_event_keys PRIMARY KEY (delivery_id)
)""",
    "CREATE UNIQUE INDEX ux_webhook_event_keys_body_sha256 ON webhook_event_keys (body_sha256)",
    "CREATE INDEX ix_webhook_event_keys_received_at ON webhook_event_keys (received_at)",
    """INSERT INTO webhook_event_keys (delivery_id, body_sha256, received_at)
SELECT delivery_id, unique_body_sha256, received_at FROM webhook_events_unpartitioned
WHERE received_at >= now() - interval '30 days'""",
    """CREATE FUNCTION webhook_events_claim_key() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    -- The idempotency checks of the partitioned inbox (migration 0014): a delivery id or a body
    -- already in webhook_event_keys skips the row, as ON CONFLICT DO NOTHING did on the unique indexes.
    INSERT INTO webhook_event_keys (delivery_id, body_sha256, received_at)
    VALUES (NEW.delivery_id, NEW.unique_body_sha256, NEW.received_at)
    ON CONFLICT DO NOTHING;
    IF FOUND THEN
        RETURN NEW;
    END IF;
    RETURN NULL;
END
$$""",
    "CREATE TRIGGER webhook_events_claim_key BEFORE INSERT ON webhook_events "
    "FOR EACH ROW EXECUTE FUNCTION webhook_events_claim_key()",
    f"""DO $$
DECLARE
    this_month timestamp := date_trunc('month', now() AT TIME ZONE 'UTC');
    newest timestamp;
    first_month timestamp;
    month timestamp;
BEGIN
    SELECT max(received_at) AT TIME ZONE 'UTC' INTO newest FROM webhook_events_unpartitioned;
    IF newest IS NULL THEN
        DROP TABLE webhook_events_unpartitioned;
        first_month := this_month;
    ELSE
        first_month := greatest(this_month, date_trunc('month', newest)) + interval '1 month';
        EXECUTE format(
            'ALTER TABLE webhook_events_unpartitioned ADD CONSTRAINT ck_webhook_events_unpartitioned_range '
            'CHECK (received_at IS NOT NULL AND received_at < %L)', first_month AT TIME ZONE 'UTC');
        EXECUTE format(
            'ALTER TABLE webhook_events ATTACH PARTITION webhook_events_unpartitioned '
            'FOR VALUES FROM (MINVALUE) TO (%L)', first_month AT TIME ZONE 'UTC');
        ALTER TABLE webhook_events_unpartitioned DROP CONSTRAINT ck_webhook_events_unpartitioned_range;
    END IF;
    FOR step IN 0..2 LOOP
        month := first_month + make_interval(months => step);
        EXECUTE format(
            'CREATE TABLE %I PARTITION OF webhook_events FOR VALUES FROM (%L) TO (%L)',
            'webhook_events_' || to_char(month, 'YYYY_MM'),
            month AT TIME ZONE 'UTC', (month + interval '1 month') AT TIME ZONE 'UTC');
    END LOOP;
    CREATE TABLE webhook_events_default PARTITION OF webhook_events DEFAULT;
    -- Raw bodies are not for analysts (migration 0006): neither the partitions nor the keys.
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{ANALYST_ROLE}') THEN
        EXECUTE (
            SELECT 'REVOKE ALL ON ' || string_agg(quote_ident(c.relname), ', ') || ' FROM {ANALYST_ROLE}'
            FROM pg_class c
            WHERE c.relnamespace = current_schema()::regnamespace
                AND (c.relname = 'webhook_events' OR c.relname = 'webhook_event_keys'
                     OR c.oid IN (SELECT inhrelid FROM pg_inherits WHERE inhparent = 'webhook_events'::regclass))
        );
    END IF;
END
$$""",
]

COLUMNS = (
    "id, delivery_id, webhook_id, event_name, raw_body, body_sha256, signature_scheme, received_at, "
    "parse_status, parse_error, meeting_id, session_id, occurred_at, status, attempts, last_error, "
    "next_attempt_at, locked_by, locked_until, processed_at, duplicate_count, conflict_count, purged_at, "
    "erased_at, unique_body_sha256"
)

DOWNGRADE = [
    "CREATE TABLE webhook_events_plain (LIKE webhook_events INCLUDING DEFAULTS)",
    f"""INSERT INTO webhook_events_plain ({COLUMNS})
SELECT {COLUMNS.replace("unique_body_sha256", "CASE WHEN body_rank = 1 THEN unique_body_sha256 END")}
FROM (
    SELECT *, row_number() OVER (PARTITION BY unique_body_sha256 ORDER BY id) AS body_rank
    FROM (SELECT DISTINCT ON (delivery_id) * FROM webhook_events ORDER BY delivery_id, id) AS first_per_id
) AS ranked
ORDER BY id""",
    "ALTER SEQUENCE webhook_events_id_seq OWNED BY webhook_events_plain.id",
    "DROP TABLE webhook_events CASCADE",
    "DROP FUNCTION webhook_events_claim_key()",
    "DROP TABLE webhook_event_keys",
    "ALTER TABLE webhook_events_plain RENAME TO webhook_events",
    "ALTER TABLE webhook_events ADD CONSTRAINT pk_webhook_events PRIMARY KEY (id)",
    "ALTER TABLE webhook_events ADD CONSTRAINT uq_webhook_events_delivery_id UNIQUE (delivery_id)",
    "CREATE INDEX ix_webhook_events_status_next_attempt_at ON webhook_events (status, next_attempt_at)",
    "CREATE INDEX ix_webhook_events_session_id ON webhook_events (session_id)",
    "CREATE INDEX ix_webhook_events_meeting_id ON webhook_events (meeting_id)",
    "CREATE INDEX ix_webhook_events_unpurged_received_at ON webhook_events (received_at, id) WHERE purged_at IS NULL",
    "CREATE UNIQUE INDEX ux_webhook_events_unique_body_sha256 ON webhook_events (unique_body_sha256)",
    f"""DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{ANALYST_ROLE}') THEN
        REVOKE ALL ON webhook_events FROM {ANALYST_ROLE};
    END IF;
END
$$""",
]


def upgrade() -> None:
    if op.get_context().dialect.name != "postgresql":
        return
    for statement in UPGRADE:
        op.execute(statement)


def downgrade() -> None:
    if op.get_context().dialect.name != "postgresql":
        return
    for statement in DOWNGRADE:
        op.execute(statement)
