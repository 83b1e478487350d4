"""The analysts' attendance columns (issue #21 item 1): who a person was, and minutes beside seconds.

Owns :data:`ANALYST_COLUMNS` and the pure rules that fill them from a
session's interval rows and its meeting's title, and :func:`add_analyst_columns`,
which reads what those rules need for a batch of report rows (one query per
500 sessions) and fills the columns in place.

Rules (also in docs/schema.md):

* ``meeting_title``: ``meetings.title`` of the session's meeting (None when
  the title is unknown);
* ``preset_name``: the person's role, the preset of most of their peers
  (intervals); a tie goes to the preset of the later peer (row-id order);
  None when no peer carried one;
* ``custom_participant_id`` and ``user_id``: the value most of the person's
  peers carried (a tie: the later peer), None when none did;
* ``is_guest``: True when no peer of the person carried a custom participant
  id (the app did not identify them, so ``participant_key`` is a peer id);
* ``attended_minutes``: ``attended_seconds / 60`` rounded half up to one
  decimal (``75 s`` -> ``1.3``; ``89.999 s`` -> ``1.5``), exact decimal
  arithmetic on the stored seconds.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, NamedTuple

from sqlalchemy import select
from sqlalchemy.engine import Connection

from receiver.db.models import Meeting, ParticipantInterval, Session
from receiver.reports.intervals import CHUNK

__all__ = [
    "ANALYST_COLUMNS",
    "PersonDetails",
    "add_analyst_columns",
    "attended_minutes",
    "most_frequent",
    "person_details",
]

#: The columns this module fills, in the order the attendance report shows them.
ANALYST_COLUMNS = ("meeting_title", "preset_name", "is_guest", "custom_participant_id", "user_id", "attended_minutes")

_TENTH = Decimal("0.1")
_SIXTY = Decimal(60)


def attended_minutes(seconds: float | None) -> float | None:
    """``seconds / 60`` rounded half up to one decimal (None stays None).

    Exact: the seconds' decimal text is divided, so ``75.0`` gives ``1.3``
    (not the ``1.2`` binary floats and banker's rounding could give).
    """
    if seconds is None:
        return None
    minutes = Decimal(repr(float(seconds))) / _SIXTY
    return float(minutes.quantize(_TENTH, rounding=ROUND_HALF_UP))


def most_frequent(values: Iterable[str | None]) -> str | None:
    """The non-empty value seen most often; a tie goes to the value seen last among the tied; None when none.

    ``values`` are in peer (row-id) order.
    """
    counts: dict[str, int] = {}
    last_seen: dict[str, int] = {}
    for position, value in enumerate(values):
        if value:
            counts[value] = counts.get(value, 0) + 1
            last_seen[value] = position
    if not counts:
        return None
    return max(counts, key=lambda v: (counts[v], last_seen[v]))


class PersonDetails(NamedTuple):
    """What the intervals tell about one person of one session (see the module rules)."""

    preset_name: str | None
    custom_participant_id: str | None
    user_id: str | None

    @property
    def is_guest(self) -> bool:
        """True when no peer carried a custom participant id."""
        return self.custom_participant_id is None


def person_details(intervals: Sequence[Sequence[Any]]) -> PersonDetails:
    """The :class:`PersonDetails` of one person from their peers' ``(preset_name, custom_participant_id, user_id)``
    tuples, in row-id order."""
    return PersonDetails(
        most_frequent(i[0] for i in intervals),
        most_frequent(i[1] for i in intervals),
        most_frequent(i[2] for i in intervals),
    )


_UNKNOWN = PersonDetails(None, None, None)


def add_analyst_columns(connection: Connection, rows: Sequence[dict[str, Any]]) -> None:
    """Fill :data:`ANALYST_COLUMNS` into attendance report rows (dicts with ``session_id``, ``participant_key``,
    ``attended_seconds``), in place.

    Reads the sessions' meeting titles and their intervals' preset, custom
    participant id and user id (``session_id IN (...)`` chunks of 500
    sessions through ``ix_participant_intervals_session_key``). A person
    with no stored interval left (erased meanwhile) gets None and
    ``is_guest`` True.

    Raises:
        sqlalchemy.exc.SQLAlchemyError: the database could not be read.
    """
    session_ids = list(dict.fromkeys(row["session_id"] for row in rows))
    titles: dict[str, str | None] = {}
    peers: dict[tuple[str, str], list[tuple[Any, ...]]] = {}
    for start in range(0, len(session_ids), CHUNK):
        chunk = session_ids[start : start + CHUNK]
        for sid, title in connection.execute(
            select(Session.session_id, Meeting.title)
            .outerjoin(Meeting, Meeting.meeting_id == Session.meeting_id)
            .where(Session.session_id.in_(chunk))
        ):
            titles[sid] = title
        for sid, key, preset, custom, user in connection.execute(
            select(
                ParticipantInterval.session_id,
                ParticipantInterval.participant_key,
                ParticipantInterval.preset_name,
                ParticipantInterval.custom_participant_id,
                ParticipantInterval.user_id,
            )
            .where(ParticipantInterval.session_id.in_(chunk))
            .order_by(ParticipantInterval.session_id, ParticipantInterval.id)
        ):
            peers.setdefault((sid, key), []).append((preset, custom, user))
    for row in rows:
        found = peers.get((row["session_id"], row["participant_key"]))
        details = person_details(found) if found else _UNKNOWN
        row["meeting_title"] = titles.get(row["session_id"])
        row["preset_name"] = details.preset_name
        row["is_guest"] = details.is_guest
        row["custom_participant_id"] = details.custom_participant_id
        row["user_id"] = details.user_id
        row["attended_minutes"] = attended_minutes(row.get("attended_seconds"))
