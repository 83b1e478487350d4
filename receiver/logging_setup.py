"""Logging, configured once at the entry point (the CLI).

structlog renders JSON lines on stdout in production and a readable console
format on a terminal (``LOG_FORMAT=auto|json|console``). The standard
library loggers of uvicorn, SQLAlchemy and Alembic go through the same
processors, so every line has one format. Secrets are redacted twice: by
key name (authorization, api_key, stream_key, password, secret, token) and
by value (the configured API key and any value registered with
:func:`register_secret`).
"""

from __future__ import annotations

import logging
import sys
from typing import Any

import structlog

__all__ = ["configure_logging", "register_secret", "redact"]

REDACTED = "[redacted]"
_SECRET_KEY_PARTS = ("authorization", "api_key", "apikey", "stream_key", "streamkey", "password", "secret", "token")
_secret_values: set[str] = set()


def register_secret(value: str | None) -> None:
    """Redact ``value`` wherever it appears in a log line (values shorter than 6 characters are ignored)."""
    if value and len(value) >= 6:
        _secret_values.add(value)


def _scrub(value: Any) -> Any:
    if isinstance(value, str):
        for secret in _secret_values:
            if secret in value:
                value = value.replace(secret, REDACTED)
        return value
    if isinstance(value, dict):
        return {k: (REDACTED if _is_secret_key(k) else _scrub(v)) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_scrub(v) for v in value)
    return value


def _is_secret_key(key: Any) -> bool:
    lowered = str(key).lower()
    return any(part in lowered for part in _SECRET_KEY_PARTS)


def redact(_logger: Any, _method: str, event_dict: dict[str, Any]) -> dict[str, Any]:
    """structlog processor: replace secret-looking keys and known secret values with ``[redacted]``."""
    return {k: (REDACTED if _is_secret_key(k) else _scrub(v)) for k, v in event_dict.items()}


def configure_logging(fmt: str = "auto", level: str = "INFO") -> None:
    """Configure structlog and the standard library once (JSON or console renderer)."""
    use_json = fmt == "json" or (fmt == "auto" and not sys.stdout.isatty())
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.format_exc_info,
        redact,
    ]
    renderer: Any = structlog.processors.JSONRenderer() if use_json else structlog.dev.ConsoleRenderer(colors=sys.stdout.isatty())
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    handler = logging.StreamHandler(sys.stdout)
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
    logging.getLogger("httpx").setLevel(logging.WARNING)
