"""HTTP: the ASGI app, health and metrics endpoints, the reports API, pages, auth.

May import: ingest (it mounts the webhook route), processing's queue
operations, reports, db and the shared top-level modules. Provider calls
reach it only as callables handed in by the composition root.
"""
