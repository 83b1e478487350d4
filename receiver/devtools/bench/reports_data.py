"""Org-wide data of ``receiver bench reports`` generated inside PostgreSQL (``generate_series``), fast.

At 10,000,000 intervals, producing the rows in Python and sending them with
``COPY`` costs minutes; here the server produces them itself, in two
``INSERT ... SELECT`` statements (sessions, then their intervals). The
shape follows :func:`receiver.devtools.bench.reports_bench.interval_rows`:
sessions of 80 people, 20 to 90 minutes, 3 h apart (oldest first), one
meeting in 100; per person one interval, ~15 % a rejoin and ~5 % a second
device (a second interval), ~10 % without a custom participant id (key =
peer id), ~3 % of intervals without a leave. ``random()`` draws the times,
so two loads differ in detail, not in shape.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import text
from sqlalchemy.engine import Engine

__all__ = ["PEOPLE_PER_SESSION", "pg_org_sessions", "session_id"]

#: People per generated org-wide session (about 96 intervals each).
PEOPLE_PER_SESSION = 80
_INTERVALS_PER_SESSION = PEOPLE_PER_SESSION * 1.2
# Sessions per transaction: the invalidation triggers take one advisory lock per session touched
# (migration 0004), and the server's lock table is shared by every database on it.
_CHUNK = 1000

_SESSIONS_SQL = """
INSERT INTO sessions (session_id, meeting_id, started_at, ended_at, status, updated_at,
                      reconcile_added, reconcile_changed, end_inferred)
SELECT 'org-' || lpad(g::text, 9, '0'), 'bench-meeting-' || (g % 100),
       CAST(:base AS timestamptz) - g * interval '3 hours',
       CAST(:base AS timestamptz) - g * interval '3 hours' + (20 + floor(random() * 71)) * interval '1 minute',
       'ended', CAST(:base AS timestamptz), 0, 0, false
FROM generate_series(CAST(:first AS integer), CAST(:last AS integer)) AS g
"""

# Per person: anonymous (no custom id) or not, and one or two intervals; then per interval its times.
_INTERVALS_SQL = f"""
INSERT INTO participant_intervals (session_id, meeting_id, peer_id, participant_key, custom_participant_id,
                                   user_id, display_name, preset_name, joined_at, left_at,
                                   closed_at_session_end, source, updated_at)
SELECT session_id, meeting_id, peer_id, coalesce(custom, peer_id), custom, NULL, 'Person ' || p,
       'group_call_participant', joined_at,
       CASE WHEN random() < 0.03 THEN NULL
            ELSE least(joined_at + (30 + random() * length * 0.4) * interval '1 second', ended_at) END,
       false, 'webhook', ended_at
FROM (
    SELECT s.session_id, s.meeting_id, s.ended_at, pe.p, pe.custom, gen_random_uuid()::text AS peer_id,
           extract(epoch FROM s.ended_at - s.started_at) AS length,
           s.started_at + (random() * extract(epoch FROM s.ended_at - s.started_at) * 0.6) * interval '1 second'
               AS joined_at
    FROM sessions AS s
    CROSS JOIN LATERAL (
        SELECT p, CASE WHEN random() < 0.10 THEN NULL ELSE s.session_id || '-p' || p END AS custom,
               CASE WHEN random() < 0.20 THEN 2 ELSE 1 END AS devices
        FROM generate_series(0, {PEOPLE_PER_SESSION - 1}) AS p
    ) AS pe
    CROSS JOIN LATERAL generate_series(1, pe.devices) AS k
    WHERE s.session_id BETWEEN :first_id AND :last_id
) AS spans
"""


def pg_org_sessions(engine: Engine, intervals: int, base: datetime) -> tuple[int, int]:
    """Generate about ``intervals`` org-wide intervals server-side; returns (sessions, intervals) made.

    Sessions are ``org-000000001``... (``meeting_id`` ``bench-meeting-<n % 100>``,
    which the caller inserts), all ended, the n-th starting ``n * 3`` hours
    before ``base`` (UTC). PostgreSQL only (``gen_random_uuid``: 13+).

    Raises:
        sqlalchemy.exc.SQLAlchemyError: the server refused the statements.
    """
    sessions = max(1, round(intervals / _INTERVALS_PER_SESSION)) if intervals > 0 else 0
    made = 0
    for first in range(1, sessions + 1, _CHUNK):
        last = min(first + _CHUNK - 1, sessions)
        with engine.begin() as connection:
            connection.execute(text(_SESSIONS_SQL), {"base": base, "first": first, "last": last})
            made += connection.execute(
                text(_INTERVALS_SQL), {"first_id": session_id(first), "last_id": session_id(last)}
            ).rowcount
    return sessions, made


def session_id(n: int) -> str:
    """Id of the ``n``-th generated session (from 1; ids sort as the numbers do)."""
    return f"org-{n:09d}"
