-- Read-only analyst access to the receiver's PostgreSQL database.
--
-- `receiver migrate` DOES THIS ALREADY: migration 0006
-- (migrations/versions/0006_analyst_default_privileges.py) creates the group
-- role receiver_analyst (NOLOGIN) when it is missing, grants SELECT on the
-- analyst views and tables below plus the default privileges of step 4, and
-- revokes the private tables of step 5. You need this script only for:
--
--   * sections 6 and 7 at the end (login users, hiding download URLs),
--     which stay manual;
--   * re-asserting the exact grant list after manual changes (it is
--     idempotent and agrees with the migration);
--   * a migrating role without CREATEROLE: the migration then stops with a
--     hint; an administrator creates the role (step 1 below, or just
--     `CREATE ROLE receiver_analyst NOLOGIN;`) and `receiver migrate` runs
--     again.
--
-- What is granted: SELECT on the analyst views and the attendance tables
-- documented in docs/schema.md, and nothing else. Not on webhook_events: its
-- raw bodies are byte-exact Dyte deliveries and livestream events carry
-- stream keys (secrets). Not on the operational tables either
-- (reconcile_tasks, managed_subscriptions, ui_sessions, audit_log,
-- alembic_version): migration 0005 revokes ui_sessions and audit_log.
--
-- Run it connected to the receiver database AS THE ROLE THAT RUNS THE
-- MIGRATIONS (the owner of the tables and views):
--
--     psql "$DATABASE_URL" -v ON_ERROR_STOP=1 -f deploy/postgres/analyst-role.sql
--
-- Migrations that change a view drop and recreate it, which drops its
-- grants; the default privileges of step 4 re-grant SELECT on objects the
-- migration role creates in schema public. Because those default
-- privileges cover every new table, a migration that adds a table holding
-- secrets must revoke it (as 0006 does for webhook_events); add it to the
-- REVOKE list below too.
--
-- Note: download_url / audio_download_url (recordings, session_artifacts)
-- are pre-signed URLs that work until their expiry for whoever holds them.
-- Revoke column access (see the end) if analysts must not download media.

\set ON_ERROR_STOP on

BEGIN;

-- 1. The group role (no login: people log in as members, below).
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'receiver_analyst') THEN
        CREATE ROLE receiver_analyst NOLOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE;
    END IF;
END
$$;

-- 2. Connect to this database and see schema public (no CREATE).
DO $$
BEGIN
    EXECUTE format('GRANT CONNECT ON DATABASE %I TO receiver_analyst', current_database());
END
$$;
GRANT USAGE ON SCHEMA public TO receiver_analyst;
REVOKE CREATE ON SCHEMA public FROM receiver_analyst;

-- 3. Start from nothing, then grant exactly the analyst objects.
REVOKE ALL ON ALL TABLES IN SCHEMA public FROM receiver_analyst;
REVOKE ALL ON ALL SEQUENCES IN SCHEMA public FROM receiver_analyst;

-- The views (docs/schema.md, "Views").
GRANT SELECT ON
    attendance_intervals,
    attendance,
    sessions_summary,
    recording_index,
    daily_usage
TO receiver_analyst;

-- The analyst tables (docs/schema.md, "Tables").
GRANT SELECT ON
    meetings,
    sessions,
    participant_intervals,
    recordings,
    recording_status_history,
    livestreams,
    livestream_status_history,
    session_artifacts,
    session_attendance,
    session_attendance_refreshes
TO receiver_analyst;

-- 4. New objects the migration role creates in public (recreated views)
--    stay readable. Run as that role: default privileges apply to objects
--    created by the role that sets them.
ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT ON TABLES TO receiver_analyst;

-- 5. Never: the raw inbox (stream keys in raw bodies) and operational state.
--    Listed after the default privileges so a re-run always ends revoked.
REVOKE ALL ON webhook_events FROM receiver_analyst;
REVOKE ALL ON reconcile_tasks FROM receiver_analyst;
REVOKE ALL ON alembic_version FROM receiver_analyst;
DO $$
BEGIN
    IF to_regclass('public.managed_subscriptions') IS NOT NULL THEN
        REVOKE ALL ON managed_subscriptions FROM receiver_analyst;
    END IF;
    -- Migration 0008: the erasure log (hashes of erased people's ids) and job runs.
    IF to_regclass('public.erasures') IS NOT NULL THEN
        REVOKE ALL ON erasures FROM receiver_analyst;
    END IF;
    IF to_regclass('public.maintenance_runs') IS NOT NULL THEN
        REVOKE ALL ON maintenance_runs FROM receiver_analyst;
    END IF;
    -- Page sign-ins and the audit trail (migration 0005): operational, and who signed in from where.
    IF to_regclass('public.ui_sessions') IS NOT NULL THEN
        REVOKE ALL ON ui_sessions FROM receiver_analyst;
    END IF;
    IF to_regclass('public.audit_log') IS NOT NULL THEN
        REVOKE ALL ON audit_log FROM receiver_analyst;
    END IF;
END
$$;

COMMIT;

-- 6. Example login user (one per analyst or per BI tool). Uncomment, pick a
--    password (or use your identity provider), and run as a role with
--    CREATEROLE:
--
-- CREATE ROLE jane_analyst LOGIN PASSWORD 'change-me' IN ROLE receiver_analyst;
-- ALTER ROLE jane_analyst SET default_transaction_read_only = on;
-- ALTER ROLE jane_analyst SET statement_timeout = '5min';
-- (Members inherit receiver_analyst's privileges: log in and query.)
--
-- 7. Optional: hide the pre-signed download URLs (column privileges):
--
-- REVOKE SELECT ON recordings, recording_index, session_artifacts FROM receiver_analyst;
-- GRANT SELECT (recording_id, meeting_id, session_id, status, started_at, stopped_at,
--               duration_seconds, file_size_bytes, output_file_name)
--     ON recordings, recording_index TO receiver_analyst;
