"""security: one stored body per digest

Revision ID: 0005
Revises: 0004
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

Downgrade drops what the upgrade added.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import receiver.db.models


revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


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


def downgrade() -> None:
    # Plain ALTER TABLE ... DROP COLUMN (SQLite >= 3.35): a batch copy of `recordings` would trip over the
    # analyst views that read it.
    op.execute("ALTER TABLE recordings DROP COLUMN api_missing_at")
    op.drop_index("ux_webhook_events_unique_body_sha256", table_name="webhook_events")
    op.execute("ALTER TABLE webhook_events DROP COLUMN unique_body_sha256")
