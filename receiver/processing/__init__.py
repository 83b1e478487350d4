"""Turning stored events into attendance, and reconciling with the provider.

Owns: the worker, the claim/lease queue (events and reconciliation tasks),
the write layer that webhook events and REST reconciliation share, the
reconciler and backfill.

May import: providers, reports' pure arithmetic, db and the shared
top-level modules. Never ingest or web.
"""
