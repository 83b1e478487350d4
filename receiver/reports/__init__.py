"""Reports: pure attendance arithmetic, report queries and rendering.

Owns: :mod:`.attendance` (plain functions over intervals, no I/O),
report queries over the attendance database, table/CSV/JSON rendering.

May import: db and the shared top-level modules. Never ingest,
processing, providers or web.
"""
