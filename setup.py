"""Package list for setuptools (everything else is in pyproject.toml).

The Alembic scripts live in the top-level ``migrations/`` folder (the
project's agreed layout) and are installed as ``receiver.migrations`` so
that ``receiver migrate`` works from a plain, non-editable install.
"""

from setuptools import find_packages, setup

setup(
    packages=[
        *find_packages(include=["receiver", "receiver.*"]),
        "receiver.migrations",
        "receiver.migrations.versions",
    ],
    package_dir={"receiver.migrations": "migrations"},
)
