"""An independent load generator for ``receiver bench ingest --wrk``: `wrk <https://github.com/wg/wrk>`_ with a Lua script.

What the script does (:data:`_SCRIPT`): at start, each wrk thread reads the
pre-signed pool from a data file (one ``signature<TAB>body`` line per body,
the bodies compact JSON, so without TAB or newline); every request takes the
next body of the pool round-robin (continuing where the previous invocation
stopped; each thread starting at its own offset) and
gets a new ``dyte-uuid`` ``<run>-wrk<invocation>-<thread>-<counter>``. A body
sent again under a new uuid is a *replay* for the receiver: answered 200, no
new row, the stored row's ``duplicate_count`` raised (the inbox stores one
body once). At the end the script prints one ``WRK_JSON`` line: requests,
non-2xx/3xx answers, socket errors and latency percentiles (microseconds).

wrk knows no warm-up: a separate unmeasured invocation runs first. Its
deliveries count as acknowledged too (durability is checked over both).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from receiver.devtools.bench.loadgen import LoadResult
from receiver.devtools.bench.payloads import BENCH_WEBHOOK_ID
from receiver.devtools.bench.stats import LatencySummary

__all__ = ["wrk_path", "WrkLoad", "WrkResult", "parse_wrk_output"]

_SCRIPT = r"""
local run, path, data = "%(run)s", "%(path)s", "%(data)s"
local bodies, sigs, n = {}, {}, 0
local counter, offset = 0, 0
local nthreads = 0

function setup(thread)
  nthreads = nthreads + 1
  thread:set("tid", nthreads)
end

function init(args)
  invocation = args[1] or "0"
  for line in io.lines(data) do
    local tab = line:find("\t", 1, true)
    n = n + 1
    sigs[n] = line:sub(1, tab - 1)
    bodies[n] = line:sub(tab + 1)
  end
  -- Continue the rotation where the previous invocation stopped; threads start apart.
  offset = tonumber(args[2] or "0") + ((tid or 1) - 1) * 7919
  wrk.headers["content-type"] = "application/json"
  wrk.headers["dyte-webhook-id"] = "%(webhook_id)s"
end

function request()
  counter = counter + 1
  local i = ((counter - 1 + offset) %% n) + 1
  wrk.headers["dyte-uuid"] = run .. "-wrk" .. invocation .. "-" .. (tid or 1) .. "-" .. counter
  wrk.headers["dyte-signature"] = sigs[i]
  return wrk.format("POST", path, nil, bodies[i])
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRK_JSON {"requests":%%d,"duration_us":%%d,"non_2xx":%%d,"connect":%%d,"read":%%d,"write":%%d,"timeout":%%d,' ..
    '"p50":%%d,"p90":%%d,"p99":%%d,"p999":%%d,"max":%%d,"mean":%%f}\n',
    summary.requests, summary.duration, e.status, e.connect, e.read, e.write, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency:percentile(99.9),
    latency.max, latency.mean))
end
"""


def wrk_path() -> str | None:
    """The ``wrk`` executable on PATH, or None."""
    return shutil.which("wrk")


@dataclass
class WrkResult(LoadResult):
    """A :class:`LoadResult` from wrk: counts, no per-request samples (wrk keeps its own histogram).

    ``summaries``: the latency percentiles of each measured invocation (ms); ``acked_count``:
    2xx answers of every invocation, warm-up included.
    """

    summaries: list[LatencySummary] = field(default_factory=list)
    acked_count: int = 0
    requests: int = 0  # answered, warm-up included

    def extend(self, other: LoadResult) -> None:
        """Add a later round (its window, counts and latency summary)."""
        super().extend(other)
        if isinstance(other, WrkResult):
            self.summaries.extend(other.summaries)
            self.acked_count += other.acked_count
            self.requests += other.requests

    def latency(self) -> LatencySummary:
        """Latency over the rounds: each percentile is the worst round's (wrk gives no samples to pool)."""
        if not self.summaries:
            return LatencySummary(0, float("nan"), float("nan"), float("nan"), float("nan"), float("nan"), float("nan"))
        s = self.summaries
        total = sum(x.count for x in s)
        return LatencySummary(
            count=total,
            p50_ms=max(x.p50_ms for x in s),
            p90_ms=max(x.p90_ms for x in s),
            p99_ms=max(x.p99_ms for x in s),
            p999_ms=max(x.p999_ms for x in s),
            max_ms=max(x.max_ms for x in s),
            mean_ms=sum(x.mean_ms * x.count for x in s) / total if total else float("nan"),
        )


def parse_wrk_output(output: str, *, measured: bool = True) -> WrkResult:
    """The :class:`WrkResult` of one wrk invocation from its output (the script's ``WRK_JSON`` line).

    ``measured`` False (a warm-up): only the acknowledged count is kept.

    Raises:
        RuntimeError: no ``WRK_JSON`` line (wrk failed; its output is quoted).
    """
    line = next((x for x in output.splitlines() if x.startswith("WRK_JSON ")), None)
    if line is None:
        raise RuntimeError(f"wrk printed no result:\n{output[-2000:]}")
    data = json.loads(line[len("WRK_JSON ") :])
    requests, non_2xx = int(data["requests"]), int(data["non_2xx"])
    result = WrkResult(acked_count=requests - non_2xx, requests=requests)
    if not measured:
        return result
    result.window_seconds = data["duration_us"] / 1e6
    result.wall_seconds = result.window_seconds
    result.completed = requests
    result.sent = requests
    result.statuses[200] = requests - non_2xx  # wrk tells 2xx/3xx from the rest, not each status
    for kind in ("non_2xx", "connect", "read", "write", "timeout"):
        if data[kind]:
            result.errors[kind.replace("_", "-")] += int(data[kind])
    ms = 1000.0
    result.summaries.append(
        LatencySummary(
            count=requests,
            p50_ms=data["p50"] / ms,
            p90_ms=data["p90"] / ms,
            p99_ms=data["p99"] / ms,
            p999_ms=data["p999"] / ms,
            max_ms=data["max"] / ms,
            mean_ms=data["mean"] / ms,
        )
    )
    return result


class WrkLoad:
    """Drives one target with wrk: ``load(host, port, duration, warmup)`` per round.

    Args:
        workdir: where the data file and the script are written.
        bodies, signatures: the pre-signed pool.
        connections: keep-alive connections; ``threads``: wrk threads (1 leaves the cores to the servers).
        run_id: prefix of every ``dyte-uuid``; ``path``: the URL path.
    """

    def __init__(
        self,
        workdir: Path,
        bodies: list[bytes],
        signatures: list[str],
        *,
        connections: int,
        run_id: str,
        path: str = "/webhooks/dyte",
        threads: int = 1,
        webhook_id: str = BENCH_WEBHOOK_ID,
    ) -> None:
        executable = wrk_path()
        if executable is None:
            raise RuntimeError("wrk is not installed (apt-get install wrk)")
        self.executable = executable
        self.connections = connections
        self.threads = min(threads, connections)
        self.run_id = run_id
        data = workdir / f"wrk-{run_id}.tsv"
        with open(data, "wb") as out:
            for body, signature in zip(bodies, signatures, strict=True):
                if b"\t" in body or b"\n" in body:
                    raise ValueError("wrk bodies must be compact JSON (no TAB or newline)")
                out.write(signature.encode("ascii") + b"\t" + body + b"\n")
        self.script = workdir / f"wrk-{run_id}.lua"
        self.script.write_text(_SCRIPT % {"run": run_id, "path": path, "data": str(data), "webhook_id": webhook_id})
        self.invocations = 0
        self.requests = 0  # answered so far: where the next invocation continues the pool's rotation

    def _run(self, host: str, port: int, seconds: float, measured: bool) -> WrkResult:
        self.invocations += 1
        argv = [
            self.executable,
            f"-t{self.threads}",
            f"-c{self.connections}",
            f"-d{max(1, round(seconds))}s",
            "--timeout",
            "10s",
            "-s",
            str(self.script),
            f"http://{host}:{port}/",
            "--",
            f"{self.invocations:03d}",
            str(self.requests),
        ]
        started = time.perf_counter()
        done = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 60, check=False)
        result = parse_wrk_output(done.stdout + done.stderr, measured=measured)
        # Requests in flight when wrk stops are answered but not counted: skip past them too.
        self.requests += result.requests + self.connections
        result.wall_seconds = time.perf_counter() - started if measured else 0.0
        return result

    def load(self, host: str, port: int, *, duration: float, warmup: float) -> WrkResult:
        """One round: ``warmup`` seconds unmeasured (when > 0), then ``duration`` seconds measured."""
        result = WrkResult()
        if warmup > 0:
            warm = self._run(host, port, warmup, measured=False)
            result.acked_count += warm.acked_count
            result.requests += warm.requests
        result.extend(self._run(host, port, duration, measured=True))
        return result

    def delivery_prefix(self) -> str:
        """What every ``dyte-uuid`` this generator sends starts with."""
        return f"{self.run_id}-wrk"
