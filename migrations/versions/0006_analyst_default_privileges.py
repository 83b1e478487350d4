"""analyst role and default privileges (PostgreSQL)

Revision ID: 0006
Revises: 0004
Create Date: 2026-12-07

Read-only analyst access, applied by the migration instead of by hand
(issue #20; it replaces running deploy/postgres/analyst-role.sql after each
migration). PostgreSQL only; on SQLite this revision does nothing (a file
has no roles).

* Creates the group role ``receiver_analyst`` (NOLOGIN) when it is missing.
  Roles are cluster-wide: an existing role is reused, never altered. When
  the migrating role may not create roles, the upgrade fails with a hint
  (an administrator runs ``CREATE ROLE receiver_analyst NOLOGIN``, then
  ``receiver migrate`` again).
* Grants CONNECT on the database, USAGE on the schema, and SELECT on the
  analyst views and tables of docs/schema.md.
* ``ALTER DEFAULT PRIVILEGES ... GRANT SELECT ON TABLES``: tables and views
  that the migrating role creates later in this schema (a revision that
  recreates a view drops its grants) are readable by analysts too. A later
  revision that creates a table holding secrets must REVOKE it, as this one
  does for the tables below.
* Never readable: ``webhook_events`` (raw bodies are byte-exact provider
  deliveries; livestream events carry stream keys), the operational state
  ``reconcile_tasks`` and ``managed_subscriptions``, and
  ``alembic_version``. They are revoked explicitly.

Downgrade revokes what the upgrade granted (the default privileges too) and
keeps the role: it is shared by every database of the cluster and its
members are people's logins.

Login users, a read-only default transaction and hiding the pre-signed
download URLs stay manual: deploy/postgres/analyst-role.sql, sections 6
and 7.
"""

from __future__ import annotations

from alembic import op


revision = "0006"
down_revision = "0004"
branch_labels = None
depends_on = None

ROLE = "receiver_analyst"

# docs/schema.md, "Views" and "Tables" (frozen with this revision).
ANALYST_VIEWS = ("attendance_intervals", "attendance", "sessions_summary", "recording_index", "daily_usage")
ANALYST_TABLES = (
    "meetings",
    "sessions",
    "participant_intervals",
    "recordings",
    "recording_status_history",
    "livestreams",
    "livestream_status_history",
    "session_artifacts",
    "session_attendance",
    "session_attendance_refreshes",
)
PRIVATE_TABLES = ("webhook_events", "reconcile_tasks", "managed_subscriptions", "alembic_version")

CREATE_ROLE = f"""DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{ROLE}') THEN
        BEGIN
            CREATE ROLE {ROLE} NOLOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE;
        EXCEPTION
            -- Another database's migration created it at the same moment (roles are cluster-wide).
            WHEN duplicate_object OR unique_violation THEN NULL;
            WHEN insufficient_privilege THEN
                RAISE EXCEPTION 'role {ROLE} does not exist and % may not create roles', current_user
                    USING HINT = 'As a database administrator run: CREATE ROLE {ROLE} NOLOGIN; then run receiver migrate again.';
        END;
    END IF;
END
$$"""

# Database and schema names are read at run time (a deployment may use
# another schema than public); format(%I) quotes them.
GRANT_ACCESS = f"""DO $$
BEGIN
    EXECUTE format('GRANT CONNECT ON DATABASE %I TO {ROLE}', current_database());
    EXECUTE format('GRANT USAGE ON SCHEMA %I TO {ROLE}', current_schema());
    EXECUTE format('ALTER DEFAULT PRIVILEGES IN SCHEMA %I GRANT SELECT ON TABLES TO {ROLE}', current_schema());
END
$$"""

REVOKE_ACCESS = f"""DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{ROLE}') THEN
        RETURN;  -- dropped by hand: nothing left to revoke
    END IF;
    REVOKE SELECT ON {", ".join(ANALYST_VIEWS + ANALYST_TABLES)} FROM {ROLE};
    EXECUTE format('ALTER DEFAULT PRIVILEGES IN SCHEMA %I REVOKE SELECT ON TABLES FROM {ROLE}', current_schema());
    EXECUTE format('REVOKE USAGE ON SCHEMA %I FROM {ROLE}', current_schema());
    EXECUTE format('REVOKE CONNECT ON DATABASE %I FROM {ROLE}', current_database());
END
$$"""


def upgrade() -> None:
    if op.get_context().dialect.name != "postgresql":
        return
    op.execute(CREATE_ROLE)
    op.execute(GRANT_ACCESS)
    op.execute(f"GRANT SELECT ON {', '.join(ANALYST_VIEWS)} TO {ROLE}")
    op.execute(f"GRANT SELECT ON {', '.join(ANALYST_TABLES)} TO {ROLE}")
    # Existing tables are not touched by default privileges; revoked anyway in
    # case an earlier manual grant (GRANT ... ON ALL TABLES) reached them.
    op.execute(f"REVOKE ALL ON {', '.join(PRIVATE_TABLES)} FROM {ROLE}")


def downgrade() -> None:
    if op.get_context().dialect.name != "postgresql":
        return
    op.execute(REVOKE_ACCESS)
