"""Deterministic scenario builders for the sandbox world.

* :func:`build_scenario` generates a world from a seed: several sessions,
  rejoins, people on two devices at once, peers without a custom participant
  id, a host who is still connected when the host ends the meeting, and
  optional recordings and livestreams.
* :func:`demo_world` is a small hand-scripted world for the demo and docs.

All times are aware UTC and lie in the past (base 2026-11-01T09:00:00Z).
Peer times have millisecond precision, recording times microsecond precision,
so they survive the round trip through Dyte's timestamp strings exactly.
"""

from __future__ import annotations

import random
import string
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from receiver.sandbox.world import (
    DEFAULT_BASE_TIME,
    DEFAULT_ORG_ID,
    SandboxLivestream,
    SandboxMeeting,
    SandboxPeer,
    SandboxRecording,
    SandboxSession,
    World,
)

__all__ = ["build_scenario", "demo_world", "HOST_ENDED", "ALL_LEFT"]

HOST_ENDED = "HOST_ENDED_MEETING"
ALL_LEFT = "ALL_PARTICIPANTS_LEFT"
#: Delay between the last leave and the end of an ALL_PARTICIPANTS_LEFT session.
END_GRACE = timedelta(seconds=60)
#: Download URLs expire this long after upload (RealtimeKit documents 7 days).
DOWNLOAD_RETENTION = timedelta(days=7)

_HOST_PRESET = "group_call_host"
_PARTICIPANT_PRESET = "group_call_participant"

_FIRST_NAMES = [
    "Alice",
    "Bob",
    "Carol",
    "Dan",
    "Erin",
    "Frank",
    "Grace",
    "Heidi",
    "Ivan",
    "Judy",
    "Mallory",
    "Niaj",
    "Olivia",
    "Peggy",
    "Rupert",
    "Sybil",
    "Trent",
    "Uma",
    "Victor",
    "Wendy",
]
_LAST_NAMES = ["Ng", "Okafor", "Schmidt", "Rossi", "Silva", "Kowalski", "Haddad", "Tanaka", "Moreau"]
_TITLES = ["Weekly sync", "Design review", "Customer onboarding", "Sprint planning", "Office hours"]


def _uuid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def _custom_id(rng: random.Random) -> str:
    # Shaped like the ids in the real payloads: "l08is183rld", "dj287lon9c".
    return "".join(rng.choice(string.ascii_lowercase + string.digits) for _ in range(rng.choice((10, 11))))


def _room_name(rng: random.Random) -> str:
    letters = string.ascii_lowercase
    return "".join(rng.choice(letters) for _ in range(6)) + "-" + "".join(rng.choice(letters) for _ in range(6))


def _between(rng: random.Random, lo: datetime, hi: datetime) -> datetime:
    """A millisecond-precision instant in ``[lo, hi]`` (``lo`` when the range is empty)."""
    span_ms = int((hi - lo).total_seconds() * 1000)
    return lo + timedelta(milliseconds=rng.randint(0, span_ms) if span_ms > 0 else 0)


def _secs(rng: random.Random, lo: float, hi: float) -> timedelta:
    """A millisecond-precision duration between ``lo`` and ``hi`` seconds."""
    return timedelta(milliseconds=rng.randint(int(lo * 1000), int(hi * 1000)))


def _micro(rng: random.Random, lo: float, hi: float) -> timedelta:
    """A microsecond-precision duration between ``lo`` and ``hi`` seconds."""
    return timedelta(microseconds=rng.randint(int(lo * 1_000_000), int(hi * 1_000_000)))


@dataclass
class _Person:
    custom_id: str | None
    display_name: str
    preset: str


class _Ids:
    """Dyte participant/user ids, stable per (person, meeting)."""

    def __init__(self, rng: random.Random) -> None:
        self._rng = rng
        self._ids: dict[tuple[int, str], tuple[str, str]] = {}

    def get(self, person: int, meeting_id: str) -> tuple[str, str]:
        key = (person, meeting_id)
        if key not in self._ids:
            self._ids[key] = (_uuid(self._rng), _uuid(self._rng))
        return self._ids[key]


def _distribute(total: int, buckets: int) -> list[int]:
    base, extra = divmod(total, buckets)
    return [base + (1 if i < extra else 0) for i in range(buckets)]


def _plan_kinds(rng: random.Random, budget: int, forced: bool) -> list[str]:
    """Peer groups for one session: host first, then forced features, then random ones.

    Kinds and their peer counts: single 1, anonymous 1, rejoin 2, two_devices 2.
    """
    kinds = ["host"]
    budget -= 1
    if forced:
        for kind, cost in (("rejoin", 2), ("two_devices", 2), ("anonymous", 1)):
            if budget >= cost:
                kinds.append(kind)
                budget -= cost
    weighted = [("single", 55), ("rejoin", 20), ("two_devices", 15), ("anonymous", 10)]
    while budget > 0:
        options = [(k, w) for k, w in weighted if budget >= (2 if k in ("rejoin", "two_devices") else 1)]
        kind = rng.choices([k for k, _ in options], weights=[w for _, w in options])[0]
        kinds.append(kind)
        budget -= 2 if kind in ("rejoin", "two_devices") else 1
    return kinds


def build_scenario(
    seed: int,
    sessions: int,
    participants: int,
    recordings: bool = True,
    livestreams: bool = True,
    *,
    base_time: datetime = DEFAULT_BASE_TIME,
    org_id: str = DEFAULT_ORG_ID,
) -> World:
    """Generate a deterministic world (same arguments, same world, ids included).

    Args:
        seed: seed of the ``random.Random`` driving every choice.
        sessions: number of sessions; sessions are spread over
            ``1 + (sessions - 1) // 4`` meetings and start 3 h apart.
        participants: total number of peers (connections) over all sessions,
            spread evenly; must be at least ``sessions`` (each session has a host).
        recordings: give the first session, and about 60 % of the others, a
            recording (about 12 % of those after the first end ERRORED).
        livestreams: give the first session, and about 35 % of the others, a
            livestream.
        base_time: aware UTC time the first session starts near.
        org_id: organisation id written into payloads.

    The first session always ends with ``HOST_ENDED_MEETING`` while the host is
    still connected (``left_at == ended_at``), and, when it has at least 6
    peers (``participants >= 6 + sessions - 1`` suffices), contains a rejoin,
    a person on two devices at once and a peer without a custom id.

    Raises:
        ValueError: negative counts, or fewer participants than sessions.
    """
    if sessions < 0 or participants < 0:
        raise ValueError("sessions and participants must be >= 0")
    if participants < sessions:
        raise ValueError("participants (total peers) must be >= sessions: every session has a host")
    if sessions == 0 and participants:
        raise ValueError("participants need at least one session")
    if base_time.tzinfo is None:
        raise ValueError("base_time must be timezone-aware")
    base_time = base_time.astimezone(UTC)

    rng = random.Random(seed)
    world = World(org_id=org_id, seed=seed)
    if sessions == 0:
        return world

    n_meetings = 1 + (sessions - 1) // 4
    for m in range(n_meetings):
        world.meetings.append(
            SandboxMeeting(
                id=_uuid(rng),
                title=f"{_TITLES[m % len(_TITLES)]}" + (f" #{m // len(_TITLES) + 1}" if m >= len(_TITLES) else ""),
                created_at=base_time - timedelta(days=1) + timedelta(minutes=m),
                room_name=_room_name(rng),
            )
        )

    counts = _distribute(participants, sessions)
    pool_size = max(counts) + 2
    names = [f"{f} {l}" for l in _LAST_NAMES for f in _FIRST_NAMES]  # noqa: E741
    rng.shuffle(names)
    people = [
        _Person(_custom_id(rng), names[i % len(names)], _HOST_PRESET if i == 0 else _PARTICIPANT_PRESET)
        for i in range(pool_size)
    ]
    ids = _Ids(rng)

    for index in range(sessions):
        meeting = world.meetings[index % n_meetings]
        start = base_time + timedelta(hours=3 * index) + _secs(rng, 0, 1800)
        length = _secs(rng, 20 * 60, 50 * 60)
        planned_end = start + length
        reason = HOST_ENDED if index == 0 else rng.choice((HOST_ENDED, ALL_LEFT))
        kinds = _plan_kinds(rng, counts[index], forced=index == 0)
        others = iter(rng.sample(range(1, pool_size), k=sum(1 for k in kinds if k not in ("host", "anonymous"))))

        # Each planned peer: (person index or None, joined, left or None = "stays to the end").
        planned: list[tuple[int | None, datetime, datetime | None]] = []
        early = start + timedelta(seconds=5)
        for kind in kinds:
            if kind == "host":
                planned.append((0, start + _secs(rng, 0.3, 2.0), None))
            elif kind in ("single", "anonymous"):
                person = next(others) if kind == "single" else None
                joined = _between(rng, early, start + length * 0.5)
                stays = rng.random() < 0.3
                left = (
                    None if stays else _between(rng, joined + timedelta(seconds=60), planned_end - timedelta(seconds=1))
                )
                planned.append((person, joined, left))
            elif kind == "rejoin":
                person = next(others)
                j1 = _between(rng, early, start + length * 0.3)
                l1 = _between(rng, j1 + timedelta(seconds=60), j1 + length * 0.3)
                j2 = l1 + _secs(rng, 5, 120)
                l2 = (
                    None
                    if rng.random() < 0.3
                    else _between(rng, j2 + timedelta(seconds=60), planned_end - timedelta(seconds=1))
                )
                planned += [(person, j1, l1), (person, j2, l2)]
            else:  # two_devices: the second device joins while the first is connected
                person = next(others)
                j1 = _between(rng, early, start + length * 0.4)
                l1 = _between(rng, j1 + timedelta(seconds=120), planned_end - timedelta(seconds=1))
                j2 = _between(rng, j1 + timedelta(seconds=30), l1 - timedelta(seconds=30))
                l2 = (
                    None
                    if rng.random() < 0.3
                    else _between(rng, j2 + timedelta(seconds=30), planned_end - timedelta(seconds=1))
                )
                planned += [(person, j1, l1), (person, j2, l2)]

        if reason == HOST_ENDED:
            ended_at = planned_end
            resolved = [(p, j, ended_at if l is None else min(l, ended_at)) for p, j, l in planned]  # noqa: E741
        else:
            resolved = [
                (
                    p,
                    j,
                    l
                    if l is not None
                    else _between(
                        rng, max(j + timedelta(seconds=30), planned_end - timedelta(seconds=120)), planned_end
                    ),
                )
                for p, j, l in planned  # noqa: E741
            ]
            ended_at = max(l for _, _, l in resolved) + END_GRACE + _secs(rng, 0, 5)  # noqa: E741

        session = SandboxSession(
            id=_uuid(rng), meeting_id=meeting.id, started_at=start, ended_at=ended_at, end_reason=reason
        )
        for person_index, joined, left in resolved:
            if person_index is None:
                participant_id, user_id = _uuid(rng), _uuid(rng)
                custom, name, preset = None, f"Guest {rng.randint(1000, 9999)}", _PARTICIPANT_PRESET
            else:
                known = people[person_index]
                participant_id, user_id = ids.get(person_index, meeting.id)
                custom, name, preset = known.custom_id, known.display_name, known.preset
            session.peers.append(
                SandboxPeer(
                    peer_id=_uuid(rng),
                    participant_id=participant_id,
                    custom_participant_id=custom,
                    user_id=user_id,
                    display_name=name,
                    preset_name=preset,
                    joined_at=joined,
                    left_at=left,
                )
            )
        session.peers.sort(key=lambda p: (p.joined_at, p.peer_id))
        world.sessions.append(session)

        if recordings and (index == 0 or rng.random() < 0.6):
            world.recordings.append(_recording(rng, world, meeting, session, errored=index > 0 and rng.random() < 0.12))
        if livestreams and (index == 0 or rng.random() < 0.35):
            world.livestreams.append(_livestream(rng, meeting, session))
    return world


def _recording(
    rng: random.Random, world: World, meeting: SandboxMeeting, session: SandboxSession, *, errored: bool
) -> SandboxRecording:
    invoked = session.started_at + _micro(rng, 10, 60)
    recording = invoked + _micro(rng, 2, 6)
    name = f"{meeting.room_name}_{int(invoked.timestamp() * 1000)}.mp4"
    if errored:
        failed = recording + _micro(rng, 60, 600)
        return SandboxRecording(
            id=_uuid(rng),
            meeting_id=meeting.id,
            session_id=session.id,
            statuses=[("INVOKED", invoked), ("RECORDING", recording), ("ERRORED", failed)],
            started_at=recording,
            stopped_at=None,
            file_size=None,
            duration=None,
            output_file_name=name,
            stop_reason="INTERNAL_ERROR",
        )
    if rng.random() < 0.3:
        stop_reason = "API_CALL"
        stopped = _between(rng, recording + timedelta(seconds=60), session.last_leave - timedelta(seconds=30))
        stopped += timedelta(microseconds=rng.randint(0, 999))
    else:
        stop_reason = "ALL_PEERS_LEFT"
        stopped = session.last_leave + _micro(rng, 0.1, 2)
    uploading = stopped + _micro(rng, 1, 3)
    uploaded = uploading + _micro(rng, 20, 90)
    duration = int((stopped - recording).total_seconds())
    url = f"https://recordings.sandbox.invalid/{world.org_id}/{name}"
    return SandboxRecording(
        id=_uuid(rng),
        meeting_id=meeting.id,
        session_id=session.id,
        statuses=[("INVOKED", invoked), ("RECORDING", recording), ("UPLOADING", uploading), ("UPLOADED", uploaded)],
        started_at=recording,
        stopped_at=stopped,
        file_size=duration * rng.randint(150_000, 400_000) + rng.randint(0, 99_999),
        duration=duration,
        output_file_name=name,
        download_url=url,
        download_url_expiry=uploaded + DOWNLOAD_RETENTION,
        audio_download_url=url[:-4] + ".mp3" if rng.random() < 0.5 else None,
        stop_reason=stop_reason,
    )


def _stream_key(rng: random.Random) -> str:
    alphabet = string.ascii_letters + string.digits
    return (
        "sk_ap-south-1_"
        + "".join(rng.choice(alphabet) for _ in range(12))
        + "_"
        + "".join(rng.choice(alphabet) for _ in range(43))
    )


def _livestream(rng: random.Random, meeting: SandboxMeeting, session: SandboxSession) -> SandboxLivestream:
    statuses: list[tuple[str, datetime]] = []
    created = session.started_at + _secs(rng, 5, 20)
    if rng.random() < 0.5:
        statuses.append(("IDLE", created + _secs(rng, 1, 10)))
    live = created + _secs(rng, 30, 180)
    statuses.append(("LIVE", live))
    statuses.append(("OFFLINE", session.ended_at + _secs(rng, 1, 5)))
    stream_id = _uuid(rng)
    ingest = (statuses[-1][1] - live).total_seconds()
    return SandboxLivestream(
        id=stream_id,
        meeting_id=meeting.id,
        session_id=session.id,
        name=None if rng.random() < 0.5 else f"{meeting.title} live",
        stream_key=_stream_key(rng),
        statuses=statuses,
        livestream_session_id=_uuid(rng),
        ingest_server="rtmps://ingest.sandbox.invalid:443/app/",
        playback_url=f"https://playback.sandbox.invalid/{stream_id}.m3u8",
        viewer_seconds=round(ingest * rng.uniform(0.5, 20), 3),
        created_at=created,
    )


# ---------------------------------------------------------------------------
# The hand-scripted demo world
# ---------------------------------------------------------------------------


def _demo_id(n: int) -> str:
    return f"d0000000-0000-4000-8000-{n:012d}"


def demo_world(*, org_id: str = DEFAULT_ORG_ID) -> World:
    """A small scripted world: 1 meeting, 2 sessions, 5 people, 1 recording, 1 livestream.

    Session 1 (2026-11-01 09:00-09:45 UTC, ``HOST_ENDED_MEETING``): Alice
    (host) stays to the end; Bob leaves and rejoins; Carol joins from a
    laptop then also from a phone (two overlapping peers) and the phone is
    still connected at the end; Dan joins late; a guest without a custom id
    drops in. The recording goes INVOKED -> RECORDING -> UPLOADING ->
    UPLOADED and the livestream LIVE -> OFFLINE.

    Session 2 (2026-11-01 14:00 UTC, ``ALL_PARTICIPANTS_LEFT``): Alice, Bob
    and Dan; it ends 60 s after the last leave.
    """
    t = DEFAULT_BASE_TIME  # 2026-11-01T09:00:00Z

    def at(h: int, m: int, s: float) -> datetime:
        return t.replace(hour=h, minute=m, second=0) + timedelta(milliseconds=round(s * 1000))

    meeting = SandboxMeeting(
        id=_demo_id(1), title="Demo: weekly sync", created_at=t - timedelta(days=1), room_name="demowk-syncxx"
    )
    people = {
        "alice": ("Alice Host", _HOST_PRESET, _demo_id(101), _demo_id(201)),
        "bob": ("Bob Builder", _PARTICIPANT_PRESET, _demo_id(102), _demo_id(202)),
        "carol": ("Carol Two-Devices", _PARTICIPANT_PRESET, _demo_id(103), _demo_id(203)),
        "dan": ("Dan Latecomer", _PARTICIPANT_PRESET, _demo_id(104), _demo_id(204)),
    }

    def peer(n: int, who: str | None, joined: datetime, left: datetime) -> SandboxPeer:
        if who is None:
            return SandboxPeer(
                _demo_id(n), _demo_id(105), None, _demo_id(205), "Guest 4711", _PARTICIPANT_PRESET, joined, left
            )
        name, preset, participant_id, user_id = people[who]
        return SandboxPeer(_demo_id(n), participant_id, who, user_id, name, preset, joined, left)

    end1 = at(9, 45, 0)
    s1 = SandboxSession(
        id=_demo_id(11),
        meeting_id=meeting.id,
        started_at=at(9, 0, 0),
        ended_at=end1,
        end_reason=HOST_ENDED,
        peers=[
            peer(1001, "alice", at(9, 0, 0.512), end1),
            peer(1002, "bob", at(9, 1, 10.250), at(9, 12, 40.000)),
            peer(1003, "carol", at(9, 2, 5.125), at(9, 30, 15.875)),
            peer(1004, "carol", at(9, 20, 0.333), end1),
            peer(1005, "bob", at(9, 13, 5.750), at(9, 40, 0.100)),
            peer(1006, "dan", at(9, 25, 30.000), at(9, 44, 10.400)),
            peer(1007, None, at(9, 5, 0.000), at(9, 9, 30.000)),
        ],
    )
    s1.peers.sort(key=lambda p: (p.joined_at, p.peer_id))
    last2 = at(14, 28, 45.900)
    s2 = SandboxSession(
        id=_demo_id(12),
        meeting_id=meeting.id,
        started_at=at(14, 0, 0),
        ended_at=last2 + END_GRACE,
        end_reason=ALL_LEFT,
        peers=[
            peer(2001, "alice", at(14, 0, 0.700), at(14, 27, 0.000)),
            peer(2002, "bob", at(14, 0, 30.000), last2),
            peer(2003, "dan", at(14, 3, 15.200), at(14, 20, 0.000)),
        ],
    )
    invoked = at(9, 1, 0) + timedelta(microseconds=123456)
    started = at(9, 1, 3) + timedelta(microseconds=500123)
    stopped = end1 + timedelta(microseconds=812345)
    uploaded = at(9, 45, 40) + timedelta(microseconds=2)
    name = f"{meeting.room_name}_{int(invoked.timestamp() * 1000)}.mp4"
    url = f"https://recordings.sandbox.invalid/{org_id}/{name}"
    duration = int((stopped - started).total_seconds())
    recording = SandboxRecording(
        id=_demo_id(21),
        meeting_id=meeting.id,
        session_id=s1.id,
        statuses=[
            ("INVOKED", invoked),
            ("RECORDING", started),
            ("UPLOADING", at(9, 45, 2) + timedelta(microseconds=104200)),
            ("UPLOADED", uploaded),
        ],
        started_at=started,
        stopped_at=stopped,
        file_size=duration * 250_000 + 4_242,
        duration=duration,
        output_file_name=name,
        download_url=url,
        download_url_expiry=uploaded + DOWNLOAD_RETENTION,
        audio_download_url=url[:-4] + ".mp3",
        stop_reason="ALL_PEERS_LEFT",
    )
    livestream = SandboxLivestream(
        id=_demo_id(31),
        meeting_id=meeting.id,
        session_id=s1.id,
        name="Demo weekly sync live",
        stream_key="sk_ap-south-1_DemoSecretKey_doNotLogThisStreamKeyAnywhere000000000",
        statuses=[("LIVE", at(9, 2, 0)), ("OFFLINE", at(9, 45, 1.250))],
        livestream_session_id=_demo_id(32),
        ingest_server="rtmps://ingest.sandbox.invalid:443/app/",
        playback_url=f"https://playback.sandbox.invalid/{_demo_id(31)}.m3u8",
        viewer_seconds=5123.5,
        created_at=at(9, 1, 45),
    )
    return World(
        meetings=[meeting],
        sessions=[s1, s2],
        recordings=[recording],
        livestreams=[livestream],
        org_id=org_id,
        seed=0,
    )
