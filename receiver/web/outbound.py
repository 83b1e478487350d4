"""``/api/outbound``: the outbound attendance webhook's deliveries, for operators (the outbox made visible).

* ``GET /api/outbound`` (``status``: pending, delivered, failed, dead;
  ``session_id``; ``limit``, ``offset``): deliveries newest first, as
  ``{"items": [...], "total", "limit", "offset"}`` (JSON only) with
  ``X-Total-Count``; columns
  :data:`receiver.processing.outbound_queue.OUTBOUND_COLUMNS`: the
  ``webhook-id``, state, attempts, next attempt, the receiver's last
  status code and error; never the body (it holds people's names) nor the
  URL or the secret.
* ``POST /api/outbound/{delivery_id}/retry`` (role operator, audited): send a
  failed or dead delivery again now, with the same body and ``webhook-id``
  (attempts reset). 404 unknown, 409 when it is pending, delivered or in
  flight.

Guarded like the rest of ``/api`` (:func:`receiver.web.api.api_routes`
passes its guards). The page is :mod:`receiver.web.pages.outbound`.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from receiver.db.models import OUTBOUND_STATUSES
from receiver.errors import HTTPError
from receiver.processing.outbound_queue import OUTBOUND_COLUMNS, delivery_rows, requeue_delivery
from receiver.reports.formatting import cell
from receiver.web import audit
from receiver.web.params import MAX_EVENT_ID, page_params, text_param

__all__ = [
    "outbound_routes",
    "outbound_status_param",
    "delivery_id_param",
    "retry_delivery",
    "openapi_paths",
    "openapi_schemas",
]

Handler = Callable[[Request], Awaitable[Response]]
_DIGITS = re.compile(r"^[0-9]{1,19}$")
_NO_STORE = {"Cache-Control": "no-store"}


def outbound_status_param(request: Request) -> str | None:
    """Query parameter ``status`` (one of ``OUTBOUND_STATUSES``) or None when absent; 400 otherwise."""
    status = request.query_params.get("status")
    if status is not None and status not in OUTBOUND_STATUSES:
        raise HTTPError(400, "bad_request", f"status: use one of {', '.join(OUTBOUND_STATUSES)}")
    return status


def delivery_id_param(request: Request) -> int:
    """Path parameter ``delivery_id`` as an integer in ``[1, 2**63 - 1]``; 400 otherwise."""
    raw = str(request.path_params["delivery_id"])
    if not _DIGITS.match(raw) or not 1 <= int(raw) <= MAX_EVENT_ID:
        raise HTTPError(400, "bad_request", f"delivery_id: an integer between 1 and {MAX_EVENT_ID}")
    return int(raw)


def retry_delivery(engine: Any, delivery_id: int) -> None:
    """Requeue one failed or dead delivery now.

    Raises:
        HTTPError: 404 when there is no such delivery; 409 when it is
            pending, delivered or being sent.
    """
    outcome = requeue_delivery(engine, delivery_id, now=datetime.now(UTC))
    if outcome == "missing":
        raise HTTPError(404, "not_found", f"no outbound delivery {delivery_id}")
    if outcome != "requeued":
        state = "being sent" if outcome == "in_flight" else outcome
        raise HTTPError(
            409, "conflict", f"outbound delivery {delivery_id} is {state}: only failed or dead ones are sent again"
        )


async def list_outbound(request: Request) -> Response:
    """GET /api/outbound: outbound deliveries, newest first (JSON)."""
    limit, offset = page_params(request)
    status = outbound_status_param(request)
    session_id = text_param(request, "session_id")
    rows, total = await run_in_threadpool(
        functools.partial(
            delivery_rows, request.app.state.engine, status=status, session_id=session_id, limit=limit, offset=offset
        )
    )
    items = [{column: cell(row[column]) for column in OUTBOUND_COLUMNS} for row in rows]
    return JSONResponse(
        {"items": items, "total": total, "limit": limit, "offset": offset},
        headers={**_NO_STORE, "X-Total-Count": str(total)},
    )


async def retry_audited(request: Request, source: str = "ui") -> int:
    """Send the ``delivery_id`` of the path again (:func:`retry_delivery`) and audit it; returns the id.

    ``source``: the audit row's source (``ui`` for the pages, ``api``). Raises the
    :class:`HTTPError` of :func:`retry_delivery` (404, 409).
    """
    delivery_id = delivery_id_param(request)
    engine = request.app.state.engine
    await run_in_threadpool(retry_delivery, engine, delivery_id)
    await audit.record_request(request, "retry_outbound", target=f"outbound:{delivery_id}", source=source)
    return delivery_id


async def retry(request: Request) -> Response:
    """POST /api/outbound/{delivery_id}/retry (operator): send a failed or dead delivery again; audited."""
    delivery_id = await retry_audited(request, "api")
    return JSONResponse({"requeued": True, "id": delivery_id}, headers=_NO_STORE)


def outbound_routes(read: Callable[..., Handler], operate: Callable[[Handler], Handler]) -> list[BaseRoute]:
    """The ``/api/outbound`` routes; ``read(handler, *query_params)`` and ``operate(handler)`` are the API's guards."""
    return [
        Route("/api/outbound", read(list_outbound, "status", "session_id", "limit", "offset"), methods=["GET"]),
        Route("/api/outbound/{delivery_id}/retry", operate(retry), methods=["POST"]),
    ]


# --------------------------------------------------------------------------
# OpenAPI
# --------------------------------------------------------------------------

_TIME = {"type": "string", "format": "date-time"}


def _nullable(schema: dict[str, Any]) -> dict[str, Any]:
    return {**schema, "nullable": True}


def openapi_schemas() -> dict[str, Any]:
    """Components: ``OutboundDelivery``, ``OutboundPage`` and ``OutboundRetryResult``."""
    delivery = {
        "type": "object",
        "description": "One outbound attendance webhook and its delivery state (never the body).",
        "properties": {
            "id": {"type": "integer", "minimum": 1},
            "webhook_id": {"type": "string", "description": "webhook-id header, the same on every attempt"},
            "event_type": {"type": "string", "enum": ["session.attendance"]},
            "session_id": {"type": "string"},
            "status": {"type": "string", "enum": list(OUTBOUND_STATUSES)},
            "attempts": {"type": "integer", "minimum": 0},
            "next_attempt_at": _TIME,
            "last_status_code": _nullable({"type": "integer", "description": "the receiver's last HTTP status"}),
            "last_error": _nullable({"type": "string"}),
            "created_at": _TIME,
            "updated_at": _TIME,
            "delivered_at": _nullable(_TIME),
            "payload_sha256": {"type": "string", "description": "hex SHA-256 of the attendance the body carries"},
        },
    }
    delivery["required"] = list(delivery["properties"])
    page = {
        "type": "object",
        "description": "One page of OutboundDelivery rows.",
        "properties": {
            "items": {"type": "array", "items": {"$ref": "#/components/schemas/OutboundDelivery"}},
            "total": {"type": "integer", "minimum": 0, "description": "rows matching the filters, all pages"},
            "limit": {"type": "integer", "minimum": 1},
            "offset": {"type": "integer", "minimum": 0},
        },
    }
    page["required"] = list(page["properties"])
    result = {
        "type": "object",
        "description": "The delivery was requeued: the worker sends it again.",
        "properties": {"requeued": {"type": "boolean", "enum": [True]}, "id": {"type": "integer", "minimum": 1}},
        "required": ["requeued", "id"],
    }
    return {"OutboundDelivery": delivery, "OutboundPage": page, "OutboundRetryResult": result}


def openapi_paths(common_errors: dict[str, Any], parameters: dict[str, Any]) -> dict[str, Any]:
    """The ``/api/outbound`` path items; ``common_errors`` are the API's 400/401/503, ``parameters`` its shared ones."""

    def error(description: str) -> dict[str, Any]:
        return {
            "description": description,
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
        }

    status = {
        "name": "status",
        "in": "query",
        "required": False,
        "description": "Only deliveries in this state.",
        "schema": {"type": "string", "enum": list(OUTBOUND_STATUSES)},
    }
    delivery_id = {
        "name": "delivery_id",
        "in": "path",
        "required": True,
        "description": "Outbound delivery id (outbound_deliveries.id).",
        "schema": {"type": "integer", "minimum": 1, "maximum": MAX_EVENT_ID},
    }
    return {
        "/api/outbound": {
            "get": {
                "summary": "List outbound deliveries",
                "operationId": "list_outbound_deliveries",
                "description": "The outbound attendance webhook's deliveries (OUTBOUND_WEBHOOK_URL), newest first: "
                "state, attempts, the receiver's last answer. JSON only; never the body, URL or secret.",
                "parameters": [status, parameters["session_id_q"], parameters["limit"], parameters["offset"]],
                "responses": {
                    "200": {
                        "description": "One page.",
                        "headers": {
                            "X-Total-Count": {
                                "description": "Rows matching the filters, all pages.",
                                "schema": {"type": "integer", "minimum": 0},
                            }
                        },
                        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/OutboundPage"}}},
                    },
                    **common_errors,
                },
            }
        },
        "/api/outbound/{delivery_id}/retry": {
            "post": {
                "summary": "Retry outbound delivery",
                "operationId": "retry_outbound_delivery",
                "description": "Send a failed or dead delivery again now: same body, same webhook-id, attempts reset. "
                "Needs the operator role; recorded in the audit log.",
                "parameters": [delivery_id],
                "responses": {
                    "200": {
                        "description": "Requeued.",
                        "content": {
                            "application/json": {"schema": {"$ref": "#/components/schemas/OutboundRetryResult"}}
                        },
                    },
                    "403": error("The token's role is analyst: retrying needs the operator role."),
                    "404": error("No such object."),
                    "409": error("The delivery is pending, delivered or being sent."),
                    **common_errors,
                },
            }
        },
    }
