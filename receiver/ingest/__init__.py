"""The receive path: ``POST /webhooks/*`` and the inbox writers.

Owns: checking, verifying and persisting a delivery (group commit on
SQLite and PostgreSQL) and answering inside the provider's 3 s budget.
No processing happens here.

May import: providers, db and the shared top-level modules. Never
processing, reports or web.
"""
