"""The sandbox's world: plain data describing what "happened" in a fake Dyte org.

Everything here is pure data (dataclasses, no I/O). The webhook generator
(:mod:`receiver.sandbox.webhooks`) and the fake REST API
(:mod:`receiver.sandbox.app`) both render the same :class:`World`, so the
ground truth a test checks against is exactly what the receiver was shown.

Conventions:

* every ``datetime`` is timezone-aware UTC; scenario timestamps lie in the
  past (a base time such as 2026-11-01T09:00:00Z plus offsets);
* peer and participant timestamps have millisecond precision (what Dyte's
  ISO strings carry), recording timestamps microsecond precision (what the
  ``2023-01-25 04:51:35.903816Z`` recording format carries);
* sizes are bytes, durations are seconds (the REST participants endpoint
  converts to minutes itself).

Vocabulary: one :class:`SandboxPeer` is one connection (Dyte's ``peerId``).
A person who rejoins, or who is connected from two devices at once, has
several peers sharing one ``custom_participant_id``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

__all__ = [
    "DEFAULT_BASE_TIME",
    "DEFAULT_ORG_ID",
    "RECORDING_STATUSES",
    "LIVESTREAM_WEBHOOK_STATUSES",
    "WEBHOOK_EVENTS",
    "SandboxMeeting",
    "SandboxPeer",
    "SandboxSession",
    "SandboxRecording",
    "SandboxLivestream",
    "SandboxWebhook",
    "World",
]

#: Scenario base time (UTC). Sessions start at this time plus offsets.
DEFAULT_BASE_TIME = datetime(2026, 11, 1, 9, 0, 0, tzinfo=UTC)
#: Organisation id used in payloads (``organizedBy.id``) and as Basic-auth user.
DEFAULT_ORG_ID = "sandbox-org"

#: Recording statuses of the v2 spec (``components/schemas/Recording``).
RECORDING_STATUSES = ("INVOKED", "RECORDING", "UPLOADING", "UPLOADED", "ERRORED", "PAUSED")
#: Statuses carried by ``livestreaming.statusUpdate`` webhooks.
LIVESTREAM_WEBHOOK_STATUSES = ("LIVE", "IDLE", "OFFLINE")
#: Webhook event names of the v2 spec (``components/schemas/Webhook``).
WEBHOOK_EVENTS = (
    "meeting.started",
    "meeting.ended",
    "meeting.participantJoined",
    "meeting.participantLeft",
    "meeting.chatSynced",
    "recording.statusUpdate",
    "livestreaming.statusUpdate",
    "meeting.transcript",
    "meeting.summary",
)


@dataclass
class SandboxMeeting:
    """A Dyte meeting (the room); ``created_at`` is aware UTC."""

    id: str
    title: str
    created_at: datetime = DEFAULT_BASE_TIME - timedelta(days=1)
    room_name: str | None = None


@dataclass
class SandboxPeer:
    """One connection of one person to one session.

    ``joined_at``/``left_at`` are aware UTC. ``custom_participant_id`` is the
    id the integrator passed when adding the participant, or ``None``.
    ``participant_id`` and ``user_id`` identify the Dyte participant (stable
    across that person's peers within a meeting).
    """

    peer_id: str
    participant_id: str
    custom_participant_id: str | None
    user_id: str
    display_name: str
    preset_name: str
    joined_at: datetime
    left_at: datetime

    @property
    def participant_key(self) -> str:
        """The person this peer belongs to: the custom id, else the peer id."""
        return self.custom_participant_id or self.peer_id

    @property
    def duration_seconds(self) -> float:
        """Connected time in seconds."""
        return (self.left_at - self.joined_at).total_seconds()


@dataclass
class SandboxSession:
    """One session (one run) of a meeting.

    ``end_reason`` is the ``meeting.ended`` webhook's ``reason``:
    ``HOST_ENDED_MEETING`` (peers still connected leave at ``ended_at``) or
    ``ALL_PARTICIPANTS_LEFT`` (``ended_at`` is about 60 s after the last leave).
    """

    id: str
    meeting_id: str
    started_at: datetime
    ended_at: datetime
    end_reason: str
    peers: list[SandboxPeer] = field(default_factory=list)

    @property
    def last_leave(self) -> datetime:
        """When the last peer left (``started_at`` when there are no peers)."""
        return max((p.left_at for p in self.peers), default=self.started_at)

    def max_concurrent(self) -> int:
        """Largest number of peers connected at the same instant."""
        points: list[tuple[datetime, int]] = []
        for peer in self.peers:
            points.append((peer.joined_at, 1))
            points.append((peer.left_at, -1))
        points.sort(key=lambda item: (item[0], item[1]))  # leaves before joins at a tie
        best = current = 0
        for _, delta in points:
            current += delta
            best = max(best, current)
        return best


@dataclass
class SandboxRecording:
    """A recording of a session.

    ``statuses`` is the history ``[(status, at)]`` in order (statuses from
    :data:`RECORDING_STATUSES`, times aware UTC). ``file_size`` is in bytes,
    ``duration`` in seconds (``stopped_at - started_at`` rounded down).
    Download fields are ``None`` unless the recording reached UPLOADED.
    """

    id: str
    meeting_id: str
    session_id: str
    statuses: list[tuple[str, datetime]]
    started_at: datetime | None
    stopped_at: datetime | None
    file_size: int | None
    duration: int | None
    output_file_name: str
    download_url: str | None = None
    download_url_expiry: datetime | None = None
    audio_download_url: str | None = None
    stop_reason: str = "ALL_PEERS_LEFT"

    @property
    def status(self) -> str:
        """The final status."""
        return self.statuses[-1][0]

    @property
    def invoked_at(self) -> datetime:
        """When the recording was requested (the first status's time)."""
        return self.statuses[0][1]

    @property
    def updated_at(self) -> datetime:
        """Time of the last status change."""
        return self.statuses[-1][1]


@dataclass
class SandboxLivestream:
    """A livestream of a session (one livestream with one livestream session).

    ``statuses`` is the webhook status history ``[(status, at)]`` using
    :data:`LIVESTREAM_WEBHOOK_STATUSES`; the REST API reports ``OFFLINE`` as
    ``IDLE``. ``stream_key`` is a secret: only the REST livestream objects of
    the spec carry it. ``viewer_seconds`` is total viewing time in seconds.
    """

    id: str
    meeting_id: str
    session_id: str
    name: str | None
    stream_key: str
    statuses: list[tuple[str, datetime]]
    livestream_session_id: str = ""
    ingest_server: str = "rtmps://sandbox.invalid:443/app/"
    playback_url: str = ""
    viewer_seconds: float = 0.0
    created_at: datetime | None = None

    @property
    def webhook_status(self) -> str:
        """The final webhook status (LIVE, IDLE or OFFLINE)."""
        return self.statuses[-1][0]

    @property
    def rest_status(self) -> str:
        """The final status as the REST API reports it (LIVE or IDLE)."""
        return "LIVE" if self.webhook_status == "LIVE" else "IDLE"

    @property
    def started_at(self) -> datetime | None:
        """When it first went LIVE, if ever."""
        return next((at for status, at in self.statuses if status == "LIVE"), None)

    @property
    def stopped_at(self) -> datetime | None:
        """When it went OFFLINE after being LIVE, if it did."""
        started = self.started_at
        if started is None:
            return None
        return next((at for status, at in self.statuses if status == "OFFLINE" and at >= started), None)

    @property
    def updated_at(self) -> datetime:
        """Time of the last status change."""
        return self.statuses[-1][1]

    @property
    def ingest_seconds(self) -> int:
        """Seconds between going LIVE and going OFFLINE (0 when never live)."""
        start, stop = self.started_at, self.stopped_at
        if start is None:
            return 0
        return int(((stop or self.updated_at) - start).total_seconds())


@dataclass
class SandboxWebhook:
    """A webhook subscription (``components/schemas/Webhook``); times aware UTC."""

    id: str
    name: str
    url: str
    events: list[str]
    enabled: bool
    created_at: datetime
    updated_at: datetime


@dataclass
class World:
    """Everything the sandbox knows: meetings, sessions, recordings, livestreams, webhooks."""

    meetings: list[SandboxMeeting] = field(default_factory=list)
    sessions: list[SandboxSession] = field(default_factory=list)
    recordings: list[SandboxRecording] = field(default_factory=list)
    livestreams: list[SandboxLivestream] = field(default_factory=list)
    webhooks: list[SandboxWebhook] = field(default_factory=list)
    org_id: str = DEFAULT_ORG_ID
    org_name: str = "Sandbox"
    seed: int = 0

    # -- look-ups -------------------------------------------------------
    def meeting(self, meeting_id: str) -> SandboxMeeting | None:
        """The meeting with this id, or ``None``."""
        return next((m for m in self.meetings if m.id == meeting_id), None)

    def session(self, session_id: str) -> SandboxSession | None:
        """The session with this id, or ``None``."""
        return next((s for s in self.sessions if s.id == session_id), None)

    def recording(self, recording_id: str) -> SandboxRecording | None:
        """The recording with this id, or ``None``."""
        return next((r for r in self.recordings if r.id == recording_id), None)

    def livestream(self, livestream_id: str) -> SandboxLivestream | None:
        """The livestream with this id, or ``None``."""
        return next((l for l in self.livestreams if l.id == livestream_id), None)  # noqa: E741

    def webhook(self, webhook_id: str) -> SandboxWebhook | None:
        """The webhook subscription with this id, or ``None``."""
        return next((w for w in self.webhooks if w.id == webhook_id), None)

    def all_peers(self) -> list[SandboxPeer]:
        """Every peer of every session."""
        return [peer for session in self.sessions for peer in session.peers]

    # -- ground truth ---------------------------------------------------
    def expected_intervals(self, session_id: str) -> list[dict[str, Any]]:
        """Attendance ground truth of one session, one dict per peer, by join time.

        Keys: ``peer_id``, ``participant_key`` (custom participant id, else
        the peer id), ``custom_participant_id``, ``display_name``,
        ``joined_at``, ``left_at`` (aware UTC datetimes), ``duration_seconds``.

        Raises:
            KeyError: no such session.
        """
        session = self.session(session_id)
        if session is None:
            raise KeyError(session_id)
        peers = sorted(session.peers, key=lambda p: (p.joined_at, p.peer_id))
        return [
            {
                "peer_id": p.peer_id,
                "participant_key": p.participant_key,
                "custom_participant_id": p.custom_participant_id,
                "display_name": p.display_name,
                "joined_at": p.joined_at,
                "left_at": p.left_at,
                "duration_seconds": p.duration_seconds,
            }
            for p in peers
        ]

    def recordings_final(self) -> list[dict[str, Any]]:
        """Final state of every recording, ordered by invocation time.

        Keys: ``id``, ``meeting_id``, ``session_id``, ``status`` (final),
        ``invoked_at``, ``started_at``, ``stopped_at`` (aware UTC or None),
        ``file_size`` (bytes or None), ``duration`` (seconds or None),
        ``output_file_name``, ``download_url``, ``download_url_expiry``,
        ``audio_download_url``.
        """
        return [
            {
                "id": r.id,
                "meeting_id": r.meeting_id,
                "session_id": r.session_id,
                "status": r.status,
                "invoked_at": r.invoked_at,
                "started_at": r.started_at,
                "stopped_at": r.stopped_at,
                "file_size": r.file_size,
                "duration": r.duration,
                "output_file_name": r.output_file_name,
                "download_url": r.download_url,
                "download_url_expiry": r.download_url_expiry,
                "audio_download_url": r.audio_download_url,
            }
            for r in sorted(self.recordings, key=lambda r: (r.invoked_at, r.id))
        ]
