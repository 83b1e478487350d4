"""Smoke tests of the bench helpers (pure parts) and a tiny ``receiver bench ratelimit`` run. No timing assertions."""

from __future__ import annotations

import json
import math
import random
import re
from datetime import UTC, datetime, timedelta

import click
import h11
import pytest
from click.testing import CliRunner
from helpers import bench_database_url

from receiver.devtools.bench import bench
from receiver.devtools.bench.baseline import _CANNED, _RawProtocol
from receiver.devtools.bench.loadgen import LoadResult, parse_response_head
from receiver.devtools.bench.payloads import RequestFactory, participant_joined_bodies, sign_all
from receiver.devtools.bench.reports_bench import (
    _INTERVAL_COLUMNS,
    indexes_in_plan,
    interval_rows,
)
from receiver.devtools.bench.stats import max_in_window, percentile, summarize_latencies
from receiver.providers.dyte.events import parse_event
from receiver.providers.dyte.signature import verify_signature


def test_percentile_nearest_rank() -> None:
    """Nearest rank: p50 of 1..4 is 2, p99 is the maximum, p0 the minimum."""
    values = [1.0, 2.0, 3.0, 4.0]
    assert percentile(values, 50) == 2.0
    assert percentile(values, 99) == 4.0
    assert percentile(values, 0) == 1.0
    assert percentile(list(range(1, 1001)), 99.9) == 999


def test_percentile_edge_cases() -> None:
    """An empty sequence gives NaN; q outside [0, 100] is refused."""
    assert math.isnan(percentile([], 50))
    with pytest.raises(ValueError):
        percentile([1.0], 101)


def test_summarize_latencies_converts_seconds_to_ms() -> None:
    """Latencies go in as seconds and come out as milliseconds."""
    summary = summarize_latencies([0.001, 0.002, 0.003, 0.010])
    assert summary.count == 4
    assert summary.p50_ms == pytest.approx(2.0)
    assert summary.max_ms == pytest.approx(10.0)
    assert math.isnan(summarize_latencies([]).p99_ms)


def test_max_in_window_is_half_open() -> None:
    """A call at exactly t + 60 falls outside the window that starts at t."""
    assert max_in_window([0, 60, 120], 60) == (1, 0.0)
    assert max_in_window([0, 10, 59.9, 60, 61], 60) == (4, 10.0)
    assert max_in_window([], 60) == (0, None)
    shuffled = [5.0, 1.0, 3.0, 2.0, 4.0]
    assert max_in_window(shuffled, 2.5)[0] == 3


def test_request_factory_builds_valid_signed_unique_requests(signing_key) -> None:
    """Each request parses as HTTP/1.1, carries a new dyte-uuid, and its signature verifies."""
    bodies = participant_joined_bodies(3, seed=5)
    factory = RequestFactory(bodies, sign_all(bodies, signing_key), host="127.0.0.1:9", run_id="abcd1234")
    seen = set()
    for n in range(5):
        conn = h11.Connection(h11.SERVER)
        conn.receive_data(factory.next())
        request = conn.next_event()
        assert isinstance(request, h11.Request)
        assert request.method == b"POST" and request.target == b"/webhooks/dyte"
        headers = {k.decode(): v.decode() for k, v in request.headers}
        data = conn.next_event()
        assert isinstance(data, h11.Data)
        body = bytes(data.data)
        assert body == bodies[n % 3]
        assert int(headers["content-length"]) == len(body)
        assert headers["content-type"] == "application/json"
        assert headers["dyte-uuid"] == factory.delivery_id(n)
        assert verify_signature(body, headers["dyte-signature"], [signing_key.public_key()]) == "raw"
        seen.add(headers["dyte-uuid"])
    assert len(seen) == 5
    assert factory.bodies_reused == 2


def test_participant_joined_bodies_are_valid_distinct_events() -> None:
    """Bench bodies parse as participantJoined events with distinct peers."""
    bodies = participant_joined_bodies(250, seed=1, peers_per_session=100)
    events = [parse_event(json.loads(body)) for body in bodies]
    assert {e.event for e in events} == {"meeting.participantJoined"}
    assert len({e.participant.peer_id for e in events}) == 250
    assert len({e.session_id for e in events}) == 3


def test_parse_response_head() -> None:
    """Status, content-length, chunked and close are read from a response head, case-insensitively."""
    head = b"HTTP/1.1 200 OK\r\nContent-Length: 15\r\nconnection: close\r\n\r\n"
    assert parse_response_head(head) == (200, 15, False, True)
    chunked = b"HTTP/1.1 503 Service Unavailable\r\ntransfer-encoding: chunked\r\n\r\n"
    assert parse_response_head(chunked) == (503, None, True, False)
    with pytest.raises(ValueError):
        parse_response_head(b"garbage\r\n\r\n")


def test_raw_protocol_answers_each_complete_request() -> None:
    """The generator-ceiling server answers once per request, even when requests arrive split or pipelined."""

    class Sink:
        def __init__(self) -> None:
            self.written: list[bytes] = []

        def write(self, data: bytes) -> None:
            self.written.append(data)

    request = b"POST /x HTTP/1.1\r\nhost: h\r\ncontent-length: 5\r\n\r\nhello"
    protocol = _RawProtocol()
    sink = Sink()
    protocol.connection_made(sink)
    protocol.data_received(request[:20])
    assert sink.written == []
    protocol.data_received(request[20:] + request)
    assert sink.written == [_CANNED, _CANNED]


def test_load_result_merge_adds_counts() -> None:
    """Merging per-process results adds counts and keeps the longest window."""
    a, b = LoadResult(window_seconds=2, completed=3, sent=4), LoadResult(window_seconds=3, completed=5, sent=6)
    a.statuses[200] += 3
    b.statuses[200] += 5
    a.merge(b)
    assert (a.window_seconds, a.completed, a.sent, a.statuses[200]) == (3, 8, 10, 8)


def test_load_result_extend_adds_rounds() -> None:
    """Rounds against one target add up: windows, counts and acknowledged sequence numbers."""
    a, b = LoadResult(window_seconds=2, completed=3, sent=4), LoadResult(window_seconds=3, completed=6, sent=6)
    a.acked.extend([0, 1])
    b.acked.extend([2])
    a.extend(b)
    assert (a.window_seconds, a.completed, a.sent, list(a.acked)) == (5, 9, 10, [0, 1, 2])
    assert a.requests_per_second == pytest.approx(9 / 5)


def test_round_ratios_pair_rounds_of_the_same_moment() -> None:
    """The ratio is taken round by round (a slower round slows both targets alike), not from the totals."""
    from receiver.devtools.bench.ingest import TargetRun, _round_ratios

    verify = TargetRun("verify-only", LoadResult(window_seconds=2, completed=3000), round_rates=[2000.0, 1000.0])
    ingest = TargetRun("receiver", LoadResult(window_seconds=2, completed=2400), round_rates=[1600.0, 800.0])
    assert _round_ratios(ingest, verify) == [pytest.approx(0.8), pytest.approx(0.8)]
    single = TargetRun("receiver", LoadResult(window_seconds=1, completed=500))
    assert _round_ratios(single, TargetRun("verify-only", LoadResult(window_seconds=1, completed=1000))) == [0.5]


@pytest.mark.slow
def test_bench_ingest_baseline_tiny_run_on_sqlite() -> None:
    """A short `receiver bench ingest --baseline` runs every target, interleaves the rounds and loses nothing."""
    root = click.Group("receiver")
    root.add_command(bench)
    args = [
        "bench",
        "ingest",
        "--baseline",
        "--duration",
        "1",
        "--warmup",
        "0.2",
        "--rounds",
        "2",
        "--connections",
        "4",
        "--pool",
        "64",
    ]
    result = CliRunner().invoke(root, args)
    assert result.exit_code == 0, result.output
    assert "round 1/2" in result.output and "round 2/2" in result.output
    assert "median of rounds" in result.output
    assert "LOST" not in result.output
    assert "process / no-op Starlette" in result.output and "process / verify-only" in result.output
    # Durability table: receiver, acked, stored, replays counted, acked-but-missing (0).
    durability = [
        line for line in result.output.splitlines() if line.count("│") == 6 and any(c.isdigit() for c in line)
    ][-1]
    cells = [cell.strip().replace(",", "") for cell in durability.split("│")[1:-1]]
    assert int(cells[1]) > 0 and cells[4] == "0", durability
    assert "nothing acknowledged lost (met)" in result.output


WRK_LINE = (
    'WRK_JSON {"requests":1000,"duration_us":2000000,"non_2xx":10,"connect":0,"read":2,"write":0,"timeout":0,'
    '"p50":1500,"p90":3000,"p99":9000,"p999":12000,"max":15000,"mean":1800.5}'
)


def test_wrk_output_becomes_a_load_result() -> None:
    """The script's WRK_JSON line: req/s over wrk's own duration, 2xx acknowledged, errors, percentiles in ms."""
    from receiver.devtools.bench.wrk import parse_wrk_output

    result = parse_wrk_output("Running 2s test\n" + WRK_LINE + "\n")
    assert result.requests_per_second == pytest.approx(500.0)
    assert result.acked_count == 990 and result.statuses[200] == 990
    assert result.errors == {"non-2xx": 10, "read": 2}
    latency = result.latency()
    assert (latency.p50_ms, latency.p99_ms, latency.max_ms) == (1.5, 9.0, 15.0)
    warmup = parse_wrk_output(WRK_LINE, measured=False)
    assert warmup.acked_count == 990 and warmup.completed == 0
    with pytest.raises(RuntimeError, match="no result"):
        parse_wrk_output("unable to connect to 127.0.0.1:1 Connection refused")


def test_wrk_rounds_add_up_and_report_the_worst_rounds_percentiles() -> None:
    """Rounds: counts and windows add; each percentile is the worst round's (no samples to pool)."""
    from receiver.devtools.bench.wrk import parse_wrk_output

    first = parse_wrk_output(WRK_LINE)
    first.extend(parse_wrk_output(WRK_LINE.replace('"p99":9000', '"p99":30000')))
    assert first.completed == 2000 and first.acked_count == 1980
    assert first.requests_per_second == pytest.approx(500.0)
    assert first.latency().p99_ms == 30.0


@pytest.mark.slow
@pytest.mark.skipif(not __import__("shutil").which("wrk"), reason="wrk is not installed")
def test_bench_ingest_with_wrk_on_sqlite_loses_nothing() -> None:
    """`bench ingest --wrk`: wrk loads the receiver with signed pooled bodies under new uuids; the 2xx count is
    matched against rows and replays read back."""
    root = click.Group("receiver")
    root.add_command(bench)
    args = ["bench", "ingest", "--wrk", "--duration", "1", "--warmup", "0", "--connections", "4", "--pool", "32"]
    result = CliRunner().invoke(root, args)
    assert result.exit_code == 0, result.output
    assert "wrk" in result.output and "nothing acknowledged lost (met)" in result.output
    assert "replays (no row" in result.output  # 32 bodies for a second of load: most requests are replays


def test_interval_rows_shape() -> None:
    """Generated intervals have every column, lie inside the session, and are keyed by custom id or peer id."""
    start = datetime(2026, 1, 1, tzinfo=UTC)
    end = start + timedelta(hours=1)
    rows = list(interval_rows(random.Random(2), "s1", "m1", start, end, 200))
    assert len(rows) >= 200
    for row in rows:
        assert len(row) == len(_INTERVAL_COLUMNS)
        values = dict(zip(_INTERVAL_COLUMNS, row, strict=False))
        assert start <= values["joined_at"] <= end
        assert values["left_at"] is None or values["left_at"] >= values["joined_at"]
        assert values["participant_key"] in (values["custom_participant_id"], values["peer_id"])


def test_indexes_in_plan_reads_both_dialects() -> None:
    """Index names and sequential scans are picked out of PostgreSQL and SQLite plans."""
    pg = "Bitmap Heap Scan on participant_intervals\n  ->  Bitmap Index Scan on ix_participant_intervals_session_key\nSeq Scan on sessions"
    assert indexes_in_plan(pg) == (["ix_participant_intervals_session_key"], ["sessions"])
    lite = "SEARCH participant_intervals USING INDEX ix_participant_intervals_session_key (session_id=?)\nSCAN cte_x"
    assert indexes_in_plan(lite, {"participant_intervals"}) == (["ix_participant_intervals_session_key"], [])


def test_bench_ratelimit_tiny_run() -> None:
    """`receiver bench ratelimit` with small numbers exits 0 and reports the limit held."""
    root = click.Group("receiver")
    root.add_command(bench)
    result = CliRunner().invoke(
        root, ["bench", "ratelimit", "--sessions", "30", "--calls-per-minute", "20", "--concurrency", "4"]
    )
    assert result.exit_code == 0, result.output
    assert "limit held" in result.output
    assert "max 20 calls in a 60 s window" in result.output


@pytest.mark.slow
@pytest.mark.parametrize("dialect", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def test_bench_reports_tiny_run(dialect: str, tmp_path) -> None:
    """A small `receiver bench reports` loads, precomputes, vacuums (PostgreSQL) and gives every timed goal a verdict."""
    url = bench_database_url(dialect, tmp_path)
    root = click.Group("receiver")
    root.add_command(bench)
    args = ["bench", "reports", "--people", "300", "--intervals", "3000", "--repeat", "1", "--database-url", url]
    result = CliRunner().invoke(root, args)
    assert result.exit_code == 0, result.output
    assert ("then VACUUM ANALYZE" in " ".join(result.output.split())) == (dialect == "postgresql")
    assert "median ms" in result.output and "p95 ms" in result.output and "load 1m" in result.output
    rows = [line for line in result.output.splitlines() if line.startswith("  ")]  # one progress line per query

    def row(name: str) -> str:
        found = [line for line in rows if line.startswith(f"  {name}")]
        assert len(found) == 1, (name, result.output)
        return found[0]

    # Every query with a goal has a verdict against it (the number itself is the bench's business, not the test's).
    goals = {
        "attendance_report(session_id=one)": "< 50 ms: ",
        "GET /api/sessions/one/attendance": "< 50 ms: ",
        "attendance_report(session_id=big) (": "< 200 ms: ",
        "attendance_report(session_id=big), stale": "< 200 ms: ",
        "GET /api/sessions/big/attendance": "< 200 ms: ",
        "GET /api/attendance?limit=100 (first page)": "< 200 ms: ",
        "GET /api/attendance?limit=100&cursor=<mid-listing>": "< 200 ms: ",
        # The analysts' pages (issue #21): a page of sessions, a search, the overview.
        "sessions_page() 100 newest": "< 200 ms: ",
        "sessions_page(q=": "< 200 ms: ",
        "usage_overview(period=day), 90 days": "< 200 ms: ",
    }
    for name, goal in goals.items():
        line = row(name)
        assert line.endswith((goal + "met", goal + "NOT met")), line
    assert "met" not in row("GET /api/attendance?limit=100&offset=")
    whole = row("attendance_report() org-wide")
    assert ("< 2,000 ms: " in whole) == (dialect == "postgresql"), whole  # the 2 s goal is PostgreSQL's


@pytest.mark.slow
@pytest.mark.parametrize("dialect", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def test_bench_export_tiny_run(dialect: str, tmp_path) -> None:
    """A small `receiver bench export` loads, exports twice in a child process and shows rows, RSS and the goal."""
    url = bench_database_url(dialect, tmp_path)
    root = click.Group("receiver")
    root.add_command(bench)
    result = CliRunner().invoke(root, ["bench", "export", "--intervals", "2000", "--database-url", url])
    assert result.exit_code == 0, result.output
    runs = [line for line in result.output.splitlines() if line.startswith(("│ cold", "│ warm"))]
    assert len(runs) == 2, result.output
    for line in runs:
        cells = [c.strip() for c in line.strip("│").split("│")]
        rows, peak_mb, goal = int(cells[1].replace(",", "")), float(cells[4].replace(",", "")), cells[5]
        assert rows > 1000 and peak_mb > 10 and goal == ("met" if peak_mb < 200 else "not met"), line


def test_bench_lifecycle_refuses_sqlite() -> None:
    """Partitions exist only on PostgreSQL: a SQLite URL gets a clear error, exit 1."""
    result = CliRunner().invoke(bench, ["lifecycle", "--database-url", "sqlite:///x.db", "--events", "10"])
    assert result.exit_code == 1
    assert "needs --database-url postgresql://" in result.output


@pytest.mark.postgres
def test_bench_lifecycle_tiny_run_prints_the_figures_and_drops_its_database() -> None:
    """A tiny run: the oldest month is dropped under ingest, both goals get a verdict, the scratch database goes."""
    from conftest import PG_ADMIN_URL, postgres_unavailable_reason
    from sqlalchemy import create_engine, text

    reason = postgres_unavailable_reason()
    if reason:
        pytest.skip(reason)
    admin = create_engine(PG_ADMIN_URL)
    names = text("SELECT datname FROM pg_database WHERE datname LIKE 'receiver_lifecycle_%'")
    try:
        with admin.connect() as connection:
            before = set(connection.execute(names).scalars())
        args = ["lifecycle", "--database-url", PG_ADMIN_URL, "--events", "400", "--months", "2", "--ingest", "60"]
        result = CliRunner().invoke(bench, [*args, "--concurrency", "4", "--claim-batch", "16"])
        assert result.exit_code == 0, result.output
        output = " ".join(result.output.split())
        assert "ingest p99" in output and "claim p50" in output
        assert output.count("met") >= 2  # "met" or "not met" for both goals
        assert re.search(r"purge of one month \(webhook_events_\d{4}_\d{2}: [\d,]+ events\)", output), output
        assert "bytes per stored event before / after" in output
        with admin.connect() as connection:
            assert set(connection.execute(names).scalars()) == before
    finally:
        admin.dispose()
