"""Server subprocesses for the benches: free ports, start, wait until ready, CPU time, stop.

The receiver itself is started as ``receiver serve --no-worker`` through
``python -m receiver.cli`` (the receiver CLI, with whatever
commands :mod:`receiver.cli.commands` registers when present). Its JSON log
lines go to a file, so logging costs what it costs in production without
flooding the terminal.
"""

from __future__ import annotations

import http.client
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import BinaryIO

__all__ = ["free_port", "ServerProcess", "bench_env", "receiver_serve_argv", "baseline_argv"]

#: Environment prefixes stripped from the child's environment (service settings of the caller).
_STRIPPED = (
    "DATABASE_URL",
    "DYTE_",
    "PUBLIC_URL",
    "RECONCILE",
    "WORKER_",
    "LOG_",
    "SUBSCRIPTION",
    "STALE_",
    "MAX_BODY",
)


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def terminate(proc: subprocess.Popen, timeout: float = 30.0) -> int | None:
    """SIGTERM ``proc``, wait up to ``timeout`` seconds, then SIGKILL; returns its exit code."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
    return proc.returncode


def bench_env(**settings: str) -> dict[str, str]:
    """The caller's environment without service settings, plus ``settings`` (upper-cased names)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(_STRIPPED)}
    env.update({k.upper(): v for k, v in settings.items()})
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env


def receiver_serve_argv(host: str, port: int, workers: int = 1) -> list[str]:
    """``receiver serve --no-worker --no-migrate [--workers N]`` on ``host:port`` (the database comes from DATABASE_URL)."""
    extra = ["--workers", str(workers)] if workers > 1 else []
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
        *extra,
    ]


def baseline_argv(kind: str, host: str, port: int) -> list[str]:
    """One of the reference servers of :mod:`receiver.devtools.bench.baseline`."""
    return [sys.executable, "-m", "receiver.devtools.bench.baseline", kind, "--host", host, "--port", str(port)]


def _stat(pid: int) -> list[str] | None:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def _cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds of ``pid`` and its live children (``receiver serve --workers N``:
    the supervisor and its server processes; Linux ``/proc``), None elsewhere."""
    fields = _stat(pid)
    if fields is None:
        return None
    ticks = os.sysconf("SC_CLK_TCK")
    total = int(fields[11]) + int(fields[12])
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and entry.name != str(pid):
            child = _stat(int(entry.name))
            if child is not None and child[1] == str(pid):  # field 4 of stat: the parent's pid
                total += int(child[11]) + int(child[12])
    return total / ticks


class ServerProcess:
    """One server in a subprocess; use as a context manager (stops it on exit).

    Args:
        name: for messages.
        argv, env: the command.
        host, port: where it listens.
        log_path: its stdout and stderr go here.
        ready_path: GET this until it answers 200 (None: a TCP connect suffices).
    """

    def __init__(
        self,
        name: str,
        argv: list[str],
        env: dict[str, str],
        *,
        host: str,
        port: int,
        log_path: Path,
        ready_path: str | None = None,
    ) -> None:
        self.name = name
        self.argv = argv
        self.env = env
        self.host = host
        self.port = port
        self.log_path = log_path
        self.ready_path = ready_path
        self.proc: subprocess.Popen[bytes] | None = None
        self._log: BinaryIO | None = None

    def __enter__(self) -> ServerProcess:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self, timeout: float = 30.0) -> None:
        """Start and wait until ready.

        Raises:
            RuntimeError: the process exited or was not ready within ``timeout`` seconds.
        """
        self._log = open(self.log_path, "ab")  # noqa: SIM115
        self.proc = subprocess.Popen(
            self.argv, env=self.env, stdout=self._log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                code = self.proc.returncode
                self.stop()
                raise RuntimeError(f"{self.name} exited with {code}; last log lines:\n{self.log_tail()}")
            if self._ready():
                return
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"{self.name} was not ready within {timeout:.0f} s; last log lines:\n{self.log_tail()}")

    def log_tail(self, lines: int = 8) -> str:
        """The last ``lines`` lines of the server's log."""
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def _ready(self) -> bool:
        try:
            if self.ready_path is None:
                with socket.create_connection((self.host, self.port), timeout=0.5):
                    return True
            connection = http.client.HTTPConnection(self.host, self.port, timeout=2)
            try:
                connection.request("GET", self.ready_path)
                return connection.getresponse().status == 200
            finally:
                connection.close()
        except OSError:
            return False

    def cpu_seconds(self) -> float | None:
        """CPU seconds the server process has used so far (None if unknown)."""
        return _cpu_seconds(self.proc.pid) if self.proc is not None else None

    def stop(self, timeout: float = 30.0) -> int | None:
        """SIGTERM (graceful: uvicorn drains, the group committer commits what is queued), then SIGKILL."""
        if self.proc is None:
            return None
        code = terminate(self.proc, timeout)
        self.proc = None
        if self._log is not None:
            self._log.close()
            self._log = None
        return code
