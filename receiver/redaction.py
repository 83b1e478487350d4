"""Secret redaction for anything shown to people: logs, CLI output, pages, reports.

Two rules: a key whose name looks secret (authorization, api_key, stream_key,
password, secret, token, storage access and private keys, ...) has its value replaced; and any value
registered with :func:`register_secret` (the configured API key, at start-up)
is replaced wherever it appears inside a string.
"""

from __future__ import annotations

import functools
from datetime import datetime
from typing import Any

__all__ = ["REDACTED", "register_secret", "is_secret_key", "redact_value", "redact_in_place"]

REDACTED = "[redacted]"
_SECRET_KEY_PARTS = (
    "authorization",
    "api_key",
    "apikey",
    "stream_key",
    "streamkey",
    "password",
    "secret",
    "token",
    "ingest_server",
    "ingestserver",
    # Storage credentials of a recording's storage config (access_key, secret, password, private_key).
    "access_key",
    "accesskey",
    "private_key",
    "privatekey",
)
_secret_values: set[str] = set()


def register_secret(value: str | None) -> None:
    """Redact ``value`` wherever it appears (values shorter than 6 characters are ignored)."""
    if value and len(value) >= 6:
        _secret_values.add(value)


def is_secret_key(key: Any) -> bool:
    """True when a mapping key names a secret (case-insensitive, ``-``/``_`` alike)."""
    return _is_secret_name(key) if isinstance(key, str) else _is_secret_name(str(key))


@functools.lru_cache(maxsize=4096)
def _is_secret_name(key: str) -> bool:
    lowered = key.lower().replace("-", "_")
    return any(part in lowered for part in _SECRET_KEY_PARTS)


# Key names checked and found not secret (log lines use a few dozen; capped
# because nested payload dicts bring names of their own).
_plain_names: set[str] = set()
_MAX_PLAIN_NAMES = 4096

# Values that cannot hold a secret: returned as they are, without a call.
_PLAIN_TYPES = frozenset({int, float, bool, type(None), datetime})


def redact_value(value: Any) -> Any:
    """A copy of ``value`` (str, dict, list, tuple) with secret keys and registered secrets replaced."""
    if isinstance(value, str):
        for secret in _secret_values:
            if secret in value:
                value = value.replace(secret, REDACTED)
        return value
    if isinstance(value, dict):
        return redact_in_place(dict(value))
    if isinstance(value, (list, tuple)):
        return type(value)(redact_value(v) for v in value)
    return value


def redact_in_place(mapping: dict[Any, Any]) -> dict[Any, Any]:
    """Like :func:`redact_value` for one dict, but replacing its values in place (no copy); returns it.

    The fast path for log lines (one per webhook): when every key is a name
    already found not secret, the keys cost one set comparison; then, when
    secrets are registered, one substring search per string value.
    """
    if not mapping.keys() <= _plain_names:
        for key in mapping:
            if _is_secret_name(key) if type(key) is str else is_secret_key(key):
                mapping[key] = REDACTED
            elif type(key) is str and len(_plain_names) < _MAX_PLAIN_NAMES:
                _plain_names.add(key)
    secrets = _secret_values
    for key, value in mapping.items():
        if type(value) is str:
            if secrets:
                for secret in secrets:
                    if secret in value:
                        mapping[key] = value = value.replace(secret, REDACTED)
        elif type(value) not in _PLAIN_TYPES:
            mapping[key] = redact_value(value)
    return mapping
