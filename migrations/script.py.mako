"""${message}

Revision ID: ${up_revision}
Revises: ${down_revision | comma,n}
Create Date: ${create_date}
"""
from __future__ import annotations

from alembic import op
import sqlalchemy as sa
import receiver.db.models
${imports if imports else ""}

revision = ${repr(up_revision)}
down_revision = ${repr(down_revision)}
branch_labels = ${repr(branch_labels)}
depends_on = ${repr(depends_on)}


# Altering sessions, participant_intervals, recordings or meetings? The analyst
# views depend on them: call receiver.db.views.drop_views(op.get_bind()) first and
# receiver.db.views.create_views(op.get_bind()) at the end (SQLite batch mode and
# PostgreSQL both refuse otherwise).


def upgrade() -> None:
    ${upgrades if upgrades else "pass"}


def downgrade() -> None:
    ${downgrades if downgrades else "pass"}
