"""The sandbox REST API's building blocks: query parameters, paging, and the JSON of each object.

Shared by both dialects (:mod:`receiver.sandbox.dialects`): Dyte v2
(``shared/dyte/openapi-v2.yaml``) and RealtimeKit (the ``cloudflare`` SDK's
``cloudflare.types.realtime_kit``) render meetings, sessions, participants,
recordings, livestreams and webhooks with the same snake_case fields.
Conventions:

* paging: query ``page_no`` (from 1) and ``per_page`` (default 20); the
  ``paging`` object is ``{"total_count", "start_offset", "end_offset"}`` with
  1-based inclusive offsets (an empty page has ``end_offset < start_offset``);
* times: ISO 8601 UTC with milliseconds (``2026-11-01T09:00:00.512Z``);
  participant ``duration`` in MINUTES (4 decimals), recording
  ``recording_duration`` and livestream ``ingest_seconds`` in seconds,
  ``file_size`` in bytes;
* a handler raises :class:`ApiError` for a client's mistake; the app renders
  it in the dialect's error envelope.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse

from receiver.sandbox.formats import iso_ms
from receiver.sandbox.world import (
    WEBHOOK_EVENTS,
    SandboxLivestream,
    SandboxMeeting,
    SandboxPeer,
    SandboxRecording,
    SandboxSession,
    SandboxWebhook,
    World,
)
from receiver.timeparse import TimestampError, parse_timestamp

__all__ = [
    "ApiError",
    "DEFAULT_PER_PAGE",
    "ok",
    "int_param",
    "paginate",
    "time_param",
    "bool_param",
    "descending",
    "valid_guid",
    "meeting_json",
    "session_json",
    "participant_json",
    "recording_json",
    "livestream_json",
    "livestream_session_json",
    "webhook_json",
    "validate_webhook_body",
    "json_body",
]

DEFAULT_PER_PAGE = 20
_NAMESPACE = uuid.UUID("0b6f4f1e-1c7e-4c55-9f55-5a4d8b0c0e11")


# ---------------------------------------------------------------------------
# Requests and answers
# ---------------------------------------------------------------------------


class ApiError(Exception):
    """A client's mistake: answered with ``status`` and ``message`` in the dialect's error envelope."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def ok(data: Any, paging: dict[str, int] | None = None, status: int = 200) -> JSONResponse:
    """The success envelope ``{"success": true, "data": ..., "paging"?: ...}`` with ``status`` (both dialects)."""
    body: dict[str, Any] = {"success": True, "data": data}
    if paging is not None:
        body["paging"] = paging
    return JSONResponse(body, status)


def int_param(request: Request, name: str, default: int) -> int:
    """A non-negative integer query parameter (``"2.0"`` reads as 2), ``default`` when absent; 400 otherwise."""
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(float(raw))
    except ValueError:
        raise ApiError(400, f'BAD_REQUEST: "{name}" must be a number') from None
    if value < 0:
        raise ApiError(400, f'BAD_REQUEST: "{name}" must be greater than or equal to 0')
    return value


def paginate(request: Request, items: Sequence[Any]) -> tuple[list[Any], dict[str, int]]:
    """One page of ``items`` and the spec's ``paging`` object (1-based inclusive offsets)."""
    page_no = int_param(request, "page_no", 1) or 1
    per_page = int_param(request, "per_page", DEFAULT_PER_PAGE) or DEFAULT_PER_PAGE
    offset = (page_no - 1) * per_page
    page = list(items[offset : offset + per_page])
    return page, {"total_count": len(items), "start_offset": offset + 1, "end_offset": offset + len(page)}


def time_param(request: Request, name: str) -> datetime | None:
    """An ISO 8601 query parameter as an aware UTC datetime, None when absent; 400 when unreadable."""
    raw = request.query_params.get(name)
    if not raw:
        return None
    if "T" in raw and " " in raw:  # an unencoded "+00:00" offset arrives as " 00:00"
        raw = raw.replace(" ", "+")
    try:
        return parse_timestamp(raw)
    except TimestampError:
        raise ApiError(400, f'BAD_REQUEST: "{name}" must be a valid ISO 8601 date') from None


def bool_param(request: Request, name: str) -> bool | None:
    """A boolean query parameter (``1``, ``true``, ``yes`` are true), None when absent."""
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return None
    return raw.strip().lower() in ("1", "true", "yes")


def descending(request: Request, default: str) -> bool:
    """True when ``sort_order`` (or ``default``) is ``DESC``/``DSC``."""
    order = (request.query_params.get("sort_order") or default).upper()
    return order in ("DESC", "DSC")


def valid_guid(value: str) -> bool:
    """True when ``value`` is a UUID (webhook ids are)."""
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True


# ---------------------------------------------------------------------------
# Object renderings (spec component schemas)
# ---------------------------------------------------------------------------


def meeting_json(meeting: SandboxMeeting) -> dict[str, Any]:
    """``components/schemas/Meeting``."""
    return {
        "id": meeting.id,
        "title": meeting.title,
        "preferred_region": "ap-south-1",
        "created_at": iso_ms(meeting.created_at),
        "updated_at": iso_ms(meeting.created_at),
        "record_on_start": False,
        "live_stream_on_start": False,
        "persist_chat": False,
        "summarize_on_end": False,
        "status": "ACTIVE",
    }


def duration_minutes(peer: SandboxPeer) -> float:
    """The peer's connected time in minutes, 4 decimals (the API's ``duration``)."""
    return round(peer.duration_seconds / 60, 4)


def session_json(world: World, session: SandboxSession) -> dict[str, Any]:
    """``components/schemas/ActiveSession`` for an ended session."""
    meeting = world.meeting(session.meeting_id)
    return {
        "id": session.id,
        "associated_id": session.meeting_id,
        "meeting_display_name": meeting.title if meeting else None,
        "type": "meeting",
        "status": "ENDED",
        "live_participants": 0,
        "max_concurrent_participants": session.max_concurrent(),
        "minutes_consumed": round(sum(p.duration_seconds for p in session.peers) / 60, 4),
        "organization_id": world.org_id,
        "started_at": iso_ms(session.started_at),
        "created_at": iso_ms(session.started_at),
        "updated_at": iso_ms(session.ended_at),
        "ended_at": iso_ms(session.ended_at),
        "meta": {},
    }


def participant_json(peer: SandboxPeer, *, peer_events: bool = False) -> dict[str, Any]:
    """``components/schemas/ParticipantsList``; ``id`` is the peer id ("maps to the corresponding peerId")."""
    obj: dict[str, Any] = {
        "id": peer.peer_id,
        "user_id": peer.user_id,
        "custom_participant_id": peer.custom_participant_id,
        "display_name": peer.display_name,
        "preset_name": peer.preset_name,
        "joined_at": iso_ms(peer.joined_at),
        "left_at": iso_ms(peer.left_at),
        "duration": duration_minutes(peer),
        "created_at": iso_ms(peer.joined_at),
        "updated_at": iso_ms(peer.left_at),
    }
    if peer_events:
        obj["peer_events"] = [
            {
                "id": str(uuid.uuid5(_NAMESPACE, f"{peer.peer_id}|{name}")),
                "peer_id": peer.peer_id,
                "event_name": name,
                "created_at": iso_ms(at),
                "updated_at": iso_ms(at),
            }
            for name, at in (("PEER_JOINING", peer.joined_at), ("PEER_LEAVING", peer.left_at))
        ]
    return obj


def reason_json(reason: str, *, stop: bool) -> dict[str, Any]:
    """A recording's ``start_reason``/``stop_reason`` object: the reason and who caused it."""
    if stop and reason in ("ALL_PEERS_LEFT", "INTERNAL_ERROR"):
        return {"reason": reason, "caller": {"type": "INTERNAL"}}
    return {"reason": reason, "caller": {"type": "ORGANIZATION"}}


def recording_json(rec: SandboxRecording, *, detail: bool) -> dict[str, Any]:
    """``components/schemas/Recording`` (+ ``start_reason``/``stop_reason`` objects for one recording).

    Like Dyte, a fetch hands out a fresh presigned link: an expiry already
    past is pushed to 7 days from now (the URL itself stays the same here).
    """
    expiry = rec.download_url_expiry
    if expiry is not None and rec.download_url:
        expiry = max(expiry, datetime.now(UTC) + timedelta(days=7))
    obj: dict[str, Any] = {
        "id": rec.id,
        "download_url": rec.download_url,
        "download_url_expiry": iso_ms(expiry),
        "audio_download_url": rec.audio_download_url,
        "file_size": rec.file_size,
        "session_id": rec.session_id,
        "meeting_id": rec.meeting_id,
        "output_file_name": rec.output_file_name,
        "status": rec.status,
        "invoked_time": iso_ms(rec.invoked_at),
        "started_time": iso_ms(rec.started_at),
        "stopped_time": iso_ms(rec.stopped_at),
        "recording_duration": rec.duration,
        "storage_config": None,
    }
    if detail:
        obj["start_reason"] = reason_json("API_CALL", stop=False)
        obj["stop_reason"] = (
            reason_json(rec.stop_reason, stop=True) if rec.status in ("UPLOADING", "UPLOADED", "ERRORED") else None
        )
    return obj


def livestream_json(world: World, stream: SandboxLivestream) -> dict[str, Any]:
    """``components/schemas/LivestreamBase`` (the only place the secret ``stream_key`` appears)."""
    return {
        "id": stream.id,
        "name": stream.name,
        "ingest_server": stream.ingest_server,
        "stream_key": stream.stream_key,
        "status": stream.rest_status,
        "meeting_id": stream.meeting_id,
        "playback_url": stream.playback_url,
        "created_at": iso_ms(stream.created_at or stream.statuses[0][1]),
        "updated_at": iso_ms(stream.updated_at),
        "disabled": False,
        "org_id": world.org_id,
    }


def livestream_session_json(stream: SandboxLivestream) -> dict[str, Any]:
    """A livestream session object (``/livestreams/{livestream_id}`` example); seconds."""
    return {
        "id": stream.livestream_session_id,
        "livestream_id": stream.id,
        "err_message": None,
        "invoked_time": iso_ms(stream.created_at),
        "started_time": iso_ms(stream.started_at),
        "stopped_time": iso_ms(stream.stopped_at),
        "created_at": iso_ms(stream.started_at or stream.statuses[0][1]),
        "updated_at": iso_ms(stream.updated_at),
        "ingest_seconds": stream.ingest_seconds,
        "viewer_seconds": stream.viewer_seconds,
    }


def webhook_json(hook: SandboxWebhook) -> dict[str, Any]:
    """``components/schemas/Webhook``."""
    return {
        "id": hook.id,
        "name": hook.name,
        "url": hook.url,
        "events": list(hook.events),
        "enabled": hook.enabled,
        "created_at": iso_ms(hook.created_at),
        "updated_at": iso_ms(hook.updated_at),
    }


# ---------------------------------------------------------------------------
# Request bodies
# ---------------------------------------------------------------------------


def validate_webhook_body(body: Any, *, partial: bool) -> dict[str, Any]:
    """Check a ``WebhookRequest`` (``partial``: ``PatchWebhookRequest``) body; 400 on errors."""
    if not isinstance(body, dict):
        raise ApiError(400, "BAD_REQUEST: body must be a JSON object")
    out: dict[str, Any] = {}
    for name in ("name", "url", "events"):
        if name not in body:
            if not partial:
                raise ApiError(400, f'BAD_REQUEST: "{name}" is required')
            continue
        out[name] = body[name]
    if "name" in out and (not isinstance(out["name"], str) or not out["name"].strip()):
        raise ApiError(400, 'BAD_REQUEST: "name" must be a non-empty string')
    if "url" in out and (not isinstance(out["url"], str) or not out["url"].startswith(("http://", "https://"))):
        raise ApiError(400, 'BAD_REQUEST: "url" must be a valid uri')
    if "events" in out:
        events = out["events"]
        if not isinstance(events, list) or not events or not all(isinstance(e, str) for e in events):
            raise ApiError(400, 'BAD_REQUEST: "events" must be a non-empty array of event names')
        unknown = [e for e in events if e not in WEBHOOK_EVENTS]
        if unknown:
            raise ApiError(400, f'BAD_REQUEST: "events" contains unknown event {unknown[0]!r}')
    if "enabled" in body:
        if not isinstance(body["enabled"], bool):
            raise ApiError(400, 'BAD_REQUEST: "enabled" must be a boolean')
        out["enabled"] = body["enabled"]
    elif not partial:
        out["enabled"] = True
    return out


async def json_body(request: Request) -> Any:
    """The request's JSON body; 400 when it is not JSON."""
    try:
        return await request.json()
    except ValueError:
        raise ApiError(400, "BAD_REQUEST: body is not valid JSON") from None
