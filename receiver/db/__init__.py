"""The attendance database: SQLAlchemy models, engines, migrations runner,
SQL views and triggers.

May import: the shared top-level modules only.
"""
