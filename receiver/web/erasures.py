"""``POST /api/erasures``: erase one person (operators; the HTTP face of ``receiver forget``).

Request: ``Content-Type: application/json``, at most :data:`MAX_REQUEST_BYTES`,
an object with exactly one of ``participant``, ``user_id``,
``custom_participant_id`` (a string, 1-200 characters), optional
``dry_run`` (boolean, default false) and ``reference`` (string up to 200
characters: your ticket number, never personal data). Unknown keys are
refused (a misspelt key must not erase someone else or nobody).

Answers: 201 with the :class:`~receiver.processing.erasure.ErasureResult`
(counts, ``erasure_id``, SHA-256 of the identifier; never the identifier
itself), 200 for a dry run; 400 (bad JSON or fields), 413 (too large),
415 (not JSON), plus the API's 401/503. The actor recorded in
``erasures.requested_by`` is ``api:`` and the first 12 hex digits of the
SHA-256 of the caller's token: which token asked, without storing it.
On SQLite the database is compacted afterwards (``VACUUM``), which holds
the write lock for a moment; on PostgreSQL run ``receiver forget --vacuum``
in a maintenance window (docs/operations.md, "Erasure").

Guarded like ``POST /api/events/{id}/retry``: a bearer token with the
``operator`` role (403 for ``analyst``, recorded as ``denied`` in the audit
log); a carried-out erasure (not a dry run) is recorded in the audit log
under the token's name too, with the erasure id and never the identifier.
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from receiver.enums import ErasureSubject
from receiver.errors import HTTPError
from receiver.ingest.endpoint import read_body_limited
from receiver.processing.erasure import MAX_IDENTIFIER_LENGTH, MAX_NOTE_LENGTH, ErasureError, ErasureRequest, forget
from receiver.web import audit
from receiver.web.auth import bearer_token

__all__ = ["MAX_REQUEST_BYTES", "erasure_routes", "openapi_paths", "openapi_schemas", "actor_of"]

#: Largest accepted request body, bytes.
MAX_REQUEST_BYTES = 4096
_SUBJECTS = tuple(subject.value for subject in ErasureSubject)
_KNOWN = frozenset((*_SUBJECTS, "dry_run", "reference"))

Handler = Callable[[Request], Awaitable[Response]]


def actor_of(token: str | None) -> str:
    """``api:<12 hex digits>``: a fingerprint of the caller's bearer token (SHA-256), never the token."""
    digest = hashlib.sha256((token or "").encode("utf-8", "surrogatepass")).hexdigest()
    return f"api:{digest[:12]}"


def _bad(detail: str) -> HTTPError:
    return HTTPError(400, "bad_request", detail)


def parse_request(raw: bytes, actor: str) -> tuple[ErasureRequest, bool]:
    """The erasure request and the dry-run flag from a JSON body.

    Raises:
        HTTPError: 400 with what is wrong (never echoing the identifier).
    """
    try:
        data: Any = json.loads(raw)
    except (ValueError, RecursionError):
        raise _bad("body is not valid JSON") from None
    if not isinstance(data, dict):
        raise _bad("body must be a JSON object")
    unknown = sorted(set(data) - _KNOWN)
    if unknown:
        raise _bad(f"unknown field {unknown[0][:40]!r}; use one of {', '.join(sorted(_KNOWN))}")
    given = [name for name in _SUBJECTS if name in data]
    if len(given) != 1:
        raise _bad(f"name the person with exactly one of {', '.join(_SUBJECTS)}")
    kind = given[0]
    value = data[kind]
    if not isinstance(value, str):
        raise _bad(f"{kind} must be a string")
    dry_run = data.get("dry_run", False)
    if not isinstance(dry_run, bool):
        raise _bad("dry_run must be true or false")
    reference = data.get("reference")
    if reference is not None and not isinstance(reference, str):
        raise _bad("reference must be a string")
    try:
        return ErasureRequest.build(kind, value, actor, reference), dry_run
    except ErasureError as exc:
        raise _bad(str(exc)) from None


async def create_erasure(request: Request) -> Response:
    """POST /api/erasures: erase one person (module docstring)."""
    media_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if media_type != "application/json":
        raise HTTPError(415, "unsupported_media_type", "Content-Type must be application/json")
    raw = await read_body_limited(request, MAX_REQUEST_BYTES, request.headers.get("content-length"))
    erasure, dry_run = parse_request(raw, actor_of(bearer_token(request)))
    engine = request.app.state.engine
    result = await run_in_threadpool(functools.partial(forget, engine, erasure, dry_run=dry_run, origin="api"))
    principal = getattr(request.state, "principal", None)
    if principal is not None and not dry_run:
        await audit.record_request(
            request,
            "erase",
            target=f"erasure:{result.erasure_id}",
            principal=principal,
            detail=erasure.kind.value,
            source="api",
        )
    return JSONResponse(result.as_dict(), status_code=200 if dry_run else 201, headers={"Cache-Control": "no-store"})


def erasure_routes(guard: Callable[[Handler], Handler]) -> list[BaseRoute]:
    """The erasure route, wrapped by the API's ``guard`` (bearer auth, no query parameters, errors as JSON)."""
    return [Route("/api/erasures", guard(create_erasure), methods=["POST"])]


# --------------------------------------------------------------------------
# OpenAPI
# --------------------------------------------------------------------------

_ID = {"type": "string", "minLength": 1, "maxLength": MAX_IDENTIFIER_LENGTH, "pattern": r"\S"}
_COUNT = {"type": "integer", "minimum": 0}


def openapi_schemas() -> dict[str, Any]:
    """Components: ``ErasureRequest`` and ``ErasureResult``."""
    identifier = {
        "participant": {**_ID, "description": "The attendance key (custom participant id, else peer id)."},
        "user_id": {**_ID, "description": "Dyte's participant user id."},
        "custom_participant_id": {**_ID, "description": "Your app's id of the person."},
    }
    common = {
        "dry_run": {"type": "boolean", "default": False, "description": "Count only; change and record nothing."},
        "reference": {
            "type": "string",
            "maxLength": MAX_NOTE_LENGTH,
            "description": "Your request or ticket number (never personal data).",
        },
    }
    request = {
        "description": "Exactly one identifier of the person.",
        "oneOf": [
            {
                "type": "object",
                "properties": {name: schema, **common},
                "required": [name],
                "additionalProperties": False,
            }
            for name, schema in identifier.items()
        ],
    }
    counts = (
        "sessions_touched",
        "intervals_deleted",
        "attendance_rows_deleted",
        "events_dropped",
        "events_rewritten",
        "meetings_scrubbed",
    )
    result_properties: dict[str, Any] = {
        "erasure_id": {"type": "integer", "nullable": True, "description": "The erasures row; null for a dry run."},
        "subject_kind": {"type": "string", "enum": list(_SUBJECTS)},
        "subject_sha256": {"type": "string", "pattern": "^[0-9a-f]{64}$"},
        "dry_run": {"type": "boolean"},
        "erased_at": {"type": "string", "format": "date-time"},
        "requested_by": {"type": "string"},
        "reference": {"type": "string", "nullable": True},
        **{name: _COUNT for name in counts},
        "vacuumed": {"type": "boolean", "description": "The database files were compacted afterwards."},
        "seconds": {"type": "number", "minimum": 0},
        "found": {"type": "boolean", "description": "Anything of the person was stored."},
    }
    result = {
        "type": "object",
        "description": "What the erasure did (or would do). Never the identifier itself.",
        "properties": result_properties,
        "required": list(result_properties),
        "additionalProperties": False,
    }
    return {"ErasureRequest": request, "ErasureResult": result}


def openapi_paths(common_errors: dict[str, Any]) -> dict[str, Any]:
    """The ``/api/erasures`` path item; ``common_errors`` are the API's 400/401/503 answers."""

    def error(description: str) -> dict[str, Any]:
        return {
            "description": description,
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
        }

    answer = {"application/json": {"schema": {"$ref": "#/components/schemas/ErasureResult"}}}
    return {
        "/api/erasures": {
            "post": {
                "summary": "Erase a person",
                "operationId": "create_erasure",
                "description": "Erase one person (GDPR Art. 17) from attendance, precomputed reports and stored "
                "webhook bodies, and record it without personal data (table erasures). Needs a token with the "
                "operator role; recorded in the audit log.",
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErasureRequest"}}},
                },
                "responses": {
                    "200": {"description": "Dry run: what would be erased.", "content": answer},
                    "201": {"description": "Erased and recorded.", "content": answer},
                    **common_errors,
                    "400": error("The body is not JSON, or its fields are wrong."),
                    "403": error("The token's role is analyst: erasing needs the operator role."),
                    "413": error(f"The body is larger than {MAX_REQUEST_BYTES} bytes."),
                    "415": error("Content-Type is not application/json."),
                },
            }
        }
    }
