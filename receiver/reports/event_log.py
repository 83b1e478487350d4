"""The event log (stored webhook deliveries of the inbox): filtered, sorted pages and one event's payload view.

Owns ``EVENT_COLUMNS`` (what a listing shows: never the raw body),
:class:`EventFilter`, :func:`event_page` (one ``LIMIT``/``OFFSET`` page and
the total, sort from ``EVENT_SORTS``) and :func:`event_detail` (one event
with its stored raw body pretty-printed and redacted by the rules of
:mod:`receiver.redaction`: stream keys, tokens, storage secrets and the
registered API key never show). A body purged by retention
(``RAW_RETENTION_DAYS``) or dropped by an erasure has ``payload`` None and
``payload_state`` ``purged`` / ``erased``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.engine import Engine

from receiver.db.models import WebhookEvent
from receiver.redaction import redact_value
from receiver.reports.paging import Page, parse_sort

__all__ = [
    "EVENT_COLUMNS",
    "EVENT_SORTS",
    "EventFilter",
    "event_detail",
    "event_page",
    "pretty_payload",
]

#: Columns of an event listing (``/api/events``, ``/ui/events``); never ``raw_body``.
EVENT_COLUMNS: tuple[str, ...] = (
    "id",
    "delivery_id",
    "webhook_id",
    "event_name",
    "received_at",
    "occurred_at",
    "meeting_id",
    "session_id",
    "signature_scheme",
    "body_sha256",
    "parse_status",
    "parse_error",
    "status",
    "attempts",
    "last_error",
    "next_attempt_at",
    "locked_by",
    "locked_until",
    "processed_at",
    "duplicate_count",
    "conflict_count",
)

#: Sort keys of the event log (ties broken by id).
EVENT_SORTS: dict[str, Any] = {
    "id": WebhookEvent.id,
    "received_at": WebhookEvent.received_at,
    "event_name": WebhookEvent.event_name,
    "status": WebhookEvent.status,
    "attempts": WebhookEvent.attempts,
}

#: Longest payload shown, characters of the pretty-printed text (the rest is cut with a marker).
MAX_PAYLOAD_CHARS = 200_000


@dataclass(frozen=True)
class EventFilter:
    """Event log filters (all exact matches; None = any): processing ``status``, ``event_name``, ``session_id``,
    ``delivery_id``, and ``since``/``until`` (aware UTC) on ``received_at``."""

    status: str | None = None
    event_name: str | None = None
    session_id: str | None = None
    delivery_id: str | None = None
    since: datetime | None = None
    until: datetime | None = None

    def conditions(self) -> list[Any]:
        """SQL conditions on :class:`WebhookEvent`."""
        conditions: list[Any] = []
        for name in ("status", "event_name", "session_id", "delivery_id"):
            value = getattr(self, name)
            if value:
                conditions.append(getattr(WebhookEvent, name) == value)
        if self.since:
            conditions.append(WebhookEvent.received_at >= self.since)
        if self.until:
            conditions.append(WebhookEvent.received_at < self.until)
        return conditions


def event_page(
    engine: Engine, flt: EventFilter | None = None, *, sort: str | None = None, limit: int, offset: int = 0
) -> Page:
    """One page of stored events (``EVENT_COLUMNS``) and the total matching; default sort ``-id`` (newest first).

    Raises:
        SortError: ``sort`` is not a key of ``EVENT_SORTS``.
        ValueError: ``limit`` < 1 or ``offset`` < 0.
    """
    if limit < 1 or offset < 0:
        raise ValueError("limit must be at least 1 and offset at least 0")
    order = parse_sort(sort, EVENT_SORTS, "-id")
    column = EVENT_SORTS[order.key]
    tie = WebhookEvent.id.desc() if order.descending else WebhookEvent.id.asc()
    conditions = (flt or EventFilter()).conditions()
    columns = [getattr(WebhookEvent, c) for c in EVENT_COLUMNS]
    with engine.connect() as connection:
        total = connection.execute(select(func.count()).select_from(WebhookEvent).where(*conditions)).scalar_one()
        result = connection.execute(
            select(*columns)
            .where(*conditions)
            .order_by(column.is_(None), column.desc() if order.descending else column.asc(), tie)
            .limit(limit)
            .offset(offset)
        )
        rows = [dict(zip(EVENT_COLUMNS, values, strict=True)) for values in result.all()]
    return Page(rows, int(total), limit, offset)


def pretty_payload(raw: bytes) -> str:
    """A stored raw body as text for people: indented JSON with secrets redacted, else the redacted text.

    A body that is not JSON (a delivery that failed to parse) is decoded as
    UTF-8 (invalid bytes replaced) and only registered secrets are replaced.
    Longer than ``MAX_PAYLOAD_CHARS``: cut, with a marker line.
    """
    text = raw.decode("utf-8", errors="replace")
    try:
        shown = json.dumps(redact_value(json.loads(text)), indent=2, ensure_ascii=False, sort_keys=False)
    except ValueError:
        shown = str(redact_value(text))
    if len(shown) > MAX_PAYLOAD_CHARS:
        shown = shown[:MAX_PAYLOAD_CHARS] + f"\n... (cut at {MAX_PAYLOAD_CHARS} characters)"
    return shown


def event_detail(engine: Engine, event_id: int) -> dict[str, Any] | None:
    """Event ``event_id``: ``EVENT_COLUMNS`` plus ``payload`` (:func:`pretty_payload`, or None) and ``payload_state``.

    ``payload_state``: ``stored``, ``purged`` (retention removed the body;
    ``purged_at`` says when, UTC), ``erased`` (an erasure dropped it) or
    ``empty``. None when there is no such event.
    """
    columns = [getattr(WebhookEvent, c) for c in EVENT_COLUMNS]
    with engine.connect() as connection:
        row = connection.execute(
            select(*columns, WebhookEvent.raw_body, WebhookEvent.purged_at, WebhookEvent.erased_at).where(
                WebhookEvent.id == event_id
            )
        ).first()
    if row is None:
        return None
    values = tuple(row)
    event = dict(zip(EVENT_COLUMNS, values[: len(EVENT_COLUMNS)], strict=True))
    raw, purged_at, erased_at = values[len(EVENT_COLUMNS) :]
    raw = bytes(raw or b"")
    if raw:
        state, payload = "stored", pretty_payload(raw)
    elif purged_at is not None:
        state, payload = "purged", None
    elif erased_at is not None:
        state, payload = "erased", None
    else:
        state, payload = "empty", None
    return {**event, "purged_at": purged_at, "erased_at": erased_at, "payload_state": state, "payload": payload}
