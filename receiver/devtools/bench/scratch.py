"""Scratch databases for the benches: created and migrated before, dropped after.

``--database-url`` names *where* to bench, never a database to write into:

* none: a SQLite file in a new temporary directory;
* ``sqlite:///path/x.db``: a scratch file beside it (``x.bench-<hex>.db``);
* ``postgresql://...`/db``: a scratch database ``receiver_bench_<hex>`` on
  that server, created through the named database (which must allow
  ``CREATE DATABASE``) and dropped ``WITH (FORCE)`` afterwards.

``keep=True`` leaves the scratch database in place (its URL is printed).
"""

from __future__ import annotations

import shutil
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from receiver.db.engine import migrate, normalise_url

__all__ = ["scratch_database", "describe_url"]


def describe_url(url: str) -> str:
    """The URL without a password, for output."""
    return make_url(normalise_url(url)).render_as_string(hide_password=True)


@contextmanager
def scratch_database(
    url: str | None, *, keep: bool = False, migrated: bool = True, label: str = "bench"
) -> Iterator[str]:
    """Yield the URL of a fresh (migrated) scratch database next to ``url``; remove it afterwards.

    ``url`` None: a SQLite file in a temporary directory; a SQLite URL: a file
    beside it; a PostgreSQL URL: a database ``receiver_<label>_<hex>`` created
    through it (dropped afterwards). ``label`` names what it is for.
    """
    token = uuid.uuid4().hex[:8]
    if url is None or normalise_url(url).startswith("sqlite"):
        if url is None:
            directory = Path(tempfile.mkdtemp(prefix=f"receiver-{label}-"))
            path, cleanup_dir = directory / f"{label}.db", directory
        else:
            given = make_url(url).database
            if not given or given == ":memory:":
                raise ValueError(
                    f"a SQLite {label} database must be a file, not in memory (several processes share it)"
                )
            base = Path(given).expanduser().resolve()
            path, cleanup_dir = base.with_name(f"{base.stem}.{label}-{token}.db"), None
        scratch = f"sqlite:///{path}"
        try:
            if migrated:
                migrate(scratch)
            yield scratch
        finally:
            if not keep:
                for suffix in ("", "-wal", "-shm", "-journal"):
                    Path(str(path) + suffix).unlink(missing_ok=True)
                if cleanup_dir is not None:
                    shutil.rmtree(cleanup_dir, ignore_errors=True)
        return
    admin_url = make_url(normalise_url(url))
    name = f"receiver_{label}_{token}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT", connect_args={"connect_timeout": 5})
    try:
        with admin.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
        scratch = admin_url.set(database=name).render_as_string(hide_password=False)
        try:
            if migrated:
                migrate(scratch)
            yield scratch
        finally:
            if not keep:
                with admin.connect() as connection:
                    connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        admin.dispose()
