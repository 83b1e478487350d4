"""Run the sandbox app with uvicorn in a background thread (for the demo and tests)."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable

import uvicorn

from receiver.sandbox.app import SandboxState, create_sandbox_app

__all__ = ["start_sandbox_in_thread"]


def start_sandbox_in_thread(
    state: SandboxState, host: str = "127.0.0.1", port: int = 0, *, startup_timeout: float = 10.0
) -> tuple[str, Callable[[], None]]:
    """Serve ``create_sandbox_app(state)`` on ``host:port`` (0 = a free port) in a daemon thread.

    Returns ``(base_url, stop)``: ``base_url`` like ``http://127.0.0.1:54321``
    (the REST API is under ``base_url + "/v2"``); ``stop()`` shuts the server
    down and waits for the thread (idempotent).

    Raises:
        RuntimeError: the server did not start within ``startup_timeout`` seconds.
    """
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(128)
    actual_port = sock.getsockname()[1]
    config = uvicorn.Config(create_sandbox_app(state), log_level="warning", access_log=False, lifespan="off")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name="dyte-sandbox", daemon=True)
    thread.start()
    deadline = time.monotonic() + startup_timeout
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            sock.close()
            raise RuntimeError("sandbox server did not start")
        time.sleep(0.01)

    def stop() -> None:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()

    display_host = f"[{host}]" if ":" in host else host
    return f"http://{display_host}:{actual_port}", stop
