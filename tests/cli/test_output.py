"""What the CLI prints for people: tables that fit, progress only where it helps, a demo whose hints work."""

from __future__ import annotations

import io
import json
import os
import re
import shlex
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from click.testing import CliRunner
from helpers import app_client, compact, post_signed
from rich.console import Console
from test_pipeline import SCRIPT

from receiver.cli.context import invocation
from receiver.cli.main import cli
from receiver.cli.progress import Progress
from receiver.reports.formatting import render, short_ids, to_table
from receiver.reports.queries import ATTENDANCE_COLUMNS


@pytest.fixture
def loaded_db(settings, signing_key) -> str:
    """The URL of a database holding test_pipeline's scripted meeting, stored and processed (sqlite and postgresql)."""
    with app_client(settings) as client:
        for delivery_id, event in SCRIPT:
            post_signed(client, compact(event), signing_key, delivery_id=delivery_id)
    result = CliRunner().invoke(
        cli, ["worker", "--once"], env={"DATABASE_URL": settings.database_url, "LOG_LEVEL": "WARNING"}
    )
    assert result.exit_code == 0, result.output
    return settings.database_url


SESSION_A = "d0000000-0000-4000-8000-000000000011"
SESSION_B = "d0000000-0000-4000-8000-000000000012"
PEER = "7c1e0b9a-44d2-4f6c-8e1d-9b8a7f6e5d4c"


def attendance_rows() -> list[dict]:
    """Attendance rows shaped like the report's, with long ids and names."""
    start = datetime(2026, 11, 1, 9, 0, tzinfo=UTC)
    rows = []
    for session in (SESSION_A, SESSION_B):
        for index, key in enumerate(("alice", PEER, "carol-with-a-rather-long-custom-participant-id")):
            rows.append(
                {
                    "session_id": session,
                    "meeting_id": "d0000000-0000-4000-8000-000000000001",
                    "participant_key": key,
                    "display_name": "Bartholomew Featherstonehaugh-Smythe" if index == 2 else "Alice Host",
                    "first_joined_at": start + timedelta(minutes=index),
                    "last_left_at": start + timedelta(minutes=45),
                    "attended_seconds": 2699.5 - index * 600,
                    "join_count": index + 1,
                    "attendance_ratio": 0.9998 - index * 0.2,
                    "closed_at_session_end": index == 1,
                    "provenance": "both",
                    "session_reconciled": True,
                }
            )
    return rows


def printed(table, width: int) -> list[str]:
    """The lines a terminal of ``width`` columns shows for ``table``."""
    console = Console(file=io.StringIO(), width=width, force_terminal=False, color_system=None)
    console.print(table)
    return console.file.getvalue().splitlines()


def test_tables_fit_100_columns_one_line_per_row_with_short_ids():
    """The attendance table in 100 columns: every line fits, each row is one line, ids are short and distinct."""
    rows = attendance_rows()
    console = Console(file=io.StringIO(), width=100, color_system=None)
    render(rows, ATTENDANCE_COLUMNS, "table", title="Attendance", console=console)  # as `report attendance`
    lines = console.file.getvalue().splitlines()
    assert max(len(line) for line in lines) <= 100
    body = [line for line in lines if "Alice Host" in line or "Bartholomew" in line]
    assert len(body) == len(rows)  # nothing wrapped onto a second line
    assert any("d0000000…0011" in line for line in body)
    assert any("d0000000…0012" in line for line in body)
    assert any("7c1e0b9a…" in line for line in body) and PEER not in "\n".join(lines)
    assert any("0:44:59" in line or "0:45:00" in line for line in body)  # 2699.5 s as H:MM:SS
    assert any("99.9%" in line for line in body)  # 0.9998 floored, never "100%"
    assert "--wide shows all" in lines[-1]


def test_wide_tables_show_full_ids_every_column_and_iso_times():
    """`wide`: full ids, hidden columns back, ISO 8601 UTC, raw seconds."""
    text = "\n".join(printed(to_table(attendance_rows(), ATTENDANCE_COLUMNS, "Attendance", wide=True), 400))
    assert SESSION_A in text and PEER in text
    for column in ("meeting_id", "provenance", "session_reconciled", "closed_at_session_end"):
        assert column in text
    assert "2026-11-01T09:00:00Z" in text and "2699.5" in text


def test_short_ids_never_stand_for_two_ids():
    """Ids sharing their first 8 characters get a tail that tells them apart; short ids stay whole."""
    shown = short_ids([SESSION_A, SESSION_B, PEER, "alice", None])
    assert shown[SESSION_A] == "d0000000…0011" and shown[SESSION_B] == "d0000000…0012"
    assert shown[PEER] == "7c1e0b9a…" and "alice" not in shown
    assert len(set(shown.values())) == len(shown)


def test_report_table_in_a_pipe_fits_and_wide_flag_reaches_it(loaded_db):
    """`report attendance` piped: every line within 120 columns; --wide prints the full session id."""
    env = {"DATABASE_URL": loaded_db, "LOG_LEVEL": "WARNING"}
    narrow = CliRunner().invoke(cli, ["report", "attendance"], env=env, catch_exceptions=False)
    assert narrow.exit_code == 0 and max(len(line) for line in narrow.stdout.splitlines()) <= 120
    wide = CliRunner().invoke(cli, ["report", "attendance", "--wide"], env=env, catch_exceptions=False)
    assert wide.exit_code == 0 and "sess-1" in wide.stdout and "session_reconciled" in wide.stdout


def test_progress_in_a_pipe_is_plain_lines_and_on_a_terminal_a_transient_bar():
    """Not a terminal: a `description: N/M unit` line at most every interval; a terminal: a bar that clears."""
    pipe = Console(file=io.StringIO(), force_terminal=False, width=100)
    with Progress("refreshing attendance", total=1000, unit="sessions", console=pipe, interval=0) as progress:
        progress.advance(500)
        progress.advance(500)
    assert pipe.file.getvalue().splitlines() == [
        "refreshing attendance: 500/1000 sessions",
        "refreshing attendance: 1000/1000 sessions",
    ]
    quiet = Console(file=io.StringIO(), force_terminal=False, width=100)
    with Progress("refreshing attendance", total=10, console=quiet) as progress:  # fast work: no line at all
        progress.advance(10)
    assert quiet.file.getvalue() == ""
    terminal = Console(file=io.StringIO(), force_terminal=True, width=100)
    with Progress("migrating", total=2, console=terminal) as progress:
        progress.advance(1)
        progress.print("Running upgrade 0001 -> 0002, managed webhook subscriptions")
        progress.advance(1)
    drawn = terminal.file.getvalue()
    assert "Running upgrade 0001 -> 0002" in drawn and "\x1b[" in drawn  # drawn live with control codes


def test_report_refresh_in_a_pipe_prints_only_its_summary(loaded_db):
    """`report refresh` piped: no progress bar characters, the summary on stdout."""
    result = CliRunner().invoke(
        cli, ["report", "refresh"], env={"DATABASE_URL": loaded_db, "LOG_LEVEL": "WARNING"}, catch_exceptions=False
    )
    assert result.exit_code == 0
    assert re.fullmatch(r"attendance stored for 1 ended session\(s\) in \d+\.\d s\n", result.stdout)
    assert "━" not in result.output


def test_invocation_is_how_to_run_this_receiver_again(tmp_path, monkeypatch):
    """Commands printed to people start the way this receiver was started, so they work as printed."""
    monkeypatch.chdir(tmp_path)
    venv_bin = tmp_path / ".venv" / "bin"
    venv_bin.mkdir(parents=True)
    exe = venv_bin / "receiver"
    exe.write_text("#!/bin/sh\n")
    exe.chmod(0o755)
    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    assert invocation(".venv/bin/receiver") == ".venv/bin/receiver"
    assert invocation(str(exe)) == ".venv/bin/receiver"
    monkeypatch.setenv("PATH", f"{venv_bin}:/usr/bin:/bin")  # an activated virtual environment
    assert invocation(str(exe)) == "receiver"
    assert invocation("/somewhere/receiver/cli/__main__.py") == f"{shlex.quote(sys.executable)} -m receiver.cli"


def _demo_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_URL", "DYTE_", "API_TOKENS", "LOG_"))}


def test_demo_prints_commands_that_work_as_printed(tmp_path):
    """The demo's closing `Try:` lines run as printed (no activated venv needed) and read the demo's data."""
    demo = subprocess.run(
        [sys.executable, "-m", "receiver.cli", "demo"],
        cwd=tmp_path,
        env=_demo_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert demo.returncode == 0, demo.stdout + demo.stderr
    before_try = demo.stdout.split("Try:", 1)[0]
    assert max(len(line.rstrip()) for line in before_try.splitlines()) <= 100  # the tables fit 100 columns
    tries = [line.strip() for line in demo.stdout.split("Try:", 1)[1].splitlines() if line.strip()]
    assert any("demo --serve" in line for line in tries)
    [attendance] = [line for line in tries if "report attendance --format csv" in line]
    assert attendance.startswith(f"{shlex.quote(sys.executable)} -m receiver.cli --database-url ")
    ran = subprocess.run(
        attendance, shell=True, cwd=tmp_path, env=_demo_env(), capture_output=True, text=True, timeout=60
    )
    assert ran.returncode == 0, ran.stderr
    rows = ran.stdout.splitlines()
    assert rows[0].startswith("session_id,") and len(rows) == 1 + 8  # 8 person-sessions in the demo


def test_demo_serve_prints_the_pages_url_and_a_token_that_logs_in(tmp_path):
    """`demo --serve`: the printed /ui/ URL and token work (pages and API) until Ctrl-C, which exits 0."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "receiver.cli", "demo", "--serve", "--port", "0"],
        cwd=tmp_path,
        env=_demo_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: list[str] = []
    try:
        deadline = time.monotonic() + 120
        url = token = None
        while not (url and token):
            assert time.monotonic() < deadline, "".join(lines)
            line = proc.stdout.readline()
            assert line, "".join(lines)
            lines.append(line)
            if line.startswith("Pages: "):
                url = line.split()[1]
            elif line.startswith("Token: "):
                token = line.split()[1]
                assert "log in with this token" in line
        assert url.startswith("http://127.0.0.1:") and url.endswith("/ui/")
        base = url.removesuffix("/ui/")
        assert httpx.get(url, follow_redirects=False).status_code in (302, 303, 307, 401)  # not without the token
        sessions = httpx.get(f"{base}/api/sessions", headers={"Authorization": f"Bearer {token}"})
        assert sessions.status_code == 200 and len(sessions.json()["items"]) == 2
        assert httpx.get(f"{base}/api/sessions", headers={"Authorization": "Bearer wrong"}).status_code == 401
    finally:
        proc.send_signal(signal.SIGINT)
        rest = proc.communicate(timeout=30)[0]
    assert proc.returncode == 0, "".join(lines) + rest
    assert "stopped" in rest and "Traceback" not in rest


def test_events_list_json_unchanged_by_table_work(loaded_db):
    """JSON output keeps full ids and ISO times (only tables are shortened)."""
    result = CliRunner().invoke(
        cli,
        ["events", "list", "--format", "json", "--limit", "2"],
        env={"DATABASE_URL": loaded_db, "LOG_LEVEL": "WARNING"},
        catch_exceptions=False,
    )
    events = json.loads(result.stdout)
    assert events and all(e["received_at"].endswith("Z") for e in events)


def test_render_table_in_a_pipe_uses_a_fixed_width():
    """A table written to a pipe is laid out for 120 columns, not rich's 80-column guess."""
    buffer = io.StringIO()
    console = Console(file=buffer, width=120)
    assert render(attendance_rows(), ATTENDANCE_COLUMNS, "table", console=console) is None
    assert max(len(line) for line in buffer.getvalue().splitlines()) <= 120
