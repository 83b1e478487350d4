"""Alembic migrations: an empty database upgraded to head matches the models exactly."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect

from receiver.database import current_revision, head_revision, make_engine, migrate
from receiver.models import Base


def test_upgraded_database_matches_the_models(db_url):
    """No table, column, index or constraint differs between head and receiver.models (SQLite and PostgreSQL)."""
    engine = make_engine(db_url)
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        diff = compare_metadata(context, Base.metadata)
    engine.dispose()
    assert diff == []


def test_fresh_database_reaches_head(tmp_path):
    """`receiver migrate` on an empty SQLite file creates every table and records the head revision."""
    url = f"sqlite:///{tmp_path / 'fresh.db'}"
    migrate(url)
    engine = make_engine(url)
    assert current_revision(engine) == head_revision()
    assert set(Base.metadata.tables) <= set(inspect(engine).get_table_names())
    migrate(url)  # idempotent
    engine.dispose()
