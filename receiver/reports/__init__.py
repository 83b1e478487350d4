"""Reports: pure attendance arithmetic, report queries and rendering.

Owns: :mod:`.attendance` (plain functions over intervals, no I/O),
report queries over the attendance database (public entry point
:mod:`.queries`; inside: :mod:`.attendance_queries`, :mod:`.listings`,
:mod:`.precomputed`, :mod:`.intervals`, :mod:`.rows`), table/CSV/JSON
rendering (:mod:`.formatting`).

May import: db and the shared top-level modules. Never ingest,
processing, providers or web.
"""
