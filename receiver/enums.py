"""The service's closed vocabularies as string Enums.

Members are :class:`enum.StrEnum`, so they compare equal to, and are stored
as, their plain string values: a row read back from the database (a ``str``)
equals the member. Sources: the event names are the Dyte v2 webhook enum
(``shared/dyte/FACTS.md``, "Delivery"), shared by Cloudflare RealtimeKit;
recording and livestream statuses are Dyte's own (``openapi-v2.yaml``);
the rest are this service's states (``docs/schema.md``).
"""

from __future__ import annotations

from enum import StrEnum

__all__ = [
    "EventType",
    "EventStatus",
    "ParseStatus",
    "TaskStatus",
    "TaskKind",
    "RecordingStatus",
    "LivestreamStatus",
    "ErasureSubject",
]


class EventType(StrEnum):
    """The nine webhook event names (the ``event`` field of a payload)."""

    MEETING_STARTED = "meeting.started"
    MEETING_ENDED = "meeting.ended"
    PARTICIPANT_JOINED = "meeting.participantJoined"
    PARTICIPANT_LEFT = "meeting.participantLeft"
    CHAT_SYNCED = "meeting.chatSynced"
    TRANSCRIPT = "meeting.transcript"
    SUMMARY = "meeting.summary"
    RECORDING_STATUS_UPDATE = "recording.statusUpdate"
    LIVESTREAM_STATUS_UPDATE = "livestreaming.statusUpdate"


class EventStatus(StrEnum):
    """State of a stored delivery in the inbox (``webhook_events.status``).

    pending --claim--> processing --ok--> done; processing --error-->
    failed (retried at ``next_attempt_at``) --too many--> dead; an authentic
    but unknown or invalid event is stored as ignored and never processed.
    """

    PENDING = "pending"
    PROCESSING = "processing"
    DONE = "done"
    FAILED = "failed"
    DEAD = "dead"
    IGNORED = "ignored"


class ParseStatus(StrEnum):
    """Outcome of parsing a delivery on receipt (``webhook_events.parse_status``)."""

    OK = "ok"
    UNKNOWN_EVENT = "unknown_event"
    INVALID = "invalid"


class TaskStatus(StrEnum):
    """State of a reconciliation task (``reconcile_tasks.status``).

    A claimed task stays ``pending`` with a lease in ``locked_until``; it
    becomes ``done`` on success and ``dead`` after too many failures.
    """

    PENDING = "pending"
    DONE = "done"
    DEAD = "dead"


class TaskKind(StrEnum):
    """What a reconciliation task fetches from the provider's REST API."""

    SESSION = "session"
    RECORDING = "recording"
    LIVESTREAM = "livestream"
    MEETING = "meeting"


class RecordingStatus(StrEnum):
    """Dyte's recording lifecycle: INVOKED -> RECORDING <-> PAUSED -> UPLOADING -> UPLOADED | ERRORED."""

    INVOKED = "INVOKED"
    RECORDING = "RECORDING"
    PAUSED = "PAUSED"
    UPLOADING = "UPLOADING"
    UPLOADED = "UPLOADED"
    ERRORED = "ERRORED"


class LivestreamStatus(StrEnum):
    """Dyte's livestream statuses: IDLE/INVOKED -> LIVE -> OFFLINE/STOPPED | ERRORED."""

    IDLE = "IDLE"
    INVOKED = "INVOKED"
    LIVE = "LIVE"
    OFFLINE = "OFFLINE"
    STOPPED = "STOPPED"
    ERRORED = "ERRORED"


class ErasureSubject(StrEnum):
    """How an erasure request names the person (``erasures.subject_kind``; ``receiver forget``).

    ``participant``: the attendance key (custom participant id, else peer
    id); ``user_id``: Dyte's participant ``userId``; ``custom_participant_id``:
    the app's own id (``customParticipantId``, formerly ``clientSpecificId``).
    """

    PARTICIPANT = "participant"
    USER_ID = "user_id"
    CUSTOM_PARTICIPANT_ID = "custom_participant_id"
