"""Logging, configured once at the entry point (the CLI).

structlog renders JSON lines on stdout in production and a readable console
format on a terminal (``LOG_FORMAT=auto|json|console``). The standard
library loggers of uvicorn, SQLAlchemy and Alembic go through the same
processors (a ``ProcessorFormatter`` on the root handler), so every line has
one format; structlog's own loggers skip the standard library and write
their rendered line straight to the stream. Secrets are redacted twice: by
key name (authorization, api_key, stream_key, password, secret, token) and
by value (the configured API key and any value registered with
:func:`receiver.redaction.register_secret`).
"""

from __future__ import annotations

import logging
import sys
from typing import Any

import structlog

from .redaction import redact_in_place, register_secret

__all__ = ["configure_logging", "register_secret", "redact"]


class _NamedWriteLogger(structlog.WriteLogger):
    """structlog's ``WriteLogger`` (one lock per stream, flush per line) with the ``name`` given to ``get_logger``."""

    def __init__(self, file: Any, name: str | None) -> None:
        super().__init__(file)
        self.name = name or "receiver"


class _NamedWriteLoggerFactory:
    """``structlog.get_logger("receiver.x")`` -> a :class:`_NamedWriteLogger` on the configured stream."""

    def __init__(self, stream: Any) -> None:
        self.stream = stream

    def __call__(self, *args: Any) -> _NamedWriteLogger:
        return _NamedWriteLogger(self.stream, args[0] if args and isinstance(args[0], str) else None)


def redact(_logger: Any, _method: str, event_dict: dict[str, Any]) -> dict[str, Any]:
    """structlog processor: replace secret-looking keys and known secret values with ``[redacted]``.

    Works in place: structlog hands each call its own dict.
    """
    event_dict.pop("color_message", None)  # uvicorn's ANSI-coloured duplicate of the message
    return redact_in_place(event_dict)


def configure_logging(fmt: str = "auto", level: str = "INFO", stream: Any = None) -> None:
    """Configure structlog and the standard library (JSON or console renderer) to ``stream``.

    Services (``serve``, ``worker``) log to stdout; other commands to stderr
    (default) so their CSV/JSON output stays clean.
    """
    stream = stream or sys.stderr
    use_json = fmt == "json" or (fmt == "auto" and not stream.isatty())
    shared: list[Any] = [
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.format_exc_info,
        redact,
    ]
    renderer: Any = structlog.processors.JSONRenderer() if use_json else structlog.dev.ConsoleRenderer(colors=stream.isatty())
    # Our own loggers render and write directly (no stdlib LogRecord on the
    # way): the request line is written on every webhook, so it must be cheap.
    structlog.configure(
        processors=[*shared, renderer],
        logger_factory=_NamedWriteLoggerFactory(stream),
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        cache_logger_on_first_use=False,
    )
    handler = logging.StreamHandler(stream)
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
