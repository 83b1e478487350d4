"""Logging, configured once at the entry point (the CLI).

structlog renders JSON lines on stdout in production and a readable console
format on a terminal (``LOG_FORMAT=auto|json|console``). The standard
library loggers of uvicorn, SQLAlchemy and Alembic go through the same
processors, so every line has one format. Secrets are redacted twice: by
key name (authorization, api_key, stream_key, password, secret, token) and
by value (the configured API key and any value registered with
:func:`receiver.redaction.register_secret`).
"""

from __future__ import annotations

import logging
import sys
from typing import Any

import structlog

from .redaction import redact_value, register_secret

__all__ = ["configure_logging", "register_secret", "redact"]

def redact(_logger: Any, _method: str, event_dict: dict[str, Any]) -> dict[str, Any]:
    """structlog processor: replace secret-looking keys and known secret values with ``[redacted]``."""
    event_dict.pop("color_message", None)  # uvicorn's ANSI-coloured duplicate of the message
    return redact_value(event_dict)


def configure_logging(fmt: str = "auto", level: str = "INFO", stream: Any = None) -> None:
    """Configure structlog and the standard library (JSON or console renderer) to ``stream``.

    Services (``serve``, ``worker``) log to stdout; other commands to stderr
    (default) so their CSV/JSON output stays clean.
    """
    stream = stream or sys.stderr
    use_json = fmt == "json" or (fmt == "auto" and not stream.isatty())
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.format_exc_info,
        redact,
    ]
    renderer: Any = structlog.processors.JSONRenderer() if use_json else structlog.dev.ConsoleRenderer(colors=stream.isatty())
    structlog.configure(
        # filter_by_level first: a call below the level costs almost nothing.
        processors=[structlog.stdlib.filter_by_level, *shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
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
