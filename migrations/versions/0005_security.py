"""security: one stored body per digest

Revision ID: 0005
Revises: 0008
Create Date: 2026-11-27

* ``webhook_events.unique_body_sha256`` under a unique index: the inbox
  stores one body once, whatever ``dyte-uuid`` it comes with (the signature
  does not cover the header, so a captured delivery could be replayed under
  fresh uuids). Existing rows get their ``body_sha256``, except rows whose
  body an earlier row (lower id) already holds: those keep NULL (NULLs do not
  collide in a unique index), so the upgrade never fails or deletes a row.

* ``recordings.api_missing_at``: when the REST API answered 404 for a
  recording, so an expired download link is not queued for refresh again
  (links are refreshed by the worker, never inside a page request).

* ``ui_sessions``: page sign-ins, server-side so that signing out and
  revoking work (the cookie holds a signed random id, never a token);
* ``audit_log``: every operator action (who = token name, what, when,
  target, outcome).

On PostgreSQL the analyst role of migration 0006 reads every new table
through its default privileges; ``ui_sessions`` and ``audit_log`` (who
signed in, from where, what they did) are revoked from it here.

Built before 0006 and 0008 and re-chained after them (one head); the file
keeps its name.

Downgrade drops what the upgrade added.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import receiver.db.models


revision = "0005"
down_revision = "0008"
branch_labels = None
depends_on = None

ANALYST_ROLE = "receiver_analyst"
# Not for analysts (migration 0006 grants them SELECT on every new table by default).
PRIVATE_TABLES = ("ui_sessions", "audit_log")

REVOKE_PRIVATE = f"""DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{ANALYST_ROLE}') THEN
        REVOKE ALL ON {", ".join(PRIVATE_TABLES)} FROM {ANALYST_ROLE};
    END IF;
END
$$"""


def upgrade() -> None:
    op.add_column("webhook_events", sa.Column("unique_body_sha256", sa.String(length=64), nullable=True))
    # The first row (lowest id) of each body owns it; later copies stay NULL.
    op.execute(
        "UPDATE webhook_events SET unique_body_sha256 = body_sha256 "
        "WHERE id IN (SELECT min(id) FROM webhook_events GROUP BY body_sha256)"
    )
    op.create_index("ux_webhook_events_unique_body_sha256", "webhook_events", ["unique_body_sha256"], unique=True)
    op.add_column(
        "recordings", sa.Column("api_missing_at", receiver.db.models.UTCDateTime(timezone=True), nullable=True)
    )
    op.create_table(
        "ui_sessions",
        sa.Column("session_hash", sa.String(length=64), nullable=False),
        sa.Column("token_name", sa.String(length=64), nullable=False),
        sa.Column("role", sa.String(length=20), nullable=False),
        sa.Column("token_fingerprint", sa.String(length=64), nullable=False),
        sa.Column("created_at", receiver.db.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("expires_at", receiver.db.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("last_seen_at", receiver.db.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", receiver.db.models.UTCDateTime(timezone=True), nullable=True),
        sa.Column("client", sa.String(length=100), nullable=True),
        sa.PrimaryKeyConstraint("session_hash", name=op.f("pk_ui_sessions")),
    )
    op.create_index("ix_ui_sessions_expires_at", "ui_sessions", ["expires_at"], unique=False)
    op.create_table(
        "audit_log",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("at", receiver.db.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.String(length=64), nullable=False),
        sa.Column("role", sa.String(length=20), nullable=False),
        sa.Column("action", sa.String(length=40), nullable=False),
        sa.Column("target", sa.String(length=300), nullable=True),
        sa.Column("outcome", sa.String(length=200), nullable=False),
        sa.Column("detail", sa.Text(), nullable=True),
        sa.Column("source", sa.String(length=10), nullable=False),
        sa.Column("client", sa.String(length=100), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_log")),
    )
    op.create_index("ix_audit_log_at", "audit_log", ["at"], unique=False)
    if op.get_context().dialect.name == "postgresql":
        op.execute(REVOKE_PRIVATE)


def downgrade() -> None:
    op.drop_index("ix_audit_log_at", table_name="audit_log")
    op.drop_table("audit_log")
    op.drop_index("ix_ui_sessions_expires_at", table_name="ui_sessions")
    op.drop_table("ui_sessions")
    # Plain ALTER TABLE ... DROP COLUMN (SQLite >= 3.35): a batch copy of `recordings` would trip over the
    # analyst views that read it.
    op.execute("ALTER TABLE recordings DROP COLUMN api_missing_at")
    op.drop_index("ux_webhook_events_unique_body_sha256", table_name="webhook_events")
    op.execute("ALTER TABLE webhook_events DROP COLUMN unique_body_sha256")
