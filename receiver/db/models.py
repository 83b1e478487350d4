"""Database schema (SQLAlchemy 2 typed models). Analysts: see docs/schema.md.

Tables:

* ``webhook_events`` - the inbox: every authentic delivery, the signed body
  byte-exact, keyed by ``delivery_id`` (the ``dyte-uuid`` header, Dyte's
  idempotency key) and unique on the body's digest (replays under new ids add
  nothing; migration 0005), with its processing state
  (pending/processing/done/failed/dead/ignored).
* ``meetings``, ``sessions`` - one row per Dyte meeting and per session (one
  live run of a meeting).
* ``participant_intervals`` - one row per peer (one connection) in a session:
  joined_at/left_at, keyed by (session_id, peer_id).
* ``recordings`` + ``recording_status_history``, ``livestreams`` +
  ``livestream_status_history`` - the recording and livestream indexes.
* ``livestream_sessions`` - runs of livestreams (REST): times, ingest and
  viewer seconds (migration 0007).
* ``session_artifacts`` - chat, transcript and summary download URLs.
* ``reconcile_tasks`` - what the reconciler must fetch from the REST API.
* ``session_attendance`` + ``session_attendance_refreshes`` - precomputed
  attendance of ended sessions, and which of them are current (markers that
  database triggers delete on every change; migration 0004).
* ``erasures`` - the audit log of erasure requests (``receiver forget``),
  without the person's data; ``maintenance_runs`` - when periodic jobs
  (the daily retention purge) last ran (migration 0008).
* ``ui_sessions``, ``audit_log`` - page sign-ins (server-side, revocable) and
  the audit trail of operator actions (migration 0005).
* ``outbound_deliveries`` - the outbox of signed outbound webhooks carrying a
  reconciled session's attendance (migration 0010).

All timestamps are stored and returned as timezone-aware UTC
(:class:`UTCDateTime`), on SQLite and PostgreSQL alike.

``truncated_fields`` (meetings, sessions, participant_intervals,
recordings, livestreams, livestream_sessions): the columns whose value was
longer than the column holds (or held a character the database cannot
store) and was cut to fit by the write layer, comma-separated; NULL when
nothing was cut (:func:`receiver.processing.columns.fit_row`).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import ClassVar

from sqlalchemy import (
    BigInteger,
    Boolean,
    DateTime,
    Float,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    false,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

from receiver.enums import EventStatus, ParseStatus, TaskStatus

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp stored as UTC and always returned timezone-aware (UTC).

    SQLite has no time zones and returns naive values; PostgreSQL's
    ``timestamptz`` returns the session zone. Both come back as UTC here.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect):  # type: ignore[override]
        if value is None:
            return None
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        value = value.astimezone(UTC)
        if dialect.name == "sqlite":
            return value.replace(tzinfo=None)
        return value

    def process_result_value(self, value: datetime | None, dialect):  # type: ignore[override]
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


class Base(DeclarativeBase):
    """Declarative base with the constraint naming convention set before the first migration."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    # Every model here is declared with __tablename__, so it is mapped to a
    # Table; SQLAlchemy types the attribute as the wider FromClause.
    __table__: ClassVar[Table]


# Processing states of a stored event.
# Short names for :class:`receiver.enums.EventStatus` (see there for the states).
EVENT_PENDING = EventStatus.PENDING  # stored, waiting for a worker
EVENT_PROCESSING = EventStatus.PROCESSING  # claimed by a worker (lease in locked_until)
EVENT_DONE = EventStatus.DONE  # applied to the attendance tables
EVENT_FAILED = EventStatus.FAILED  # processing raised; retried at next_attempt_at
EVENT_DEAD = EventStatus.DEAD  # failed worker_max_attempts times; `receiver events retry` requeues
EVENT_IGNORED = EventStatus.IGNORED  # authentic but unknown or invalid: kept, flagged, not processed
EVENT_STATUSES: tuple[str, ...] = tuple(status.value for status in EventStatus)

# Parse results of a stored event.
PARSE_OK = ParseStatus.OK
PARSE_UNKNOWN_EVENT = ParseStatus.UNKNOWN_EVENT
PARSE_INVALID = ParseStatus.INVALID


class WebhookEvent(Base):
    """One authentic webhook delivery (the inbox). ``delivery_id`` is the idempotency key.

    ``raw_body`` is what the signature covered: the bytes received, or their
    compact re-serialisation when only that verified (``signature_scheme``
    ``compact``). It stays byte-exact until the retention purge empties it
    (``purged_at``, RAW_RETENTION_DAYS after receipt, once processed) or an
    erasure drops or rewrites it (``erased_at``). The row itself stays, with
    ``body_sha256`` of the body as stored, so a retry of the delivery is
    still recognised as a duplicate (docs/operations.md, "Retention").
    ``unique_body_sha256`` repeats ``body_sha256`` under a unique index, so
    one body is stored once whatever ``dyte-uuid`` it comes with; it is NULL
    only on rows stored before migration 0005 whose body an earlier row
    already held.

    On PostgreSQL (migration 0014) the table is partitioned by month of
    ``received_at`` and these two unique keys are enforced by
    ``webhook_event_keys`` instead (:mod:`receiver.db.partitions`); the
    unique constraint and index declared here exist on SQLite only.
    """

    __tablename__ = "webhook_events"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True)
    delivery_id: Mapped[str] = mapped_column(String(200), unique=True)
    webhook_id: Mapped[str | None] = mapped_column(String(200))
    event_name: Mapped[str | None] = mapped_column(String(100))
    raw_body: Mapped[bytes] = mapped_column(LargeBinary)
    body_sha256: Mapped[str] = mapped_column(String(64))
    unique_body_sha256: Mapped[str | None] = mapped_column(String(64))
    signature_scheme: Mapped[str] = mapped_column(String(20))  # raw | compact: what the signature covered
    received_at: Mapped[datetime] = mapped_column(UTCDateTime())
    parse_status: Mapped[str] = mapped_column(String(20))
    parse_error: Mapped[str | None] = mapped_column(Text)
    meeting_id: Mapped[str | None] = mapped_column(String(100))
    session_id: Mapped[str | None] = mapped_column(String(100))
    occurred_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    status: Mapped[str] = mapped_column(String(20), default=EVENT_PENDING)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    locked_by: Mapped[str | None] = mapped_column(String(200))
    locked_until: Mapped[datetime | None] = mapped_column(UTCDateTime())
    processed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    duplicate_count: Mapped[int] = mapped_column(Integer, default=0)
    conflict_count: Mapped[int] = mapped_column(Integer, default=0)
    purged_at: Mapped[datetime | None] = mapped_column(UTCDateTime())  # raw body removed by retention (UTC)
    erased_at: Mapped[datetime | None] = mapped_column(UTCDateTime())  # raw body dropped/rewritten by an erasure

    __table_args__ = (
        Index("ix_webhook_events_status_next_attempt_at", "status", "next_attempt_at"),
        Index("ix_webhook_events_session_id", "session_id"),
        Index("ix_webhook_events_meeting_id", "meeting_id"),
        # What the retention purge walks: only rows whose body is still there (migration 0008).
        Index(
            "ix_webhook_events_unpurged_received_at",
            "received_at",
            "id",
            postgresql_where=text("purged_at IS NULL"),
            sqlite_where=text("purged_at IS NULL"),
        ),
        Index("ux_webhook_events_unique_body_sha256", "unique_body_sha256", unique=True),
    )


class Meeting(Base):
    """A Dyte meeting (a room that can be live many times)."""

    __tablename__ = "meetings"

    meeting_id: Mapped[str] = mapped_column(String(100), primary_key=True)
    title: Mapped[str | None] = mapped_column(Text)
    room_name: Mapped[str | None] = mapped_column(String(200))
    organized_by_id: Mapped[str | None] = mapped_column(String(100))
    organized_by_name: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    title_fetched_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
    truncated_fields: Mapped[str | None] = mapped_column(Text)


class Session(Base):
    """One live run of a meeting (Dyte ``sessionId``). Times are UTC; duration = ended_at - started_at.

    ``end_inferred``: the end was inferred because nobody was present and no
    event arrived for ``SESSION_IDLE_END_SECONDS`` (``ended_at`` is then the
    last leave); cleared when meeting.ended or the REST API confirms the end.
    ``parent_session_id``: for a breakout room's session, the main session
    it was opened from (REST ``breakout_rooms``). ``api_meeting_id``: the
    meeting id the REST API gave when it differs from the webhooks'
    ``meeting_id`` (which is kept). ``media_reconciled_at``: when the
    session's recordings and livestreams were last listed from the REST API.
    """

    __tablename__ = "sessions"

    session_id: Mapped[str] = mapped_column(String(100), primary_key=True)
    meeting_id: Mapped[str | None] = mapped_column(String(100))
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    end_reason: Mapped[str | None] = mapped_column(String(100))
    status: Mapped[str] = mapped_column(String(20), default="live")  # live | ended
    last_event_at: Mapped[datetime | None] = mapped_column(UTCDateTime())  # received_at of the newest event
    reconciled_at: Mapped[datetime | None] = mapped_column(UTCDateTime())  # when the REST API confirmed it
    reconcile_added: Mapped[int] = mapped_column(Integer, default=0)  # intervals only the API knew
    reconcile_changed: Mapped[int] = mapped_column(Integer, default=0)  # intervals whose times the API corrected
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
    end_inferred: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    parent_session_id: Mapped[str | None] = mapped_column(String(100))
    api_meeting_id: Mapped[str | None] = mapped_column(String(100))
    media_reconciled_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    truncated_fields: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (
        Index("ix_sessions_meeting_id", "meeting_id"),
        Index("ix_sessions_started_at", "started_at"),
        # The attendance listing's keyset order (GET /api/attendance cursors; migration 0012).
        Index("ix_sessions_started_at_session_id", "started_at", "session_id"),
        Index("ix_sessions_status_last_event_at", "status", "last_event_at"),
        Index("ix_sessions_parent_session_id", "parent_session_id"),
    )


class ParticipantInterval(Base):
    """One peer's presence in a session: joined_at to left_at (UTC).

    A person (participant_key: custom participant id, else peer id) can have
    several peers: rejoins and second devices. ``source`` says who told us:
    ``webhook``, ``api`` or ``both``. ``closed_at_session_end`` marks an
    interval whose leave was never seen and was closed at the session's end.
    ``invalid_fields``: REST participant fields that could not be read
    (comma-separated, e.g. ``joined_at``); a missing time was then derived
    from the other one and the participant's ``duration``.
    """

    __tablename__ = "participant_intervals"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True)
    session_id: Mapped[str] = mapped_column(String(100))
    meeting_id: Mapped[str | None] = mapped_column(String(100))
    peer_id: Mapped[str] = mapped_column(String(100))
    participant_key: Mapped[str] = mapped_column(String(200))
    custom_participant_id: Mapped[str | None] = mapped_column(String(200))
    user_id: Mapped[str | None] = mapped_column(String(100))
    display_name: Mapped[str | None] = mapped_column(Text)
    preset_name: Mapped[str | None] = mapped_column(String(200))
    joined_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    left_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    closed_at_session_end: Mapped[bool] = mapped_column(Boolean, default=False)
    source: Mapped[str] = mapped_column(String(10), default="webhook")
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
    invalid_fields: Mapped[str | None] = mapped_column(Text)
    truncated_fields: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (
        UniqueConstraint("session_id", "peer_id", name="uq_participant_intervals_session_peer"),
        Index("ix_participant_intervals_session_key", "session_id", "participant_key"),
        Index("ix_participant_intervals_participant_key", "participant_key"),
        Index("ix_participant_intervals_joined_at", "joined_at"),
    )


class Recording(Base):
    """The recording index: the newest known state of each recording (status never moves backwards)."""

    __tablename__ = "recordings"

    recording_id: Mapped[str] = mapped_column(String(100), primary_key=True)
    meeting_id: Mapped[str | None] = mapped_column(String(100))
    session_id: Mapped[str | None] = mapped_column(String(100))
    status: Mapped[str] = mapped_column(String(20))
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    stopped_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    duration_seconds: Mapped[float | None] = mapped_column(Float)
    file_size_bytes: Mapped[int | None] = mapped_column(BigInteger)
    output_file_name: Mapped[str | None] = mapped_column(Text)
    download_url: Mapped[str | None] = mapped_column(Text)
    download_url_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    audio_download_url: Mapped[str | None] = mapped_column(Text)
    stop_reason: Mapped[str | None] = mapped_column(Text)
    reconciled_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # When the REST API answered 404 for this recording (its link cannot be refreshed; not asked again).
    api_missing_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
    start_reason: Mapped[str | None] = mapped_column(Text)  # REST startReason code, e.g. API_CALL
    truncated_fields: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (Index("ix_recordings_meeting_id", "meeting_id"), Index("ix_recordings_session_id", "session_id"))


class RecordingStatusChange(Base):
    """One status a recording reported, once per (recording, status, source event)."""

    __tablename__ = "recording_status_history"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True)
    recording_id: Mapped[str] = mapped_column(String(100))
    status: Mapped[str] = mapped_column(String(20))
    observed_at: Mapped[datetime] = mapped_column(UTCDateTime())
    source: Mapped[str] = mapped_column(String(40))  # "event:<id>" or "api"

    __table_args__ = (UniqueConstraint("recording_id", "status", "source", name="uq_recording_status_history_change"),)


class Livestream(Base):
    """The livestream index: newest status of each livestream (webhook ``streamId``)."""

    __tablename__ = "livestreams"

    livestream_id: Mapped[str] = mapped_column(String(100), primary_key=True)
    meeting_id: Mapped[str | None] = mapped_column(String(100))
    session_id: Mapped[str | None] = mapped_column(String(100))
    name: Mapped[str | None] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(20))
    status_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    linked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())  # when the REST API linked it to a meeting
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
    truncated_fields: Mapped[str | None] = mapped_column(Text)


class LivestreamSession(Base):
    """One run of a livestream, from the REST API (``livestream-sessions``): times, ingest and viewer seconds.

    ``session_id`` is the meeting session it streamed, when the API said so
    (listing by session); ``ingest_seconds`` is how long input was streamed,
    ``viewer_seconds`` the total watch time of all viewers, both seconds.
    """

    __tablename__ = "livestream_sessions"

    livestream_session_id: Mapped[str] = mapped_column(String(100), primary_key=True)
    livestream_id: Mapped[str | None] = mapped_column(String(100))
    session_id: Mapped[str | None] = mapped_column(String(100))
    meeting_id: Mapped[str | None] = mapped_column(String(100))
    invoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    stopped_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    ingest_seconds: Mapped[float | None] = mapped_column(Float)
    viewer_seconds: Mapped[float | None] = mapped_column(Float)
    err_message: Mapped[str | None] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
    truncated_fields: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (
        Index("ix_livestream_sessions_livestream_id", "livestream_id"),
        Index("ix_livestream_sessions_session_id", "session_id"),
    )


class LivestreamStatusChange(Base):
    """One status a livestream reported, once per (livestream, status, source event)."""

    __tablename__ = "livestream_status_history"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True)
    livestream_id: Mapped[str] = mapped_column(String(100))
    status: Mapped[str] = mapped_column(String(20))
    observed_at: Mapped[datetime] = mapped_column(UTCDateTime())
    source: Mapped[str] = mapped_column(String(40))

    __table_args__ = (
        UniqueConstraint("livestream_id", "status", "source", name="uq_livestream_status_history_change"),
    )


class SessionArtifact(Base):
    """A downloadable artifact of a session: chat, transcript or summary (URL and its expiry, UTC)."""

    __tablename__ = "session_artifacts"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True)
    session_id: Mapped[str] = mapped_column(String(100))
    meeting_id: Mapped[str | None] = mapped_column(String(100))
    kind: Mapped[str] = mapped_column(String(20))  # chat | transcript | summary
    download_url: Mapped[str | None] = mapped_column(Text)
    download_url_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())

    __table_args__ = (UniqueConstraint("session_id", "kind", name="uq_session_artifacts_session_kind"),)


# States of a reconciliation task.
TASK_PENDING = TaskStatus.PENDING
TASK_DONE = TaskStatus.DONE
TASK_DEAD = TaskStatus.DEAD


class ReconcileTask(Base):
    """Work for the reconciler: fetch one object from the Dyte REST API and merge it.

    ``kind`` is ``session`` (after meeting.ended, or from the stale and idle
    sweeps), ``session_media`` (list a reconciled session's recordings and
    livestreams), ``recording`` (after a recording.statusUpdate),
    ``livestream`` (link a streamId to its meeting) or ``meeting`` (fetch a
    missing title). One row per (kind, object_id); new information re-arms a
    done task.
    """

    __tablename__ = "reconcile_tasks"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(20))
    object_id: Mapped[str] = mapped_column(String(100))
    status: Mapped[str] = mapped_column(String(20), default=TASK_PENDING)
    due_at: Mapped[datetime] = mapped_column(UTCDateTime())
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    locked_by: Mapped[str | None] = mapped_column(String(200))
    locked_until: Mapped[datetime | None] = mapped_column(UTCDateTime())
    done_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())

    __table_args__ = (
        UniqueConstraint("kind", "object_id", name="uq_reconcile_tasks_kind_object"),
        Index("ix_reconcile_tasks_status_due_at", "status", "due_at"),
    )


class ManagedSubscription(Base):
    """A Dyte webhook subscription ensured by this service (``receiver subscribe`` / start-up).

    ``webhook_id`` is Dyte's webhook id (the ``dyte-webhook-id`` header of its
    deliveries); with SUBSCRIPTION_ENFORCE_WEBHOOK_ID only these ids are
    accepted. ``events`` is a JSON array of event names; ``created_at`` is
    Dyte's creation time (or when first recorded), ``last_ensured_at`` the
    last time it was checked or fixed, both UTC.
    """

    __tablename__ = "managed_subscriptions"

    webhook_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    url: Mapped[str] = mapped_column(Text)
    events: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    last_ensured_at: Mapped[datetime] = mapped_column(UTCDateTime())


class SessionAttendanceRefresh(Base):
    """Marks a session whose ``session_attendance`` rows are current: they were computed after its last change.

    Written only by :func:`receiver.reports.queries.refresh_session_attendance` (and
    the report path), together with the rows, in one transaction. Deleted by
    database triggers (migration ``0004``, :mod:`receiver.db.triggers`) on every
    change of the session's ``participant_intervals`` rows and of its
    ``sessions`` row's id, ``started_at`` or ``ended_at``, so a row here
    always means "current". ``refreshed_at`` is UTC.
    """

    __tablename__ = "session_attendance_refreshes"

    session_id: Mapped[str] = mapped_column(String(100), primary_key=True)
    refreshed_at: Mapped[datetime] = mapped_column(UTCDateTime())


class SessionAttendance(Base):
    """Precomputed attendance of an **ended** session: one row per person (the ``attendance_report`` numbers).

    ``position`` is the row's place in the report order (first join, then
    key), from 0. ``display_names``: the person's distinct names in join
    order as a JSON array when there are several, NULL when there is at most
    one (then it is ``display_name``). Seconds are seconds (3 decimals), the ratio a
    fraction (4 decimals), times UTC. Only valid while the session has a
    :class:`SessionAttendanceRefresh` row.
    """

    __tablename__ = "session_attendance"

    session_id: Mapped[str] = mapped_column(String(100), primary_key=True)
    position: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    participant_key: Mapped[str] = mapped_column(String(200))
    display_name: Mapped[str | None] = mapped_column(Text)
    display_names: Mapped[str | None] = mapped_column(Text)
    first_joined_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_left_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    attended_seconds: Mapped[float] = mapped_column(Float)
    join_count: Mapped[int] = mapped_column(Integer)
    attendance_ratio: Mapped[float | None] = mapped_column(Float)
    closed_at_session_end: Mapped[bool] = mapped_column(Boolean)
    provenance: Mapped[str] = mapped_column(String(10))

    # One person's rows across sessions (GET /api/attendance?participant=; migration 0012).
    __table_args__ = (Index("ix_session_attendance_participant_key", "participant_key"),)


class Erasure(Base):
    """One erasure request carried out (``receiver forget``, ``POST /api/erasures``): an audit row.

    Holds no personal data: ``subject_sha256`` is the hex SHA-256 of the
    identifier as given (UTF-8), ``subject_kind`` says which kind it was
    (:class:`receiver.enums.ErasureSubject`). ``requested_by`` is the
    operator (CLI: ``cli:<os user>`` or ``--actor``; API: ``api:<token
    fingerprint>``), ``reference`` an optional ticket number. Counts are
    rows removed or changed; ``erased_at`` is UTC. The write layer reads
    this table so that old presence of an erased person is not written
    again (see :mod:`receiver.processing.suppression`).
    """

    __tablename__ = "erasures"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True)
    subject_kind: Mapped[str] = mapped_column(String(40))
    subject_sha256: Mapped[str] = mapped_column(String(64))
    requested_by: Mapped[str] = mapped_column(String(200))
    reference: Mapped[str | None] = mapped_column(String(200))
    erased_at: Mapped[datetime] = mapped_column(UTCDateTime())
    sessions_touched: Mapped[int] = mapped_column(Integer, default=0)
    intervals_deleted: Mapped[int] = mapped_column(Integer, default=0)
    attendance_rows_deleted: Mapped[int] = mapped_column(Integer, default=0)
    events_dropped: Mapped[int] = mapped_column(Integer, default=0)
    events_rewritten: Mapped[int] = mapped_column(Integer, default=0)
    meetings_scrubbed: Mapped[int] = mapped_column(Integer, default=0)

    __table_args__ = (Index("ix_erasures_subject_sha256", "subject_sha256"),)


class MaintenanceRun(Base):
    """When a periodic job last ran: one row per job (``purge``: the daily retention purge).

    A worker claims a run by moving ``started_at`` forward with a conditional
    UPDATE (only when the last start is a day old), so at most one worker a
    day runs it. ``finished_at`` is NULL while running (or after a crash);
    ``summary`` is the last run's counts as JSON. Times UTC.
    """

    __tablename__ = "maintenance_runs"

    job: Mapped[str] = mapped_column(String(50), primary_key=True)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    run_by: Mapped[str | None] = mapped_column(String(200))
    summary: Mapped[str | None] = mapped_column(Text)


class UiSession(Base):
    """A page sign-in (``POST /ui/login``): server-side, so signing out and revoking take effect at once.

    ``session_hash`` is the SHA-256 (hex) of the random session id; the id
    itself lives only in the signed cookie, never in the database, so a copy
    of this table signs nobody in. ``token_name``/``role`` say who signed in
    (the token itself is never stored); ``token_fingerprint`` is a keyed hash
    of that token at sign-in: when the token is changed or removed from
    API_TOKENS the session ends. Times are UTC; the session is valid while
    ``revoked_at`` is NULL and ``expires_at`` is in the future. ``client`` is
    the peer address at sign-in. Migration 0005.
    """

    __tablename__ = "ui_sessions"

    session_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    token_name: Mapped[str] = mapped_column(String(64))
    role: Mapped[str] = mapped_column(String(20))
    token_fingerprint: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime())
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    client: Mapped[str | None] = mapped_column(String(100))

    __table_args__ = (Index("ix_ui_sessions_expires_at", "expires_at"),)


class AuditEntry(Base):
    """One operator action (or sign-in/out, or a refused action), for the audit page ``/ui/audit``.

    ``actor`` is the token name (never the token), ``role`` its role then;
    ``action`` e.g. ``retry``, ``replay``, ``bulk_retry``, ``refresh_links``,
    ``revoke_session``, ``login``, ``logout``; ``target`` what it acted on
    (``event:42``, ``events:dead``, ``recordings:meeting=m-1``); ``outcome``
    ``ok``, ``denied`` (the role lacks the right) or ``failed: <reason>``;
    ``source`` ``ui`` or ``api``; ``client`` the peer address. ``at`` is UTC.
    Rows are only ever added. Migration 0005.
    """

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime())
    actor: Mapped[str] = mapped_column(String(64))
    role: Mapped[str] = mapped_column(String(20))
    action: Mapped[str] = mapped_column(String(40))
    target: Mapped[str | None] = mapped_column(String(300))
    outcome: Mapped[str] = mapped_column(String(200))
    detail: Mapped[str | None] = mapped_column(Text)
    source: Mapped[str] = mapped_column(String(10))
    client: Mapped[str | None] = mapped_column(String(100))

    __table_args__ = (Index("ix_audit_log_at", "at"),)


# States of an outbound delivery (``outbound_deliveries.status``).
OUTBOUND_PENDING = "pending"  # waiting for its first attempt
OUTBOUND_DELIVERED = "delivered"  # the receiver answered 2xx
OUTBOUND_FAILED = "failed"  # an attempt failed; retried at next_attempt_at
OUTBOUND_DEAD = "dead"  # failed OUTBOUND_WEBHOOK_MAX_ATTEMPTS times; not retried
OUTBOUND_STATUSES = (OUTBOUND_PENDING, OUTBOUND_DELIVERED, OUTBOUND_FAILED, OUTBOUND_DEAD)


class OutboundDelivery(Base):
    """One signed outbound webhook (Standard Webhooks) carrying a reconciled session's attendance: the outbox.

    Written in the transaction that marks the session reconciled
    (:mod:`receiver.processing.outbound`); sent by the worker to
    ``OUTBOUND_WEBHOOK_URL``. ``webhook_id`` is the ``webhook-id`` header
    (``msg_...``), the same on every attempt: the receiver's idempotency
    key. ``payload`` is the JSON body, frozen when enqueued (every attempt
    sends the same bytes); ``payload_sha256`` is the digest of the
    attendance it carries (a re-reconciliation with the same attendance
    enqueues nothing). ``status``: pending, delivered, failed (retried at
    ``next_attempt_at``), dead. ``last_status_code`` is the receiver's last
    HTTP status (NULL when no answer: timeout, refused connection),
    ``last_error`` one line. Times are UTC. Migration 0010.
    """

    __tablename__ = "outbound_deliveries"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True)
    webhook_id: Mapped[str] = mapped_column(String(64), unique=True)
    event_type: Mapped[str] = mapped_column(String(60))
    session_id: Mapped[str] = mapped_column(String(100))
    payload: Mapped[str] = mapped_column(Text)
    payload_sha256: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(20), default=OUTBOUND_PENDING)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime())
    locked_by: Mapped[str | None] = mapped_column(String(200))
    locked_until: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_error: Mapped[str | None] = mapped_column(Text)
    last_status_code: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    __table_args__ = (
        Index("ix_outbound_deliveries_status_next_attempt_at", "status", "next_attempt_at"),
        Index("ix_outbound_deliveries_session_id", "session_id"),
    )
