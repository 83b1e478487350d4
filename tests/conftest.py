"""Shared fixtures: databases (SQLite always, PostgreSQL when 127.0.0.1:5432 answers), keys, app clients.

PostgreSQL: set ``RECEIVER_TEST_POSTGRES_URL`` to override the default
``postgresql+psycopg://postgres@127.0.0.1:5432/test``. A fresh database is
created for the test session and emptied between tests. Without a server,
only the PostgreSQL variants skip, with the connection error as the reason.
"""

from __future__ import annotations

import os
import shutil
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import Engine

from receiver.db.engine import make_engine, migrate
from receiver.db.models import Base
from receiver.providers.dyte.signature import generate_private_key, public_key_pem
from receiver.settings import Settings

PAYLOADS_DIR = Path(
    os.environ.get("DYTE_PAYLOADS_DIR", Path(__file__).resolve().parents[2] / "shared" / "dyte" / "payloads")
)
PG_ADMIN_URL = os.environ.get("RECEIVER_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")

_ENV_PREFIXES = (
    "DATABASE_URL",
    "DYTE_",
    "PUBLIC_URL",
    "MAX_BODY",
    "RECONCILE",
    "WORKER_",
    "LOG_",
    "API_",
    "SUBSCRIPTION",
    "STALE_",
    "PROVIDER",
    "REALTIMEKIT_",
    "RAW_RETENTION",
)


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No test sees the developer's environment or .env file."""
    for name in list(os.environ):
        if name.startswith(_ENV_PREFIXES):
            monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)


def postgres_unavailable_reason() -> str | None:
    """None when PostgreSQL answers at the test URL, else why not."""
    try:
        with socket.create_connection(("127.0.0.1", 5432), timeout=1):
            pass
    except OSError as exc:
        return f"PostgreSQL not reachable at 127.0.0.1:5432 ({exc})"
    try:
        engine = create_engine(PG_ADMIN_URL, connect_args={"connect_timeout": 3})
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
        engine.dispose()
    except Exception as exc:  # driver-specific errors
        return f"PostgreSQL at {PG_ADMIN_URL} refused the test login ({type(exc).__name__})"
    return None


@pytest.fixture(scope="session")
def _sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("template") / "template.db"
    migrate(f"sqlite:///{path}")
    return path


@pytest.fixture(scope="session")
def _postgres_database() -> Iterator[str]:
    reason = postgres_unavailable_reason()
    if reason:
        pytest.skip(reason)
    name = f"receiver_test_{uuid.uuid4().hex[:8]}"
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    url = PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + name
    migrate(url)
    yield url
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def _truncate_postgres(url: str) -> None:
    engine = create_engine(url)
    names = [t.name for t in Base.metadata.sorted_tables]
    with engine.begin() as connection:
        # The inbox's idempotency keys (migration 0014) live outside the models.
        if connection.execute(text("SELECT to_regclass('webhook_event_keys')")).scalar_one() is not None:
            names.append("webhook_event_keys")
        tables = ", ".join(f'"{name}"' for name in names)
        connection.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
    engine.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A migrated, empty database URL: SQLite file, or PostgreSQL when it answers."""
    if request.param == "sqlite":
        path = tmp_path / "receiver.db"
        shutil.copy(request.getfixturevalue("_sqlite_template"), path)
        return f"sqlite:///{path}"
    url = request.getfixturevalue("_postgres_database")
    _truncate_postgres(url)
    return url


@pytest.fixture
def pg_url(request: pytest.FixtureRequest) -> str:
    """A migrated, empty PostgreSQL database (skips with the reason when PostgreSQL does not answer)."""
    reason = postgres_unavailable_reason()
    if reason:
        pytest.skip(reason)
    url = request.getfixturevalue("_postgres_database")
    _truncate_postgres(url)
    return url


@pytest.fixture
def sqlite_url(tmp_path: Path, _sqlite_template: Path) -> str:
    """A migrated, empty SQLite database URL (for tests that need only the embedded default)."""
    path = tmp_path / "receiver.db"
    shutil.copy(_sqlite_template, path)
    return f"sqlite:///{path}"


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    """An engine on :func:`db_url`."""
    eng = make_engine(db_url)
    yield eng
    eng.dispose()


@pytest.fixture(scope="session")
def signing_key():
    """An RSA private key standing in for Dyte's."""
    return generate_private_key()


@pytest.fixture
def settings(db_url: str, signing_key) -> Settings:
    """Settings on the test database, trusting :func:`signing_key`."""
    return Settings(
        database_url=db_url,
        dyte_webhook_public_key=public_key_pem(signing_key),
        reconcile_enabled=False,
        worker_poll_seconds=0.05,
    )


def payload_files() -> list[Path]:
    """The real Dyte payloads from ../shared/dyte/payloads (empty list when absent)."""
    return sorted(PAYLOADS_DIR.glob("*.json")) if PAYLOADS_DIR.is_dir() else []
