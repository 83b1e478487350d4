"""`receiver backfill` survives an unfriendly listing (issue #18, point 1).

Seven sessions served three a page (the server caps the page size). Page 3
fails: the walk is retried with back-off, then the run stops with a
one-line error, keeping the six sessions of pages 1-2; a rerun skips them
and completes. SQLite and PostgreSQL.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest
from click.testing import CliRunner
from fake_dyte import FakeDyte, fake_client
from sqlalchemy import select
from sqlalchemy.orm import Session as OrmSession
from test_reconcile_unfriendly import api_session, person

from receiver.cli.errors import ExitCode
from receiver.cli.main import cli
from receiver.db.models import Recording, Session
from receiver.processing import backfill as backfill_module
from receiver.processing.backfill import BackfillError, run_backfill
from receiver.settings import Settings

SINCE = datetime(2023, 1, 1, tzinfo=UTC)
UNTIL = datetime(2023, 3, 1, tzinfo=UTC)


def world() -> FakeDyte:
    fake = FakeDyte(page_cap=3)
    for n in range(7):
        sid = f"s-{n}"
        fake.sessions[sid] = api_session(sid, f"m-{n}")
        fake.participants[sid] = [person(f"p{n}a", 1, 30), person(f"p{n}b", 2, 40)]
    fake.recordings = [{"id": "r-6", "meeting_id": "m-6", "session_id": "s-6", "status": "UPLOADED"}]
    return fake


def backfill(fake: FakeDyte, engine, settings: Settings, sleeps: list[float] | None = None, **kwargs):
    async def fake_sleep(seconds: float) -> None:
        (sleeps if sleeps is not None else []).append(seconds)

    return asyncio.run(
        run_backfill(settings, engine, SINCE, UNTIL, client=fake_client(fake), sleep=fake_sleep, **kwargs)
    )


def reconciled(engine) -> set[str]:
    with OrmSession(engine) as db:
        return set(db.execute(select(Session.session_id).where(Session.reconciled_at.is_not(None))).scalars())


def test_a_page_that_keeps_failing_stops_the_run_keeping_what_was_done_and_a_rerun_completes(engine, settings):
    fake = world()
    fake.failures[("/sessions", 3)] = -1
    sleeps: list[float] = []
    with pytest.raises(BackfillError) as failed:
        backfill(fake, engine, settings, sleeps)
    message = str(failed.value)
    assert (
        "\n" not in message
        and "GET /sessions failed after 3 walks" in message
        and "run the same command again" in message
    )
    assert sleeps == [10.0, 30.0]  # back-off between the walks
    assert failed.value.summary.sessions == 6 and failed.value.summary.reconciled == 6
    assert reconciled(engine) == {f"s-{n}" for n in range(6)}
    page_one_calls = sum(1 for path, params in fake.calls if path == "/sessions" and params["page_no"] == "1")
    assert page_one_calls == 3  # each walk starts over; sessions already done are not fetched again
    assert sum(1 for path, _ in fake.calls if path == "/sessions/s-0/participants") == 1

    del fake.failures[("/sessions", 3)]
    fake.calls.clear()
    summary = backfill(fake, engine, settings)
    assert (summary.sessions, summary.skipped, summary.reconciled, summary.failed) == (7, 6, 1, 0)
    assert summary.pages == 3
    assert reconciled(engine) == {f"s-{n}" for n in range(7)}
    assert not any(path.startswith("/sessions/s-0") for path, _ in fake.calls)  # resumed, not redone
    with OrmSession(engine) as db:
        assert db.get(Recording, "r-6").session_id == "s-6"  # media listed during backfill


def test_a_page_failing_once_is_walked_again_and_the_run_completes(engine, settings):
    fake = world()
    fake.failures[("/sessions", 2)] = 2  # the client's 2 attempts fail, the next walk succeeds
    sleeps: list[float] = []
    summary = backfill(fake, engine, settings, sleeps)
    assert sleeps == [10.0]
    assert (summary.sessions, summary.reconciled, summary.failed, summary.pages) == (7, 7, 0, 3)
    again = backfill(fake, engine, settings, recheck=True)
    assert (again.reconciled, again.skipped, again.added, again.changed) == (7, 0, 0, 0)


def test_cli_stops_with_one_line_and_the_provider_exit_code(db_url, monkeypatch):
    fake = world()
    fake.failures[("/sessions", 2)] = -1
    monkeypatch.setattr(backfill_module, "build_client", lambda settings, transport=None: fake_client(fake))

    monkeypatch.setattr(backfill_module, "PAGE_RETRY_BASE_SECONDS", 0.0)
    env = {"DATABASE_URL": db_url, "DYTE_ORG_ID": "org", "DYTE_API_KEY": "sk-cli-SECRET"}
    result = CliRunner().invoke(cli, ["backfill", "--since", "2023-01-01", "--until", "2023-03-01"], env=env)
    assert result.exit_code == ExitCode.PROVIDER_UNREACHABLE  # the listing kept failing (HTTP 500)
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "kept 3 reconciled of 3 sessions" in errors[0]
    assert "Traceback" not in result.output and "sk-cli-SECRET" not in result.output
    del fake.failures[("/sessions", 2)]
    result = CliRunner().invoke(cli, ["backfill", "--since", "2023-01-01", "--until", "2023-03-01"], env=env)
    assert result.exit_code == 0, result.output
    assert "7 sessions on 3 pages: 4 reconciled, 3 already done" in result.output
