"""``receiver bench chaos``: the whole service under faults, checked against the sandbox's ground truth.

What runs (all on 127.0.0.1, everything stopped and removed at the end):

* the Dyte sandbox (REST API + key document) in a thread, answering a share
  of REST calls with 500, 429 (``retry-after``) or a pause longer than the
  client's timeout (``DYTE_API_TIMEOUT_SECONDS=2`` for the run);
* a scratch database (PostgreSQL when 127.0.0.1:5432 answers, else a SQLite
  file), migrated; on PostgreSQL the services reach it through a
  :class:`~receiver.devtools.tcpproxy.TcpProxy` so it can be made unreachable;
* ``receiver serve --no-worker`` and ``--workers`` x ``receiver worker`` as
  subprocesses (reconcile delay 0, a short lease, a short stale-session time);
* the world's webhooks, POSTed like Dyte does by :func:`receiver.sandbox.deliver`
  with a :class:`~receiver.sandbox.FaultPlan` (drops, duplicates, re-ordering)
  and Dyte's retries of non-2xx answers.

Mid-run one worker is SIGKILLed while it holds claimed events and is started
again (its claims are taken over once the lease passes), and on PostgreSQL the
database is cut for a few seconds (the receiver must answer 503 and recover
without a restart; the workers must survive). Then the queue and the
reconciliation tasks are drained and the reports are compared with the truth.
Exit 1 if an acknowledged delivery is missing, a row is duplicated, a report
differs from the truth, or a process misbehaved.

Modules: :mod:`.processes` (scratch database choice, service subprocesses,
HTTP probes; also used by ``tests/processing/test_resilience.py``),
:mod:`.plan` (:class:`ChaosOptions`, :class:`ChaosReport`), :mod:`.checks`
(database probes and the verdict), :mod:`.actions` (the delivery monitor,
the worker kill, the database cut, the drain), :mod:`.run`
(:func:`run_chaos`) and :mod:`.command` (``chaos_command`` and the printed
report).
"""

from receiver.devtools.bench.servers import free_port
from receiver.devtools.chaos.command import chaos_command, print_report
from receiver.devtools.chaos.plan import ChaosOptions, ChaosReport
from receiver.devtools.chaos.processes import (
    ChildProcess,
    default_database_url,
    http_get,
    serve_argv,
    service_env,
    wait_until_ready,
    worker_argv,
)
from receiver.devtools.chaos.run import run_chaos

__all__ = [
    "ChaosOptions",
    "ChaosReport",
    "ChildProcess",
    "chaos_command",
    "default_database_url",
    "free_port",
    "http_get",
    "print_report",
    "run_chaos",
    "serve_argv",
    "service_env",
    "wait_until_ready",
    "worker_argv",
]
