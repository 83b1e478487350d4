"""The sandbox's REST routes: the same handlers for both dialects, over one world.

Every route follows a path of Dyte's v2 spec (``shared/dyte/openapi-v2.yaml``)
and, after the RealtimeKit prefix, of the ``cloudflare`` SDK's
``cloudflare.resources.realtime_kit``; where the spec's schema and its own
example disagree, the route answers with both shapes (noted per route).
The differences between the two APIs are the dialect's
(:mod:`receiver.sandbox.dialects`).
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from receiver.sandbox.rest_objects import (
    ApiError,
    bool_param,
    descending,
    json_body,
    livestream_json,
    livestream_session_json,
    meeting_json,
    ok,
    paginate,
    participant_json,
    recording_json,
    session_json,
    time_param,
    valid_guid,
    validate_webhook_body,
    webhook_json,
)
from receiver.sandbox.state import SandboxState
from receiver.sandbox.world import SandboxMeeting, SandboxSession, SandboxWebhook

__all__ = ["Handler", "rest_routes"]

Handler = Callable[[Request, SandboxState], Awaitable[Response]]


def rest_routes(state: SandboxState) -> list[tuple[str, str, Handler]]:
    """``(method, path, handler)`` of every REST route, paths relative to the dialect's prefix.

    Handlers raise :class:`~receiver.sandbox.rest_objects.ApiError` for a
    client's mistake (the app renders it); the last route answers 404 for
    any other path under the prefix.
    """
    world = state.world
    dialect = state.dialect

    async def list_sessions(request: Request, _: SandboxState) -> Response:
        """GET /sessions (GetSessions): ``data.sessions`` + ``data.paging`` (Dyte) or top-level ``paging`` (RealtimeKit)."""
        start, end = time_param(request, "start_time"), time_param(request, "end_time")
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
        sessions.sort(key=key, reverse=descending(request, "DESC"))
        page, paging = paginate(request, sessions)
        return ok(*dialect.sessions_page([session_json(world, s) for s in page], paging))

    def _session_or_404(session_id: str) -> SandboxSession:
        """The session, or a 404."""
        session = world.session(session_id)
        if session is None:
            raise ApiError(404, f"No session found with id {session_id}")
        return session

    async def get_session(request: Request, _: SandboxState) -> Response:
        """GET /sessions/{session_id} (GetSessionDetails): ``data.session`` (Dyte), ``data`` (RealtimeKit)."""
        session = _session_or_404(request.path_params["session_id"])
        return ok(dialect.session_detail(session_json(world, session)))

    async def session_participants(request: Request, _: SandboxState) -> Response:
        """GET /sessions/{session_id}/participants: ``data.participants`` (+ ``data.paging`` for Dyte), one row per peer."""
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
            peers.sort(key=lambda p: (p.duration_seconds, p.peer_id), reverse=descending(request, "ASC"))
        else:
            peers.sort(key=lambda p: (p.joined_at, p.peer_id), reverse=descending(request, "ASC"))
        page, paging = paginate(request, peers)
        with_events = bool(bool_param(request, "include_peer_events"))
        return ok(dialect.participants_page([participant_json(p, peer_events=with_events) for p in page], paging))

    async def session_participant(request: Request, _: SandboxState) -> Response:
        """GET /sessions/{session_id}/participants/{participant_id}: ``data.participant`` (id = peer id)."""
        session = _session_or_404(request.path_params["session_id"])
        wanted = request.path_params["participant_id"]
        peer = next((p for p in session.peers if p.peer_id == wanted), None)
        if peer is None:
            raise ApiError(404, f"No user found with id {wanted}")
        return ok({"participant": participant_json(peer, peer_events=bool(bool_param(request, "include_peer_events")))})

    # -- meetings -------------------------------------------------------
    async def list_meetings(request: Request, _: SandboxState) -> Response:
        """GET /meetings (GetAllMeetings): ``data`` array + top-level ``paging``."""
        search = (request.query_params.get("search") or "").lower()
        meetings = [m for m in world.meetings if not search or search in m.title.lower() or search in m.id]
        page, paging = paginate(request, meetings)
        return ok([meeting_json(m) for m in page], paging)

    def _meeting_or_404(meeting_id: str) -> SandboxMeeting:
        """The meeting, or a 404."""
        meeting = world.meeting(meeting_id)
        if meeting is None:
            raise ApiError(404, f"No meeting found with id {meeting_id}")
        return meeting

    async def get_meeting(request: Request, _: SandboxState) -> Response:
        """GET /meetings/{meeting_id} (GetMeeting): ``data`` is the meeting."""
        return ok(meeting_json(_meeting_or_404(request.path_params["meeting_id"])))

    # -- recordings -----------------------------------------------------
    async def list_recordings(request: Request, _: SandboxState) -> Response:
        """GET /recordings (GetRecordings): ``data`` array (each with ``meeting``) + top-level ``paging``."""
        meeting_id = request.query_params.get("meeting_id")
        statuses = {
            s.strip().upper() for v in request.query_params.getlist("status") for s in v.split(",") if s.strip()
        }
        start, end = time_param(request, "start_time"), time_param(request, "end_time")
        expired = bool_param(request, "expired")
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
        recs.sort(key=lambda r: (r.invoked_at, r.id), reverse=descending(request, "DESC"))
        page, paging = paginate(request, recs)
        data = []
        for rec in page:
            obj = recording_json(rec, detail=False)
            meeting = world.meeting(rec.meeting_id)
            obj["meeting"] = meeting_json(meeting) if meeting else None
            data.append(obj)
        return ok(data, paging)

    async def get_recording(request: Request, _: SandboxState) -> Response:
        """GET /recordings/{recording_id} (GetRecording): ``data`` is the recording."""
        rec = world.recording(request.path_params["recording_id"])
        if rec is None:
            raise ApiError(404, f"No recording found with id {request.path_params['recording_id']}")
        return ok(recording_json(rec, detail=True))

    # -- livestreams ----------------------------------------------------
    async def list_livestreams(request: Request, _: SandboxState) -> Response:
        """GET /livestreams (fetch_all_livestreams): ``data`` array + top-level ``paging`` (spec example)."""
        status = (request.query_params.get("status") or "").upper()
        streams = [] if bool_param(request, "exclude_meetings") else list(world.livestreams)
        streams = [s for s in streams if not status or s.rest_status == status]
        start, end = time_param(request, "start_time"), time_param(request, "end_time")
        streams = [
            s
            for s in streams
            if (start is None or s.statuses[0][1] >= start) and (end is None or s.statuses[0][1] <= end)
        ]
        streams.sort(key=lambda s: (s.statuses[0][1], s.id), reverse=descending(request, "DESC"))
        page, paging = paginate(request, streams)
        return ok([dialect.livestream(livestream_json(world, s)) for s in page], paging)

    async def get_livestream(request: Request, _: SandboxState) -> Response:
        """GET /livestreams/{livestream_id}: ``data.livestream``, ``data.session`` (schema),
        ``data.sessions`` (example), top-level ``paging`` (example)."""
        stream = world.livestream(request.path_params["livestream_id"])
        if stream is None:
            raise ApiError(404, f"No livestream found with id {request.path_params['livestream_id']}")
        sessions, paging = paginate(request, [livestream_session_json(stream)])
        return ok(
            {
                "livestream": dialect.livestream(livestream_json(world, stream)),
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
        page, paging = paginate(request, streams)
        latest = streams[-1] if streams else None
        return ok(
            {
                "livestreams": [dialect.livestream(livestream_json(world, s)) for s in page],
                "livestream": dialect.livestream(livestream_json(world, latest)) if latest else None,
                "sessions": [livestream_session_json(s) for s in page],
            },
            paging,
        )

    async def meeting_active_livestream(request: Request, _: SandboxState) -> Response:
        """GET /meetings/{meeting_id}/active-livestream: ``data`` is the LIVE livestream, else 404."""
        meeting = _meeting_or_404(request.path_params["meeting_id"])
        live = [s for s in world.livestreams if s.meeting_id == meeting.id and s.rest_status == "LIVE"]
        if not live:
            raise ApiError(404, f"No active livestream found for meeting_id {meeting.id}")
        return ok(dialect.livestream(livestream_json(world, live[-1])))

    # -- webhooks -------------------------------------------------------
    def _hook_or_error(webhook_id: str) -> SandboxWebhook:
        """The webhook; 400 for an id that is not a GUID, 404 for an unknown one."""
        if not valid_guid(webhook_id):
            raise ApiError(400, 'BAD_REQUEST "id" must be a valid GUID')
        hook = world.webhook(webhook_id)
        if hook is None:
            raise ApiError(404, f"No webhook found with id {webhook_id}")
        return hook

    async def list_webhooks(request: Request, _: SandboxState) -> Response:
        """GET /webhooks (WebhooksListSuccessResponse): ``data`` array, no paging."""
        return ok([webhook_json(h) for h in world.webhooks])

    async def create_webhook(request: Request, _: SandboxState) -> Response:
        """POST /webhooks (WebhookRequest -> 201 WebhookSuccessResponse)."""
        fields = validate_webhook_body(await json_body(request), partial=False)
        now = datetime.now(UTC)
        hook = SandboxWebhook(id=str(uuid.uuid4()), created_at=now, updated_at=now, **fields)
        world.webhooks.append(hook)
        return ok(webhook_json(hook), status=201)

    async def get_webhook(request: Request, _: SandboxState) -> Response:
        """GET /webhooks/{webhook_id} (WebhookSuccessResponse)."""
        return ok(webhook_json(_hook_or_error(request.path_params["webhook_id"])))

    async def replace_webhook(request: Request, _: SandboxState) -> Response:
        """PUT /webhooks/{webhook_id}: replaces name, url, events, enabled (default true)."""
        hook = _hook_or_error(request.path_params["webhook_id"])
        fields = validate_webhook_body(await json_body(request), partial=False)
        for name, value in fields.items():
            setattr(hook, name, value)
        hook.updated_at = datetime.now(UTC)
        return ok(webhook_json(hook))

    async def edit_webhook(request: Request, _: SandboxState) -> Response:
        """PATCH /webhooks/{webhook_id} (PatchWebhookRequest): changes only the given fields."""
        hook = _hook_or_error(request.path_params["webhook_id"])
        fields = validate_webhook_body(await json_body(request), partial=True)
        for name, value in fields.items():
            setattr(hook, name, value)
        hook.updated_at = datetime.now(UTC)
        return ok(webhook_json(hook))

    async def delete_webhook(request: Request, _: SandboxState) -> Response:
        """DELETE /webhooks/{webhook_id}: answers the deleted webhook (WebhookSuccessResponse)."""
        hook = _hook_or_error(request.path_params["webhook_id"])
        world.webhooks.remove(hook)
        return ok(webhook_json(hook))

    async def not_found(request: Request, _: SandboxState) -> Response:
        """Any other path under the prefix: 404."""
        raise ApiError(404, f"Route {request.method} {request.url.path} not found in the sandbox")

    return [
        ("GET", "/sessions", list_sessions),
        ("GET", "/sessions/{session_id}", get_session),
        ("GET", "/sessions/{session_id}/participants", session_participants),
        ("GET", "/sessions/{session_id}/participants/{participant_id}", session_participant),
        ("GET", "/meetings", list_meetings),
        ("GET", "/meetings/{meeting_id}", get_meeting),
        ("GET", "/meetings/{meeting_id}/livestream", meeting_livestream),
        ("GET", "/meetings/{meeting_id}/active-livestream", meeting_active_livestream),
        ("GET", "/recordings", list_recordings),
        ("GET", "/recordings/{recording_id}", get_recording),
        ("GET", "/livestreams", list_livestreams),
        ("GET", "/livestreams/{livestream_id}", get_livestream),
        ("GET", "/webhooks", list_webhooks),
        ("POST", "/webhooks", create_webhook),
        ("GET", "/webhooks/{webhook_id}", get_webhook),
        ("PUT", "/webhooks/{webhook_id}", replace_webhook),
        ("PATCH", "/webhooks/{webhook_id}", edit_webhook),
        ("DELETE", "/webhooks/{webhook_id}", delete_webhook),
        ("*", "/{rest:path}", not_found),
    ]
