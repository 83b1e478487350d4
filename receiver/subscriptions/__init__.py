"""The service's webhook subscription: ensured at start-up and by
``receiver subscribe`` (exactly one webhook pointing at us), with the lock
that makes replicas agree and the table of managed webhook ids.

Modules: ``spec`` (the wanted webhook, URL rules, settings checks, errors),
``lock`` (the cross-replica lock), ``ensure`` (the ensure algorithm and its
result), ``wiring`` (start-up background ensure, managed webhook ids).

May import: providers, db and the shared top-level modules.
"""
