"""The CLI's error matrix: every failure a user can cause or meet is a short message and its own exit code.

Each case checks the exit code (:class:`receiver.cli.errors.ExitCode`), the
message a person reads on stderr, and that no traceback is shown (only with
``--debug``).
"""

from __future__ import annotations

import json
import sqlite3
import uuid
from pathlib import Path
from types import SimpleNamespace

import httpx
import pytest
from click.testing import CliRunner, Result
from conftest import PG_ADMIN_URL, postgres_unavailable_reason
from sqlalchemy import create_engine, text

from receiver.cli.errors import ExitCode
from receiver.cli.main import cli
from receiver.db.engine import head_revision, migrate
from receiver.devtools.bench.servers import free_port
from receiver.providers.dyte.signature import generate_private_key
from receiver.retry import RetryPolicy
from receiver.sandbox import SandboxState, create_sandbox_app, demo_world

API_KEY = "dyteKEY-cli-errors-5b1f9e"


def invoke(args: list[str], database_url: str | None = None, *, obj=None, **env: str) -> Result:
    """Run ``receiver ARGS`` in-process; exceptions must not escape (the CLI handles them)."""
    full_env = {"LOG_LEVEL": "WARNING", **env}
    if database_url is not None:
        full_env["DATABASE_URL"] = database_url
    return CliRunner().invoke(cli, args, env=full_env, obj=obj, catch_exceptions=False)


def assert_clean_error(result: Result, code: ExitCode, *phrases: str) -> str:
    """Exit ``code``, an ``error:`` message of at most two lines on stderr with ``phrases``, no traceback."""
    assert result.exit_code == code, (result.exit_code, result.output)
    err = result.stderr
    assert "Traceback" not in result.output, result.output
    message = [line for line in err.splitlines() if line.strip() and not line.startswith("{")]  # log lines: JSON
    assert message and message[0].startswith("error: "), err
    assert len(message) <= 2, err
    for phrase in phrases:
        assert phrase in err, (phrase, err)
    return err


@pytest.fixture
def postgres_server() -> str:
    """The admin URL of a running PostgreSQL (skips with the reason when there is none)."""
    reason = postgres_unavailable_reason()
    if reason:
        pytest.skip(reason)
    return PG_ADMIN_URL


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def empty_db_url(request: pytest.FixtureRequest, tmp_path: Path):
    """A database that exists but was never migrated: a SQLite file with a stray table, or a fresh PostgreSQL database."""
    if request.param == "sqlite":
        path = tmp_path / "empty.db"
        sqlite3.connect(path).execute("CREATE TABLE notes (text TEXT)").connection.close()
        yield f"sqlite:///{path}"
        return
    request.getfixturevalue("postgres_server")
    name = f"receiver_empty_{uuid.uuid4().hex[:8]}"
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    yield PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + name
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


# --- database -----------------------------------------------------------------


def test_postgres_server_down_is_exit_4_with_the_reason():
    """A PostgreSQL URL on a port nobody listens on: exit 4, the driver's reason, what to check."""
    url = f"postgresql://postgres:s3cretpw@127.0.0.1:{free_port()}/receiver"
    result = invoke(["report", "sessions"], url)
    err = assert_clean_error(result, ExitCode.DB_UNREACHABLE, "cannot reach the database", "Connection refused")
    assert "is the server running" in err and "s3cretpw" not in err


def test_worker_once_with_the_database_down_exits_4_instead_of_waiting():
    """`worker --once` cannot drain an unreachable database: it says so and exits (the service worker waits)."""
    result = invoke(["worker", "--once"], f"postgresql://postgres@127.0.0.1:{free_port()}/receiver")
    assert_clean_error(result, ExitCode.DB_UNREACHABLE, "cannot reach the database")


def test_postgres_database_missing_is_exit_5_suggesting_createdb(postgres_server):
    """A PostgreSQL database that was never created: exit 5 naming it, createdb then migrate."""
    name = f"receiver_missing_{uuid.uuid4().hex[:6]}"
    url = postgres_server.rsplit("/", 1)[0] + "/" + name
    result = invoke(["report", "attendance"], url)
    assert_clean_error(result, ExitCode.DB_MISSING, f"no database '{name}'", f"createdb {name}", "receiver migrate")


@pytest.mark.parametrize(
    ("url", "phrases"),
    [
        ("postgress://postgres:pw1234567@127.0.0.1:5432/x", ["scheme 'postgress'", "did you mean postgresql://"]),
        ("mysql://root@localhost/receiver", ["scheme 'mysql' is not supported", "sqlite:///"]),
        ("not a url", ["is not a database URL", "postgresql://USER@HOST"]),
    ],
)
def test_bad_database_url_is_a_configuration_error_exit_3(url, phrases):
    """A mistyped or unsupported DATABASE_URL: exit 3, the scheme named, the password never shown."""
    result = invoke(["report", "sessions"], url)
    err = assert_clean_error(result, ExitCode.CONFIG, *phrases)
    assert "pw1234567" not in err


def test_unmigrated_database_is_exit_6_suggesting_migrate(empty_db_url):
    """A database without the receiver's tables: every command that reads it says to run `receiver migrate`."""
    for args in (["report", "sessions"], ["events", "list"], ["worker", "--once"]):
        result = invoke(args, empty_db_url)
        assert_clean_error(result, ExitCode.DB_NOT_MIGRATED, "no receiver tables", "receiver migrate")


def test_database_behind_the_code_is_exit_6_naming_both_revisions(tmp_path):
    """A database migrated by an older release: exit 6 with its revision and the one needed."""
    url = f"sqlite:///{tmp_path / 'old.db'}"
    migrate(url, "0003")
    result = invoke(["report", "attendance"], url)
    assert_clean_error(
        result, ExitCode.DB_NOT_MIGRATED, "revision 0003", f"needs {head_revision()}", "receiver migrate"
    )


def test_report_on_a_missing_sqlite_file_names_the_path_and_creates_nothing(tmp_path):
    """A mistyped SQLite path: exit 5 naming the absolute path; no empty database file is left behind."""
    path = tmp_path / "typo" / "recever.db"
    path.parent.mkdir()
    for args in (["report", "attendance"], ["events", "list"], ["worker", "--once"], ["report", "refresh"]):
        result = invoke(args, f"sqlite:///{path}")
        assert_clean_error(result, ExitCode.DB_MISSING, f"no SQLite database at {path}", "receiver migrate")
    assert list(path.parent.iterdir()) == []


def test_migrate_into_a_folder_that_does_not_exist_is_exit_5(tmp_path):
    """`migrate` creates a SQLite file, not its folders: exit 5 naming the folder."""
    path = tmp_path / "no" / "such" / "dir" / "receiver.db"
    result = invoke(["migrate"], f"sqlite:///{path}")
    assert_clean_error(result, ExitCode.DB_MISSING, str(path.parent))


def test_invalid_setting_is_exit_3_naming_the_variable_without_its_value(sqlite_url):
    """A setting that does not validate: exit 3, the variable named, the bad value not echoed."""
    result = invoke(["report", "sessions"], sqlite_url, WORKER_BATCH_SIZE="lots-of-them")
    err = assert_clean_error(result, ExitCode.CONFIG, "invalid configuration", "WORKER_BATCH_SIZE")
    assert "lots-of-them" not in err


# --- ids, windows, dates ------------------------------------------------------------


def test_unknown_ids_exit_1_with_no_session(db_url):
    """An unknown session, meeting or event id: exit 1 with "no session ..." (not an empty table and 0)."""
    result = invoke(["report", "attendance", "--session-id", "sess-typo"], db_url)
    assert_clean_error(result, ExitCode.FAILED, "no session 'sess-typo'", "receiver report sessions")
    result = invoke(["report", "recordings", "--session-id", "sess-typo", "--format", "csv"], db_url)
    assert_clean_error(result, ExitCode.FAILED, "no session 'sess-typo'")
    assert result.stdout == ""
    result = invoke(["report", "sessions", "--meeting-id", "meet-typo"], db_url)
    assert_clean_error(result, ExitCode.FAILED, "no meeting 'meet-typo'")
    result = invoke(["report", "refresh", "--session-id", "sess-typo"], db_url)
    assert_clean_error(result, ExitCode.FAILED, "no session 'sess-typo'")
    result = invoke(["report", "attendance", "--participant", "nobody"], db_url)
    assert_clean_error(result, ExitCode.FAILED, "no participant 'nobody'")
    for args in (
        ["events", "show", "4711"],
        ["events", "show", "99999999999999999999999"],  # beyond BIGINT: still "no stored event", not a DB error
        ["events", "retry", "no-such-delivery"],
        ["events", "replay", "x"],
    ):
        assert_clean_error(invoke(args, db_url), ExitCode.FAILED, "no stored event")


def test_inverted_window_is_a_usage_error_naming_both_options(sqlite_url):
    """--since after --until: exit 2, both options named, instead of an empty report."""
    result = invoke(["report", "sessions", "--since", "2026-02-01", "--until", "2026-01-01"], sqlite_url)
    assert result.exit_code == ExitCode.USAGE and "Traceback" not in result.output
    assert "--since 2026-02-01T00:00:00Z is not before --until 2026-01-01T00:00:00Z" in result.stderr


def test_empty_window_says_so_on_stderr_and_keeps_stdout_clean(sqlite_url):
    """A window with no sessions: exit 0, a note on stderr, the CSV header alone on stdout."""
    result = invoke(["report", "attendance", "--since", "2030-01-01", "--format", "csv"], sqlite_url)
    assert result.exit_code == 0
    assert "no attendance in sessions started at or after 2030-01-01T00:00:00Z" in result.stderr
    assert result.stdout.splitlines()[0].startswith("session_id,")
    table = invoke(["report", "sessions", "--since", "2030-01-01", "--until", "2030-02-01"], sqlite_url)
    assert table.exit_code == 0 and table.stdout == ""
    assert "no sessions started between 2030-01-01T00:00:00Z and 2030-02-01T00:00:00Z" in table.stderr


@pytest.mark.parametrize("typed", ["2026-13-45", "yesterday", "2026-01-01T25:00", "1700000000"])
def test_bad_date_names_the_option_and_echoes_the_input_as_typed(sqlite_url, typed):
    """A date that does not parse: exit 2, the option named, the value exactly as typed (not rewritten)."""
    result = invoke(["report", "attendance", "--until", typed], sqlite_url)
    assert result.exit_code == ExitCode.USAGE and "Traceback" not in result.output
    assert f"Invalid value for '--until': '{typed}' is not a date" in result.stderr
    assert "T00:00:00Z'" not in result.stderr


def test_backfill_validates_its_window_before_calling_the_api(sqlite_url):
    """backfill names a bad --since as typed and refuses an inverted window (usage, exit 2)."""
    env = {"DYTE_ORG_ID": "org", "DYTE_API_KEY": API_KEY}
    bad = invoke(["backfill", "--since", "2026-02-30"], sqlite_url, **env)
    assert bad.exit_code == ExitCode.USAGE and "'--since': '2026-02-30'" in bad.stderr
    inverted = invoke(["backfill", "--since", "2026-03-01", "--until", "2026-02-01"], sqlite_url, **env)
    assert inverted.exit_code == ExitCode.USAGE and "is not before --until" in inverted.stderr


# --- provider ------------------------------------------------------------------------------


@pytest.fixture
def no_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    """Retries of the Dyte client without waiting (the attempts still happen)."""
    monkeypatch.setattr(RetryPolicy, "delay_seconds", lambda self, *args, **kwargs: 0.0)


def test_provider_unreachable_is_exit_7(sqlite_url, no_backoff):
    """The Dyte API cannot be reached (connect errors on every attempt): exit 7, what to check."""
    attempts = []

    def refuse(request: httpx.Request) -> httpx.Response:
        attempts.append(request.url.path)
        raise httpx.ConnectError("connection refused", request=request)

    hooks = SimpleNamespace(dyte_transport=httpx.MockTransport(refuse))
    result = invoke(
        ["backfill", "--since", "2026-01-01"], sqlite_url, obj=hooks, DYTE_ORG_ID="org-1", DYTE_API_KEY=API_KEY
    )
    # Backfill walks a failing listing again before it gives up (a line per walk), then
    # stops with one error line saying what it kept, with the provider failure's exit code.
    assert result.exit_code == ExitCode.PROVIDER_UNREACHABLE, result.output
    [error] = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert "GET /sessions failed" in error and "ConnectError" in error and "run the same command again" in error
    assert len(attempts) > 1 and API_KEY not in result.output and "Traceback" not in result.output


def test_provider_refusing_the_credentials_is_exit_8(sqlite_url):
    """The sandbox refuses a wrong API key (401): exit 8 naming DYTE_ORG_ID and DYTE_API_KEY, the key never shown."""
    state = SandboxState(world=demo_world(), private_key=generate_private_key())
    hooks = SimpleNamespace(dyte_transport=httpx.ASGITransport(app=create_sandbox_app(state)))
    env = {
        "DYTE_ORG_ID": state.org_id,
        "DYTE_API_KEY": API_KEY,  # not the sandbox's key
        "DYTE_API_BASE_URL": "http://sandbox.test/v2",
    }
    result = invoke(["backfill", "--since", "2026-01-01"], sqlite_url, obj=hooks, **env)
    err = assert_clean_error(
        result, ExitCode.PROVIDER_REFUSED, "Dyte refused the credentials (HTTP 401)", "DYTE_ORG_ID and DYTE_API_KEY"
    )
    assert API_KEY not in err
    assert state.calls and state.calls[0][2] == 401

    ok = invoke(["backfill", "--since", "2026-10-01"], sqlite_url, obj=hooks, **{**env, "DYTE_API_KEY": state.api_key})
    assert ok.exit_code == 0, ok.output
    assert "2 sessions on 1 pages: 2 reconciled" in ok.stdout


def test_backfill_without_credentials_is_a_configuration_error(sqlite_url):
    """backfill needs DYTE_ORG_ID and DYTE_API_KEY: exit 3 naming them."""
    assert_clean_error(
        invoke(["backfill", "--since", "2026-01-01"], sqlite_url), ExitCode.CONFIG, "DYTE_ORG_ID", "DYTE_API_KEY"
    )


def test_serve_on_a_port_in_use_is_one_line(sqlite_url):
    """`serve` on a port another server holds: exit 1 naming host:port and --port, before anything starts."""
    import socket

    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        result = invoke(["serve", "--port", str(port)], sqlite_url)
    assert_clean_error(result, ExitCode.FAILED, f"cannot listen on 127.0.0.1:{port}", "in use", "--port")


# --- --debug and bugs -----------------------------------------------------------------


def test_debug_adds_the_traceback_and_keeps_the_exit_code(tmp_path):
    """`--debug` prints the traceback before the same one-line message and exit code."""
    url = f"sqlite:///{tmp_path / 'absent.db'}"
    plain = invoke(["report", "sessions"], url)
    debug = invoke(["--debug", "report", "sessions"], url)
    assert plain.exit_code == debug.exit_code == ExitCode.DB_MISSING
    assert "Traceback" not in plain.stderr
    assert "Traceback (most recent call last)" in debug.stderr and "DatabaseMissing" in debug.stderr
    assert debug.stderr.rstrip().splitlines()[-1] == plain.stderr.rstrip()


def test_unexpected_error_is_exit_70_pointing_to_debug(sqlite_url, monkeypatch):
    """A bug (an exception nobody planned for): exit 70, its type and message, how to get the traceback."""
    from receiver.reports import queries

    def broken(*args, **kwargs):
        raise ZeroDivisionError("division by zero in the report")

    monkeypatch.setattr(queries, "sessions_report", broken)
    result = invoke(["report", "sessions"], sqlite_url)
    assert_clean_error(result, ExitCode.INTERNAL, "ZeroDivisionError: division by zero", "--debug")
    debug = invoke(["--debug", "report", "sessions"], sqlite_url)
    assert debug.exit_code == ExitCode.INTERNAL and "Traceback" in debug.stderr


def test_help_documents_every_exit_code():
    """`receiver --help` lists each exit code with its meaning, and the --debug flag."""
    out = CliRunner().invoke(cli, ["--help"]).output
    assert "--debug" in out and "Exit codes:" in out
    for code in ExitCode:
        if code is not ExitCode.OK:
            assert f"  {int(code)} " in out, code


# --- migrate and the worker's log --------------------------------------------------------


def test_migrate_prints_alembic_lines_then_the_summary_in_order(tmp_path):
    """`migrate`: one line per revision, then the summary, each on its own line; a second run has nothing to do."""
    url = f"sqlite:///{tmp_path / 'new.db'}"
    first = invoke(["migrate"], url)
    assert first.exit_code == 0, first.output
    lines = first.stdout.splitlines()
    assert lines[0] == "Running upgrade  -> 0001, initial schema"
    assert [line.startswith("Running upgrade") for line in lines] == [True] * (len(lines) - 1) + [False]
    head = head_revision()
    applied = len(lines) - 1  # one "Running upgrade" line per revision
    assert lines[-1].startswith(f"database at {head} (head), {applied} revision(s) applied in ")
    assert first.stdout.endswith("\n")
    again = invoke(["migrate"], url)
    assert again.exit_code == 0 and again.stdout == f"database already at {head} (head): nothing to do\n"


def test_migrate_to_an_unknown_revision_is_a_usage_error(tmp_path):
    """`migrate --revision nope`: exit 2 naming --revision."""
    result = invoke(["migrate", "--revision", "nope"], f"sqlite:///{tmp_path / 'x.db'}")
    assert result.exit_code == ExitCode.USAGE and "'--revision'" in result.stderr


def test_worker_log_is_json_only_with_the_counts(sqlite_url):
    """`worker --once` with LOG_FORMAT=json: every stdout line is a JSON object; the last has the counts."""
    from receiver.logging_setup import configure_logging

    try:
        result = invoke(["worker", "--once"], sqlite_url, LOG_FORMAT="json", LOG_LEVEL="INFO")
    finally:
        configure_logging("console", "WARNING")
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert lines and all(isinstance(line, dict) for line in lines)
    stopped = lines[-1]
    assert stopped["event"] == "worker_stopped"
    assert (stopped["done"], stopped["failed"], stopped["ignored"], stopped["reconciled"]) == (0, 0, 0, 0)
    assert not any("ProcessResult" in json.dumps(line) for line in lines)


def test_readme_lists_the_same_exit_codes():
    """The README's exit-code table has exactly the codes of ExitCode (the docs stay true)."""
    import re

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    table = readme.split("Exit codes:", 1)[1].split("\n\n", 2)[1]
    documented = {int(code) for code in re.findall(r"^\| (\d+) \|", table, flags=re.M)}
    assert documented == {int(code) for code in ExitCode}
