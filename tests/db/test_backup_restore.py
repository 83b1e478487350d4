"""Backups restore to the same reports (docs/operations.md, "Backups and restore").

SQLite: the online backup API (``sqlite3.Connection.backup``, what
``sqlite3 receiver.db ".backup ..."`` uses) while the service's engine is
open. PostgreSQL: ``pg_dump -Fc`` and ``pg_restore`` into a fresh database
(skipped with the reason when the binaries are not on PATH). The data is
test_erasure's two meetings, processed and precomputed; after the restore
every report, the analyst views and the schema revision are equal, and the
restored database takes new events.
"""

from __future__ import annotations

import shutil
import sqlite3
import subprocess
import uuid
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import Engine
from test_erasure import delivery, drain, load

from receiver.db.engine import current_revision, head_revision, make_engine
from receiver.db.views import VIEW_NAMES
from receiver.ingest.inbox import store_deliveries
from receiver.reports.queries import ReportFilter, attendance_report, recordings_report, sessions_report
from receiver.settings import Settings

NEW_MEETING = {"event": "meeting.started", "meeting": {"id": "M7", "sessionId": "S7", "title": "After the restore"}}


def everything(engine: Engine) -> dict[str, object]:
    """What users see: the three reports, every analyst view, the inbox and the schema revision."""
    flt = ReportFilter()
    state: dict[str, object] = {
        "attendance": attendance_report(engine, flt),
        "sessions": sessions_report(engine, flt),
        "recordings": recordings_report(engine, flt),
        "revision": current_revision(engine),
    }
    with engine.connect() as connection:
        for view in VIEW_NAMES:
            state[view] = sorted(map(tuple, connection.execute(text(f"SELECT * FROM {view}"))), key=repr)
        state["inbox"] = list(
            connection.execute(text("SELECT delivery_id, status, body_sha256 FROM webhook_events ORDER BY id"))
        )
    return state


def still_works(settings: Settings, engine: Engine) -> None:
    """The restored database takes a new event through the worker."""
    store_deliveries(engine, [delivery("after-restore", NEW_MEETING)])
    drain(settings, engine)
    assert any(row["session_id"] == "S7" for row in sessions_report(engine, ReportFilter()))


def test_sqlite_online_backup_restores_the_same_reports(sqlite_url: str, tmp_path: Path) -> None:
    settings = Settings(database_url=sqlite_url, reconcile_enabled=False)
    engine = make_engine(sqlite_url)
    load(settings, engine)
    original = everything(engine)
    assert original["attendance"] and original["revision"] == head_revision()

    source = sqlite3.connect(sqlite_url.removeprefix("sqlite:///"))
    backup_path = tmp_path / "backup.db"
    target = sqlite3.connect(backup_path)
    with engine.connect():  # the service keeps its connections open: the backup is online
        source.backup(target)
    target.close()
    source.close()
    engine.dispose()

    restored_url = f"sqlite:///{tmp_path / 'restored.db'}"
    shutil.copy(backup_path, tmp_path / "restored.db")  # restoring = putting the file back
    restored = make_engine(restored_url)
    assert everything(restored) == original
    still_works(settings.model_copy(update={"database_url": restored_url}), restored)
    restored.dispose()


def _libpq(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://", 1)


@pytest.mark.postgres
def test_postgres_dump_and_restore_into_a_fresh_database_gives_the_same_reports(pg_url: str, tmp_path: Path) -> None:
    missing = [tool for tool in ("pg_dump", "pg_restore") if shutil.which(tool) is None]
    if missing:
        pytest.skip(f"{' and '.join(missing)} not on PATH")
    settings = Settings(database_url=pg_url, reconcile_enabled=False)
    engine = make_engine(pg_url)
    load(settings, engine)
    original = everything(engine)
    engine.dispose()

    dump = tmp_path / "receiver.dump"
    subprocess.run(["pg_dump", "--format=custom", f"--file={dump}", _libpq(pg_url)], check=True, timeout=120)
    name = f"receiver_restore_{uuid.uuid4().hex[:8]}"
    admin = create_engine(pg_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    restored_url = pg_url.rsplit("/", 1)[0] + "/" + name
    try:
        subprocess.run(
            ["pg_restore", "--no-owner", "--exit-on-error", f"--dbname={_libpq(restored_url)}", str(dump)],
            check=True,
            timeout=120,
        )
        restored = make_engine(restored_url)
        try:
            assert everything(restored) == original
            still_works(settings.model_copy(update={"database_url": restored_url}), restored)
        finally:
            restored.dispose()
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
