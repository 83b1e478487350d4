"""HTML rendering for the pages (Jinja2, autoescaped, no JavaScript) and their security headers.

Every page answer carries :data:`SECURITY_HEADERS`: no caching, a CSP that
allows no script at all (``default-src 'none'``), forms posting only to this
origin, no framing, no referrer.
"""

from __future__ import annotations

import functools
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import jinja2
from starlette.responses import HTMLResponse

from receiver.timeparse import to_iso

__all__ = ["SECURITY_HEADERS", "render"]

SECURITY_HEADERS = {
    "Cache-Control": "no-store",
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
}


def _fmt_time(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        value = value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)
        return value.strftime("%Y-%m-%d %H:%M:%S") + "Z"
    return str(value)


def _fmt_duration(seconds: Any) -> str:
    if seconds is None:
        return ""
    total = int(round(float(seconds)))
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}"


def _fmt_bytes(value: Any) -> str:
    if value is None:
        return ""
    size = float(value)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return str(value)


def _is_http_url(value: Any) -> bool:
    """True for an http(s) URL: only those become links (never ``javascript:`` or ``data:``)."""
    return isinstance(value, str) and value.lower().startswith(("https://", "http://"))


@functools.lru_cache(maxsize=1)
def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("receiver.web", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["ts"] = _fmt_time
    env.filters["iso"] = to_iso
    env.filters["duration"] = _fmt_duration
    env.filters["bytes"] = _fmt_bytes
    env.filters["seg"] = lambda value: quote(str(value), safe="")
    env.tests["http_url"] = _is_http_url
    return env


def render(
    template: str, *, status_code: int = 200, headers: dict[str, str] | None = None, **context: Any
) -> HTMLResponse:
    """An HTML answer from ``templates/<template>`` (autoescaped) with the pages' security headers."""
    html = _environment().get_template(template).render(**context)
    return HTMLResponse(html, status_code=status_code, headers={**SECURITY_HEADERS, **(headers or {})})
