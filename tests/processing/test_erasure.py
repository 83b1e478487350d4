"""Erasure of one person (receiver forget, POST /api/erasures): gone from every table and body, reports recomputed.

The data: two meetings through the inbox and the worker.

  S1 (meeting M1, organized by Olga): Zed (custom id zed-42, user id
     user-zed) as peer peer-zed-1 10:00-10:20 and peer-zed-2 10:30-10:50
     (its leave comes without the custom id), Alice 10:00-11:00, Bob (no
     custom id) 10:10-10:40.
  S2 (meeting M2, organized BY Zed, user id user-zed): Zed's phone as
     peer-zed-3 *without* a custom id (known by its user id) 12:00-12:30,
     Alice 12:00-13:00; a recording whose event names Zed as organizer.
  Plus, about Zed: an unknown event (stored ignored), a dead event and a
  pending one (never processed).

Erasing ``--custom-participant-id zed-42`` must find the rest of Zed
(user id, the three peers, the name), leave no byte of "Zed Erasmus" or of
any of the ids in any table or stored body, keep everyone else's numbers,
and not let old data of Zed back in.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import select, text, update
from sqlalchemy.engine import Engine

from receiver.cli.main import cli
from receiver.db.models import Base, Erasure, WebhookEvent
from receiver.enums import EventStatus
from receiver.ingest.inbox import Delivery, StoreOutcome, store_deliveries
from receiver.processing.erasure import ErasureError, ErasureRequest, forget
from receiver.processing.suppression import subject_digest
from receiver.processing.worker import Worker
from receiver.providers.dyte.events import EventParseError, parse_event
from receiver.reports.queries import ReportFilter, attendance_report, refresh_session_attendance, sessions_report
from receiver.settings import Settings

RECEIVED = datetime(2026, 11, 2, 14, 0, tzinfo=UTC)
ZED_NAME = "Zed Erasmus"
ZED_IDS = ("zed-42", "user-zed", "peer-zed-1", "peer-zed-2", "peer-zed-3")
ZED_NEEDLES = (ZED_NAME, "Zed (phone)", *ZED_IDS)
ZED_KEYS = ("zed-42", "peer-zed-2", "peer-zed-3")
OLGA = {"id": "user-olga", "name": "Olga Organizer"}
ZED_AS_ORGANIZER = {"id": "user-zed", "name": ZED_NAME}


def meeting(number: int, organizer: dict[str, str], **extra: Any) -> dict[str, Any]:
    return {
        "id": f"M{number}",
        "sessionId": f"S{number}",
        "title": f"Weekly sync {number}",
        "status": "LIVE",
        "createdAt": "2026-11-02T09:00:00.000Z",
        "startedAt": f"2026-11-02T{8 + 2 * number}:00:00.000Z",
        "organizedBy": organizer,
        **extra,
    }


def person_event(kind: str, number: int, organizer: dict, participant: dict[str, Any]) -> dict[str, Any]:
    return {"event": f"meeting.participant{kind}", "meeting": meeting(number, organizer), "participant": participant}


def zed(peer: str, joined: str, left: str | None = None, *, custom: bool = True, name: str = ZED_NAME) -> dict:
    participant: dict[str, Any] = {"peerId": peer, "userDisplayName": name, "userId": "user-zed", "joinedAt": joined}
    if custom:
        participant.update(customParticipantId="zed-42", clientSpecificId="zed-42")
    if left:
        participant["leftAt"] = left
    return participant


def other(peer: str, name: str, joined: str, left: str | None = None, custom: str | None = None) -> dict:
    participant: dict[str, Any] = {"peerId": peer, "userDisplayName": name, "joinedAt": joined}
    if custom:
        participant["customParticipantId"] = custom
    if left:
        participant["leftAt"] = left
    return participant


def t(hhmm: str) -> str:
    return f"2026-11-02T{hhmm}:00.000Z"


def dataset() -> list[tuple[str, dict[str, Any]]]:
    """(delivery id, payload) of the module docstring's meetings, in delivery order."""
    s1, s2 = (1, OLGA), (2, ZED_AS_ORGANIZER)
    leave_without_custom = zed("peer-zed-2", t("10:30"), t("10:50"), custom=False)
    del leave_without_custom["userId"]  # known only by its peer id
    return [
        ("s1-start", {"event": "meeting.started", "meeting": meeting(*s1)}),
        ("z1-j", person_event("Joined", *s1, zed("peer-zed-1", t("10:00")))),
        ("a1-j", person_event("Joined", *s1, other("peer-a1", "Alice", t("10:00"), custom="alice"))),
        ("b1-j", person_event("Joined", *s1, other("peer-b1", "Bob", t("10:10")))),
        ("z1-l", person_event("Left", *s1, zed("peer-zed-1", t("10:00"), t("10:20")))),
        ("z2-j", person_event("Joined", *s1, zed("peer-zed-2", t("10:30")))),
        ("b1-l", person_event("Left", *s1, other("peer-b1", "Bob", t("10:10"), t("10:40")))),
        ("z2-l", person_event("Left", *s1, leave_without_custom)),
        ("a1-l", person_event("Left", *s1, other("peer-a1", "Alice", t("10:00"), t("11:00"), custom="alice"))),
        ("s1-end", {"event": "meeting.ended", "meeting": meeting(*s1, endedAt=t("11:00")), "reason": "HOST_ENDED"}),
        ("s2-start", {"event": "meeting.started", "meeting": meeting(*s2)}),
        ("z3-j", person_event("Joined", *s2, zed("peer-zed-3", t("12:00"), custom=False, name="Zed (phone)"))),
        ("a2-j", person_event("Joined", *s2, other("peer-a2", "Alice", t("12:00"), custom="alice"))),
        (
            "z3-l",
            person_event("Left", *s2, zed("peer-zed-3", t("12:00"), t("12:30"), custom=False, name="Zed (phone)")),
        ),
        ("a2-l", person_event("Left", *s2, other("peer-a2", "Alice", t("12:00"), t("13:00"), custom="alice"))),
        (
            "rec-up",
            {
                "event": "recording.statusUpdate",
                "meeting": meeting(*s2),
                "recording": {"id": "rec-1", "status": "UPLOADED", "startedTime": "2026-11-02 12:01:00.000000Z"},
            },
        ),
        ("s2-end", {"event": "meeting.ended", "meeting": meeting(*s2, endedAt=t("13:00")), "reason": "HOST_ENDED"}),
        ("odd", {"event": "meeting.futureThing", "participant": zed("peer-zed-1", t("10:00"))}),
    ]


#: Stored after processing and left unprocessed: a dead and a pending event about Zed. Bodies unlike any
#: of :func:`dataset` (the inbox is unique on the body's digest: a copy would be a replay, not a row).
DEAD = ("z-dead", person_event("Joined", 1, OLGA, zed("peer-zed-3", t("10:55"))))
PENDING = ("z-pending", person_event("Left", 1, OLGA, zed("peer-zed-2", t("10:30"), t("10:50"))))


def body(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload, separators=(",", ":")).encode()


def delivery(delivery_id: str, payload: dict[str, Any], received_at: datetime = RECEIVED) -> Delivery:
    """A verified delivery as ingest stores it (parse status and indexed fields from the payload)."""
    raw = body(payload)
    try:
        event = parse_event(payload, raw_body=raw)
    except EventParseError as exc:
        return Delivery(delivery_id, "wh", payload.get("event"), raw, "raw", received_at, "unknown_event", str(exc))
    return Delivery(
        delivery_id,
        "wh",
        payload["event"],
        raw,
        "raw",
        received_at,
        "ok",
        meeting_id=event.meeting_id,
        session_id=event.session_id,
        occurred_at=event.occurred_at,
    )


def drain(settings, engine: Engine) -> None:
    asyncio.run(Worker(settings, engine).run(once=True))


def load(settings, engine: Engine) -> None:
    """Store and process the dataset; then add the dead and the pending event; precompute attendance."""
    store_deliveries(engine, [delivery(i, p) for i, p in dataset()])
    drain(settings, engine)
    store_deliveries(engine, [delivery(*DEAD)])
    with engine.begin() as connection:
        connection.execute(
            update(WebhookEvent).where(WebhookEvent.delivery_id == "z-dead").values(status=EventStatus.DEAD, attempts=8)
        )
    store_deliveries(engine, [delivery(*PENDING)])
    refresh_session_attendance(engine)


def hits(engine: Engine, needles: tuple[str, ...] = ZED_NEEDLES) -> list[str]:
    """Every (table, column, needle) where a needle occurs in any stored value: text, or bytes as stored."""
    found = []
    forms = {n: (n.encode(), json.dumps(n)[1:-1].encode()) for n in needles}
    with engine.connect() as connection:
        for table in Base.metadata.sorted_tables:
            for row in connection.execute(select(table)).mappings():
                for column, value in row.items():
                    data = bytes(value) if isinstance(value, (bytes, memoryview)) else str(value).encode()
                    found.extend(
                        f"{table.name}.{column}: {n}"
                        for n, variants in forms.items()
                        if any(v in data for v in variants)
                    )
    return found


def people(rows: list[dict[str, Any]]) -> dict[tuple[str, str], tuple]:
    return {
        (r["session_id"], r["participant_key"]): (r["attended_seconds"], r["join_count"], r["attendance_ratio"])
        for r in rows
    }


def request(value: str = "zed-42", kind: str = "custom_participant_id") -> ErasureRequest:
    return ErasureRequest.build(kind, value, "cli:test", "TICKET-7")


def test_erasure_leaves_no_trace_in_any_table_or_body_and_keeps_everyone_else(engine, settings):
    """After forget: zero hits for Zed's name and ids anywhere; others' attendance unchanged; the audit row has no personal data."""
    load(settings, engine)
    before = people(attendance_report(engine, ReportFilter()))
    # peer-zed-2's last event had no custom id, so that interval is keyed by its peer id: still Zed.
    assert {key for key in before if key[1] in ZED_KEYS} == {
        ("S1", "zed-42"),
        ("S1", "peer-zed-2"),
        ("S2", "peer-zed-3"),
    }
    assert hits(engine)  # the data is there to begin with

    result = forget(engine, request(), now=RECEIVED + timedelta(days=1))

    assert hits(engine) == []
    after = people(attendance_report(engine, ReportFilter()))
    assert after == {key: value for key, value in before.items() if key[1] not in ZED_KEYS}
    sessions = {r["session_id"]: r for r in sessions_report(engine, ReportFilter())}
    assert (sessions["S1"]["participants"], sessions["S1"]["peers"], sessions["S2"]["participants"]) == (2, 2, 1)
    assert (result.intervals_deleted, result.sessions_touched, result.meetings_scrubbed) == (3, 2, 1)
    assert result.attendance_rows_deleted == 6  # every stored row of S1 (4 keys) and S2 (2): recomputed on read
    # Dropped: Zed's 8 participant events (incl. dead and pending) and the unknown one. Rewritten: the 5 other
    # events of S2, whose meeting object names Zed as organizer (Alice's join and leave among them).
    assert (result.events_dropped, result.events_rewritten) == (9, 5)
    with engine.connect() as connection:
        audit = connection.execute(select(Erasure)).mappings().one()
        events = {
            row.delivery_id: row for row in connection.execute(select(WebhookEvent).order_by(WebhookEvent.id)).all()
        }
    assert audit["subject_kind"] == "custom_participant_id" and audit["subject_sha256"] == subject_digest("zed-42")
    assert (audit["requested_by"], audit["reference"], audit["intervals_deleted"]) == ("cli:test", "TICKET-7", 3)
    assert events["z-dead"].status == events["z-pending"].status == EventStatus.IGNORED  # never applied now
    assert events["z1-j"].raw_body == b"" and events["z1-j"].erased_at is not None
    rewritten = json.loads(events["rec-up"].raw_body)
    assert "organizedBy" not in rewritten["meeting"] and rewritten["recording"]["status"] == "UPLOADED"
    assert events["s1-start"].erased_at is None  # Olga's meeting events did not mention Zed
    assert events["z1-j"].body_sha256 == hashlib.sha256(body(dict(dataset())["z1-j"])).hexdigest()  # dedupe key kept


def test_dry_run_counts_exactly_and_changes_nothing(engine, settings):
    """--dry-run gives the counts of the real run, and every table is as before (no audit row either)."""
    load(settings, engine)
    snapshot = hits(engine)
    dry = forget(engine, request(), dry_run=True)
    assert hits(engine) == snapshot
    with engine.connect() as connection:
        assert connection.execute(select(Erasure)).all() == []
    real = forget(engine, request())
    assert dry.dry_run and dry.erasure_id is None and real.erasure_id is not None
    keys = ("intervals_deleted", "sessions_touched", "attendance_rows_deleted", "events_dropped", "events_rewritten")
    assert {k: getattr(dry, k) for k in keys} == {k: getattr(real, k) for k in keys}


def test_old_data_of_an_erased_person_stays_out_new_data_comes_in(engine, settings):
    """A retry of an erased delivery is a duplicate; a late leave of the erased session is dropped (body too); a later join is recorded."""
    load(settings, engine)
    erased_at = RECEIVED + timedelta(days=1)
    forget(engine, request(), now=erased_at)
    original = dict(dataset())
    outcomes = store_deliveries(engine, [delivery("z1-j", original["z1-j"], erased_at + timedelta(minutes=1))])
    late = person_event("Left", 1, OLGA, zed("peer-zed-9", t("10:55"), t("10:58")))  # a peer never seen before
    future = person_event("Joined", 3, OLGA, zed("peer-zed-4", (erased_at + timedelta(days=2)).isoformat()))
    store_deliveries(engine, [delivery("z-late", late, erased_at), delivery("z-new", future, erased_at)])
    drain(settings, engine)

    assert outcomes == [StoreOutcome.DUPLICATE]
    keys = people(attendance_report(engine, ReportFilter()))
    assert ("S1", "zed-42") not in keys and ("S3", "zed-42") in keys
    with engine.connect() as connection:
        late_row = connection.execute(select(WebhookEvent).where(WebhookEvent.delivery_id == "z-late")).one()
    assert late_row.raw_body == b"" and late_row.erased_at is not None and late_row.status == EventStatus.DONE


def test_erasure_by_user_id_and_by_participant_key(engine, settings):
    """--user-id finds the same person (and clears them as organizer); --participant of a peer-keyed person removes only that person."""
    load(settings, engine)
    bob = forget(engine, request("peer-b1", "participant"))
    assert bob.intervals_deleted == 1 and hits(engine, ("Bob", "peer-b1")) == []
    result = forget(engine, request("user-zed", "user_id"))
    assert result.intervals_deleted == 3 and result.meetings_scrubbed == 1 and hits(engine) == []
    keys = set(people(attendance_report(engine, ReportFilter())))
    assert keys == {("S1", "alice"), ("S2", "alice")}


def test_unknown_person_is_recorded_with_zero_counts(engine, settings):
    """Nothing stored: the request is still recorded (proof it was handled) and later old data is still kept out."""
    load(settings, engine)
    result = forget(engine, request("nobody-here"))
    assert not result.found and result.erasure_id is not None
    assert people(attendance_report(engine, ReportFilter()))  # nobody else touched


@pytest.mark.parametrize(
    ("kind", "value", "message"),
    [
        ("email", "x", "unknown erasure subject"),
        ("participant", "   ", "empty identifier"),
        ("user_id", "u" * 201, "longer than 200"),
    ],
)
def test_bad_requests_are_refused_with_a_clear_error(kind, value, message):
    with pytest.raises(ErasureError, match=message):
        ErasureRequest.build(kind, value, "cli:test")


@pytest.mark.parametrize("vacuum", [True, False], ids=["vacuum", "no-vacuum"])
def test_sqlite_files_hold_no_byte_of_the_person_after_vacuum(sqlite_url, vacuum):
    """SQLite: after forget with VACUUM the database and WAL files contain none of the needles; without it they may.

    The connections run with ``secure_delete=OFF`` (the default of most
    SQLite builds; some, like Debian's, default to ON): then freed space
    keeps old row versions from before the erasure (the worker's status
    updates moved the rows), which only VACUUM removes.
    """
    from sqlalchemy import event

    from receiver.db.engine import make_engine

    engine = make_engine(sqlite_url)
    event.listen(engine, "connect", lambda dbapi, _: dbapi.execute("PRAGMA secure_delete=OFF"))
    load(Settings(database_url=sqlite_url, reconcile_enabled=False), engine)
    result = forget(engine, request(), vacuum=vacuum)
    engine.dispose()
    path = Path(sqlite_url.removeprefix("sqlite:///"))
    wal = path.with_name(path.name + "-wal")
    data = path.read_bytes() + (wal.read_bytes() if wal.exists() else b"")
    left = [n for n in ZED_NEEDLES if n.encode() in data]
    assert result.vacuumed is vacuum and b"Alice" in data  # the files are read as they are: the check is real
    if vacuum:
        assert left == []
    else:
        assert left  # why `receiver forget` vacuums SQLite by default
    assert hits(make_engine(sqlite_url)) == []  # either way, nothing readable through SQL


def test_forget_command(db_url, settings):
    """`receiver forget`: exactly one identifier, a dry run, then the erasure with its summary; no identifier in the output."""
    engine_url = db_url
    from receiver.db.engine import make_engine

    engine = make_engine(engine_url)
    load(settings, engine)
    runner = CliRunner()
    env = {"DATABASE_URL": engine_url, "LOG_LEVEL": "WARNING"}
    both = runner.invoke(cli, ["forget", "--participant", "a", "--user-id", "b"], env=env)
    assert both.exit_code == 2 and "exactly one of" in both.output
    dry = runner.invoke(cli, ["forget", "--custom-participant-id", "zed-42", "--dry-run"], env=env)
    assert dry.exit_code == 0 and "dry run: would erase 3 interval(s) in 2 session(s)" in dry.output
    done = runner.invoke(
        cli, ["forget", "--custom-participant-id", "zed-42", "--actor", "dpo@example", "--format", "json"], env=env
    )
    assert done.exit_code == 0, done.output
    summary = json.loads(done.output)
    assert (
        summary["intervals_deleted"] == 3 and summary["requested_by"] == "dpo@example" and "zed-42" not in done.output
    )
    assert hits(engine) == []
    empty = runner.invoke(cli, ["forget", "--participant", " "], env=env)
    assert empty.exit_code == 1 and "empty identifier" in empty.output
    engine.dispose()


def test_reconciliation_does_not_bring_back_an_erased_persons_past(engine):
    """A session reconciled from the provider after the erasure (the provider still has the person) stays without them."""
    from test_reconcile import apply_all, client_for, sandbox

    from receiver.processing.reconcile import Reconciler
    from receiver.sandbox import demo_world, events_for

    world = demo_world()
    state, transport = sandbox(world)
    session = world.sessions[0]
    apply_all(engine, [d for d in events_for(world) if d.session_id == session.id])
    person = next(p for p in session.peers if p.custom_participant_id)
    forget(engine, request(person.custom_participant_id))

    async def reconcile() -> None:
        reconciler = Reconciler(engine, client_for(state, transport), worker_id="t", stale_session_seconds=0)
        await reconciler.reconcile_session(session.id)
        await reconciler.aclose()

    asyncio.run(reconcile())
    keys = {r["participant_key"] for r in attendance_report(engine, ReportFilter(session_id=session.id))}
    assert person.custom_participant_id not in keys and len(keys) >= 1
    with engine.connect() as connection:
        names = set(connection.execute(text("SELECT display_name FROM participant_intervals")).scalars())
    assert person.display_name not in names


def test_non_ascii_identifiers_and_names_are_found_in_escaped_bodies(engine, settings):
    """A body stored with \\u escapes (json.dumps' default) still matches a non-ASCII id, and no escaped byte stays."""
    person = {
        "peerId": "p-zoe",
        "userDisplayName": "Zoë Ångström",
        "customParticipantId": "zoë-7",
        "joinedAt": t("10:05"),
    }
    payload = person_event("Joined", 1, OLGA, person)
    escaped = json.dumps(payload).encode()  # ensure_ascii: "Zo\u00eb"
    assert b"\\u00eb" in escaped
    store_deliveries(engine, [delivery(i, p) for i, p in dataset()])
    store_deliveries(
        engine, [Delivery("zoe-j", "wh", payload["event"], escaped, "raw", RECEIVED, "ok", None, "M1", "S1")]
    )
    drain(settings, engine)
    assert hits(engine, ("Zoë Ångström", "zoë-7"))
    result = forget(engine, request("zoë-7"))
    assert (result.intervals_deleted, result.events_dropped) == (1, 1)
    assert hits(engine, ("Zoë Ångström", "zoë-7", "p-zoe")) == []
