"""Erasure of one person (GDPR Art. 17): ``receiver forget`` and ``POST /api/erasures``.

The person is named by one identifier (:class:`receiver.enums.ErasureSubject`):
the attendance key (``participant``), Dyte's ``user_id`` or the app's
``custom_participant_id``. :func:`forget` then, in **one** write transaction:

1. finds the person's intervals and so their *identity*: every participant
   key, custom participant id, user id, peer id and display name those
   rows hold;
2. searches every stored raw body for those identifiers (as raw bytes and
   as JSON-escaped text) and widens the identity with what matching
   participant objects carry (a participantLeft without a custom id is
   still the person's by its peer id), until nothing new turns up;
3. handles each such body: a body with a participant object of the person
   (participantJoined/Left: about one person) is **dropped** (empty
   ``raw_body``); any other body (a meeting event naming the person as
   ``organizedBy``) is **rewritten** as compact JSON without the objects and
   fields that carry the person's identifiers, or dropped if any of them or
   their names would remain. ``erased_at`` is set on the row. A dropped
   event that was not handled yet becomes ``ignored`` so no worker applies
   it. The row stays, with the original ``body_sha256``: a provider retry of
   the same delivery is still a duplicate, not new data;
4. deletes the person's ``participant_intervals`` rows;
5. deletes the ``session_attendance`` rows (and refresh markers) of every
   session they were in, and any other stored row under their keys: those
   sessions' reports are recomputed from the remaining intervals on next
   read;
6. deletes the outbound webhook deliveries (``outbound_deliveries``,
   bodies frozen with the attendance) of those sessions and any whose body
   names one of the person's keys;
7. clears ``meetings.organized_by_id`` / ``organized_by_name`` where the
   organizer is the person (by user id);
8. records an ``erasures`` row: SHA-256 of the identifier as given, its
   kind, who asked (``requested_by``), an optional ticket ``reference``,
   when, and the counts. No personal data.

With ``dry_run`` the same transaction runs and is rolled back: the counts
are exact, nothing changes and nothing is recorded.

Afterwards the person can come back only with **new** data: the write
layer drops participant data whose identifiers match an erasure and whose
presence began before it (:mod:`receiver.processing.suppression`), whether
from a late webhook or from a reconciliation/backfill against a provider
that still holds them. A join after the erasure is new and recorded.

No bytes left behind: on SQLite the transaction runs with ``PRAGMA
secure_delete=ON`` (freed space is zeroed), and ``vacuum`` (default on
SQLite) rebuilds the file and truncates the WAL. On PostgreSQL deleted and
updated rows stay in the table files as dead tuples until ``VACUUM``
(``VACUUM FULL`` rewrites the tables; ``vacuum=True``), and in WAL and
backups until those expire: docs/operations.md, "Erasure".

Limits: free text typed by others (meeting titles) is not searched; chat,
transcript and recording files live at the provider (only their links are
stored) and must be erased there.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

import structlog
from sqlalchemy import LargeBinary, and_, delete, func, insert, literal, or_, select, update
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.sql.elements import ColumnElement

from receiver import metrics
from receiver.db.engine import writer
from receiver.db.models import (
    Erasure,
    Meeting,
    OutboundDelivery,
    ParticipantInterval,
    SessionAttendance,
    SessionAttendanceRefresh,
    WebhookEvent,
)
from receiver.enums import ErasureSubject, EventStatus
from receiver.errors import ReceiverError
from receiver.processing.erasure_match import Identity, decode_body, mentions, needle_forms, participants, scrub_payload
from receiver.processing.suppression import subject_digest

__all__ = [
    "MAX_IDENTIFIER_LENGTH",
    "MAX_NOTE_LENGTH",
    "ERASED_TABLES",
    "ErasureError",
    "ErasureRequest",
    "ErasureResult",
    "forget",
    "compact",
]

log = structlog.get_logger("receiver.processing.erasure")

#: Longest identifier accepted (the widest identifier column, ``participant_key``, is 200).
MAX_IDENTIFIER_LENGTH = 200
#: Longest ``requested_by`` / ``reference`` stored.
MAX_NOTE_LENGTH = 200
# Bodies read per query when rewriting, and values per IN list.
_CHUNK = 500

_EVENTS = WebhookEvent.__table__
_INTERVALS = ParticipantInterval.__table__
_ATTENDANCE = SessionAttendance.__table__
_REFRESHES = SessionAttendanceRefresh.__table__
_MEETINGS = Meeting.__table__
_OUTBOUND = OutboundDelivery.__table__
_ERASURES = Erasure.__table__


class ErasureError(ReceiverError):
    """An erasure request that cannot be carried out as given (empty or overlong identifier, bad kind)."""


@dataclass(frozen=True)
class ErasureRequest:
    """Who to erase and who asks.

    ``kind``: how ``value`` names the person; ``value``: the identifier
    (1..200 characters, surrounding blanks removed); ``requested_by``: the
    operator, stored in the audit row; ``reference``: optional ticket id
    (never the person's data).
    """

    kind: ErasureSubject
    value: str
    requested_by: str
    reference: str | None = None

    @classmethod
    def build(cls, kind: str, value: str, requested_by: str, reference: str | None = None) -> ErasureRequest:
        """Validate and normalise a request.

        Raises:
            ErasureError: unknown kind, empty or overlong identifier, empty
                ``requested_by``, or a note longer than 200 characters.
        """
        try:
            subject = ErasureSubject(kind)
        except ValueError:
            known = ", ".join(s.value for s in ErasureSubject)
            raise ErasureError(f"unknown erasure subject {kind!r}; use one of {known}") from None
        if not isinstance(value, str) or not value.strip():
            raise ErasureError(f"{subject.value}: empty identifier")
        value = value.strip()
        if len(value) > MAX_IDENTIFIER_LENGTH:
            raise ErasureError(f"{subject.value}: longer than {MAX_IDENTIFIER_LENGTH} characters")
        if "\x00" in value:
            raise ErasureError(f"{subject.value}: contains a NUL character")
        requested_by = (requested_by or "").strip()
        if not requested_by:
            raise ErasureError("requested_by: who asks for the erasure must be recorded")
        reference = (reference or "").strip() or None
        for name, note in (("requested_by", requested_by), ("reference", reference)):
            if note is not None and len(note) > MAX_NOTE_LENGTH:
                raise ErasureError(f"{name}: longer than {MAX_NOTE_LENGTH} characters")
        return cls(subject, value, requested_by, reference)


@dataclass
class ErasureResult:
    """What an erasure did (or, with ``dry_run``, would do). No personal data.

    ``erasure_id``: the ``erasures`` row (None for a dry run);
    ``subject_sha256``: hex SHA-256 of the identifier; counts are rows;
    ``erased_at`` is UTC; ``vacuumed``: the database files were compacted
    afterwards (SQLite ``VACUUM``, PostgreSQL ``VACUUM FULL``);
    ``seconds``: wall time.
    """

    erasure_id: int | None
    subject_kind: str
    subject_sha256: str
    dry_run: bool
    erased_at: datetime
    requested_by: str
    reference: str | None = None
    sessions_touched: int = 0
    intervals_deleted: int = 0
    attendance_rows_deleted: int = 0
    events_dropped: int = 0
    events_rewritten: int = 0
    meetings_scrubbed: int = 0
    vacuumed: bool = False
    seconds: float = 0.0

    @property
    def found(self) -> bool:
        """True when anything of the person was stored."""
        return any(
            (self.intervals_deleted, self.attendance_rows_deleted, self.events_dropped, self.events_rewritten)
        ) or bool(self.meetings_scrubbed)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form (ISO 8601 time), as the API answers and ``receiver forget --format json`` prints."""
        data = asdict(self)
        data["erased_at"] = self.erased_at.isoformat().replace("+00:00", "Z")
        data["seconds"] = round(self.seconds, 3)
        data["found"] = self.found
        return data


def _contains(connection: Connection, needle: bytes) -> ColumnElement[bool]:
    """SQL: the raw body contains ``needle`` (bytes)."""
    bound = literal(needle, LargeBinary)
    if connection.dialect.name == "postgresql":
        return func.position(bound.op("IN")(_EVENTS.c.raw_body)) > 0
    return func.instr(_EVENTS.c.raw_body, bound) > 0


def _chunks(values: Iterable[Any], size: int = _CHUNK) -> Iterator[list[Any]]:
    items = sorted(values)
    for start in range(0, len(items), size):
        yield items[start : start + size]


class _Eraser:
    """One erasure inside ``connection``'s transaction (see the module docstring for the steps)."""

    def __init__(self, connection: Connection, request: ErasureRequest, now: datetime, result: ErasureResult) -> None:
        self.connection = connection
        self.request = request
        self.now = now
        self.result = result
        self.identity = Identity.seed(request.kind, request.value)
        #: Sessions the person was in (from intervals and matching bodies).
        self.sessions: set[str] = set()

    def run(self) -> None:
        candidates = self._discover()
        self._erase_bodies(candidates)
        sessions = self._delete_intervals()
        self._delete_attendance(sessions)
        self._delete_outbound(sessions)
        self._scrub_meetings()

    def _discover(self) -> set[int]:
        """Grow the identity from intervals and bodies until nothing new turns up; returns the body candidates.

        Three searches per round, each for what is new since the last:
        bodies anywhere that contain a *global* identifier (custom id, user
        id, a key that is not a peer id: SQL substring test, a sequential
        scan of the inbox); bodies without a session that contain a peer id;
        and the participant events of the person's sessions, parsed and
        matched (a peer id belongs to one session, so its events are found
        through ``ix_webhook_events_session_id``, not by scanning).
        """
        identity = self.identity
        searched: set[str] = set()
        scanned_sessions: set[str] = set()
        candidates: set[int] = set()
        while True:
            size = len(identity.identifiers()) + len(self.sessions)
            self._find_intervals()
            pending = identity.identifiers() - searched
            searched |= pending
            global_ids = pending - identity.peer_ids
            if global_ids:
                self._scan(candidates, self._contains_any(global_ids), everything=True)
            peers = pending & identity.peer_ids
            if peers:
                self._scan(candidates, and_(_EVENTS.c.session_id.is_(None), self._contains_any(peers)), everything=True)
            sessions = self.sessions - scanned_sessions
            scanned_sessions |= sessions
            for chunk in _chunks(sessions):
                self._scan(candidates, _EVENTS.c.session_id.in_(chunk), everything=False)
            if len(identity.identifiers()) + len(self.sessions) == size and not identity.identifiers() - searched:
                return candidates

    def _interval_match(self) -> ColumnElement[bool]:
        identity = self.identity
        conditions: list[ColumnElement[bool]] = []
        for column, values in (
            (_INTERVALS.c.participant_key, identity.keys),
            (_INTERVALS.c.custom_participant_id, identity.custom_ids),
            (_INTERVALS.c.user_id, identity.user_ids),
            (_INTERVALS.c.peer_id, identity.peer_ids),
        ):
            conditions.extend(column.in_(chunk) for chunk in _chunks(values))
        return or_(*conditions)

    def _find_intervals(self) -> None:
        names = ("session_id", "participant_key", "peer_id", "custom_participant_id", "user_id", "display_name")
        statement = select(*(_INTERVALS.c[name] for name in names)).where(self._interval_match())
        for row in self.connection.execute(statement).mappings():
            self.identity.absorb_interval(row)
            self.sessions.add(row["session_id"])

    def _contains_any(self, values: set[str]) -> ColumnElement[bool]:
        needles = sorted({form for value in values for form in needle_forms(value)})
        return or_(*(_contains(self.connection, needle) for needle in needles))

    def _scan(self, candidates: set[int], condition: ColumnElement[bool], *, everything: bool) -> None:
        """Read the non-empty bodies matching ``condition``; widen the identity from their participant objects.

        ``everything``: every row read is a candidate (it contains an
        identifier); else only rows with a participant object of the person.
        """
        statement = select(_EVENTS.c.id, _EVENTS.c.raw_body, _EVENTS.c.session_id).where(
            func.length(_EVENTS.c.raw_body) > 0, condition
        )
        for event_id, raw, session_id in self.connection.execute(statement):
            if event_id in candidates:
                continue
            matched = False
            for participant in participants(decode_body(bytes(raw))):
                if self.identity.matches(participant):
                    self.identity.absorb_participant(participant)
                    matched = True
            if matched or everything:
                candidates.add(event_id)
            if matched and session_id:
                self.sessions.add(session_id)

    def _erase_bodies(self, candidates: set[int]) -> None:
        """Drop or rewrite every candidate body (the identity is final now)."""
        handled = (EventStatus.DONE.value, EventStatus.IGNORED.value)
        for chunk in _chunks(candidates):
            rows = self.connection.execute(
                select(_EVENTS.c.id, _EVENTS.c.raw_body, _EVENTS.c.status)
                .where(_EVENTS.c.id.in_(chunk))
                .with_for_update()
            ).all()
            for event_id, raw, status in rows:
                raw = bytes(raw)
                payload = decode_body(raw)
                new: bytes = b""
                if payload is not None and not any(self.identity.matches(p) for p in participants(payload)):
                    new = json.dumps(
                        scrub_payload(payload, self.identity), ensure_ascii=False, separators=(",", ":")
                    ).encode("utf-8", "surrogatepass")
                    if mentions(new, self.identity):
                        new = b""
                values: dict[str, Any] = {"raw_body": new, "erased_at": self.now}
                if new:
                    self.result.events_rewritten += 1
                else:
                    self.result.events_dropped += 1
                    if status not in handled:  # no worker may apply it any more
                        values.update(
                            status=EventStatus.IGNORED.value,
                            last_error="raw body erased (receiver forget): nothing to apply",
                            locked_by=None,
                            locked_until=None,
                            next_attempt_at=None,
                        )
                self.connection.execute(update(_EVENTS).where(_EVENTS.c.id == event_id).values(**values))

    def _delete_intervals(self) -> set[str]:
        """Delete the person's intervals; returns the sessions they were in."""
        deleted = list(
            self.connection.execute(
                delete(_INTERVALS).where(self._interval_match()).returning(_INTERVALS.c.session_id)
            ).scalars()
        )
        sessions = set(deleted)
        self.result.intervals_deleted = len(deleted)
        self.result.sessions_touched = len(sessions)
        return sessions

    def _delete_attendance(self, sessions: set[str]) -> None:
        identity = self.identity
        keys = identity.keys | identity.custom_ids | identity.peer_ids
        deleted = 0
        for chunk in _chunks(sessions):
            deleted += len(
                self.connection.execute(
                    delete(_ATTENDANCE).where(_ATTENDANCE.c.session_id.in_(chunk)).returning(_ATTENDANCE.c.session_id)
                ).all()
            )
            self.connection.execute(delete(_REFRESHES).where(_REFRESHES.c.session_id.in_(chunk)))
        for chunk in _chunks(keys):  # leftovers of sessions not touched now (stale rows under an old key)
            gone = self.connection.execute(
                delete(_ATTENDANCE).where(_ATTENDANCE.c.participant_key.in_(chunk)).returning(_ATTENDANCE.c.session_id)
            ).scalars()
            for session_id in gone:
                deleted += 1
                self.connection.execute(delete(_REFRESHES).where(_REFRESHES.c.session_id == session_id))
        self.result.attendance_rows_deleted = deleted

    def _delete_outbound(self, sessions: set[str]) -> None:
        """Delete the outbound webhook deliveries (frozen bodies) of the person's sessions, and any naming their keys.

        A pending one is not sent; the next reconciliation of such a session
        enqueues a body without the person (:mod:`receiver.processing.outbound`).
        """
        for chunk in _chunks(sessions):
            self.connection.execute(delete(_OUTBOUND).where(_OUTBOUND.c.session_id.in_(chunk)))
        identity = self.identity
        for key in sorted(identity.keys | identity.custom_ids | identity.peer_ids):
            quoted = json.dumps(key, ensure_ascii=False)  # as the body holds it: a JSON string
            self.connection.execute(delete(_OUTBOUND).where(_OUTBOUND.c.payload.contains(quoted, autoescape=True)))

    def _scrub_meetings(self) -> None:
        organizers = self.identity.user_ids
        scrubbed = 0
        for chunk in _chunks(organizers):
            scrubbed += len(
                self.connection.execute(
                    update(_MEETINGS)
                    .where(_MEETINGS.c.organized_by_id.in_(chunk))
                    .values(organized_by_id=None, organized_by_name=None, updated_at=self.now)
                    .returning(_MEETINGS.c.meeting_id)
                ).all()
            )
        self.result.meetings_scrubbed = scrubbed


def forget(
    engine: Engine,
    request: ErasureRequest,
    *,
    dry_run: bool = False,
    vacuum: bool | None = None,
    now: datetime | None = None,
    origin: str = "cli",
) -> ErasureResult:
    """Erase one person from the database (module docstring: what, in which order, and what stays).

    Args:
        engine: the database.
        request: who (validated by :meth:`ErasureRequest.build`).
        dry_run: count only; the transaction is rolled back and no
            ``erasures`` row is written.
        vacuum: compact the files afterwards so no freed bytes remain.
            Default: on for SQLite (``VACUUM`` + WAL truncate), off for
            PostgreSQL (``VACUUM FULL`` takes an exclusive lock on the
            tables, blocking ingest while it runs).
        now: erasure time (UTC), for tests.
        origin: metric label (``cli`` or ``api``).

    Returns:
        The counts (:class:`ErasureResult`).

    Raises:
        sqlalchemy errors on database failure (nothing is then erased).
    """
    started = time.perf_counter()
    now = (now or datetime.now(UTC)).astimezone(UTC)
    sqlite_db = engine.dialect.name == "sqlite"
    result = ErasureResult(
        erasure_id=None,
        subject_kind=request.kind.value,
        subject_sha256=subject_digest(request.value),
        dry_run=dry_run,
        erased_at=now,
        requested_by=request.requested_by,
        reference=request.reference,
    )
    with writer(engine).connect() as connection:
        raw = connection.connection.driver_connection if sqlite_db else None
        previous = raw.execute("PRAGMA secure_delete").fetchone()[0] if raw is not None else None
        if raw is not None:
            raw.execute("PRAGMA secure_delete=ON")  # freed pages and cells are zeroed
        try:
            with connection.begin() as transaction:
                _Eraser(connection, request, now, result).run()
                if dry_run:
                    transaction.rollback()
                else:
                    result.erasure_id = connection.execute(
                        insert(_ERASURES)
                        .values(
                            subject_kind=result.subject_kind,
                            subject_sha256=result.subject_sha256,
                            requested_by=request.requested_by,
                            reference=request.reference,
                            erased_at=now,
                            sessions_touched=result.sessions_touched,
                            intervals_deleted=result.intervals_deleted,
                            attendance_rows_deleted=result.attendance_rows_deleted,
                            events_dropped=result.events_dropped,
                            events_rewritten=result.events_rewritten,
                            meetings_scrubbed=result.meetings_scrubbed,
                        )
                        .returning(_ERASURES.c.id)
                    ).scalar_one()
        finally:
            if raw is not None:
                raw.execute(f"PRAGMA secure_delete={int(previous or 0)}")
    if not dry_run and (vacuum if vacuum is not None else sqlite_db):
        compact(engine)
        result.vacuumed = True
    result.seconds = time.perf_counter() - started
    if not dry_run:
        metrics.ERASURES.labels(origin=origin).inc()
    log.info(
        "erasure_dry_run" if dry_run else "erasure_done",
        erasure_id=result.erasure_id,
        subject_kind=result.subject_kind,
        subject_sha256=result.subject_sha256[:16],
        requested_by=request.requested_by,
        sessions_touched=result.sessions_touched,
        intervals_deleted=result.intervals_deleted,
        attendance_rows_deleted=result.attendance_rows_deleted,
        events_dropped=result.events_dropped,
        events_rewritten=result.events_rewritten,
        meetings_scrubbed=result.meetings_scrubbed,
        vacuumed=result.vacuumed,
    )
    return result


#: Tables an erasure changes (compacted by :func:`compact` on PostgreSQL).
ERASED_TABLES = (
    "participant_intervals",
    "session_attendance",
    "session_attendance_refreshes",
    "webhook_events",
    "meetings",
)


def compact(engine: Engine) -> None:
    """Rewrite the database files so no freed bytes of erased rows remain.

    SQLite: ``VACUUM`` (rebuilds the file; needs free disk space about the
    size of the database and waits for other writers) then
    ``PRAGMA wal_checkpoint(TRUNCATE)`` (empties the WAL file).
    PostgreSQL: ``VACUUM FULL`` of :data:`ERASED_TABLES` (rewrites them,
    ACCESS EXCLUSIVE lock while it runs; WAL and backups keep old data until
    they expire: docs/operations.md).
    """
    if engine.dialect.name == "sqlite":
        pooled = engine.raw_connection()
        try:
            driver: Any = pooled.driver_connection  # sqlite3.Connection, autocommit (see make_engine)
            driver.execute("VACUUM")
            driver.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        finally:
            pooled.close()
        return
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.exec_driver_sql(f"VACUUM FULL {', '.join(ERASED_TABLES)}")
