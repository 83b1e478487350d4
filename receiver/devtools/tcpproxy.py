"""A small TCP proxy with an off switch, for making a dependency (the database) unreachable on demand.

``TcpProxy(target_host, target_port).start()`` listens on 127.0.0.1 (a free
port unless one is given) and forwards every connection to the target,
byte for byte, from an asyncio loop on a background thread. Point
``DATABASE_URL`` at :attr:`TcpProxy.port` (see :func:`proxied_url`) and:

* :meth:`TcpProxy.cut` closes the listening socket (new connections are
  refused at once: ECONNREFUSED) and resets every open connection (RST), so
  clients see a dead server immediately instead of hanging;
* :meth:`TcpProxy.restore` listens again on the same port.

Used by ``receiver bench chaos`` and the resilience tests; it is not part
of the service.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
import threading
from typing import Any

__all__ = ["TcpProxy", "proxied_url"]

_CHUNK = 65536


def proxied_url(database_url: str, port: int, host: str = "127.0.0.1") -> str:
    """``database_url`` with its host and port replaced by the proxy's (password kept)."""
    from sqlalchemy.engine import make_url

    from receiver.db.engine import normalise_url

    return make_url(normalise_url(database_url)).set(host=host, port=port).render_as_string(hide_password=False)


def _reset(writer: asyncio.StreamWriter) -> None:
    """Close a connection with RST (SO_LINGER 0) rather than a polite FIN."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


class TcpProxy:
    """Forward ``listen_host:port`` to ``target_host:target_port`` until :meth:`cut`; see the module docstring.

    Counters (read from any thread): ``accepted`` connections, ``refused``
    (the target did not answer), ``cuts`` and ``reset`` (connections reset by cuts).
    """

    def __init__(
        self, target_host: str, target_port: int, *, listen_host: str = "127.0.0.1", listen_port: int = 0
    ) -> None:
        self.target_host = target_host
        self.target_port = target_port
        self.listen_host = listen_host
        self.port = listen_port
        self.accepted = 0
        self.refused = 0
        self.cuts = 0
        self.reset = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: asyncio.base_events.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._is_cut = False

    # -- lifecycle (call from any thread) -----------------------------------------------------

    def start(self, timeout: float = 5.0) -> TcpProxy:
        """Start the loop thread and listen; returns ``self`` (``port`` is then the bound port)."""
        if self._thread is not None:
            return self
        ready = threading.Event()
        self._loop = asyncio.new_event_loop()

        def run() -> None:
            assert self._loop is not None
            asyncio.set_event_loop(self._loop)
            self._loop.call_soon(ready.set)
            self._loop.run_forever()

        self._thread = threading.Thread(target=run, name=f"tcpproxy-{self.target_port}", daemon=True)
        self._thread.start()
        ready.wait(timeout)
        self._call(self._listen(), timeout)
        return self

    def cut(self, timeout: float = 5.0) -> int:
        """Refuse new connections and reset the open ones; returns how many were reset."""
        return self._call(self._cut(), timeout)

    def restore(self, timeout: float = 5.0) -> None:
        """Accept connections again, on the same port."""
        self._call(self._listen(), timeout)

    @property
    def is_cut(self) -> bool:
        """True between :meth:`cut` and :meth:`restore`."""
        return self._is_cut

    @property
    def open_connections(self) -> int:
        """Connections currently forwarded."""
        return len(self._writers) // 2

    def stop(self, timeout: float = 5.0) -> None:
        """Close everything and end the loop thread (idempotent)."""
        if self._loop is None or self._thread is None:
            return
        with contextlib.suppress(Exception):
            self._call(self._cut(), timeout)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout)
        self._loop.close()
        self._loop = None
        self._thread = None

    def __enter__(self) -> TcpProxy:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # -- inside the loop ----------------------------------------------------------------------

    def _call(self, coroutine: Any, timeout: float) -> Any:
        if self._loop is None:
            coroutine.close()
            raise RuntimeError("the proxy is not started")
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout)

    async def _listen(self) -> None:
        if self._server is not None:
            self._is_cut = False
            return
        sock = socket.socket(socket.AF_INET6 if ":" in self.listen_host else socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((self.listen_host, self.port))
            sock.listen(128)
        except OSError:
            sock.close()
            raise
        self.port = sock.getsockname()[1]
        self._server = await asyncio.start_server(self._handle, sock=sock)
        self._is_cut = False

    async def _cut(self) -> int:
        self._is_cut = True
        self.cuts += 1
        if self._server is not None:
            self._server.close()  # closes the listening socket: new connections are refused
            self._server = None
        writers = list(self._writers)
        self._writers.clear()
        for writer in writers:
            _reset(writer)
        for task in list(self._tasks):
            task.cancel()
        reset = len(writers) // 2
        self.reset += reset
        return reset

    async def _handle(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        if self._is_cut:
            _reset(client_writer)
            return
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection(self.target_host, self.target_port)
        except OSError:
            self.refused += 1
            _reset(client_writer)
            return
        if self._is_cut:  # cut while connecting
            _reset(upstream_writer)
            _reset(client_writer)
            return
        self.accepted += 1
        self._writers.update((client_writer, upstream_writer))
        pumps = [
            asyncio.ensure_future(self._pump(client_reader, upstream_writer)),
            asyncio.ensure_future(self._pump(upstream_reader, client_writer)),
        ]
        self._tasks.update(pumps)
        try:
            # Either side closing ends the connection; the other direction is closed too.
            await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for pump in pumps:
                pump.cancel()
                self._tasks.discard(pump)
            for writer in (client_writer, upstream_writer):
                if writer in self._writers:
                    self._writers.discard(writer)
                    with contextlib.suppress(Exception):
                        writer.close()

    @staticmethod
    async def _pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                data = await reader.read(_CHUNK)
                if not data:
                    break
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
