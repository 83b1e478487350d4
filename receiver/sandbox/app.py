"""A fake Dyte v2 REST API over a sandbox world (Starlette app).

Every ``/v2`` route follows a path of the official spec
(``shared/dyte/openapi-v2.yaml``, server ``https://api.dyte.io/v2``) and its
response envelope. Where the spec's schema and its own example disagree, the
route answers with both shapes (noted per route). Conventions:

* auth: HTTP Basic ``org_id:api_key``; otherwise 401 ``{"message": "Unauthorized"}``;
* errors: ``{"success": false, "error": {"code": N, "message": "..."}}``;
* paging: query ``page_no`` (from 1) and ``per_page`` (default 20); the
  ``paging`` object is ``{"total_count", "start_offset", "end_offset"}`` with
  1-based inclusive offsets (an empty page has ``end_offset < start_offset``);
* times: ISO 8601 UTC with milliseconds (``2026-11-01T09:00:00.512Z``);
  participant ``duration`` in MINUTES (4 decimals), recording
  ``recording_duration`` and livestream ``ingest_seconds`` in seconds,
  ``file_size`` in bytes;
* faults (:class:`RestFaults`), drawn per ``/v2`` request before auth: 500,
  429 with ``retry-after`` (seconds), or a pause of ``timeout_seconds``
  before answering normally (logged as 504 at once).

``GET /.well-known/webhooks.json`` (no auth, no faults) publishes the webhook
public key as ``{"success": true, "data": {"publicKey": "<SPKI PEM>"}}``.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hmac
import random
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from cryptography.hazmat.primitives.asymmetric import rsa
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from receiver.providers.dyte.signature import public_key_pem
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

__all__ = ["RestFaults", "SandboxState", "create_sandbox_app", "DEFAULT_PER_PAGE"]

DEFAULT_PER_PAGE = 20
_NAMESPACE = uuid.UUID("0b6f4f1e-1c7e-4c55-9f55-5a4d8b0c0e11")


@dataclass
class RestFaults:
    """Random REST faults, drawn from ``random.Random(seed)`` once per ``/v2`` request.

    Rates are probabilities in ``[0, 1]`` (checked in the order timeout,
    rate limit, error): ``timeout_rate`` sleeps ``timeout_seconds`` (seconds;
    longer than the client's timeout) before answering normally;
    ``rate_limit_rate`` answers 429 with ``retry-after: retry_after_seconds``;
    ``error_rate`` answers 500.
    """

    error_rate: float = 0.0
    rate_limit_rate: float = 0.0
    timeout_rate: float = 0.0
    timeout_seconds: float = 30
    retry_after_seconds: int = 1
    seed: int = 0


@dataclass
class SandboxState:
    """What the fake API serves: the world, the signing key, credentials, faults, a call log.

    ``calls`` receives ``(method, path, status)`` per request (504 marks a
    timeout fault, logged when the pause begins).
    """

    world: World
    private_key: rsa.RSAPrivateKey
    org_id: str = "sandbox-org"
    api_key: str = "sandbox-key"
    rest_faults: RestFaults = field(default_factory=RestFaults)
    calls: list[tuple[str, str, int]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._fault_rng = random.Random(self.rest_faults.seed)

    def draw_fault(self) -> str | None:
        """The fault for the next request: ``"timeout"``, ``"rate_limit"``, ``"error"`` or None."""
        faults = self.rest_faults
        if not (faults.timeout_rate or faults.rate_limit_rate or faults.error_rate):
            return None
        r = self._fault_rng.random()
        if r < faults.timeout_rate:
            return "timeout"
        r -= faults.timeout_rate
        if r < faults.rate_limit_rate:
            return "rate_limit"
        r -= faults.rate_limit_rate
        if r < faults.error_rate:
            return "error"
        return None


# ---------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------


class _ApiError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"success": False, "error": {"code": status, "message": message}}, status, headers=headers)


def _ok(data: Any, paging: dict[str, int] | None = None, status: int = 200) -> JSONResponse:
    body: dict[str, Any] = {"success": True, "data": data}
    if paging is not None:
        body["paging"] = paging
    return JSONResponse(body, status)


def _int_param(request: Request, name: str, default: int) -> int:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(float(raw))
    except ValueError:
        raise _ApiError(400, f'BAD_REQUEST: "{name}" must be a number') from None
    if value < 0:
        raise _ApiError(400, f'BAD_REQUEST: "{name}" must be greater than or equal to 0')
    return value


def _paginate(request: Request, items: Sequence[Any]) -> tuple[list[Any], dict[str, int]]:
    """One page of ``items`` and the spec's ``paging`` object (1-based inclusive offsets)."""
    page_no = _int_param(request, "page_no", 1) or 1
    per_page = _int_param(request, "per_page", DEFAULT_PER_PAGE) or DEFAULT_PER_PAGE
    offset = (page_no - 1) * per_page
    page = list(items[offset : offset + per_page])
    return page, {"total_count": len(items), "start_offset": offset + 1, "end_offset": offset + len(page)}


def _time_param(request: Request, name: str) -> datetime | None:
    raw = request.query_params.get(name)
    if not raw:
        return None
    if "T" in raw and " " in raw:  # an unencoded "+00:00" offset arrives as " 00:00"
        raw = raw.replace(" ", "+")
    try:
        return parse_timestamp(raw)
    except TimestampError:
        raise _ApiError(400, f'BAD_REQUEST: "{name}" must be a valid ISO 8601 date') from None


def _bool_param(request: Request, name: str) -> bool | None:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return None
    return raw.strip().lower() in ("1", "true", "yes")


def _descending(request: Request, default: str) -> bool:
    order = (request.query_params.get("sort_order") or default).upper()
    return order in ("DESC", "DSC")


def _valid_guid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True


# ---------------------------------------------------------------------------
# Object renderings (spec component schemas)
# ---------------------------------------------------------------------------


def _meeting_json(meeting: SandboxMeeting) -> dict[str, Any]:
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


def _duration_minutes(peer: SandboxPeer) -> float:
    return round(peer.duration_seconds / 60, 4)


def _session_json(world: World, session: SandboxSession) -> dict[str, Any]:
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


def _participant_json(peer: SandboxPeer, *, peer_events: bool = False) -> dict[str, Any]:
    """``components/schemas/ParticipantsList``; ``id`` is the peer id ("maps to the corresponding peerId")."""
    obj: dict[str, Any] = {
        "id": peer.peer_id,
        "user_id": peer.user_id,
        "custom_participant_id": peer.custom_participant_id,
        "display_name": peer.display_name,
        "preset_name": peer.preset_name,
        "joined_at": iso_ms(peer.joined_at),
        "left_at": iso_ms(peer.left_at),
        "duration": _duration_minutes(peer),
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


def _reason(reason: str, *, stop: bool) -> dict[str, Any]:
    if stop and reason in ("ALL_PEERS_LEFT", "INTERNAL_ERROR"):
        return {"reason": reason, "caller": {"type": "INTERNAL"}}
    return {"reason": reason, "caller": {"type": "ORGANIZATION"}}


def _recording_json(rec: SandboxRecording, *, detail: bool) -> dict[str, Any]:
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
        obj["start_reason"] = _reason("API_CALL", stop=False)
        obj["stop_reason"] = (
            _reason(rec.stop_reason, stop=True) if rec.status in ("UPLOADING", "UPLOADED", "ERRORED") else None
        )
    return obj


def _livestream_json(world: World, stream: SandboxLivestream) -> dict[str, Any]:
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


def _livestream_session_json(stream: SandboxLivestream) -> dict[str, Any]:
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


def _webhook_json(hook: SandboxWebhook) -> dict[str, Any]:
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
# The app
# ---------------------------------------------------------------------------

Handler = Callable[[Request, SandboxState], Awaitable[Response]]


def _validate_webhook_body(body: Any, *, partial: bool) -> dict[str, Any]:
    """Check a ``WebhookRequest`` (``partial``: ``PatchWebhookRequest``) body; 400 on errors."""
    if not isinstance(body, dict):
        raise _ApiError(400, "BAD_REQUEST: body must be a JSON object")
    out: dict[str, Any] = {}
    for name in ("name", "url", "events"):
        if name not in body:
            if not partial:
                raise _ApiError(400, f'BAD_REQUEST: "{name}" is required')
            continue
        out[name] = body[name]
    if "name" in out and (not isinstance(out["name"], str) or not out["name"].strip()):
        raise _ApiError(400, 'BAD_REQUEST: "name" must be a non-empty string')
    if "url" in out and (not isinstance(out["url"], str) or not out["url"].startswith(("http://", "https://"))):
        raise _ApiError(400, 'BAD_REQUEST: "url" must be a valid uri')
    if "events" in out:
        events = out["events"]
        if not isinstance(events, list) or not events or not all(isinstance(e, str) for e in events):
            raise _ApiError(400, 'BAD_REQUEST: "events" must be a non-empty array of event names')
        unknown = [e for e in events if e not in WEBHOOK_EVENTS]
        if unknown:
            raise _ApiError(400, f'BAD_REQUEST: "events" contains unknown event {unknown[0]!r}')
    if "enabled" in body:
        if not isinstance(body["enabled"], bool):
            raise _ApiError(400, 'BAD_REQUEST: "enabled" must be a boolean')
        out["enabled"] = body["enabled"]
    elif not partial:
        out["enabled"] = True
    return out


async def _json_body(request: Request) -> Any:
    try:
        return await request.json()
    except ValueError:
        raise _ApiError(400, "BAD_REQUEST: body is not valid JSON") from None


def create_sandbox_app(state: SandboxState) -> Starlette:
    """The fake Dyte API serving ``state`` (see the module docstring for conventions)."""
    world = state.world

    def api(handler: Handler) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            method, path = request.method, request.url.path
            fault = state.draw_fault()
            if fault == "rate_limit":
                seconds = str(state.rest_faults.retry_after_seconds)
                state.calls.append((method, path, 429))
                return _error(429, "Too Many Requests", {"retry-after": seconds, "x-envoy-ratelimited": "true"})
            if fault == "error":
                state.calls.append((method, path, 500))
                return _error(500, "Internal server error (sandbox fault)")
            if fault == "timeout":
                state.calls.append((method, path, 504))
                await asyncio.sleep(state.rest_faults.timeout_seconds)
            if not _authorized(request):
                response: Response = JSONResponse(
                    {"message": "Unauthorized"}, 401, headers={"www-authenticate": 'Basic realm="dyte"'}
                )
            else:
                try:
                    response = await handler(request, state)
                except _ApiError as exc:
                    response = _error(exc.status, exc.message)
            if fault != "timeout":
                state.calls.append((method, path, response.status_code))
            return response

        return endpoint

    def _authorized(request: Request) -> bool:
        header = request.headers.get("authorization", "")
        scheme, _, encoded = header.partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError, ValueError):
            return False
        user, sep, password = decoded.partition(":")
        return (
            bool(sep)
            and hmac.compare_digest(user.encode(), state.org_id.encode())
            and hmac.compare_digest(password.encode(), state.api_key.encode())
        )

    # -- sessions -------------------------------------------------------
    async def list_sessions(request: Request, _: SandboxState) -> Response:
        """GET /sessions (GetSessions): ``data.sessions`` (+ ``data.paging``)."""
        start, end = _time_param(request, "start_time"), _time_param(request, "end_time")
        associated = request.query_params.get("associated_id")
        status = (request.query_params.get("status") or "").upper()
        search = (request.query_params.get("search") or "").lower()
        sessions = [
            s
            for s in world.sessions
            if (start is None or s.started_at >= start)
            and (end is None or s.started_at <= end)
            and (not associated or s.meeting_id == associated)
            and (not status or status == "ENDED")
        ]
        if search:
            sessions = [
                s
                for s in sessions
                if search in s.id.lower()
                or search in s.meeting_id.lower()
                or search in ((world.meeting(s.meeting_id) or SandboxMeeting("", "")).title.lower())
            ]
        if request.query_params.get("sort_by") == "minutesConsumed":
            key: Callable[[SandboxSession], Any] = lambda s: (sum(p.duration_seconds for p in s.peers), s.id)  # noqa: E731
        else:
            key = lambda s: (s.started_at, s.id)  # noqa: E731
        sessions.sort(key=key, reverse=_descending(request, "DESC"))
        page, paging = _paginate(request, sessions)
        return _ok({"sessions": [_session_json(world, s) for s in page], "paging": paging})

    def _session_or_404(session_id: str) -> SandboxSession:
        session = world.session(session_id)
        if session is None:
            raise _ApiError(404, f"No session found with id {session_id}")
        return session

    async def get_session(request: Request, _: SandboxState) -> Response:
        """GET /sessions/{session_id} (GetSessionDetails): ``data.session``."""
        session = _session_or_404(request.path_params["session_id"])
        return _ok({"session": _session_json(world, session)})

    async def session_participants(request: Request, _: SandboxState) -> Response:
        """GET /sessions/{session_id}/participants: ``data.participants`` + ``data.paging``, one row per peer."""
        session = _session_or_404(request.path_params["session_id"])
        peers = list(session.peers)
        search = (request.query_params.get("search") or "").lower()
        if search:
            peers = [
                p
                for p in peers
                if search in p.display_name.lower()
                or search in (p.custom_participant_id or "").lower()
                or search in p.peer_id.lower()
            ]
        if request.query_params.get("sort_by") == "duration":
            peers.sort(key=lambda p: (p.duration_seconds, p.peer_id), reverse=_descending(request, "ASC"))
        else:
            peers.sort(key=lambda p: (p.joined_at, p.peer_id), reverse=_descending(request, "ASC"))
        page, paging = _paginate(request, peers)
        with_events = bool(_bool_param(request, "include_peer_events"))
        return _ok({"participants": [_participant_json(p, peer_events=with_events) for p in page], "paging": paging})

    async def session_participant(request: Request, _: SandboxState) -> Response:
        """GET /sessions/{session_id}/participants/{participant_id}: ``data.participant`` (id = peer id)."""
        session = _session_or_404(request.path_params["session_id"])
        wanted = request.path_params["participant_id"]
        peer = next((p for p in session.peers if p.peer_id == wanted), None)
        if peer is None:
            raise _ApiError(404, f"No user found with id {wanted}")
        return _ok(
            {"participant": _participant_json(peer, peer_events=bool(_bool_param(request, "include_peer_events")))}
        )

    # -- meetings -------------------------------------------------------
    async def list_meetings(request: Request, _: SandboxState) -> Response:
        """GET /meetings (GetAllMeetings): ``data`` array + top-level ``paging``."""
        search = (request.query_params.get("search") or "").lower()
        meetings = [m for m in world.meetings if not search or search in m.title.lower() or search in m.id]
        page, paging = _paginate(request, meetings)
        return _ok([_meeting_json(m) for m in page], paging)

    def _meeting_or_404(meeting_id: str) -> SandboxMeeting:
        meeting = world.meeting(meeting_id)
        if meeting is None:
            raise _ApiError(404, f"No meeting found with id {meeting_id}")
        return meeting

    async def get_meeting(request: Request, _: SandboxState) -> Response:
        """GET /meetings/{meeting_id} (GetMeeting): ``data`` is the meeting."""
        return _ok(_meeting_json(_meeting_or_404(request.path_params["meeting_id"])))

    # -- recordings -----------------------------------------------------
    async def list_recordings(request: Request, _: SandboxState) -> Response:
        """GET /recordings (GetRecordings): ``data`` array (each with ``meeting``) + top-level ``paging``."""
        meeting_id = request.query_params.get("meeting_id")
        statuses = {
            s.strip().upper() for v in request.query_params.getlist("status") for s in v.split(",") if s.strip()
        }
        start, end = _time_param(request, "start_time"), _time_param(request, "end_time")
        expired = _bool_param(request, "expired")
        search = (request.query_params.get("search") or "").lower()
        now = datetime.now(UTC)
        recs = [
            r
            for r in world.recordings
            if (not meeting_id or r.meeting_id == meeting_id)
            and (not statuses or r.status in statuses)
            and (start is None or r.invoked_at >= start)
            and (end is None or r.invoked_at <= end)
            and (expired is None or (r.download_url_expiry is not None and r.download_url_expiry < now) == expired)
            and (not search or search in r.id or search in r.meeting_id or search in r.output_file_name.lower())
        ]
        recs.sort(key=lambda r: (r.invoked_at, r.id), reverse=_descending(request, "DESC"))
        page, paging = _paginate(request, recs)
        data = []
        for rec in page:
            obj = _recording_json(rec, detail=False)
            meeting = world.meeting(rec.meeting_id)
            obj["meeting"] = _meeting_json(meeting) if meeting else None
            data.append(obj)
        return _ok(data, paging)

    async def get_recording(request: Request, _: SandboxState) -> Response:
        """GET /recordings/{recording_id} (GetRecording): ``data`` is the recording."""
        rec = world.recording(request.path_params["recording_id"])
        if rec is None:
            raise _ApiError(404, f"No recording found with id {request.path_params['recording_id']}")
        return _ok(_recording_json(rec, detail=True))

    # -- livestreams ----------------------------------------------------
    async def list_livestreams(request: Request, _: SandboxState) -> Response:
        """GET /livestreams (fetch_all_livestreams): ``data`` array + top-level ``paging`` (spec example)."""
        status = (request.query_params.get("status") or "").upper()
        streams = [] if _bool_param(request, "exclude_meetings") else list(world.livestreams)
        streams = [s for s in streams if not status or s.rest_status == status]
        start, end = _time_param(request, "start_time"), _time_param(request, "end_time")
        streams = [
            s
            for s in streams
            if (start is None or s.statuses[0][1] >= start) and (end is None or s.statuses[0][1] <= end)
        ]
        streams.sort(key=lambda s: (s.statuses[0][1], s.id), reverse=_descending(request, "DESC"))
        page, paging = _paginate(request, streams)
        return _ok([_livestream_json(world, s) for s in page], paging)

    async def get_livestream(request: Request, _: SandboxState) -> Response:
        """GET /livestreams/{livestream_id}: ``data.livestream``, ``data.session`` (schema),
        ``data.sessions`` (example), top-level ``paging`` (example)."""
        stream = world.livestream(request.path_params["livestream_id"])
        if stream is None:
            raise _ApiError(404, f"No livestream found with id {request.path_params['livestream_id']}")
        sessions, paging = _paginate(request, [_livestream_session_json(stream)])
        return _ok(
            {
                "livestream": _livestream_json(world, stream),
                "session": sessions[0] if sessions else None,
                "sessions": sessions,
            },
            paging,
        )

    async def meeting_livestream(request: Request, _: SandboxState) -> Response:
        """GET /meetings/{meeting_id}/livestream: ``data.livestreams`` (schema), ``data.livestream``
        (example: the latest), ``data.sessions``, top-level ``paging`` (over livestreams)."""
        meeting = _meeting_or_404(request.path_params["meeting_id"])
        streams = sorted(
            (s for s in world.livestreams if s.meeting_id == meeting.id), key=lambda s: (s.statuses[0][1], s.id)
        )
        page, paging = _paginate(request, streams)
        latest = streams[-1] if streams else None
        return _ok(
            {
                "livestreams": [_livestream_json(world, s) for s in page],
                "livestream": _livestream_json(world, latest) if latest else None,
                "sessions": [_livestream_session_json(s) for s in page],
            },
            paging,
        )

    async def meeting_active_livestream(request: Request, _: SandboxState) -> Response:
        """GET /meetings/{meeting_id}/active-livestream: ``data`` is the LIVE livestream, else 404."""
        meeting = _meeting_or_404(request.path_params["meeting_id"])
        live = [s for s in world.livestreams if s.meeting_id == meeting.id and s.rest_status == "LIVE"]
        if not live:
            raise _ApiError(404, f"No active livestream found for meeting_id {meeting.id}")
        return _ok(_livestream_json(world, live[-1]))

    # -- webhooks -------------------------------------------------------
    def _hook_or_error(webhook_id: str) -> SandboxWebhook:
        if not _valid_guid(webhook_id):
            raise _ApiError(400, 'BAD_REQUEST "id" must be a valid GUID')
        hook = world.webhook(webhook_id)
        if hook is None:
            raise _ApiError(404, f"No webhook found with id {webhook_id}")
        return hook

    async def list_webhooks(request: Request, _: SandboxState) -> Response:
        """GET /webhooks (WebhooksListSuccessResponse): ``data`` array, no paging."""
        return _ok([_webhook_json(h) for h in world.webhooks])

    async def create_webhook(request: Request, _: SandboxState) -> Response:
        """POST /webhooks (WebhookRequest -> 201 WebhookSuccessResponse)."""
        fields = _validate_webhook_body(await _json_body(request), partial=False)
        now = datetime.now(UTC)
        hook = SandboxWebhook(id=str(uuid.uuid4()), created_at=now, updated_at=now, **fields)
        world.webhooks.append(hook)
        return _ok(_webhook_json(hook), status=201)

    async def get_webhook(request: Request, _: SandboxState) -> Response:
        """GET /webhooks/{webhook_id} (WebhookSuccessResponse)."""
        return _ok(_webhook_json(_hook_or_error(request.path_params["webhook_id"])))

    async def replace_webhook(request: Request, _: SandboxState) -> Response:
        """PUT /webhooks/{webhook_id}: replaces name, url, events, enabled (default true)."""
        hook = _hook_or_error(request.path_params["webhook_id"])
        fields = _validate_webhook_body(await _json_body(request), partial=False)
        for name, value in fields.items():
            setattr(hook, name, value)
        hook.updated_at = datetime.now(UTC)
        return _ok(_webhook_json(hook))

    async def edit_webhook(request: Request, _: SandboxState) -> Response:
        """PATCH /webhooks/{webhook_id} (PatchWebhookRequest): changes only the given fields."""
        hook = _hook_or_error(request.path_params["webhook_id"])
        fields = _validate_webhook_body(await _json_body(request), partial=True)
        for name, value in fields.items():
            setattr(hook, name, value)
        hook.updated_at = datetime.now(UTC)
        return _ok(_webhook_json(hook))

    async def delete_webhook(request: Request, _: SandboxState) -> Response:
        """DELETE /webhooks/{webhook_id}: answers the deleted webhook (WebhookSuccessResponse)."""
        hook = _hook_or_error(request.path_params["webhook_id"])
        world.webhooks.remove(hook)
        return _ok(_webhook_json(hook))

    async def not_found(request: Request, _: SandboxState) -> Response:
        raise _ApiError(404, f"Route {request.method} {request.url.path} not found in the sandbox")

    async def well_known(request: Request) -> Response:
        """GET /.well-known/webhooks.json: ``{"success": true, "data": {"publicKey": "<SPKI PEM>"}}``."""
        state.calls.append((request.method, request.url.path, 200))
        return JSONResponse({"success": True, "data": {"publicKey": public_key_pem(state.private_key)}})

    routes = [
        Route("/.well-known/webhooks.json", well_known, methods=["GET"]),
        Route("/v2/sessions", api(list_sessions), methods=["GET"]),
        Route("/v2/sessions/{session_id}", api(get_session), methods=["GET"]),
        Route("/v2/sessions/{session_id}/participants", api(session_participants), methods=["GET"]),
        Route("/v2/sessions/{session_id}/participants/{participant_id}", api(session_participant), methods=["GET"]),
        Route("/v2/meetings", api(list_meetings), methods=["GET"]),
        Route("/v2/meetings/{meeting_id}", api(get_meeting), methods=["GET"]),
        Route("/v2/meetings/{meeting_id}/livestream", api(meeting_livestream), methods=["GET"]),
        Route("/v2/meetings/{meeting_id}/active-livestream", api(meeting_active_livestream), methods=["GET"]),
        Route("/v2/recordings", api(list_recordings), methods=["GET"]),
        Route("/v2/recordings/{recording_id}", api(get_recording), methods=["GET"]),
        Route("/v2/livestreams", api(list_livestreams), methods=["GET"]),
        Route("/v2/livestreams/{livestream_id}", api(get_livestream), methods=["GET"]),
        Route("/v2/webhooks", api(list_webhooks), methods=["GET"]),
        Route("/v2/webhooks", api(create_webhook), methods=["POST"]),
        Route("/v2/webhooks/{webhook_id}", api(get_webhook), methods=["GET"]),
        Route("/v2/webhooks/{webhook_id}", api(replace_webhook), methods=["PUT"]),
        Route("/v2/webhooks/{webhook_id}", api(edit_webhook), methods=["PATCH"]),
        Route("/v2/webhooks/{webhook_id}", api(delete_webhook), methods=["DELETE"]),
        Route("/v2/{rest:path}", api(not_found), methods=["GET", "POST", "PUT", "PATCH", "DELETE"]),
    ]
    return Starlette(routes=routes)
