"""Logging, configured once at the entry point (the CLI).

structlog renders JSON lines on stdout in production and a readable console
format on a terminal (``LOG_FORMAT=auto|json|console``). The standard
library loggers of uvicorn, SQLAlchemy and Alembic go through the same
processors (a ``ProcessorFormatter`` on the root handler), so every line has
one format; structlog's own loggers skip the standard library and write
their rendered line straight to the stream. JSON is rendered with orjson
(the standard library's encoder when orjson refuses a value). Secrets are
redacted twice: by key name (authorization, api_key, stream_key, password,
secret, token) and by value (the configured API key and any value
registered with :func:`receiver.redaction.register_secret`).

Services (``serve``, ``worker``) buffer their lines and flush them at least
every ``LOG_FLUSH_SECONDS`` (a write per request cost more than the rest of
the request line; ``receiver bench ingest``), in a buffer of their own on
the stream's file descriptor, so ``PYTHONUNBUFFERED=1`` does not turn each
line back into a system call; other commands flush each line.
"""

from __future__ import annotations

import atexit
import io
import json
import logging
import sys
import threading
from datetime import UTC, datetime
from typing import Any

import orjson
import structlog

from receiver.redaction import redact_in_place, register_secret

__all__ = ["configure_logging", "register_secret", "redact", "bound_logger", "flush_logs", "log_line"]

# name -> (processors, logger factory, wrapper class it was bound under, the bound logger); see bound_logger.
_bound: dict[str, tuple[Any, Any, Any, Any]] = {}


class _Sink:
    """The configured stream, its lock, and (when buffered) the thread that flushes it."""

    def __init__(self, stream: Any, flush_seconds: float) -> None:
        self.flush_each_line = flush_seconds <= 0
        self.stream = stream if self.flush_each_line else _buffered(stream)
        self.lock = threading.Lock()
        self._stop = threading.Event()
        self._flusher: threading.Thread | None = None
        if not self.flush_each_line:
            self._flusher = threading.Thread(
                target=self._flush_every, args=(flush_seconds,), name="receiver-log-flush", daemon=True
            )
            self._flusher.start()

    def _flush_every(self, seconds: float) -> None:
        while not self._stop.wait(seconds):
            self.flush()

    def flush(self) -> None:
        """Flush the stream (a closed stream is ignored: the command that owned it has ended)."""
        with self.lock:
            try:
                self.stream.flush()
            except (ValueError, OSError):
                pass

    def close(self) -> None:
        """Stop the flusher thread and flush what is buffered."""
        self._stop.set()
        if self._flusher is not None and self._flusher is not threading.current_thread():
            self._flusher.join(timeout=1)
        self.flush()


_sink: _Sink | None = None

# (processors list, sink, lowest level number logged) of a JSON configuration made by configure_logging;
# None for the console renderer. See log_line.
_fast: tuple[Any, _Sink, int] | None = None

#: Bytes buffered between flushes when lines are buffered (~100 request lines).
_BUFFER_BYTES = 64 * 1024


def _buffered(stream: Any) -> Any:
    """A text stream buffering ``_BUFFER_BYTES`` on ``stream``'s file descriptor, or ``stream`` itself when it has none.

    ``PYTHONUNBUFFERED=1`` (set in deploy/Dockerfile and by most container
    images) makes ``sys.stdout`` write through: one ``write`` system call per
    line, about a tenth of a webhook's CPU (``receiver bench ingest``). The
    descriptor stays open when this stream is dropped (``closefd=False``).
    """
    try:
        fd = stream.fileno()
    except (AttributeError, OSError, ValueError, io.UnsupportedOperation):
        return stream  # an in-memory stream (tests): nothing to gain
    stream.flush()  # what was written before keeps its place
    encoding = getattr(stream, "encoding", None) or "utf-8"
    return open(fd, "w", buffering=_BUFFER_BYTES, encoding=encoding, errors="backslashreplace", closefd=False)


@atexit.register
def _flush_at_exit() -> None:
    if _sink is not None:
        _sink.close()


def flush_logs() -> None:
    """Write out buffered log lines now (``serve`` calls it at shutdown: uvicorn then re-raises
    SIGTERM, and a process killed by a signal runs no ``atexit`` handler)."""
    if _sink is not None:
        _sink.flush()


class _NamedWriteLogger(structlog.WriteLogger):
    """structlog's ``WriteLogger`` (write and flush each line) on the configured :class:`_Sink`, with the ``name`` given to ``get_logger``."""

    def __init__(self, sink: _Sink, name: str | None) -> None:
        super().__init__(sink.stream)
        self._lock = sink.lock
        self.name = name or "receiver"


class _BufferedWriteLogger(_NamedWriteLogger):
    """Like :class:`_NamedWriteLogger` but without the flush: the sink's thread flushes."""

    def msg(self, message: str) -> None:
        """Write ``message`` and a newline to the stream's buffer."""
        with self._lock:
            self._write(message + "\n")

    log = debug = info = warn = warning = fatal = failure = err = error = critical = exception = msg


class _NamedWriteLoggerFactory:
    """``structlog.get_logger("receiver.x")`` -> a :class:`_NamedWriteLogger` on the configured sink."""

    def __init__(self, sink: _Sink) -> None:
        self.sink = sink

    def __call__(self, *args: Any) -> _NamedWriteLogger:
        cls = _NamedWriteLogger if self.sink.flush_each_line else _BufferedWriteLogger
        return cls(self.sink, args[0] if args and isinstance(args[0], str) else None)


def _json_dumps(event_dict: dict[str, Any], **kw: Any) -> str:
    """One JSON line: orjson, or the standard library for what orjson refuses (lone surrogates, huge ints).

    Times (the ``timestamp`` of :func:`_add_utc_timestamp`) are written as
    ISO 8601 in UTC with a ``Z``: ``2026-12-04T06:39:00.258252Z``.
    """
    try:
        return orjson.dumps(event_dict, default=kw.get("default"), option=orjson.OPT_UTC_Z).decode("utf-8")
    except TypeError:  # orjson.JSONEncodeError is a TypeError
        plain = {key: _iso_utc(value) if type(value) is datetime else value for key, value in event_dict.items()}
        return json.dumps(plain, **kw)


def _iso_utc(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def _add_utc_timestamp(_logger: Any, _method: str, event_dict: dict[str, Any]) -> dict[str, Any]:
    """structlog processor: ``timestamp`` = now in UTC, as a ``datetime`` the JSON renderer formats
    (orjson does it in C: a third of structlog's ``TimeStamper`` cost, measured per request line)."""
    event_dict["timestamp"] = datetime.now(UTC)
    return event_dict


_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR}


def log_line(name: str, level: str, event: str, fields: dict[str, Any]) -> None:
    """Write one log line: what ``bound_logger(name).<level>(event, **fields)`` writes, for the hot path.

    ``level``: ``debug``, ``info``, ``warning`` or ``error``. ``fields`` is used
    as the line's dict (the caller gives it up). With the JSON configuration
    of :func:`configure_logging` still in place, the line is made here (level,
    logger name, UTC timestamp, :func:`redact` then orjson, the same steps as
    the processors) without structlog's dispatch: about 5 us less per webhook
    (``receiver bench ingest``). Otherwise (console renderer, or structlog
    configured by someone else, e.g. a test capturing logs) it goes through
    structlog.
    """
    fast = _fast
    if fast is None or structlog.get_config()["processors"] is not fast[0]:
        getattr(bound_logger(name), level)(event, **fields)
        return
    if _LEVELS[level] < fast[2]:
        return
    fields["event"] = event
    fields["level"] = level
    fields["logger"] = name
    fields["timestamp"] = datetime.now(UTC)
    line = _json_dumps(redact_in_place(fields)) + "\n"
    sink = fast[1]
    with sink.lock:
        sink.stream.write(line)
        if sink.flush_each_line:
            sink.stream.flush()


def bound_logger(name: str) -> Any:
    """A structlog logger for a hot path, bound once per structlog configuration instead of on every line.

    (``structlog.get_logger`` returns a lazy proxy that binds on every call,
    about 3 µs; structlog's own cache would outlive a reconfiguration.) The
    binding is redone whenever the processors, logger factory or wrapper
    class change, by :func:`configure_logging` or anyone calling
    ``structlog.configure``.
    """
    config = structlog.get_config()
    processors, factory, wrapper = config["processors"], config["logger_factory"], config["wrapper_class"]
    entry = _bound.get(name)
    if entry is None or entry[0] is not processors or entry[1] is not factory or entry[2] is not wrapper:
        entry = _bound[name] = (processors, factory, wrapper, structlog.get_logger(name).bind())
    return entry[3]


def redact(_logger: Any, _method: str, event_dict: dict[str, Any]) -> dict[str, Any]:
    """structlog processor: replace secret-looking keys and known secret values with ``[redacted]``.

    Works in place: structlog hands each call its own dict.
    """
    event_dict.pop("color_message", None)  # uvicorn's ANSI-coloured duplicate of the message
    return redact_in_place(event_dict)


def configure_logging(fmt: str = "auto", level: str = "INFO", stream: Any = None, flush_seconds: float = 0) -> None:
    """Configure structlog and the standard library (JSON or console renderer) to ``stream``.

    Services (``serve``, ``worker``) log to stdout; other commands to stderr
    (default) so their CSV/JSON output stays clean. ``flush_seconds`` > 0
    buffers structlog's lines and flushes them from a thread at least that
    often, seconds (and at exit); 0 flushes after every line.
    """
    global _sink, _fast
    stream = stream or sys.stderr
    if _sink is not None:
        _sink.close()
    _sink = _Sink(stream, flush_seconds)
    use_json = fmt == "json" or (fmt == "auto" and not stream.isatty())
    shared: list[Any] = [
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        _add_utc_timestamp if use_json else structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.format_exc_info,
        redact,
    ]
    renderer: Any = (
        structlog.processors.JSONRenderer(serializer=_json_dumps)
        if use_json
        else structlog.dev.ConsoleRenderer(colors=stream.isatty())
    )
    # Our own loggers render and write directly (no stdlib LogRecord on the
    # way): the request line is written on every webhook, so it must be cheap.
    processors = [*shared, renderer]
    min_level = logging.getLevelName(level.upper())
    _fast = (processors, _sink, min_level) if use_json else None
    structlog.configure(
        processors=processors,
        logger_factory=_NamedWriteLoggerFactory(_sink),
        wrapper_class=structlog.make_filtering_bound_logger(min_level),
        cache_logger_on_first_use=False,
    )
    # The same (buffered) stream, so lines keep their order. The standard
    # library's few lines (uvicorn's start and stop, errors) flush it at once:
    # uvicorn's last line comes after serve's final flush.
    handler = logging.StreamHandler(_sink.stream)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=shared[:-1] + [structlog.stdlib.ExtraAdder(), redact],
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access", "alembic", "sqlalchemy", "httpx"):
        logger = logging.getLogger(name)
        logger.handlers[:] = []
        logger.propagate = True
    logging.getLogger("uvicorn.access").setLevel(logging.WARNING)  # our own request line replaces it
    logging.getLogger("sqlalchemy.engine").setLevel(logging.WARNING)
    logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)
    logging.getLogger("httpx").setLevel(logging.WARNING)
