"""A closed-loop HTTP/1.1 load generator on raw asyncio streams (no HTTP library on the hot path).

``connections`` keep-alive connections each send one request, read the
whole response, and send the next, until the deadline. Requests are
pre-built bytes (:class:`receiver.devtools.bench.payloads.RequestFactory`), so the
client's work per request is one ``write``, one ``readuntil`` of the head,
one ``readexactly`` of the body, and a couple of ``perf_counter`` calls.

Throughput counts responses *completed* inside the measured window
(after ``warmup`` seconds); latency is measured per request from just
before the write to the end of its body. Every 2xx is remembered by the
request's sequence number, so the caller can check that each acknowledged
delivery was stored. Responses without ``content-length`` (chunked or
until-close) are supported minimally; the receiver always sends
``content-length``.

:func:`run_load_processes` runs the same loop in several processes (for a
server faster than one client core); on a 2-core machine one process is
usually the right choice (see ``receiver bench ingest --help``).
"""

from __future__ import annotations

import asyncio
import multiprocessing
import time
from array import array
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

__all__ = ["LoadResult", "run_load", "run_load_processes", "parse_response_head", "run_coroutine", "client_loop_name"]

_HEAD_END = b"\r\n\r\n"


@dataclass
class LoadResult:
    """What one load run saw.

    Attributes:
        window_seconds: length of the measured window (after warm-up).
        completed: responses completed inside the window (any status).
        latencies: seconds, one per response completed inside the window.
        statuses: every response by HTTP status, warm-up included.
        errors: transport problems by kind (``connect``, ``reset``,
            ``protocol``, ``unanswered`` = in flight at the hard stop).
        acked: sequence numbers of the requests answered 2xx (warm-up included).
        acked_at: ``time.perf_counter()`` at the end of each of those answers, in
            the order of ``acked`` (compare only with the same process's clock).
        sent: requests written.
        client_cpu_seconds: CPU time of the generator process(es) during the run.
        wall_seconds: wall time of the whole run, warm-up included.
    """

    window_seconds: float = 0.0
    completed: int = 0
    latencies: array = field(default_factory=lambda: array("d"))
    statuses: Counter = field(default_factory=Counter)
    errors: Counter = field(default_factory=Counter)
    acked: array = field(default_factory=lambda: array("q"))
    acked_at: array = field(default_factory=lambda: array("d"))
    sent: int = 0
    client_cpu_seconds: float = 0.0
    wall_seconds: float = 0.0

    @property
    def requests_per_second(self) -> float:
        """Completed responses per second in the measured window."""
        return self.completed / self.window_seconds if self.window_seconds > 0 else 0.0

    @property
    def client_cpu_share(self) -> float:
        """Generator CPU seconds per wall second (1.0 = one core saturated)."""
        return self.client_cpu_seconds / self.wall_seconds if self.wall_seconds > 0 else 0.0

    def _add_counts(self, other: LoadResult) -> None:
        self.completed += other.completed
        self.latencies.extend(other.latencies)
        self.statuses.update(other.statuses)
        self.errors.update(other.errors)
        self.acked.extend(other.acked)
        self.acked_at.extend(other.acked_at)
        self.sent += other.sent
        self.client_cpu_seconds += other.client_cpu_seconds

    def extend(self, other: LoadResult) -> None:
        """Add ``other`` (a later round against the same target) into this result: windows and wall times add up."""
        self._add_counts(other)
        self.window_seconds += other.window_seconds
        self.wall_seconds += other.wall_seconds

    def merge(self, other: LoadResult) -> None:
        """Add ``other`` (another process's share of the same run) into this result."""
        self._add_counts(other)
        self.window_seconds = max(self.window_seconds, other.window_seconds)
        self.wall_seconds = max(self.wall_seconds, other.wall_seconds)


def client_loop_name(preferred: str = "auto") -> str:
    """``uvloop`` when asked for or (``auto``) when installed, else ``asyncio``."""
    if preferred == "asyncio":
        return "asyncio"
    try:
        import uvloop  # noqa: F401
    except ImportError:
        if preferred == "uvloop":
            raise RuntimeError("--client-loop uvloop: uvloop is not installed") from None
        return "asyncio"
    return "uvloop"


def run_coroutine(coro: Any, loop: str = "auto") -> Any:
    """Run ``coro`` to completion on a new event loop of kind ``loop`` (see :func:`client_loop_name`)."""
    if client_loop_name(loop) == "uvloop":
        import uvloop

        event_loop = uvloop.new_event_loop()
        try:
            return event_loop.run_until_complete(coro)
        finally:
            event_loop.close()
    return asyncio.run(coro)


def parse_response_head(head: bytes) -> tuple[int, int | None, bool, bool]:
    """``(status, content_length or None, chunked, close)`` of a response head ending in CRLFCRLF.

    Raises:
        ValueError: not an HTTP/1.x status line.
    """
    if not head.startswith(b"HTTP/1.") or len(head) < 12:
        raise ValueError("not an HTTP/1.x response")
    status = int(head[9:12])
    lower = head.lower()
    length: int | None = None
    at = lower.find(b"\r\ncontent-length:")
    if at >= 0:
        end = lower.index(b"\r\n", at + 2)
        length = int(lower[at + 17 : end])
    chunked = b"\r\ntransfer-encoding: chunked" in lower
    close = b"\r\nconnection: close" in lower
    return status, length, chunked, close


async def _read_chunked(reader: asyncio.StreamReader) -> None:
    while True:
        size_line = await reader.readuntil(b"\r\n")
        size = int(size_line.split(b";", 1)[0].strip(), 16)
        if size == 0:
            await reader.readuntil(b"\r\n")  # no trailers expected
            return
        await reader.readexactly(size + 2)


class _Shared:
    """State shared by the connection tasks of one run (single event loop, no locks needed)."""

    def __init__(
        self, next_request: Callable[[], bytes], measure_from: float, stop_at: float, warmup: float = 0.0
    ) -> None:
        self.next_request = next_request
        self.measure_from = measure_from
        self.warmup = warmup
        self.stop_at = stop_at
        self.result = LoadResult()


async def _connection(
    host: str, port: int, shared: _Shared, seq_of: Callable[[], int], interval: float | None = None, offset: float = 0.0
) -> None:
    result = shared.result
    latencies, statuses, acked, acked_at = result.latencies, result.statuses, result.acked, result.acked_at
    reader: asyncio.StreamReader | None = None
    writer: asyncio.StreamWriter | None = None
    perf = time.perf_counter
    in_flight = False
    # Open loop: request k of this connection is due at ``due``; latency counts from
    # ``due``, not from the actual send, so a stalled server is not hidden
    # (no coordinated omission). A connection that falls behind sends at once.
    due = shared.measure_from - shared.warmup + offset
    try:
        while perf() < shared.stop_at:
            if interval is not None:
                delay = due - perf()
                if delay > 0:
                    await asyncio.sleep(delay)
                if due >= shared.stop_at:
                    break
            if writer is None:
                try:
                    reader, writer = await asyncio.open_connection(host, port)
                except OSError:
                    result.errors["connect"] += 1
                    await asyncio.sleep(0.05)
                    continue
            assert reader is not None
            seq = seq_of()
            request = shared.next_request()
            started = perf() if interval is None else due
            if interval is not None:
                due += interval
            writer.write(request)
            result.sent += 1
            in_flight = True
            try:
                head = await reader.readuntil(_HEAD_END)
                status, length, chunked, close = parse_response_head(head)
                if length is not None:
                    if length:
                        await reader.readexactly(length)
                elif chunked:
                    await _read_chunked(reader)
                else:
                    await reader.read()  # body until close
                    close = True
            except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError, OSError) as exc:
                in_flight = False
                result.errors[
                    "reset" if isinstance(exc, (ConnectionError, asyncio.IncompleteReadError)) else "protocol"
                ] += 1
                writer.close()
                writer = reader = None
                continue
            except ValueError:
                in_flight = False
                result.errors["protocol"] += 1
                writer.close()
                writer = reader = None
                continue
            in_flight = False
            finished = perf()
            statuses[status] += 1
            if 200 <= status < 300:
                acked.append(seq)
                acked_at.append(finished)
            if shared.measure_from <= finished <= shared.stop_at:
                latencies.append(finished - started)
                result.completed += 1
            if close:
                writer.close()
                writer = reader = None
    except asyncio.CancelledError:
        if in_flight:
            result.errors["unanswered"] += 1
        raise
    finally:
        if writer is not None:
            writer.close()


async def run_load(
    host: str,
    port: int,
    next_request: Callable[[], bytes],
    *,
    connections: int,
    duration: float,
    warmup: float = 1.0,
    grace: float = 10.0,
    sequence: Callable[[], int] | None = None,
    rate: float | None = None,
) -> LoadResult:
    """Drive ``connections`` keep-alive connections for ``warmup + duration`` seconds.

    Closed loop by default (each connection sends as soon as its previous
    response is read). With ``rate`` (requests/s over all connections) it is
    an open loop: each connection sends on a fixed schedule of
    ``connections / rate`` seconds, staggered, and latency is measured from
    the scheduled time.

    Args:
        next_request: returns the next request's bytes (called once per request).
        sequence: returns the sequence number of the request about to be
            built (recorded in ``acked`` on 2xx); defaults to a counter.
        grace: seconds after the deadline to wait for in-flight responses;
            those still missing are counted as ``unanswered`` errors.
    """
    counter = 0

    def default_seq() -> int:
        nonlocal counter
        counter += 1
        return counter - 1

    seq_of = sequence or default_seq
    cpu_start, wall_start = time.process_time(), time.perf_counter()
    shared = _Shared(next_request, wall_start + warmup, wall_start + warmup + duration, warmup)
    interval = connections / rate if rate else None
    tasks = [
        asyncio.create_task(_connection(host, port, shared, seq_of, interval, (interval or 0.0) * index / connections))
        for index in range(connections)
    ]
    done, pending = await asyncio.wait(tasks, timeout=warmup + duration + grace)
    for task in pending:
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)
    for task in done:
        if task.exception() is not None:
            shared.result.errors[f"client:{type(task.exception()).__name__}"] += 1
    result = shared.result
    result.window_seconds = duration
    result.wall_seconds = time.perf_counter() - wall_start
    result.client_cpu_seconds = time.process_time() - cpu_start
    return result


def _process_main(args: dict[str, Any], queue: Any) -> None:
    from receiver.devtools.bench.payloads import RequestFactory

    factory = RequestFactory(
        args["bodies"], args["signatures"], host=args["host_header"], path=args["path"], run_id=args["run_id"]
    )
    # Each process numbers its own requests in a disjoint range: seq = offset + local n.
    factory.issued = args["offset"]
    factory_seq = lambda: factory.issued  # noqa: E731

    async def main() -> LoadResult:
        return await run_load(
            args["host"],
            args["port"],
            factory.next,
            connections=args["connections"],
            duration=args["duration"],
            warmup=args["warmup"],
            sequence=factory_seq,
            rate=args["rate"],
        )

    result = run_coroutine(main(), args["client_loop"])
    queue.put(result)


def run_load_processes(
    processes: int,
    *,
    host: str,
    port: int,
    bodies: list[bytes],
    signatures: list[str],
    run_id: str,
    connections: int,
    duration: float,
    warmup: float,
    path: str = "/webhooks/dyte",
    client_loop: str = "auto",
    rate: float | None = None,
) -> LoadResult:
    """Run the generator in ``processes`` processes (connections split evenly); merged result.

    Sequence numbers (hence ``dyte-uuid`` values) of process ``i`` start
    at ``i * 10**9`` so they never collide.
    """
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    procs = []
    shares = [connections // processes + (1 if i < connections % processes else 0) for i in range(processes)]
    for index, share in enumerate(shares):
        args = {
            "host": host,
            "port": port,
            "host_header": f"{host}:{port}",
            "bodies": bodies,
            "signatures": signatures,
            "run_id": run_id,
            "offset": index * 10**9,
            "connections": share,
            "duration": duration,
            "warmup": warmup,
            "path": path,
            "client_loop": client_loop,
            "rate": rate / processes if rate else None,
        }
        proc = ctx.Process(target=_process_main, args=(args, queue), daemon=True)
        proc.start()
        procs.append(proc)
    merged = LoadResult()
    for _ in procs:
        merged.merge(queue.get(timeout=warmup + duration + 120))
    for proc in procs:
        proc.join(timeout=10)
    merged.window_seconds = duration
    return merged
