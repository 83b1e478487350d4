"""Engine creation and schema migration (Alembic) for SQLite and PostgreSQL.

SQLite (the embedded default) runs in WAL mode with a busy timeout so the
receiver and an in-process worker can share the file. PostgreSQL URLs given
as ``postgresql://`` are routed to the psycopg 3 driver.

Database problems people meet (a mistyped URL, a server that is down, a
database or SQLite file that does not exist, a schema never migrated) are
raised or translated as the errors below, each with a message that says what
to do; :func:`classify_database_error` turns SQLAlchemy's driver errors into
them, and :func:`database_error_reason` gives one safe line for logs.
"""

from __future__ import annotations

import difflib
import importlib.resources
import re
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, event, inspect, text
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, SQLAlchemyError

from receiver.errors import ConfigurationError, ReceiverError, StorageUnavailable

__all__ = [
    "normalise_url",
    "make_engine",
    "writer",
    "alembic_config",
    "migrate",
    "current_revision",
    "head_revision",
    "safe_url",
    "sqlite_path",
    "DatabaseURLError",
    "DatabaseUnreachable",
    "DatabaseMissing",
    "SchemaNotMigrated",
    "classify_database_error",
    "database_error_reason",
    "check_schema",
]

#: URL schemes (backend names) the service supports.
SUPPORTED_BACKENDS = ("sqlite", "postgresql")
URL_EXAMPLES = "sqlite:///PATH/receiver.db or postgresql://USER@HOST:5432/DATABASE"


class DatabaseURLError(ConfigurationError):
    """``DATABASE_URL`` cannot be used: not a URL, or a scheme other than ``sqlite`` / ``postgresql``."""


class DatabaseUnreachable(StorageUnavailable):
    """The database server did not answer or refused the login (down, wrong host/port, wrong user, locked)."""


class DatabaseMissing(StorageUnavailable):
    """The database does not exist: no SQLite file at the path, or no such PostgreSQL database."""


class SchemaNotMigrated(ReceiverError):
    """The database exists but has no receiver tables, or an older schema: ``receiver migrate`` fixes it."""


def safe_url(url: str) -> str:
    """``url`` as shown to people: the password replaced by ``***`` (the scheme alone when it does not parse)."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return re.sub(r"//[^/@]*@", "//***@", url.split("?", 1)[0])


def sqlite_path(url: str) -> Path | None:
    """The file of a SQLite URL (absolute), or None for other URLs and in-memory databases."""
    try:
        parsed = make_url(normalise_url(url))
    except ArgumentError:
        return None
    database = parsed.database
    if parsed.get_backend_name() != "sqlite" or not database or database == ":memory:" or database.startswith("file:"):
        return None
    return Path(database).expanduser().resolve()


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


def _check_url(url: str) -> None:
    """Raise :class:`DatabaseURLError` unless ``url`` is a SQLite or PostgreSQL URL."""
    try:
        backend = make_url(url).get_backend_name()
    except ArgumentError:
        raise DatabaseURLError(f"DATABASE_URL {safe_url(url)!r} is not a database URL: use {URL_EXAMPLES}") from None
    if backend not in SUPPORTED_BACKENDS:
        close = difflib.get_close_matches(backend, [*SUPPORTED_BACKENDS, "postgres"], n=1)
        hint = f"did you mean {'postgresql' if close == ['postgres'] else close[0]}://? " if close else ""
        raise DatabaseURLError(
            f"DATABASE_URL scheme {backend!r} is not supported (in {safe_url(url)!r}): {hint}use {URL_EXAMPLES}"
        )


def make_engine(url: str, *, pool_size: int = 10, create: bool = True) -> Engine:
    """Create an engine for ``url`` with the settings each backend needs.

    SQLite: WAL journal, ``synchronous=NORMAL``, 30 s busy timeout, foreign
    keys on, one connection per thread. PostgreSQL: pre-ping, pool of
    ``pool_size``, UTC session time zone, 5 s connect timeout.

    Args:
        url: ``sqlite:///PATH`` or ``postgresql://...`` (``postgres://`` too).
        pool_size: PostgreSQL connections kept (as many again may overflow).
        create: False: a SQLite file that does not exist is an error instead
            of being created empty (commands that only read or process).

    Raises:
        DatabaseURLError: not a URL, or not SQLite/PostgreSQL.
        DatabaseMissing: ``create`` is False and the SQLite file does not exist.
    """
    url = normalise_url(url)
    _check_url(url)
    if not create:
        path = sqlite_path(url)
        if path is not None and not path.exists():
            raise DatabaseMissing(
                f"no SQLite database at {path}: check the path in DATABASE_URL, or create it with `receiver migrate`"
            )
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


_PG_DOWN = (
    "connection refused",
    "could not connect",
    "timeout expired",
    "timed out",
    "failed to resolve host",
    "could not translate host name",
    "no route to host",
    "network is unreachable",
    "server closed the connection",
    "connection reset",
    "terminating connection",
    "the database system is starting up",
    "the database system is shutting down",
)
_PG_LOGIN = (
    "password authentication failed",
    "no password supplied",
    "role ",
    "no pg_hba.conf entry",
    "permission denied for database",
)


def _first_line(message: str) -> str:
    return " ".join(message.strip().splitlines()[0].split()) if message.strip() else ""


def database_error_reason(exc: BaseException) -> str:
    """One line for logs and messages: ``ExceptionType: first line of the driver's message`` (at most 300 characters).

    Without SQLAlchemy's ``[SQL: ...]`` and background link, and with any
    ``user:password@`` of a URL masked (driver messages name host, port and
    database, never the password; this is a second guard).
    """
    orig = getattr(exc, "orig", None) if isinstance(exc, DBAPIError) else None
    source = orig if isinstance(orig, BaseException) else exc
    text_ = _first_line(str(source).split("\n[SQL:", 1)[0].split("\n(Background", 1)[0])
    text_ = re.sub(r"//[^/@\s]*@", "//***@", text_)
    reason = f"{type(source).__name__}: {text_}" if text_ else type(source).__name__
    return reason[:300]


def _driver_message(exc: BaseException) -> str:
    orig = getattr(exc, "orig", None)
    return str(orig if orig is not None else exc)


def classify_database_error(exc: BaseException, url: str) -> ReceiverError | None:
    """The :class:`ReceiverError` a database exception means for a person, or None when it is no known case.

    Cases: ``DATABASE_URL`` unusable (:class:`DatabaseURLError`); server down,
    unknown host, timeout, login refused, SQLite locked
    (:class:`DatabaseUnreachable`); PostgreSQL database or SQLite file
    missing (:class:`DatabaseMissing`); tables or columns missing - SQLite
    ``no such table``, PostgreSQL ``UndefinedTable`` (42P01) /
    ``UndefinedColumn`` (42703) - (:class:`SchemaNotMigrated`). Messages
    name the URL without its password and say what to do.
    """
    if isinstance(exc, ReceiverError):
        return exc
    shown = safe_url(url)
    if isinstance(exc, ArgumentError):
        return DatabaseURLError(f"DATABASE_URL {shown!r} cannot be used ({exc}): use {URL_EXAMPLES}")
    if isinstance(exc, ModuleNotFoundError):
        return DatabaseURLError(
            f"DATABASE_URL {shown!r} needs a driver that is not installed ({exc}): use {URL_EXAMPLES}"
        )
    if not isinstance(exc, SQLAlchemyError):
        return None
    message = _driver_message(exc)
    lowered = message.lower()
    sqlstate = getattr(getattr(exc, "orig", None), "sqlstate", None)
    path = sqlite_path(url)
    if path is not None:
        if "no such table" in lowered or "no such column" in lowered:
            return SchemaNotMigrated(
                f"the SQLite database {path} has no receiver tables or an older schema "
                f"({_first_line(message)}): run `receiver migrate`"
            )
        if "unable to open database file" in lowered:
            if not path.exists():
                return DatabaseMissing(
                    f"cannot create or open a SQLite database at {path}: does the folder {path.parent} exist, "
                    "and may this user write to it?"
                )
            return DatabaseUnreachable(f"cannot open the SQLite database {path}: check its permissions")
        if "file is not a database" in lowered:
            return DatabaseMissing(f"{path} is not a SQLite database: check the path in DATABASE_URL")
        if "database is locked" in lowered:
            return DatabaseUnreachable(
                f"the SQLite database {path} stayed locked by another process for 30 s: try again"
            )
        return None
    if sqlstate in ("42P01", "42703", "3F000") or re.search(r"relation .* does not exist", lowered):
        return SchemaNotMigrated(
            f"the database {shown} has no receiver tables or an older schema ({_first_line(message)}): "
            "run `receiver migrate`"
        )
    if not isinstance(exc, DBAPIError) or sqlstate is not None and not sqlstate.startswith(("08", "28", "3D", "57P")):
        return None
    missing = re.search(r'database "([^"]+)" does not exist', message)
    if missing:
        return DatabaseMissing(
            f"PostgreSQL has no database {missing.group(1)!r} ({shown}): create it "
            f"(createdb {missing.group(1)}), then run `receiver migrate`"
        )
    if any(part in lowered for part in _PG_LOGIN):
        return DatabaseUnreachable(
            f"PostgreSQL refused the login ({shown}): {_first_line(message.split('FATAL:', 1)[-1])}; "
            "check the user and password in DATABASE_URL"
        )
    if any(part in lowered for part in _PG_DOWN) or getattr(exc, "connection_invalidated", False):
        return DatabaseUnreachable(
            f"cannot reach the database at {shown} ({database_error_reason(exc)}): "
            "is the server running and DATABASE_URL's host and port right?"
        )
    return None


def check_schema(engine: Engine) -> str | None:
    """Connect and check the schema is migrated; returns the revision the database is at.

    A database whose revision is older than :func:`head_revision` (or that
    has no ``alembic_version`` table) is not migrated. A revision unknown to
    this package (a newer release migrated it) is accepted.

    Raises:
        SchemaNotMigrated: no receiver tables, or an older revision.
        sqlalchemy.exc.SQLAlchemyError: cannot connect (see :func:`classify_database_error`).
    """
    current = current_revision(engine)
    head = head_revision()
    shown = safe_url(engine.url.render_as_string(hide_password=False))
    if current is None:
        raise SchemaNotMigrated(f"the database {shown} has no receiver tables: run `receiver migrate`")
    if current != head:
        script = ScriptDirectory.from_config(alembic_config("sqlite://"))
        known = {rev.revision for rev in script.walk_revisions()}
        if current in known:
            raise SchemaNotMigrated(
                f"the database {shown} is at schema revision {current}, this receiver needs {head}: "
                "run `receiver migrate`"
            )
    return current
