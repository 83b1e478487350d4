"""Webhook deliveries of a sandbox world, and a faulty Dyte-like sender.

* :func:`events_for` renders a :class:`~receiver.sandbox.world.World` into
  the chronological list of webhook deliveries Dyte would send, copying the
  shapes and quirks of the real payloads in ``shared/dyte/payloads/``
  (camelCase, recording timestamps ``2023-01-25 04:51:35.903816Z``, flat
  ``meeting.chatSynced``, ``stopReason`` as a string, an UPLOADING event
  without ``meeting.sessionId``, livestream events with only ``streamId`` and
  ``status``, ``fileSize`` sometimes a numeric string, some participants with
  only the deprecated ``clientSpecificId``).
* :func:`deliver` POSTs them, signed, to a receiver, applying a
  :class:`FaultPlan` (drops, duplicates, late re-ordering) and retrying
  non-2xx answers up to 5 times like Dyte.

Everything is deterministic: delivery uuids derive from the world's ids and
fault decisions from ``FaultPlan.seed``.
"""

from __future__ import annotations

import asyncio
import hashlib
import random
import uuid
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import httpx
from cryptography.hazmat.primitives.asymmetric import rsa

from receiver.providers.dyte.signature import compact_json, sign_body
from receiver.sandbox.formats import iso_ms, recording_ts
from receiver.sandbox.world import (
    SandboxMeeting,
    SandboxPeer,
    SandboxRecording,
    SandboxSession,
    SandboxWebhook,
    World,
)

__all__ = [
    "Delivery",
    "FaultPlan",
    "DeliveryStats",
    "DEFAULT_WEBHOOK_ID",
    "MAX_RETRIES",
    "events_for",
    "for_webhook",
    "plan_schedule",
    "deliver",
]

#: ``dyte-webhook-id`` used when the caller names no subscription.
DEFAULT_WEBHOOK_ID = "00000000-5a4d-4b0c-8000-000000000001"
#: Dyte retries a non-2xx answer or a timeout up to 5 times (6 attempts in all).
MAX_RETRIES = 5
#: Delay after the last leave before ``meeting.ended`` is sent.
ENDED_DELAY = timedelta(seconds=60)

_UUID_NAMESPACE = uuid.UUID("6f1f3a52-7d4e-4f0e-9a51-5a4d8b0c0ded")


@dataclass(frozen=True)
class Delivery:
    """One webhook delivery.

    ``uuid`` is the ``dyte-uuid`` header (the idempotency key), ``at`` the
    aware-UTC instant Dyte would send it, ``payload`` the JSON object.
    ``session_id`` is metadata for fault rules (it is not sent; it is known
    even where the payload omits it).
    """

    uuid: str
    at: datetime
    payload: dict[str, Any]
    session_id: str | None = None

    @property
    def event(self) -> str:
        """The payload's ``event`` name."""
        return str(self.payload.get("event"))

    def body(self) -> bytes:
        """The exact bytes POSTed: compact JSON (``separators=(",", ":")``), UTF-8."""
        return compact_json(self.payload)


@dataclass
class FaultPlan:
    """Faults applied by :func:`deliver`, decided by ``random.Random(seed)``.

    Probabilities are per delivery, in ``[0, 1]``:

    * ``drop``: never sent (Dyte lost it);
    * ``duplicate``: sent twice with the same ``dyte-uuid``; the copy goes
      1 to 6 positions later;
    * ``reorder``: held back and sent after all the others, after a pause
      of ``delay_seconds`` (seconds, wall clock), like a late retry.

    ``always_drop`` holds ``(event, session_id)`` pairs that are always
    dropped, e.g. ``{("meeting.ended", sid)}``; a ``None`` session id
    matches every session.
    """

    drop: float = 0.0
    duplicate: float = 0.0
    reorder: float = 0.0
    delay_seconds: float = 0.0
    seed: int = 0
    always_drop: set[tuple[str, str | None]] = field(default_factory=set)

    def always_drops(self, delivery: Delivery) -> bool:
        """Whether an ``always_drop`` rule matches this delivery."""
        return (delivery.event, delivery.session_id) in self.always_drop or (
            delivery.event,
            None,
        ) in self.always_drop


@dataclass
class DeliveryStats:
    """Outcome of :func:`deliver`.

    * ``sent``: POSTed copies (duplicates included) the receiver acknowledged with 2xx;
    * ``dropped``: deliveries never sent (random or ``always_drop``);
    * ``duplicated``: deliveries sent a second time;
    * ``reordered``: deliveries held back and sent last;
    * ``attempts``: HTTP requests made, retries included;
    * ``retried``: requests that were retries;
    * ``failed_status``: copies given up after ``1 + MAX_RETRIES`` attempts,
      by the last status code (``"timeout"`` / ``"error"`` for transport failures).
    """

    sent: int = 0
    dropped: int = 0
    duplicated: int = 0
    reordered: int = 0
    attempts: int = 0
    retried: int = 0
    failed_status: Counter = field(default_factory=Counter)

    @property
    def failed(self) -> int:
        """Copies given up after all retries."""
        return sum(self.failed_status.values())


# ---------------------------------------------------------------------------
# Rendering the world into payloads
# ---------------------------------------------------------------------------


def _delivery_uuid(world: World, key: str) -> str:
    return str(uuid.uuid5(_UUID_NAMESPACE, f"{world.org_id}|{world.seed}|{key}"))


def _variant(identifier: str, modulo: int) -> int:
    """A stable small number derived from an id (selects payload quirks)."""
    return int.from_bytes(hashlib.sha256(identifier.encode()).digest()[:4], "big") % modulo


def _organized_by(world: World) -> dict[str, str]:
    return {"id": world.org_id, "name": world.org_name}


def _meeting_obj(
    world: World,
    meeting: SandboxMeeting,
    session: SandboxSession,
    *,
    room_name: bool = False,
    ended: bool | None = False,
) -> dict[str, Any]:
    """The webhook ``meeting`` object; ``ended=None`` writes ``"endedAt": null``."""
    obj: dict[str, Any] = {"id": meeting.id, "sessionId": session.id, "title": meeting.title}
    if room_name and meeting.room_name:
        obj["roomName"] = meeting.room_name
    obj["status"] = "LIVE"  # stays LIVE even inside meeting.ended
    obj["createdAt"] = iso_ms(session.started_at)
    obj["startedAt"] = iso_ms(session.started_at)
    if ended is None:
        obj["endedAt"] = None
    elif ended:
        obj["endedAt"] = iso_ms(session.ended_at)
    obj["organizedBy"] = _organized_by(world)
    return obj


def _participant_obj(peer: SandboxPeer, *, left: bool) -> dict[str, Any]:
    obj: dict[str, Any] = {"peerId": peer.peer_id, "userDisplayName": peer.display_name}
    if peer.custom_participant_id is not None:
        obj["clientSpecificId"] = peer.custom_participant_id  # deprecated, still sent
        if _variant(peer.peer_id, 5) != 0:  # one peer in five: only the old field
            obj["customParticipantId"] = peer.custom_participant_id
    obj["joinedAt"] = iso_ms(peer.joined_at)
    if left:
        obj["leftAt"] = iso_ms(peer.left_at)
    return obj


def _stop_reason_string(reason: str) -> str:
    caller = "INTERNAL" if reason in ("ALL_PEERS_LEFT", "INTERNAL_ERROR") else "ORGANIZATION"
    return "{'reason':'%s','caller':{'type':'%s'}}" % (reason, caller)  # noqa: UP031


def _file_size(recording: SandboxRecording) -> int | str | None:
    if recording.file_size is None:
        return None
    # Real payloads carry fileSize as a number or as a numeric string.
    return str(recording.file_size) if _variant(recording.id, 3) == 0 else recording.file_size


def _recording_payload(
    world: World, meeting: SandboxMeeting, session: SandboxSession, rec: SandboxRecording, status: str
) -> dict[str, Any]:
    meeting_obj = _meeting_obj(world, meeting, session, ended=None)
    if status == "UPLOADING":
        # Shape of recording-statusUpdate-uploading.json: no meeting.sessionId.
        meeting_obj.pop("sessionId")
        return {
            "event": "recording.statusUpdate",
            "recording": {
                "id": rec.id,
                "organizationId": world.org_id,
                "roomUUID": session.id,
                "recordingId": rec.id,
                "startedTime": recording_ts(rec.started_at),
                "stoppedTime": recording_ts(rec.stopped_at),
                "fileSize": _file_size(rec),
                "status": "UPLOADING",
            },
            "meeting": meeting_obj,
        }
    if status == "UPLOADED":
        # Shape of recording-statusUpdate-uploaded.json: meeting first.
        meeting_obj = {
            "id": meeting.id,
            "title": meeting.title,
            "status": "LIVE",
            "endedAt": None,
            **({"roomName": meeting.room_name} if meeting.room_name else {}),
            "createdAt": iso_ms(session.started_at),
            "sessionId": session.id,
            "startedAt": iso_ms(session.started_at),
            "organizedBy": _organized_by(world),
        }
        return {
            "event": "recording.statusUpdate",
            "meeting": meeting_obj,
            "recording": {
                "id": rec.id,
                "status": "UPLOADED",
                "fileSize": _file_size(rec),
                "roomUUID": session.id,
                "meetingId": meeting.id,
                "downloadUrl": rec.download_url,
                "recordingId": rec.id,
                "startedTime": recording_ts(rec.started_at),
                "stoppedTime": recording_ts(rec.stopped_at),
                "organizationId": world.org_id,
                "outputFileName": rec.output_file_name,
                "audioDownloadUrl": rec.audio_download_url,
                "downloadUrlExpiry": recording_ts(rec.download_url_expiry),
                "stopReason": _stop_reason_string(rec.stop_reason),
                "recordingDuration": rec.duration,
            },
        }
    # INVOKED, RECORDING, ERRORED, PAUSED: shape of recording-statusUpdate-recording.json.
    recording_obj: dict[str, Any] = {
        "id": rec.id,
        "recordingId": rec.id,
        "meetingId": meeting.id,
        "organizationId": world.org_id,
        "status": status,
    }
    if status != "INVOKED":
        recording_obj["startedTime"] = recording_ts(rec.started_at)
    recording_obj["roomUUID"] = session.id
    recording_obj["outputFileName"] = rec.output_file_name
    if status == "ERRORED":
        recording_obj["stopReason"] = _stop_reason_string(rec.stop_reason)
    return {"event": "recording.statusUpdate", "recording": recording_obj, "meeting": meeting_obj}


def events_for(world: World) -> list[Delivery]:
    """All webhook deliveries of ``world``, ordered by ``at`` (ties keep generation order).

    Per session: ``meeting.started`` (at the session start),
    ``meeting.participantJoined`` / ``meeting.participantLeft`` per peer (left
    events carry ``joinedAt`` and ``leftAt``), ``meeting.ended`` 60 s after the
    last leave (``reason`` HOST_ENDED_MEETING or ALL_PARTICIPANTS_LEFT),
    ``recording.statusUpdate`` per recording status, ``livestreaming.statusUpdate``
    per livestream status (only ``streamId`` and ``status``), then
    ``meeting.chatSynced`` (+90 s), ``meeting.transcript`` (+120 s) and
    ``meeting.summary`` (+150 s) after the end. Download URL expiries are 7 days out.
    """
    items: list[tuple[datetime, int, Delivery]] = []

    def add(key: str, at: datetime, payload: dict[str, Any], session_id: str | None) -> None:
        items.append((at, len(items), Delivery(_delivery_uuid(world, key), at, payload, session_id)))

    for session in world.sessions:
        meeting = world.meeting(session.meeting_id)
        if meeting is None:
            raise ValueError(f"session {session.id} refers to unknown meeting {session.meeting_id}")
        sid = session.id
        add(
            f"started|{sid}",
            session.started_at,
            {"event": "meeting.started", "meeting": _meeting_obj(world, meeting, session, room_name=True)},
            sid,
        )
        for peer in session.peers:
            add(
                f"joined|{peer.peer_id}",
                peer.joined_at,
                {
                    "event": "meeting.participantJoined",
                    "meeting": _meeting_obj(world, meeting, session),
                    "participant": _participant_obj(peer, left=False),
                },
                sid,
            )
            add(
                f"left|{peer.peer_id}",
                peer.left_at,
                {
                    "event": "meeting.participantLeft",
                    "meeting": _meeting_obj(world, meeting, session),
                    "participant": _participant_obj(peer, left=True),
                },
                sid,
            )
        ended_sent = max(session.ended_at, session.last_leave + ENDED_DELAY)
        add(
            f"ended|{sid}",
            ended_sent,
            {
                "event": "meeting.ended",
                "meeting": _meeting_obj(world, meeting, session, ended=True),
                "reason": session.end_reason,
            },
            sid,
        )
        chat_at = ended_sent + timedelta(seconds=90)
        add(
            f"chat|{sid}",
            chat_at,
            {
                "event": "meeting.chatSynced",
                "sessionId": sid,
                "meetingId": meeting.id,
                "chatDownloadUrl": f"https://chat.sandbox.invalid/{world.org_id}/{sid}.csv",
                "chatDownloadUrlExpiry": recording_ts(chat_at + timedelta(days=7)),
                "organizedBy": _organized_by(world),
            },
            sid,
        )
        transcript_at = ended_sent + timedelta(seconds=120)
        add(
            f"transcript|{sid}",
            transcript_at,
            {
                "event": "meeting.transcript",
                "meeting": _meeting_obj(world, meeting, session, ended=True),
                "transcriptDownloadUrl": f"https://transcripts.sandbox.invalid/{world.org_id}/{sid}.csv",
                "transcriptDownloadUrlExpiry": recording_ts(transcript_at + timedelta(days=7)),
            },
            sid,
        )
        summary_at = ended_sent + timedelta(seconds=150)
        add(
            f"summary|{sid}",
            summary_at,
            {
                "event": "meeting.summary",
                "meeting": _meeting_obj(world, meeting, session, ended=True),
                "summaryDownloadUrl": f"https://summaries.sandbox.invalid/{world.org_id}/{sid}.txt",
                "summaryDownloadUrlExpiry": recording_ts(summary_at + timedelta(days=7)),
            },
            sid,
        )

    for rec in world.recordings:
        rec_session, rec_meeting = world.session(rec.session_id), world.meeting(rec.meeting_id)
        if rec_session is None or rec_meeting is None:
            raise ValueError(f"recording {rec.id} refers to an unknown session or meeting")
        for status, at in rec.statuses:
            add(
                f"recording|{rec.id}|{status}|{at.isoformat()}",
                at,
                _recording_payload(world, rec_meeting, rec_session, rec, status),
                rec.session_id,
            )

    for stream in world.livestreams:
        for status, at in stream.statuses:
            add(
                f"livestream|{stream.id}|{status}|{at.isoformat()}",
                at,
                {"event": "livestreaming.statusUpdate", "streamId": stream.id, "status": status},
                stream.session_id,
            )

    items.sort(key=lambda item: (item[0], item[1]))
    return [delivery for _, _, delivery in items]


def for_webhook(deliveries: Iterable[Delivery], webhook: SandboxWebhook) -> list[Delivery]:
    """The deliveries a subscription receives: none when disabled, else its events only."""
    if not webhook.enabled:
        return []
    wanted = set(webhook.events)
    return [d for d in deliveries if d.event in wanted]


# ---------------------------------------------------------------------------
# Sending
# ---------------------------------------------------------------------------


def plan_schedule(
    deliveries: Sequence[Delivery], faults: FaultPlan
) -> tuple[list[Delivery], list[Delivery], DeliveryStats]:
    """Apply ``faults`` deterministically: ``(main, held_back, stats)``.

    ``main`` is the send order (duplicates included), ``held_back`` the
    re-ordered deliveries sent afterwards. ``stats`` has ``dropped``,
    ``duplicated`` and ``reordered`` filled in. Three random draws are made per
    delivery whatever the outcome, so one rule changing does not reshuffle the rest.
    """
    rng = random.Random(faults.seed)
    stats = DeliveryStats()
    keyed: list[tuple[float, int, Delivery]] = []
    held: list[Delivery] = []
    for index, delivery in enumerate(deliveries):
        r_drop, r_dup, r_reorder = rng.random(), rng.random(), rng.random()
        offset = rng.uniform(1.0, 6.0)
        if faults.always_drops(delivery) or r_drop < faults.drop:
            stats.dropped += 1
            continue
        if r_reorder < faults.reorder:
            stats.reordered += 1
            held.append(delivery)
        else:
            keyed.append((float(index), len(keyed), delivery))
        if r_dup < faults.duplicate:
            stats.duplicated += 1
            keyed.append((index + offset, len(keyed), delivery))
    keyed.sort(key=lambda item: (item[0], item[1]))
    return [d for _, _, d in keyed], held, stats


async def _post_with_retries(
    client: httpx.AsyncClient,
    url: str,
    delivery: Delivery,
    private_key: rsa.RSAPrivateKey,
    webhook_id: str,
    stats: DeliveryStats,
    retry_delay: float,
    header_prefix: str,
) -> None:
    body = delivery.body()
    headers = {
        "content-type": "application/json",
        f"{header_prefix}-signature": sign_body(body, private_key),
        f"{header_prefix}-uuid": delivery.uuid,
        f"{header_prefix}-webhook-id": webhook_id,
    }
    last: int | str = "error"
    for attempt in range(1 + MAX_RETRIES):
        if attempt:
            stats.retried += 1
            if retry_delay > 0:
                await asyncio.sleep(retry_delay * 2 ** (attempt - 1))
        stats.attempts += 1
        try:
            response = await client.post(url, content=body, headers=headers)
        except httpx.TimeoutException:
            last = "timeout"
            continue
        except httpx.TransportError:
            last = "error"
            continue
        if 200 <= response.status_code < 300:
            stats.sent += 1
            return
        last = response.status_code
    stats.failed_status[last] += 1


async def deliver(
    deliveries: Sequence[Delivery],
    receiver_url: str,
    private_key: rsa.RSAPrivateKey,
    *,
    faults: FaultPlan | None = None,
    client: httpx.AsyncClient | None = None,
    concurrency: int = 8,
    webhook_id: str = DEFAULT_WEBHOOK_ID,
    retry_delay: float = 0.0,
    timeout: float = 3.0,
    header_prefix: str = "dyte",
) -> DeliveryStats:
    """POST ``deliveries`` to ``receiver_url`` like Dyte (or RealtimeKit), with ``faults`` applied.

    Each request: body = :meth:`Delivery.body` (compact JSON bytes), headers
    ``content-type: application/json``, ``dyte-signature`` (RSA PKCS#1 v1.5
    SHA-256 over exactly those bytes, base64), ``dyte-uuid`` (the delivery's
    uuid; a duplicate reuses it) and ``dyte-webhook-id``; with
    ``header_prefix="rtk"`` the same under RealtimeKit's names
    (``rtk-signature``, ``rtk-uuid``, ``rtk-webhook-id``). A non-2xx answer, a
    timeout or a connection error is retried up to :data:`MAX_RETRIES` times
    (pausing ``retry_delay * 2**n`` seconds, 0 by default), then counted in
    ``failed_status``. At most ``concurrency`` requests are in flight, started
    in schedule order. ``timeout`` (seconds) applies only to a client created
    here (Dyte expects an answer within 3 s).
    """
    faults = faults or FaultPlan()
    main, held, stats = plan_schedule(deliveries, faults)
    own_client = client is None
    http = client or httpx.AsyncClient(timeout=timeout)
    semaphore = asyncio.Semaphore(max(1, concurrency))

    async def one(delivery: Delivery) -> None:
        async with semaphore:
            await _post_with_retries(
                http, receiver_url, delivery, private_key, webhook_id, stats, retry_delay, header_prefix
            )

    try:
        await asyncio.gather(*(one(d) for d in main))
        if held:
            if faults.delay_seconds > 0:
                await asyncio.sleep(faults.delay_seconds)
            await asyncio.gather(*(one(d) for d in held))
    finally:
        if own_client:
            await http.aclose()
    return stats
