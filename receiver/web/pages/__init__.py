"""Server-rendered pages under ``/ui`` for analysts and operators (Jinja2, no JavaScript).

Pages (role analyst): ``/ui/overview`` (sessions, people and minutes per
day or week, inline SVG bars), ``/ui/meetings``, ``/ui/meetings/{meeting_id}/series``
(occurrences x people, trend, average ratio), ``/ui/people/{participant_key}``
(one person across sessions, minutes per week; ``/ui/people?participant=``
redirects there), ``/ui/sessions`` (search,
date range, sort, pages), ``/ui/sessions/{session_id}`` (attendance table, a
timeline and the concurrency curve as inline SVG, recordings and artifacts;
CSV download at ``/ui/sessions/{session_id}/attendance.csv``),
``/ui/recordings`` (the same filters; an expired link shown queues its
refresh for the worker), ``/ui/events`` (filters by status, type, session,
delivery id, time; the event log), ``/ui/events/{event_id}`` (the payload,
secrets redacted), ``/ui/outbound`` (the outbound attendance webhook's
deliveries: :mod:`.outbound`) and ``/ui/audit`` (who did what, and the active sign-ins).
``/ui`` redirects to ``/ui/sessions``. List pages take ``?format=csv`` for a
download of the API mirror's rows (:mod:`.filters`).

Actions (role operator, audited; :mod:`receiver.web.pages.actions`): retry an
event, replay a done one and retry every dead one (both after a confirmation
page), refresh recording links, revoke a sign-in, send an outbound delivery again.

Sign-in (:mod:`receiver.web.login`): ``/ui/login`` exchanges a token for a
server-side session (cookie: a signed random id, never the token);
``POST /ui/logout``. Scripts may send ``Authorization: Bearer``. No token is
accepted in a URL. ``API_TOKENS`` unset: 503. Templates are autoescaped;
tokens and stream keys are never rendered, and a raw body only on its
payload page, with secrets redacted (:mod:`receiver.redaction`).

Modules: :mod:`.geometry` (the timeline and curve, pure), :mod:`.charts`
(bars and lines over time, pure), :mod:`.views` (meetings, session, audit),
:mod:`.listings` and :mod:`.filters` (the list pages), :mod:`.person`,
:mod:`.series`, :mod:`.overview`, :mod:`.event` (issue #21), :mod:`.actions`
(operator actions); rendering in :mod:`receiver.web.templating`.
"""

from __future__ import annotations

from starlette.routing import BaseRoute, Route

from receiver.settings import Settings
from receiver.web.auth import Role
from receiver.web.login import Handler, PageAuth, guarded, login_routes
from receiver.web.pages import actions, event, exports, listings, outbound, overview, person, series, views
from receiver.web.pages.geometry import (
    CHART_WIDTH,
    CURVE_HEIGHT,
    MIN_BAR_WIDTH,
    ROW_HEIGHT,
    ConcurrencyCurve,
    Tick,
    TimelineBar,
    TimelineRow,
    concurrency_curve,
    time_ticks,
    timeline_bounds,
    timeline_layout,
)

__all__ = [
    "CHART_WIDTH",
    "CURVE_HEIGHT",
    "MIN_BAR_WIDTH",
    "ROW_HEIGHT",
    "TimelineBar",
    "TimelineRow",
    "ConcurrencyCurve",
    "Tick",
    "timeline_bounds",
    "timeline_layout",
    "concurrency_curve",
    "time_ticks",
    "page_routes",
]


def page_routes(settings: Settings) -> list[BaseRoute]:
    """The ``/ui`` routes: sign-in, read pages (analyst) and audited actions (operator).

    Raises:
        ConfigurationError: API_TOKENS is malformed.
    """
    auth = PageAuth(settings)

    def read(handler: Handler) -> Handler:
        return guarded(auth, handler)

    def act(handler: Handler, action: str) -> Handler:
        return guarded(auth, handler, role=Role.OPERATOR, action=action)

    routes: list[BaseRoute] = [Route(path, handler, methods=methods) for path, handler, methods in login_routes(auth)]
    routes += [
        Route("/ui", read(views.index), methods=["GET"]),
        Route("/ui/overview", read(overview.overview_page), methods=["GET"]),
        Route("/ui/meetings", read(views.meetings_page), methods=["GET"]),
        Route("/ui/meetings/{meeting_id}/series", read(series.series_page), methods=["GET"]),
        Route("/ui/people", read(person.find_person), methods=["GET"]),
        Route("/ui/people/{participant_key}", read(person.person_page), methods=["GET"]),
        Route("/ui/sessions", read(listings.sessions_list), methods=["GET"]),
        Route("/ui/sessions/{session_id}", read(views.session_page), methods=["GET"]),
        Route("/ui/sessions/{session_id}/attendance.csv", read(views.session_csv), methods=["GET"]),
        Route("/ui/recordings", read(listings.recordings_list), methods=["GET"]),
        Route("/ui/export/attendance", read(exports.export_attendance_page), methods=["GET"]),
        Route("/ui/export/sessions", read(exports.export_sessions_page), methods=["GET"]),
        Route("/ui/export/recordings", read(exports.export_recordings_page), methods=["GET"]),
        Route("/ui/recordings/refresh", act(actions.refresh_links_page, "refresh_links"), methods=["POST"]),
        Route("/ui/events", read(listings.events_list), methods=["GET"]),
        Route("/ui/events/retry-dead", act(actions.bulk_retry_confirm, "bulk_retry"), methods=["GET"]),
        Route("/ui/events/retry-dead", act(actions.bulk_retry_page, "bulk_retry"), methods=["POST"]),
        Route("/ui/events/{event_id}", read(event.event_page_view), methods=["GET"]),
        Route("/ui/events/{event_id}/retry", act(actions.retry_page, "retry"), methods=["POST"]),
        Route("/ui/events/{event_id}/replay", act(actions.replay_confirm, "replay"), methods=["GET"]),
        Route("/ui/events/{event_id}/replay", act(actions.replay_page, "replay"), methods=["POST"]),
        Route("/ui/outbound", read(outbound.outbound_page), methods=["GET"]),
        Route(
            "/ui/outbound/{delivery_id}/retry",
            act(outbound.retry_outbound_page, "retry_outbound"),
            methods=["POST"],
        ),
        Route("/ui/audit", read(views.audit_page), methods=["GET"]),
        Route(
            "/ui/audit/sign-ins/{session_hash}/revoke",
            act(actions.revoke_sign_in_page, "revoke_session"),
            methods=["POST"],
        ),
    ]
    return routes
