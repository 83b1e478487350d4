"""Run the sandbox app with uvicorn in a background thread (for the demo and tests)."""

from __future__ import annotations

from collections.abc import Callable

from receiver.sandbox.app import SandboxState, create_sandbox_app
from receiver.sandbox.localserver import serve_in_thread

__all__ = ["start_sandbox_in_thread"]


def start_sandbox_in_thread(
    state: SandboxState, host: str = "127.0.0.1", port: int = 0, *, startup_timeout: float = 10.0
) -> tuple[str, Callable[[], None]]:
    """Serve ``create_sandbox_app(state)`` on ``host:port`` (0 = a free port) in a daemon thread.

    Returns ``(base_url, stop)``: the REST API is under ``base_url + "/v2"``.

    Raises:
        RuntimeError: the server did not start within ``startup_timeout`` seconds.
    """
    return serve_in_thread(
        create_sandbox_app(state), host, port, name="dyte-sandbox", lifespan="off", startup_timeout=startup_timeout
    )
