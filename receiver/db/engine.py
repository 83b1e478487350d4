"""Engine creation and schema migration (Alembic) for SQLite and PostgreSQL.

SQLite (the embedded default) runs in WAL mode with a busy timeout so the
receiver and an in-process worker can share the file. PostgreSQL URLs given
as ``postgresql://`` are routed to the psycopg 3 driver.
"""

from __future__ import annotations

import importlib.resources
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, event, inspect, text
from sqlalchemy.engine import Engine

__all__ = ["normalise_url", "make_engine", "writer", "alembic_config", "migrate", "current_revision", "head_revision"]

# The top-level migrations/ folder of the source tree, installed with the
# package as ``receiver.migrations`` (see setup.py), so a plain
# ``pip install .`` and the image can migrate too.
MIGRATIONS_DIR = Path(str(importlib.resources.files("receiver.migrations")))


def normalise_url(url: str) -> str:
    """Map ``postgres://`` and ``postgresql://`` to the psycopg 3 driver; other URLs unchanged."""
    if url.startswith("postgres://"):
        url = "postgresql://" + url[len("postgres://") :]
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://") :]
    return url


def make_engine(url: str, *, pool_size: int = 10) -> Engine:
    """Create an engine for ``url`` with the settings each backend needs.

    SQLite: WAL journal, ``synchronous=NORMAL``, 30 s busy timeout, foreign
    keys on, one connection per thread. PostgreSQL: pre-ping, pool of
    ``pool_size``, UTC session time zone.
    """
    url = normalise_url(url)
    if url.startswith("sqlite"):
        engine = create_engine(url, hide_parameters=True, connect_args={"timeout": 30, "check_same_thread": False})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection, _record):  # pragma: no cover - trivial
            # Let SQLAlchemy, not pysqlite, decide where transactions begin (see _sqlite_begin).
            dbapi_connection.isolation_level = None
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.close()

        @event.listens_for(engine, "begin")
        def _sqlite_begin(connection):  # pragma: no cover - trivial
            # Read-modify-write transactions (engines from writer()) take the
            # write lock up front, so concurrent workers serialise instead of
            # failing on a lock upgrade; readers begin deferred and never wait.
            immediate = connection.get_execution_options().get("sqlite_begin_immediate")
            connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

        return engine
    return create_engine(
        url,
        hide_parameters=True,  # error text must not copy values (signed URLs, keys) into logs or last_error
        pool_pre_ping=True,
        pool_size=pool_size,
        max_overflow=pool_size,
        connect_args={"options": "-c timezone=UTC", "connect_timeout": 5},
    )


def writer(engine: Engine) -> Engine:
    """The same engine for read-modify-write transactions: on SQLite they ``BEGIN IMMEDIATE``.

    (PostgreSQL ignores the option; its row locks do the same job.)
    """
    return engine.execution_options(sqlite_begin_immediate=True)


def alembic_config(url: str) -> Config:
    """An Alembic config pointing at the packaged migrations and ``url``."""
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("sqlalchemy.url", normalise_url(url).replace("%", "%%"))
    return cfg


def migrate(url: str, revision: str = "head") -> None:
    """Upgrade the database at ``url`` to ``revision`` (default: head)."""
    command.upgrade(alembic_config(url), revision)


def head_revision() -> str | None:
    """The newest migration revision shipped with the package."""
    return ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()


def current_revision(engine: Engine) -> str | None:
    """The revision the database is at, or None for an empty database (reads ``alembic_version``)."""
    with engine.connect() as connection:
        if not inspect(connection).has_table("alembic_version"):
            return None
        return connection.execute(text("SELECT version_num FROM alembic_version")).scalar_one_or_none()
