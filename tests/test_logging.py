"""Log lines as ops see them: JSON per line, buffered services flushed on time, hot-path loggers follow reconfiguration."""

from __future__ import annotations

import io
import json
import os
import select
import time
from datetime import UTC

import pytest

from receiver.logging_setup import bound_logger, configure_logging
from receiver.responses import FastJSONResponse


@pytest.fixture(autouse=True)
def _restore_logging():
    yield
    configure_logging("json", "INFO")  # back to stderr, a flush per line, no flusher thread


def _pipe_stream() -> tuple[int, io.TextIOWrapper]:
    read_fd, write_fd = os.pipe()
    return read_fd, io.TextIOWrapper(io.BufferedWriter(io.FileIO(write_fd, "w")), encoding="utf-8")


def _readable(fd: int, timeout: float) -> bool:
    return bool(select.select([fd], [], [], timeout)[0])


def test_buffered_lines_reach_the_stream_within_the_flush_interval() -> None:
    """`serve` buffers its lines: not written at once, but within LOG_FLUSH_SECONDS, whole and in order."""
    read_fd, stream = _pipe_stream()
    configure_logging("json", "INFO", stream, flush_seconds=0.3)
    log = bound_logger("receiver.test")
    log.info("first", n=1)
    log.info("second", n=2)
    assert not _readable(read_fd, 0.05), "a buffered line was written at once"
    assert _readable(read_fd, 2.0), "the flusher thread did not flush within the interval"
    time.sleep(0.05)
    lines = [json.loads(line) for line in os.read(read_fd, 65536).decode().splitlines()]
    assert [(line["event"], line["n"], line["logger"], line["level"]) for line in lines] == [
        ("first", 1, "receiver.test", "info"),
        ("second", 2, "receiver.test", "info"),
    ]
    stream.close()
    os.close(read_fd)


def test_services_buffer_even_when_python_writes_stdout_through() -> None:
    """PYTHONUNBUFFERED=1 (the Docker image sets it) makes stdout write through; `serve` still buffers its lines.
    The standard library's (uvicorn's) lines go through the same buffer and flush it: nothing is reordered."""
    import logging

    read_fd, write_fd = os.pipe()
    stream = io.TextIOWrapper(io.FileIO(write_fd, "w"), encoding="utf-8", write_through=True)
    configure_logging("json", "INFO", stream, flush_seconds=30)
    bound_logger("receiver.test").info("ours")
    bound_logger("receiver.test").info("ours again")
    assert not _readable(read_fd, 0.05), "a line was written through at once"
    # Like uvicorn's "Application shutdown complete", after serve's last flush (a fresh name: Alembic's
    # fileConfig in other tests disables the loggers that existed then).
    logging.getLogger("stdlib.test.flush").info("theirs")
    assert _readable(read_fd, 1.0), "the standard library's line stayed in the buffer"
    time.sleep(0.05)
    assert [json.loads(line)["event"] for line in os.read(read_fd, 65536).decode().splitlines()] == [
        "ours",
        "ours again",
        "theirs",
    ]
    configure_logging("json", "INFO")
    stream.close()
    os.close(read_fd)


def test_unbuffered_lines_are_written_at_once() -> None:
    """CLI commands (flush_seconds=0) write each line immediately."""
    read_fd, stream = _pipe_stream()
    configure_logging("json", "INFO", stream)
    bound_logger("receiver.test").warning("now")
    assert _readable(read_fd, 0.5)
    assert json.loads(os.read(read_fd, 65536))["event"] == "now"
    stream.close()
    os.close(read_fd)


def test_hot_path_logger_follows_reconfiguration_and_level() -> None:
    """A logger bound for the request line writes to the newest stream, at the newest level."""
    first, second = io.StringIO(), io.StringIO()
    configure_logging("json", "INFO", first)
    bound_logger("receiver.web.app").info("one")
    configure_logging("json", "WARNING", second)
    bound_logger("receiver.web.app").info("filtered")
    bound_logger("receiver.web.app").warning("two")
    assert [json.loads(line)["event"] for line in first.getvalue().splitlines()] == ["one"]
    assert [json.loads(line)["event"] for line in second.getvalue().splitlines()] == ["two"]


def test_values_orjson_refuses_still_give_a_json_line() -> None:
    """A lone surrogate or a huge integer falls back to the standard encoder: the line is still valid JSON."""
    stream = io.StringIO()
    configure_logging("json", "INFO", stream)
    bound_logger("receiver.test").info("odd", text="a\ud800b", big=2**80, when=None)
    line = json.loads(stream.getvalue())
    assert line["text"] == "a\ud800b" and line["big"] == 2**80


def test_fast_json_response_matches_starlette_and_falls_back() -> None:
    """FastJSONResponse renders compact UTF-8 JSON like Starlette's, and values orjson refuses still render."""
    body = {"status": "stored", "delivery_id": "é-1", "parse_status": "ok"}
    assert FastJSONResponse(body).body == b'{"status":"stored","delivery_id":"\xc3\xa9-1","parse_status":"ok"}'
    assert json.loads(FastJSONResponse({"detail": "x\ud800", "n": 2**70}).body) == {"detail": "x\ud800", "n": 2**70}


def test_hot_path_logger_follows_a_direct_structlog_configure() -> None:
    """Code that calls structlog.configure itself (an embedding app, a test capture) is honoured too."""
    import structlog

    configure_logging("json", "INFO", io.StringIO())
    bound_logger("receiver.web.app").info("before")
    captured: list[dict] = []

    def capture(_logger, _method, event_dict):
        captured.append(dict(event_dict))
        raise structlog.DropEvent

    structlog.configure(processors=[capture])
    bound_logger("receiver.web.app").info("during", n=1)
    assert [(e["event"], e["n"]) for e in captured] == [("during", 1)]


def test_json_lines_carry_a_utc_timestamp_with_z() -> None:
    """Every JSON line (ours and the standard library's) has `timestamp` as ISO 8601 UTC ending in Z, at the time it was logged."""
    import logging
    from datetime import datetime, timedelta

    stream = io.StringIO()
    configure_logging("json", "INFO", stream)
    before = datetime.now(UTC)
    bound_logger("receiver.test").info("ours")
    logging.getLogger("stdlib.test.timestamp").info("theirs")
    bound_logger("receiver.test").info("odd", text="a\ud800b")  # the standard encoder's fallback
    stamps = [json.loads(line)["timestamp"] for line in stream.getvalue().splitlines()]
    assert len(stamps) == 3
    for stamp in stamps:
        assert stamp.endswith("Z") and "+" not in stamp
        moment = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
        assert before - timedelta(seconds=1) <= moment <= datetime.now(UTC)


def test_secret_keys_are_redacted_on_every_line_whatever_came_before() -> None:
    """A line with a secret-named field is redacted even after many lines of the same shape without it."""
    stream = io.StringIO()
    configure_logging("json", "INFO", stream)
    log = bound_logger("receiver.test")
    for _ in range(3):
        log.info("call", path="/v2/meetings", status=200)
    log.info("call", path="/v2/meetings", status=200, authorization="Basic c2VjcmV0")
    log.info("call", path="/v2/meetings", status=200, nested={"api_key": "k-123456", "ok": "yes"})
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert lines[3]["authorization"] == "[redacted]"
    assert lines[4]["nested"] == {"api_key": "[redacted]", "ok": "yes"}
    assert "c2VjcmV0" not in stream.getvalue() and "k-123456" not in stream.getvalue()


def test_request_line_writer_matches_structlog_and_follows_configuration() -> None:
    """log_line (the per-request line) writes what the structlog logger writes: the same keys, redaction of
    secret keys and registered secrets, the level filter; under another structlog configuration it goes
    through structlog."""
    import structlog

    from receiver.logging_setup import log_line, register_secret

    register_secret("sk_live_LOGLINE123")
    ours, theirs = io.StringIO(), io.StringIO()
    configure_logging("json", "INFO", ours)
    fields = {"path": "/webhooks/dyte", "detail": "key sk_live_LOGLINE123 used", "api_key": "k", "status": 200}
    log_line("receiver.web.app", "info", "request", dict(fields))
    log_line("receiver.web.app", "debug", "request", dict(fields))  # below INFO: not written
    configure_logging("json", "INFO", theirs)
    bound_logger("receiver.web.app").info("request", **fields)
    [fast] = [json.loads(line) for line in ours.getvalue().splitlines()]
    [slow] = [json.loads(line) for line in theirs.getvalue().splitlines()]
    assert fast.keys() == slow.keys()
    assert {k: v for k, v in fast.items() if k != "timestamp"} == {k: v for k, v in slow.items() if k != "timestamp"}
    assert fast["detail"] == "key [redacted] used" and fast["api_key"] == "[redacted]" and fast["level"] == "info"
    assert fast["timestamp"].endswith("Z")

    captured: list[dict] = []

    def capture(_logger, _method, event_dict):
        captured.append(dict(event_dict))
        raise structlog.DropEvent

    structlog.configure(processors=[capture])
    log_line("receiver.web.app", "info", "request", {"n": 1})
    assert [(e["event"], e["n"]) for e in captured] == [("request", 1)]
