"""The `receiver` command line: help, reports in every format, events commands, serve."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
import time
from datetime import datetime

import httpx
import pytest
from click.testing import CliRunner
from helpers import app_client, compact, post_signed, signed_headers
from test_pipeline import SCRIPT

from receiver.cli.main import cli
from receiver.devtools.bench.servers import free_port
from receiver.settings import Settings


def run(args: list[str], db_url: str, **env: str):
    """Invoke the CLI in-process with DATABASE_URL set."""
    result = CliRunner().invoke(
        cli, args, env={"DATABASE_URL": db_url, "LOG_LEVEL": "WARNING", **env}, catch_exceptions=False
    )
    return result


@pytest.fixture
def loaded(settings, signing_key):
    """The scripted meeting of test_pipeline stored and processed."""
    with app_client(settings) as client:
        for delivery_id, event in SCRIPT:
            post_signed(client, compact(event), signing_key, delivery_id=delivery_id)
    assert run(["worker", "--once"], settings.database_url).exit_code == 0
    return settings.database_url


def test_help_lists_every_setting_and_command():
    """`receiver --help` names each environment variable and the main commands."""
    result = CliRunner().invoke(cli, ["--help"])
    assert result.exit_code == 0
    for name in Settings.model_fields:
        assert name.upper() in result.output
    for command in ("serve", "worker", "migrate", "report", "demo", "events", "backfill", "sandbox"):
        assert command in result.output


def test_attendance_report_csv_json_and_table(loaded):
    """CSV has a header and ISO 8601 UTC times; JSON has the same rows; the table prints names."""
    csv_out = run(["report", "attendance", "--session-id", "sess-1", "--format", "csv"], loaded)
    rows = list(csv.DictReader(io.StringIO(csv_out.output)))
    by_key = {r["participant_key"]: r for r in rows}
    assert by_key["alice"]["attended_seconds"] == "3000.0"
    assert by_key["alice"]["first_joined_at"] == "2026-01-01T10:00:00Z"
    assert by_key["c1"]["closed_at_session_end"] == "true"
    as_json = json.loads(run(["report", "attendance", "--session-id", "sess-1", "--format", "json"], loaded).output)
    assert {r["participant_key"] for r in as_json} == set(by_key)
    table = run(["report", "attendance", "--session-id", "sess-1"], loaded)
    assert "alice" in table.output and "0:50:00" in table.output  # attended, H:MM:SS
    wide = run(["report", "attendance", "--session-id", "sess-1", "--wide"], loaded)
    assert "3000.0" in wide.output and "2026-01-01T10:00:00Z" in wide.output


def test_attendance_xlsx_to_a_file_and_time_zones(loaded, tmp_path):
    """--format xlsx --output writes a workbook (read back: typed cells, the analysts' columns); --tz shifts times."""
    from openpyxl import load_workbook

    target = tmp_path / "attendance.xlsx"
    result = run(["report", "attendance", "--format", "xlsx", "--output", str(target), "--tz", "Asia/Kolkata"], loaded)
    assert result.exit_code == 0, result.output
    assert "4 rows written to" in result.stderr
    sheet = load_workbook(target)["Attendance"]
    header = [c.value for c in next(sheet.iter_rows())]
    assert {"meeting_title", "preset_name", "is_guest", "attended_minutes"} <= set(header)
    assert "first_joined_at (Asia/Kolkata)" in header
    alice = next(
        row for row in sheet.iter_rows(min_row=2, values_only=True) if row[header.index("participant_key")] == "alice"
    )
    assert alice[header.index("attended_seconds")] == 3000.0 and alice[header.index("attended_minutes")] == 50.0
    assert alice[header.index("first_joined_at (Asia/Kolkata)")] == datetime(2026, 1, 1, 15, 30)  # 10:00 UTC +5:30
    csv_out = run(["report", "attendance", "--format", "csv", "--tz", "Asia/Kolkata"], loaded)
    by_key = {r["participant_key"]: r for r in csv.DictReader(io.StringIO(csv_out.stdout))}
    assert by_key["alice"]["first_joined_at"] == "2026-01-01T15:30:00+05:30"


def test_xlsx_refuses_a_terminal_and_bad_zones_are_usage_errors(loaded, monkeypatch):
    """XLSX without --output on a terminal: exit 2 saying so; --tz Mars/Base: exit 2 naming the option."""
    import receiver.cli.reports as reports_cli

    class Terminal:
        def isatty(self) -> bool:
            return True

    monkeypatch.setattr(reports_cli, "sys", type("FakeSys", (), {"stdout": Terminal()}))
    refused = run(["report", "sessions", "--format", "xlsx"], loaded)
    assert refused.exit_code == 2 and "--output" in refused.output
    monkeypatch.undo()
    bad_zone = run(["report", "attendance", "--tz", "Mars/Base"], loaded)
    assert bad_zone.exit_code == 2 and "--tz" in bad_zone.output and "Mars/Base" in bad_zone.output


def test_sessions_and_recordings_reports(loaded):
    """The sessions report shows the session's duration and peak concurrency."""
    out = json.loads(run(["report", "sessions", "--format", "json"], loaded).output)
    assert out[0]["session_id"] == "sess-1" and out[0]["duration_seconds"] == 3600.0 and out[0]["peak_concurrency"] == 5
    empty = run(["report", "recordings", "--format", "json"], loaded)
    assert json.loads(empty.stdout) == [] and "no recordings stored yet" in empty.stderr


def test_report_rejects_a_bad_date_with_usage_error(loaded):
    """A malformed --since is a usage error (exit 2), not a traceback."""
    result = CliRunner().invoke(cli, ["report", "sessions", "--since", "yesterday"], env={"DATABASE_URL": loaded})
    assert result.exit_code == 2 and "not a date" in result.output


def test_events_list_show_replay(loaded):
    """Events can be listed by status, shown by dyte-uuid, and a done event replayed."""
    listed = json.loads(run(["events", "list", "--format", "json", "--status", "done"], loaded).output)
    assert len(listed) == len(SCRIPT) - 1  # one duplicate delivery
    shown = json.loads(run(["events", "show", "a1-j"], loaded).output)
    assert shown["event"]["duplicate_count"] == 1 and shown["payload"]["participant"]["peerId"] == "a1"
    replay = run(["events", "replay", "a1-j"], loaded)
    assert "1 event(s) queued" in replay.output
    missing = CliRunner().invoke(cli, ["events", "show", "nope"], env={"DATABASE_URL": loaded})
    assert missing.exit_code == 1 and "no stored event" in missing.output


def test_events_show_redacts_stream_keys(settings, signing_key):
    """A livestream event's streamKey stays in the raw store but `events show` prints it redacted."""
    body = compact(
        {"event": "livestreaming.statusUpdate", "streamId": "ls-1", "status": "LIVE", "streamKey": "sk_live_SECRET123"}
    )
    with app_client(settings) as client:
        post_signed(client, body, signing_key, delivery_id="ls")
    out = run(["events", "show", "ls"], settings.database_url).output
    assert "sk_live_SECRET123" not in out and "[redacted]" in out


def test_serve_on_sqlite_migrates_serves_and_processes(tmp_path, signing_key):
    """`receiver serve` on a fresh SQLite file: /healthz answers, a signed delivery is processed in-process."""
    from receiver.providers.dyte.signature import public_key_pem

    port = free_port()
    db = tmp_path / "served.db"
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("DYTE_", "DATABASE_URL"))},
        "DATABASE_URL": f"sqlite:///{db}",
        "DYTE_WEBHOOK_PUBLIC_KEY": public_key_pem(signing_key),
        "LOG_FORMAT": "json",
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "receiver.cli", "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 20
        while True:
            try:
                if httpx.get(f"{base}/healthz").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "server did not start"
            time.sleep(0.1)
        assert httpx.get(f"{base}/readyz").status_code == 200
        body = compact(SCRIPT[1][1])
        assert (
            httpx.post(f"{base}/webhooks/dyte", content=body, headers=signed_headers(body, signing_key)).status_code
            == 200
        )
        deadline = time.monotonic() + 10
        while True:
            out = run(["events", "list", "--format", "json"], f"sqlite:///{db}").output
            if json.loads(out) and json.loads(out)[0]["status"] == "done":
                break
            assert time.monotonic() < deadline, out
            time.sleep(0.2)
        metrics = httpx.get(f"{base}/metrics").text
        assert 'receiver_deliveries_total{event="meeting.participantJoined",outcome="stored"} 1.0' in metrics
    finally:
        proc.terminate()
        output = proc.communicate(timeout=20)[0].decode()
    assert proc.returncode in (0, -15), output  # uvicorn re-raises SIGTERM after a graceful shutdown
    assert "Application shutdown complete" in output
    json_lines = [json.loads(line) for line in output.splitlines() if line.startswith("{")]
    request_lines = [line for line in json_lines if line["event"] == "request"]
    [delivery_line] = [line for line in request_lines if line["path"] == "/webhooks/dyte"]  # one line per request
    assert delivery_line["status"] == 200 and delivery_line["event_name"] == "meeting.participantJoined"
    assert delivery_line["session_id"] == "sess-1" and delivery_line["delivery_id"]


def test_report_refresh_precomputes_ended_sessions_once(loaded):
    """`report refresh` stores the ended session's attendance; a second run has nothing left to do."""
    from sqlalchemy import text

    from receiver.db.engine import make_engine

    first = CliRunner().invoke(cli, ["report", "refresh"], env={"DATABASE_URL": loaded, "LOG_LEVEL": "WARNING"})
    assert first.exit_code == 0, first.output
    engine = make_engine(loaded)
    with engine.connect() as connection:
        stored = connection.execute(
            text("SELECT count(*) FROM session_attendance WHERE session_id = 'sess-1'")
        ).scalar_one()
    engine.dispose()
    assert stored > 0
    assert "for 1 ended session(s)" in first.output
    again = CliRunner().invoke(cli, ["report", "refresh"], env={"DATABASE_URL": loaded, "LOG_LEVEL": "WARNING"})
    assert again.exit_code == 0 and "for 0 ended session(s)" in again.output


def test_serve_with_two_workers_runs_two_processes_that_store_every_delivery(tmp_path, signing_key):
    """`receiver serve --workers 2 --no-worker`: two server processes share the port; every delivery answered
    200 is stored once; SIGTERM stops them all gracefully (exit 0)."""
    from receiver.db.engine import migrate
    from receiver.providers.dyte.signature import public_key_pem

    port = free_port()
    db_url = f"sqlite:///{tmp_path / 'workers.db'}"
    migrate(db_url)
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("DYTE_", "DATABASE_URL"))},
        "DATABASE_URL": db_url,
        "DYTE_WEBHOOK_PUBLIC_KEY": public_key_pem(signing_key),
        "LOG_FORMAT": "json",
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "receiver.cli", "serve", "--workers", "2", "--no-worker", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    body_of = [compact({**SCRIPT[1][1], "n": n}) for n in range(20)]
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 90  # each child imports the service afresh (spawn)
        while True:
            try:
                if httpx.get(f"{base}/readyz").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "server did not start"
            time.sleep(0.2)
        for n, body in enumerate(body_of):
            with httpx.Client() as client:  # a new connection each: the kernel spreads them over both processes
                answer = client.post(
                    f"{base}/webhooks/dyte",
                    content=body,
                    headers=signed_headers(body, signing_key, delivery_id=f"w{n}"),
                )
            assert answer.status_code == 200 and answer.json()["status"] == "stored", answer.text
    finally:
        proc.terminate()
        output = proc.communicate(timeout=60)[0].decode()
    assert proc.returncode == 0, output
    json_lines = [json.loads(line) for line in output.splitlines() if line.startswith("{")]
    assert sum(1 for line in json_lines if line["event"] == "receiver_started") == 2, output
    assert sum(1 for line in json_lines if line["event"] == "receiver_stopped") == 2, output
    listed = json.loads(run(["events", "list", "--format", "json", "--limit", "100"], db_url).output)
    assert sorted(row["delivery_id"] for row in listed) == sorted(f"w{n}" for n in range(20))


def test_serve_with_several_workers_refuses_the_in_process_worker(sqlite_url):
    """--workers 2 on SQLite (whose default runs the worker in-process) says to pass --no-worker (exit 3)."""
    result = CliRunner().invoke(
        cli, ["serve", "--workers", "2", "--port", str(free_port())], env={"DATABASE_URL": sqlite_url}
    )
    assert result.exit_code == 3
    assert "--no-worker" in result.output and "receiver worker" in result.output


def test_serve_with_several_workers_reports_a_configuration_error_once(sqlite_url):
    """A bad setting the app refuses (a too-short API token) stops `serve --workers 2` in the parent: one line,
    exit 3, before any server process is started."""
    result = CliRunner().invoke(
        cli,
        ["serve", "--workers", "2", "--no-worker", "--port", str(free_port())],
        env={"DATABASE_URL": sqlite_url, "API_TOKENS": "short"},
    )
    assert result.exit_code == 3, result.output
    assert "API_TOKENS" in result.output and "Traceback" not in result.output
