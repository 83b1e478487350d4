"""Pure rules of REST reconciliation: what a participant of ``GET /sessions/{id}/participants`` means.

No I/O here; :mod:`receiver.processing.writes` applies the results.

* **Identity.** The spec makes every participant field optional. The peer
  is the participant's ``peer_id``, else its ``id`` (which "maps to the
  corresponding peerId"); the person (``participant_key``) is the custom
  participant id, else the peer id (as for webhooks, so both sources agree),
  else the user id. A participant with neither a peer id nor a user id nor
  a custom participant id cannot be attributed and is skipped. Without a
  peer id, a stable synthetic one is made from the person and the join
  time (``api:<key>@<time>``).
* **Times.** An unreadable or missing ``joined_at`` is ``left_at - duration``,
  an unreadable or missing ``left_at`` is ``joined_at + duration``
  (``duration`` is in MINUTES, spec ``ParticipantsList.duration``); the
  names of such fields are reported in ``invalid_fields`` and stored on the
  interval.
* **Peer events** (``include_peer_events=true``): when a participant's
  ``PEER_JOINING`` / ``PEER_LEAVING`` events show more than one stay (a
  rejoin, a second device), each stay becomes its own interval (peer id of
  the event; a second stay of the same peer gets ``<peer>#2``), so the gaps
  between stays are not counted as attendance; the person is the custom
  participant id, else the stay's peer id. One stay: the participant's own
  times are used, under the events' peer id (the one webhooks carry).
* **Merge decision** (:func:`merge_api_participant`): ``added``, ``changed``
  (a known time differs by more than one second, or the webhook never saw
  the leave) or ``confirmed``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from receiver.providers.dyte.rest_models import ApiParticipant

__all__ = ["ApiPeerInterval", "api_intervals", "merge_api_participant", "PEER_JOINING", "PEER_LEAVING"]

PEER_JOINING = "PEER_JOINING"
PEER_LEAVING = "PEER_LEAVING"
#: Seconds two times may differ and still count as the same (Dyte's webhook and REST clocks).
SAME_TIME_SECONDS = 1.0


@dataclass(frozen=True)
class ApiPeerInterval:
    """One peer's stay as the REST API reports it, ready to merge (times aware UTC, or None)."""

    peer_id: str
    participant_key: str
    custom_participant_id: str | None
    user_id: str | None
    display_name: str | None
    preset_name: str | None
    joined_at: datetime | None
    left_at: datetime | None
    invalid_fields: tuple[str, ...] = ()


class _Times(Protocol):
    @property
    def joined_at(self) -> datetime | None: ...

    @property
    def left_at(self) -> datetime | None: ...


def merge_api_participant(interval: Any | None, participant: _Times) -> str:
    """Decide how an API participant changes the stored interval: ``added``, ``changed`` or ``confirmed``.

    Pure decision on values (the caller writes). ``changed`` when a known
    time differs by more than one second or the webhook never saw the leave.
    ``interval`` is any stored interval (``joined_at``, ``left_at``,
    ``closed_at_session_end``); ``participant`` an :class:`ApiPeerInterval`
    or :class:`ApiParticipant`.
    """
    if interval is None:
        return "added"
    for stored, api in ((interval.joined_at, participant.joined_at), (interval.left_at, participant.left_at)):
        if api is None:
            continue
        if stored is None or abs((stored - api).total_seconds()) > SAME_TIME_SECONDS:
            return "changed"
    if participant.left_at is not None and interval.closed_at_session_end:
        return "changed"
    return "confirmed"


def _times(participant: ApiParticipant) -> tuple[datetime | None, datetime | None, list[str]]:
    """Join and leave of the participant, a missing one derived from the other and ``duration``; and the derived/unreadable names."""
    flagged = list(participant.invalid_fields)
    joined, left = participant.joined_at, participant.left_at
    duration = participant.duration_seconds
    if duration is not None and duration >= 0:
        if joined is None and left is not None:
            joined = left - timedelta(seconds=duration)
            if "joined_at" not in flagged:
                flagged.append("joined_at")
        elif left is None and joined is not None and ("left_at" in flagged or duration > 0):
            left = joined + timedelta(seconds=duration)
            if "left_at" not in flagged:
                flagged.append("left_at")
    return joined, left, flagged


def _stays(participant: ApiParticipant) -> list[tuple[str, datetime | None, datetime | None]]:
    """``(peer_id, joined, left)`` per stay shown by the participant's peer events, in time order."""
    events = sorted(
        (
            e
            for e in participant.peer_events
            if e.peer_id and e.created_at and e.event_name in (PEER_JOINING, PEER_LEAVING)
        ),
        key=lambda e: (e.created_at, e.event_name != PEER_LEAVING),
    )
    stays: list[tuple[str, datetime | None, datetime | None]] = []
    open_at: dict[str, int] = {}  # peer id -> index of its open stay
    for event in events:
        peer = str(event.peer_id)
        if event.event_name == PEER_JOINING:
            if peer not in open_at:
                open_at[peer] = len(stays)
                stays.append((peer, event.created_at, None))
        elif peer in open_at:
            index = open_at.pop(peer)
            stays[index] = (peer, stays[index][1], event.created_at)
        else:  # a leave without a join: the stay began when the participant joined
            stays.append((peer, participant.joined_at, event.created_at))
    return stays


def api_intervals(participant: ApiParticipant) -> list[ApiPeerInterval]:
    """The intervals one REST participant stands for (see the module docstring); ``[]`` when it has no identity."""
    stays = _stays(participant)
    peer = stays[0][0] if len(stays) == 1 else participant.peer_id or participant.id
    if not (participant.custom_participant_id or peer or participant.user_id or stays):
        return []
    joined, left, flagged = _times(participant)
    common: dict[str, Any] = {
        "custom_participant_id": participant.custom_participant_id,
        "user_id": participant.user_id,
        "display_name": participant.display_name,
        "preset_name": participant.preset_name,
        "invalid_fields": tuple(flagged),
    }
    if len(stays) > 1:
        counts: dict[str, int] = {}
        result = []
        for index, (stay_peer, stay_joined, stay_left) in enumerate(stays):
            counts[stay_peer] = counts.get(stay_peer, 0) + 1
            peer_id = stay_peer if counts[stay_peer] == 1 else f"{stay_peer}#{counts[stay_peer]}"
            if stay_left is None and index == len(stays) - 1 and left is not None and left >= (stay_joined or left):
                stay_left = left  # the last stay ends with the participant
            result.append(
                ApiPeerInterval(
                    peer_id=peer_id,
                    participant_key=participant.custom_participant_id or stay_peer,
                    joined_at=stay_joined,
                    left_at=stay_left,
                    **common,
                )
            )
        return result
    person = participant.custom_participant_id or peer or participant.user_id
    if not person:  # only stays without a peer id: nothing to attribute
        return []
    key = person
    if not peer:
        moment = joined or left
        peer = f"api:{key}@{moment:%Y%m%dT%H%M%S.%f}" if moment is not None else f"api:{key}"
    return [ApiPeerInterval(peer_id=peer, participant_key=key, joined_at=joined, left_at=left, **common)]
