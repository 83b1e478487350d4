"""The pure rules of REST reconciliation (:mod:`receiver.processing.merge`): identity, derived times, peer events."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from receiver.processing.merge import api_intervals
from receiver.providers.dyte.rest_models import ApiParticipant

T0 = datetime(2023, 2, 1, 10, 0, tzinfo=UTC)


def iso(minutes: float) -> str:
    return (T0 + timedelta(minutes=minutes)).isoformat().replace("+00:00", "Z")


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def event(peer: str, name: str, minutes: float) -> dict:
    return {"peer_id": peer, "event_name": name, "created_at": iso(minutes)}


def test_identity_falls_back_from_custom_id_to_peer_id_to_user_id():
    """Custom id, else peer id, else user id; no identity at all: nothing to merge."""
    [custom] = api_intervals(ApiParticipant.model_validate({"id": "p1", "custom_participant_id": "alice"}))
    [peer] = api_intervals(ApiParticipant.model_validate({"id": "p2", "user_id": "u2"}))
    [user] = api_intervals(ApiParticipant.model_validate({"user_id": "u3", "joined_at": iso(1)}))
    assert (custom.peer_id, custom.participant_key) == ("p1", "alice")
    assert (peer.peer_id, peer.participant_key) == ("p2", "p2")
    assert user.participant_key == "u3" and user.peer_id == "api:u3@20230201T100100.000000"
    assert api_intervals(ApiParticipant.model_validate({"display_name": "Nobody"})) == []


def test_a_missing_time_is_derived_from_the_other_and_the_duration_in_minutes():
    """joined_at unreadable: left_at - duration; left_at missing: joined_at + duration; both named."""
    [no_join] = api_intervals(
        ApiParticipant.model_validate({"id": "p", "joined_at": "garbage", "left_at": iso(10), "duration": 2.5})
    )
    assert no_join.joined_at == at(7.5) and no_join.invalid_fields == ("joined_at",)
    [no_leave] = api_intervals(ApiParticipant.model_validate({"id": "p", "joined_at": iso(1), "duration": 3}))
    assert no_leave.left_at == at(4) and no_leave.invalid_fields == ("left_at",)
    [both] = api_intervals(ApiParticipant.model_validate({"id": "p", "joined_at": iso(1)}))
    assert (both.joined_at, both.left_at, both.invalid_fields) == (at(1), None, ())


def test_peer_events_with_several_stays_give_one_interval_each():
    """A rejoin (two JOINING/LEAVING pairs of one peer) and a second device: three intervals, gaps excluded."""
    participant = ApiParticipant.model_validate(
        {
            "id": "part-1",
            "custom_participant_id": "alice",
            "joined_at": iso(0),
            "left_at": iso(50),
            "peer_events": [
                event("pa", "PEER_JOINING", 0),
                event("pa", "PEER_LEAVING", 10),
                event("pb", "PEER_JOINING", 5),
                event("pa", "PEER_JOINING", 30),
                event("pb", "PEER_LEAVING", 20),
            ],
        }
    )
    stays = [(i.peer_id, i.joined_at, i.left_at, i.participant_key) for i in api_intervals(participant)]
    assert stays == [
        ("pa", at(0), at(10), "alice"),
        ("pb", at(5), at(20), "alice"),
        ("pa#2", at(30), at(50), "alice"),  # its leave is the participant's
    ]


def test_one_stay_keeps_the_participants_times_under_the_events_peer_id():
    """The spec's example: participant id 005f..., peer events of peer 79d8...: one interval, peer 79d8..."""
    participant = ApiParticipant.model_validate(
        {
            "id": "005f4e0c",
            "joined_at": iso(0),
            "left_at": iso(6),
            "peer_events": [event("79d87ca5", "PEER_JOINING", 0.7), event("79d87ca5", "PEER_LEAVING", 5.8)],
        }
    )
    [only] = api_intervals(participant)
    assert (only.peer_id, only.participant_key, only.joined_at, only.left_at) == ("79d87ca5", "79d87ca5", at(0), at(6))
