"""The audit log: every operator action, sign-in and sign-out, and every refused action, in ``audit_log``.

Who is the token's *name* (:class:`receiver.web.auth.Principal`), never the
token. :func:`record` adds a row in its own transaction (after the action
committed, so a rolled-back action leaves no "ok" row); :func:`recent` reads
the newest rows for the ``/ui/audit`` page. Rows are never updated or deleted
by the service.
"""

from __future__ import annotations

import functools
from datetime import UTC, datetime
from typing import Any

import structlog
from sqlalchemy import func, insert, select
from sqlalchemy.engine import Engine
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request

from receiver.db.models import AuditEntry
from receiver.web.auth import Principal

__all__ = ["AUDIT_COLUMNS", "record", "record_request", "recent", "client_address"]

log = structlog.get_logger("receiver.web.audit")

#: Columns shown on the audit page, newest first.
AUDIT_COLUMNS = ("id", "at", "actor", "role", "action", "target", "outcome", "detail", "source", "client")


def client_address(scope_client: Any) -> str | None:
    """The peer address of an ASGI ``scope["client"]`` (``host``), or None."""
    if not scope_client:
        return None
    return str(scope_client[0])[:100]


def record(
    engine: Engine,
    principal: Principal,
    action: str,
    *,
    target: str | None,
    outcome: str = "ok",
    detail: str | None = None,
    source: str = "ui",
    client: str | None = None,
    now: datetime | None = None,
) -> None:
    """Add one audit row (own transaction) and log it; ``outcome`` is ``ok``, ``denied`` or ``failed: ...``."""
    at = now or datetime.now(UTC)
    with engine.begin() as connection:
        connection.execute(
            insert(AuditEntry).values(
                at=at,
                actor=principal.name,
                role=principal.role.value,
                action=action[:40],
                target=target[:300] if target else None,
                outcome=outcome[:200],
                detail=detail,
                source=source,
                client=client,
            )
        )
    log.info("audit", actor=principal.name, role=principal.role.value, action=action, target=target, outcome=outcome)


async def record_request(
    request: Request,
    action: str,
    *,
    target: str | None,
    principal: Principal | None = None,
    outcome: str = "ok",
    detail: str | None = None,
    source: str = "ui",
) -> None:
    """:func:`record` for a request, in the thread pool: the app's engine, the request's client address, and
    ``principal`` (default: the one the guard put on ``request.state``)."""
    await run_in_threadpool(
        functools.partial(
            record,
            request.app.state.engine,
            principal or request.state.principal,
            action,
            target=target,
            outcome=outcome,
            detail=detail,
            source=source,
            client=client_address(request.scope.get("client")),
        )
    )


def recent(engine: Engine, *, limit: int = 100, offset: int = 0) -> tuple[list[dict[str, Any]], int]:
    """The newest audit rows (``AUDIT_COLUMNS``) and how many there are in all."""
    columns = [getattr(AuditEntry, c) for c in AUDIT_COLUMNS]
    with engine.connect() as connection:
        total = connection.execute(select(func.count()).select_from(AuditEntry)).scalar_one()
        rows = connection.execute(select(*columns).order_by(AuditEntry.id.desc()).limit(limit).offset(offset)).all()
    return [dict(zip(AUDIT_COLUMNS, row, strict=True)) for row in rows], int(total)
