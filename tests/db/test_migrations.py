"""Alembic migrations, on SQLite and PostgreSQL.

* An empty database migrated to head matches the models exactly, and the
  views and triggers the (frozen) migrations created are exactly what
  :mod:`receiver.db.views` generates today: code and head cannot drift apart.
* Every revision goes down and up again to the same schema; base and head
  round-trip.
* 0004 goes down and up with data; its SQL renders offline.
"""

from __future__ import annotations

import ast
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, inspect, text
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError

from receiver.db.engine import MIGRATIONS_DIR, alembic_config, current_revision, head_revision, make_engine, migrate
from receiver.db.models import Base
from receiver.db.partitions import model_compare_filter
from receiver.db.views import VIEW_NAMES, create_change_triggers, create_views


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def empty_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty database (no tables): a SQLite file, or a scratch PostgreSQL database dropped afterwards."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'empty.db'}"
        return
    from conftest import PG_ADMIN_URL, postgres_unavailable_reason

    reason = postgres_unavailable_reason()
    if reason:
        pytest.skip(reason)
    name = f"receiver_migrations_{uuid.uuid4().hex[:8]}"
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + name
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def _model_diff(connection: Connection) -> list:
    # Migration 0014 partitions the inbox on PostgreSQL: partitions, the keys table and the dedupe indexes differ
    # from the models by design (receiver.db.partitions); tests/db/test_partitions.py checks them there.
    include = model_compare_filter(connection.dialect.name)
    context = MigrationContext.configure(connection, opts={"compare_type": True, "include_object": include})
    return compare_metadata(context, Base.metadata)


def _programmed_objects(connection: Connection) -> dict[str, dict[str, str]]:
    """Views, triggers and (PostgreSQL) functions of the database, by name, with their definitions.

    SQLite keeps the creating statement verbatim (``sqlite_master.sql``), so
    equal definitions mean byte-equal SQL. PostgreSQL gives its canonical
    form (``pg_get_viewdef``, ``pg_get_triggerdef``) and a function's body
    verbatim (``pg_get_functiondef``).
    """
    if connection.dialect.name == "sqlite":
        rows = connection.execute(text("SELECT type, name, sql FROM sqlite_master WHERE type IN ('view', 'trigger')"))
        objects: dict[str, dict[str, str]] = {"view": {}, "trigger": {}, "function": {}}
        for kind, name, sql in rows:
            objects[kind][name] = sql
        return objects
    queries = {
        "view": "SELECT viewname, definition FROM pg_views WHERE schemaname = current_schema()",
        "trigger": (
            "SELECT t.tgname, pg_get_triggerdef(t.oid) FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid "
            "WHERE NOT t.tgisinternal AND c.relnamespace = current_schema()::regnamespace"
            # A row trigger of a partitioned table is cloned onto every partition under the same name:
            # the parent's definition is the one a migration writes (PostgreSQL 13+: tgparentid).
            " AND t.tgparentid = 0"
        ),
        "function": (
            "SELECT proname, pg_get_functiondef(oid) FROM pg_proc WHERE pronamespace = current_schema()::regnamespace"
        ),
    }
    return {kind: dict(connection.execute(text(query)).all()) for kind, query in queries.items()}


def _schema(engine: Engine) -> dict[str, object]:
    """Tables (columns, indexes, unique constraints), programmed objects, privileges: what a migration must restore.

    ``alembic_version`` is left out (it exists from the first upgrade on).
    """
    with engine.connect() as connection:
        inspector = inspect(connection)
        tables = {
            table: (
                [(c["name"], str(c["type"]), c["nullable"]) for c in inspector.get_columns(table)],
                sorted(i["name"] for i in inspector.get_indexes(table)),
                sorted(u["name"] or "" for u in inspector.get_unique_constraints(table)),
            )
            for table in inspector.get_table_names()
            if table != "alembic_version"
        }
        return {"tables": tables, **_programmed_objects(connection), "privileges": _privileges(connection)}


def _privileges(connection: Connection) -> list[tuple[str, ...]]:
    """PostgreSQL effective grants ``(kind, object, grantee, privilege)``, sorted; empty on SQLite.

    Relations of the schema, the schema, the database and the default
    privileges. Effective: a NULL access list counts as the built-in default
    (a GRANT then REVOKE leaves an explicit list that means the same).
    """
    if connection.dialect.name != "postgresql":
        return []
    query = """
        SELECT 'relation', c.relname, a.grantee::regrole::text, a.privilege_type
        FROM pg_class c, aclexplode(COALESCE(c.relacl, acldefault('r', c.relowner))) a
        WHERE c.relnamespace = current_schema()::regnamespace AND c.relkind IN ('r', 'v', 'S')
            AND c.relname <> 'alembic_version'
        UNION ALL
        SELECT 'schema', n.nspname, a.grantee::regrole::text, a.privilege_type
        FROM pg_namespace n, aclexplode(COALESCE(n.nspacl, acldefault('n', n.nspowner))) a
        WHERE n.nspname = current_schema()
        UNION ALL
        SELECT 'database', d.datname, a.grantee::regrole::text, a.privilege_type
        FROM pg_database d, aclexplode(COALESCE(d.datacl, acldefault('d', d.datdba))) a
        WHERE d.datname = current_database()
        UNION ALL
        SELECT 'default', d.defaclobjtype::text, a.grantee::regrole::text, a.privilege_type
        FROM pg_default_acl d, aclexplode(d.defaclacl) a
    """
    return sorted(tuple(row) for row in connection.execute(text(query)))


def test_migrated_from_empty_matches_the_models_and_the_views_code(empty_url):
    """`migrate` on an empty database: no schema difference from the models; views and triggers equal today's code.

    The migrations carry frozen copies of the view and trigger SQL; this fails
    as soon as receiver.db.views generates something the head revision does not
    create (ship a new revision with the new SQL).
    """
    migrate(empty_url)
    engine = make_engine(empty_url)
    try:
        with engine.connect() as connection:
            assert _model_diff(connection) == []
            migrated = _programmed_objects(connection)
            assert set(migrated["view"]) == set(VIEW_NAMES)
            assert len(migrated["trigger"]) >= 6
            connection.rollback()
            with connection.begin() as transaction:  # regenerate from the code in place, read, roll back
                create_change_triggers(connection)
                create_views(connection)
                generated = _programmed_objects(connection)
                transaction.rollback()
        assert migrated == generated
    finally:
        engine.dispose()


def _revisions() -> list[str]:
    """Revision ids from base to head."""
    script = ScriptDirectory.from_config(alembic_config("sqlite://"))
    return [r.revision for r in reversed(list(script.walk_revisions()))]


def test_every_revision_downgrades_and_upgrades_to_the_same_schema(empty_url):
    """Stairway: each revision up, one step down (the schema before it), up again (the same schema).

    Then head down to base leaves no table but ``alembic_version`` (empty), and base up to head
    gives the head schema again, equal to the models.
    """
    cfg = alembic_config(empty_url)
    engine = make_engine(empty_url)
    try:
        before = _schema(engine)
        for revision in _revisions():
            command.upgrade(cfg, revision)
            after = _schema(engine)
            command.downgrade(cfg, "-1")
            assert _schema(engine) == before, f"downgrade of {revision}"
            command.upgrade(cfg, revision)
            assert _schema(engine) == after, f"upgrade of {revision} after its downgrade"
            before = after
        head = before
        command.downgrade(cfg, "base")
        base = _schema(engine)
        assert base["tables"] == {}
        assert base["view"] == base["trigger"] == base["function"] == {}
        assert current_revision(engine) is None
        command.upgrade(cfg, "head")
        assert current_revision(engine) == head_revision()
        assert _schema(engine) == head
        with engine.connect() as connection:
            assert _model_diff(connection) == []
    finally:
        engine.dispose()


def test_revisions_carry_their_own_sql():
    """No revision imports the live view/trigger generator (an old revision must not change with the code)."""
    for path in sorted((MIGRATIONS_DIR / "versions").glob("*.py")):
        imported = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                imported |= {alias.name for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module:
                imported.add(node.module)
                imported |= {f"{node.module}.{alias.name}" for alias in node.names}
        assert not {name for name in imported if name.startswith(("receiver.db.views", "receiver.views"))}, path.name


def test_fresh_database_reaches_head(tmp_path):
    """`receiver migrate` on an empty SQLite file creates every table and records the head revision."""
    url = f"sqlite:///{tmp_path / 'fresh.db'}"
    migrate(url)
    engine = make_engine(url)
    assert current_revision(engine) == head_revision()
    assert set(Base.metadata.tables) <= set(inspect(engine).get_table_names())
    migrate(url)  # idempotent
    engine.dispose()


def _trigger_names(engine) -> set[str]:
    with engine.connect() as connection:
        if engine.dialect.name == "postgresql":
            rows = connection.execute(text("SELECT tgname FROM pg_trigger WHERE NOT tgisinternal"))
        else:
            rows = connection.execute(text("SELECT name FROM sqlite_master WHERE type = 'trigger'"))
        return {name for (name,) in rows}


SUMMARY_TABLES = {"session_attendance", "session_attendance_refreshes"}


def test_migration_0004_downgrade_and_upgrade(db_url):
    """0004 down: summary tables and triggers gone, 0003 views work; up again: tables, triggers and views back."""
    engine = make_engine(db_url)
    try:
        with engine.begin() as connection:
            connection.execute(
                text(
                    "INSERT INTO sessions (session_id, status, started_at, ended_at, updated_at, reconcile_added, reconcile_changed) "
                    "VALUES ('old', 'ended', '2026-01-01 10:00:00', '2026-01-01 11:00:00', '2026-01-01 11:00:00', 0, 0)"
                )
            )
        assert SUMMARY_TABLES <= set(inspect(engine).get_table_names())
        assert len(_trigger_names(engine)) >= 6
        command.downgrade(alembic_config(db_url), "0003")
        assert not SUMMARY_TABLES & set(inspect(engine).get_table_names())
        assert _trigger_names(engine) == set()
        with engine.connect() as connection:  # the 0003 attendance view, without the summary tables
            assert connection.execute(text("SELECT count(*) FROM attendance")).scalar() == 0
            assert connection.execute(text("SELECT count(*) FROM daily_usage")).scalar() == 1
        command.upgrade(alembic_config(db_url), "head")
        assert current_revision(engine) == head_revision()
        assert SUMMARY_TABLES <= set(inspect(engine).get_table_names())
        with engine.begin() as connection:  # the triggers invalidate again
            connection.execute(
                text(
                    "INSERT INTO session_attendance_refreshes (session_id, refreshed_at) VALUES ('old', '2026-01-02 00:00:00')"
                )
            )
            assert connection.execute(text("SELECT count(*) FROM attendance")).scalar() == 0
            connection.execute(text("UPDATE sessions SET ended_at = started_at WHERE session_id = 'old'"))
            assert connection.execute(text("SELECT count(*) FROM session_attendance_refreshes")).scalar() == 0
            connection.execute(text("DELETE FROM sessions WHERE session_id = 'old'"))
    finally:
        engine.dispose()


def test_migration_0004_offline_sql(capsys):
    """`alembic upgrade 0003:0004 --sql` (and the downgrade) renders for both dialects with triggers and views."""
    for url in ("sqlite:///offline.db", "postgresql://nobody@127.0.0.1:1/offline"):
        command.upgrade(alembic_config(url), "0003:0004", sql=True)
        up = capsys.readouterr().out
        assert "CREATE TABLE session_attendance" in up and "trg_participant_intervals_invalidate_insert" in up
        assert "CREATE VIEW attendance" in up and "session_attendance_refreshes r" in up
        command.downgrade(alembic_config(url), "0004:0003", sql=True)
        down = capsys.readouterr().out
        assert "DROP TABLE session_attendance" in down and "DROP TRIGGER IF EXISTS" in down
        assert "CREATE VIEW attendance" in down and "session_attendance a" not in down


def test_migrations_render_offline_for_both_dialects(capsys):
    """`alembic upgrade base:head --sql` and the downgrade render without a database (PostgreSQL grants only there)."""
    for url in ("sqlite:///offline.db", "postgresql://nobody@127.0.0.1:1/offline"):
        command.upgrade(alembic_config(url), "base:head", sql=True)
        up = capsys.readouterr().out
        assert up.count("CREATE VIEW ") == 9  # five in 0003, attendance and daily_usage again in 0004 and 0009
        command.downgrade(alembic_config(url), "head:base", sql=True)
        down = capsys.readouterr().out
        assert "DROP TABLE webhook_events" in down
        if url.startswith("postgresql"):
            assert "CREATE ROLE receiver_analyst NOLOGIN" in up and "ALTER DEFAULT PRIVILEGES" in up
            assert "REVOKE SELECT ON attendance_intervals" in down
        else:
            assert "receiver_analyst" not in up + down


ANALYST_ROLE = "receiver_analyst"
# Never readable by analysts (raw deliveries hold stream keys; operational state).
PRIVATE_TABLES = {
    "webhook_events",
    "reconcile_tasks",
    "managed_subscriptions",
    "alembic_version",
    "ui_sessions",
    "audit_log",
}


def _analyst_can_read(connection: Connection, relation: str) -> bool:
    return connection.execute(
        text("SELECT has_table_privilege(:role, :relation, 'SELECT')"), {"role": ANALYST_ROLE, "relation": relation}
    ).scalar_one()


def test_analyst_role_reads_attendance_but_never_the_inbox(pg_url):
    """After `migrate`: receiver_analyst (NOLOGIN) reads every view and table except the private ones.

    Views a later revision recreates and tables it adds stay readable (default
    privileges); webhook_events answers "permission denied" to the role.
    """
    engine = make_engine(pg_url)
    try:
        with engine.connect() as connection:
            role = connection.execute(
                text("SELECT rolcanlogin, rolsuper FROM pg_roles WHERE rolname = :role"), {"role": ANALYST_ROLE}
            ).one()
            assert tuple(role) == (False, False)
            inspector = inspect(connection)
            relations = set(inspector.get_table_names()) | set(inspector.get_view_names())
            assert PRIVATE_TABLES <= relations and set(VIEW_NAMES) <= relations
            readable = {relation for relation in relations if _analyst_can_read(connection, relation)}
            # The inbox's partitions and idempotency keys (migration 0014) are as private as the inbox.
            inbox_parts = {r for r in relations if r.startswith("webhook_events_") or r == "webhook_event_keys"}
            assert {"webhook_event_keys", "webhook_events_default"} <= inbox_parts
            assert readable == relations - PRIVATE_TABLES - inbox_parts

            savepoint = connection.begin_nested()
            connection.execute(text(f"SET LOCAL ROLE {ANALYST_ROLE}"))
            assert connection.execute(text("SELECT count(*) FROM attendance")).scalar_one() == 0
            with pytest.raises(DBAPIError, match="permission denied for table webhook_events"):
                connection.execute(text("SELECT raw_body FROM webhook_events"))
            savepoint.rollback()  # back to the migrating role (SET LOCAL undone)
            assert connection.execute(text("SELECT current_user")).scalar_one() != ANALYST_ROLE

            # What a later revision does, as the migrating role: recreate the views, add a table.
            create_views(connection)
            connection.execute(text("CREATE TABLE analyst_probe (id integer)"))
            assert _analyst_can_read(connection, "attendance") and _analyst_can_read(connection, "analyst_probe")
            connection.rollback()
    finally:
        engine.dispose()
