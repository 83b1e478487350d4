"""Serve an ASGI app with uvicorn on a background thread (demo, sandbox, end-to-end tests)."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable
from typing import Any, Literal

import uvicorn

__all__ = ["serve_in_thread"]


def serve_in_thread(
    app: Any,
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    name: str = "asgi-server",
    lifespan: Literal["auto", "on", "off"] = "on",
    startup_timeout: float = 10.0,
) -> tuple[str, Callable[[], None]]:
    """Serve ``app`` on ``host:port`` (0 = a free port) in a daemon thread.

    Returns ``(base_url, stop)``: ``base_url`` like ``http://127.0.0.1:54321``;
    ``stop()`` shuts the server down gracefully and waits (idempotent).

    Raises:
        RuntimeError: the server did not start within ``startup_timeout`` seconds.
    """
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(512)
    actual_port = sock.getsockname()[1]
    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan=lifespan, log_config=None)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name=name, daemon=True)
    thread.start()
    deadline = time.monotonic() + startup_timeout
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            sock.close()
            raise RuntimeError(f"{name} did not start")
        time.sleep(0.01)

    def stop() -> None:
        server.should_exit = True
        thread.join(timeout=15)
        sock.close()

    display_host = f"[{host}]" if ":" in host else host
    return f"http://{display_host}:{actual_port}", stop
