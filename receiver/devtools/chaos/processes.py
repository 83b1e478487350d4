"""The chaos run's processes: where the scratch database goes, the service subprocesses, HTTP probes.

Owns :class:`ChildProcess` (a ``receiver serve`` / ``receiver worker``
subprocess logging to a file, stopped with SIGTERM then SIGKILL), the
environment and command lines they start with, :func:`http_get` and
:func:`wait_until_ready`. Also used by ``tests/processing/test_resilience.py``.
"""

from __future__ import annotations

import http.client
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from receiver.db.engine import normalise_url
from receiver.devtools.bench.servers import terminate

__all__ = [
    "DEFAULT_PG_URL",
    "ChildProcess",
    "default_database_url",
    "http_get",
    "postgres_answers",
    "serve_argv",
    "service_env",
    "wait_until_ready",
    "worker_argv",
]

#: Where the default scratch PostgreSQL database is created (if the server answers).
DEFAULT_PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
#: Service settings of the caller's environment that never reach the children.
_STRIPPED_ENV = (
    "DATABASE_URL",
    "DYTE_",
    "PUBLIC_URL",
    "RECONCILE",
    "WORKER_",
    "LOG_",
    "SUBSCRIPTION",
    "STALE_",
    "MAX_BODY",
    "API_TOKENS",
)


def postgres_answers(url: str = DEFAULT_PG_URL) -> bool:
    """True when the PostgreSQL server of ``url`` accepts a login and ``SELECT 1``."""
    parsed = make_url(normalise_url(url))
    try:
        with socket.create_connection((parsed.host or "127.0.0.1", parsed.port or 5432), timeout=1):
            pass
        engine = create_engine(parsed, connect_args={"connect_timeout": 3})
        try:
            with engine.connect() as connection:
                connection.execute(text("SELECT 1"))
        finally:
            engine.dispose()
    except Exception:  # OSError or any driver error: not usable
        return False
    return True


def default_database_url() -> str | None:
    """Where to create the scratch database: local PostgreSQL when it answers, else None (SQLite)."""
    return DEFAULT_PG_URL if postgres_answers(DEFAULT_PG_URL) else None


def service_env(**settings: Any) -> dict[str, str]:
    """The caller's environment without service settings, plus ``settings`` (names upper-cased)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(_STRIPPED_ENV)}
    env.update({k.upper(): str(v) for k, v in settings.items() if v is not None})
    env["PYTHONUNBUFFERED"] = "1"
    return env


def serve_argv(port: int, host: str = "127.0.0.1") -> list[str]:
    """``receiver serve --no-worker --no-migrate`` on ``host:port``."""
    return [
        sys.executable,
        "-m",
        "receiver.cli",
        "serve",
        "--no-worker",
        "--no-migrate",
        "--host",
        host,
        "--port",
        str(port),
    ]


def worker_argv(*extra: str) -> list[str]:
    """``receiver worker`` (plus ``extra`` options, e.g. ``--once``)."""
    return [sys.executable, "-m", "receiver.cli", "worker", *extra]


class ChildProcess:
    """A service subprocess with its output in a log file; stopped with SIGTERM, then SIGKILL.

    ``worker_id_prefix`` is what the worker ids of this process start with
    (``host:pid:``, see :func:`receiver.processing.worker.default_worker_id`).
    """

    def __init__(
        self, name: str, argv: list[str], env: dict[str, str], log_path: Path, *, cwd: Path | None = None
    ) -> None:
        self.name = name
        self.argv = argv
        self.env = env
        self.log_path = log_path
        self.cwd = cwd or log_path.parent
        self.proc: subprocess.Popen[bytes] | None = None
        self._log: Any = None

    def start(self) -> ChildProcess:
        """Start the process (does not wait for readiness)."""
        self._log = open(self.log_path, "ab")  # noqa: SIM115
        self.proc = subprocess.Popen(
            self.argv, env=self.env, cwd=self.cwd, stdout=self._log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
        )
        return self

    @property
    def pid(self) -> int:
        """The process id."""
        assert self.proc is not None
        return self.proc.pid

    @property
    def worker_id_prefix(self) -> str:
        """``host:pid:`` - the prefix of the worker ids this process uses."""
        return f"{socket.gethostname()}:{self.pid}:"

    def alive(self) -> bool:
        """True while the process runs."""
        return self.proc is not None and self.proc.poll() is None

    def signal(self, sig: int) -> None:
        """Send ``sig`` to this process (only)."""
        if self.alive():
            assert self.proc is not None
            self.proc.send_signal(sig)

    def wait(self, timeout: float) -> int | None:
        """Wait for the exit; returns the exit code, or None if it still runs after ``timeout`` seconds."""
        assert self.proc is not None
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def stop(self, timeout: float = 30.0) -> int | None:
        """SIGTERM, wait up to ``timeout`` seconds, then SIGKILL; returns the exit code (idempotent)."""
        if self.proc is None:
            return None
        code = terminate(self.proc, timeout)
        if self._log is not None:
            self._log.close()
            self._log = None
        return code

    def log_tail(self, lines: int = 10) -> str:
        """The last ``lines`` lines of the process's output."""
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


def http_get(base_url: str, path: str, timeout: float = 3.0) -> tuple[int | None, dict[str, Any] | None]:
    """GET ``base_url + path``; returns (status, JSON body) or (None, None) when nothing answered."""
    parsed = httpx.URL(base_url)
    connection = http.client.HTTPConnection(parsed.host, parsed.port, timeout=timeout)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        raw = response.read()
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        return response.status, body
    except OSError:
        return None, None
    finally:
        connection.close()


def wait_until_ready(process: ChildProcess, base_url: str, *, path: str = "/readyz", timeout: float = 30.0) -> None:
    """Poll ``path`` until 200.

    Raises:
        RuntimeError: the process exited or was not ready in time (with its last log lines).
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not process.alive():
            raise RuntimeError(f"{process.name} exited early; last log lines:\n{process.log_tail()}")
        if http_get(base_url, path, timeout=2)[0] == 200:
            return
        time.sleep(0.1)
    raise RuntimeError(f"{process.name} was not ready within {timeout:.0f} s; last log lines:\n{process.log_tail()}")
