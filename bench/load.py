"""Serving and loading: uvicorn in a subprocess, wrk against it, the server's memory.

The server is ``python -m uvicorn --factory APP`` with one worker and no
access log, on a free port of 127.0.0.1, its store given by
``ALPHANODE_DATABASE_URL``. The load generator is wrk with a generated Lua
script that POSTs the prepared JSON bodies in turn (each connection's
requests rotate through the whole list) and prints its figures as one JSON
line from ``done()``. Memory is the server process's ``VmRSS`` (now) and
``VmHWM`` (peak since start) from ``/proc/<pid>/status``.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import orjson
import psutil

ROOT = Path(__file__).resolve().parents[1]
GRAPHQL_APP = "server.app:create_app"
HANDWRITTEN_APP = "bench.handwritten:create_app"
PATH = "/graphql"
WRK_MARK = "WRK_JSON "


class WrkMissing(RuntimeError):
    pass


def wrk_version() -> str:
    """wrk's version line; WrkMissing with how to install it when it is not there."""
    wrk = shutil.which("wrk")
    if wrk is None:
        raise WrkMissing(
            "the benchmark needs the wrk load generator: install it with `apt-get install -y wrk` "
            "(Debian/Ubuntu) or `brew install wrk` (macOS), or build it from https://github.com/wg/wrk"
        )
    done = subprocess.run([wrk, "--version"], capture_output=True, text=True, check=False)
    first_line = (done.stdout or done.stderr).splitlines()[0]
    return first_line.split(" [")[0].strip()  # "wrk 4.1.0 [epoll] Copyright ..." -> "wrk 4.1.0"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True, slots=True)
class Memory:
    rss_mib: float  # resident now
    hwm_mib: float  # resident at the peak so far
    anon_mib: float  # of the resident now: the process's own memory (heap, stacks)
    file_mib: float  # of the resident now: mapped files (libraries and SQLite's memory-mapped store)


def memory(pid: int) -> Memory:
    """The process's resident set now and at its peak, from /proc/<pid>/status."""
    fields: dict[str, float] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmRSS", "VmHWM", "RssAnon", "RssFile"):
            fields[name] = round(int(value.split()[0]) / 1024, 1)  # kB -> MiB
    return Memory(fields["VmRSS"], fields["VmHWM"], fields["RssAnon"], fields["RssFile"])


def cpu_seconds(pid: int) -> float:
    """User and system CPU time the process has used, from /proc/<pid>/stat."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime (fields 14, 15)


@dataclass(slots=True)
class Server:
    app: str
    port: int
    process: subprocess.Popen[bytes]

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}{PATH}"

    def memory(self) -> Memory:
        return memory(self.pid)

    def cpu_seconds(self) -> float:
        return cpu_seconds(self.pid)

    def post(self, payload: bytes) -> tuple[int, bytes]:
        """One request outside the load (checks, warming the caches)."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        try:
            conn.request("POST", PATH, body=payload, headers={"Content-Type": "application/json"})
            response = conn.getresponse()
            return response.status, response.read()
        finally:
            conn.close()


def _healthy(port: int) -> bool:
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
        conn.request("GET", "/healthz")
        status = conn.getresponse().status
        conn.close()
    except OSError:
        return False
    return status == 200


@contextmanager
def serve(
    app: str, database_url: str, log: Path, startup_timeout: float = 120.0, env: dict[str, str] | None = None
) -> Iterator[Server]:
    """Run ``app`` under uvicorn (one worker, no access log) until the block ends."""
    port = free_port()
    command = [
        sys.executable,
        "-m",
        "uvicorn",
        "--factory",
        app,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        "1",
        "--no-access-log",
        "--log-level",
        "warning",
    ]
    environment = {**os.environ, "ALPHANODE_DATABASE_URL": database_url, **(env or {})}
    with run_server(app, command, port, environment, log, startup_timeout) as server:
        yield server


@contextmanager
def run_server(
    name: str,
    command: list[str],
    port: int,
    env: dict[str, str],
    log: Path,
    startup_timeout: float = 120.0,
    *,
    ready: Callable[[int], bool] = _healthy,
    cwd: Path = ROOT,
    error: type[Exception] = RuntimeError,
) -> Iterator[Server]:
    """Run ``command`` (a server on ``port``) until the block ends, once ``ready(port)`` (by default:
    ``/healthz`` answers 200); ``error`` when it exits or does not answer in time.

    Stopped with SIGTERM (a supervisor stops its workers), then SIGKILL to whatever of its
    process tree is left, even when the block raises.
    """
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("wb") as output:
        process = subprocess.Popen(command, cwd=cwd, env=env, stdout=output, stderr=subprocess.STDOUT)
        server = Server(name, port, process)
        try:
            deadline = time.monotonic() + startup_timeout
            while not ready(port):
                if process.poll() is not None:
                    raise error(f"{name} exited with {process.returncode} on start; see {log}")
                if time.monotonic() > deadline:
                    raise error(f"{name} did not answer within {startup_timeout:.0f} s; see {log}")
                time.sleep(0.1)
            yield server
        finally:
            stop(process)


def stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM, then SIGKILL to what is left of the process and its children (a server's workers)."""
    if process.poll() is not None:
        return
    children: list[psutil.Process] = []
    with contextlib.suppress(psutil.Error):
        children = psutil.Process(process.pid).children(recursive=True)
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
    _, alive = psutil.wait_procs(children, timeout=10)
    for child in alive:
        with contextlib.suppress(psutil.Error):
            child.kill()


def _lua_string(data: bytes) -> str:
    """A Lua string literal for any bytes: printable ASCII as it is, everything else as a decimal escape."""
    out = []
    for byte in data:
        char = chr(byte)
        if char in ('"', "\\"):
            out.append("\\" + char)
        elif 32 <= byte < 127:
            out.append(char)
        else:
            out.append(f"\\{byte:03d}")
    return '"' + "".join(out) + '"'


_LUA = """-- Generated by bench/load.py: POST the prepared bodies in turn, report as JSON.
local bodies = {
%(bodies)s
}
local tokens = {
%(tokens)s
}
local prepared = {}
local next_index = 0

function init(args)
  for i, body in ipairs(bodies) do
    local headers = { ["Content-Type"] = "application/json" }
    if tokens[i] ~= "" then headers["Authorization"] = "Bearer " .. tokens[i] end
    prepared[i] = wrk.format("POST", nil, headers, body)
  end
end

function request()
  next_index = next_index %% #prepared + 1
  return prepared[next_index]
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '%(mark)s{"requests": %%d, "duration_us": %%d, "bytes": %%d, "p50_us": %%d, "p90_us": %%d, ' ..
    '"p99_us": %%d, "mean_us": %%.1f, "max_us": %%d, "connect_errors": %%d, "read_errors": %%d, ' ..
    '"write_errors": %%d, "status_errors": %%d, "timeouts": %%d}\\n',
    summary.requests, summary.duration, summary.bytes, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency.mean, latency.max, e.connect, e.read, e.write, e.status, e.timeout))
end
"""


def write_lua(path: Path, payloads: Sequence[bytes], tokens: Sequence[str] | None = None) -> Path:
    """The wrk script for these bodies; ``tokens`` (one per body, "" for none) become bearer tokens."""
    path.parent.mkdir(parents=True, exist_ok=True)
    listed = ",\n".join(f"  {_lua_string(p)}" for p in payloads)
    token_list = ",\n".join(f"  {_lua_string(t.encode())}" for t in (tokens or [""] * len(payloads)))
    path.write_text(_LUA % {"bodies": listed, "tokens": token_list, "mark": WRK_MARK}, encoding="ascii")
    return path


def metric(server: Server, name: str, labels: str) -> float:
    """One sample of the server's /metrics (0 when absent), such as a cache counter."""
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    try:
        conn.request("GET", "/metrics")
        text = conn.getresponse().read().decode()
    finally:
        conn.close()
    for line in text.splitlines():
        if line.startswith(f"{name}{{{labels}}} "):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


@dataclass(slots=True)
class WrkResult:
    requests: int
    seconds: float
    rps: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    mean_ms: float
    max_ms: float
    errors: int  # socket errors, timeouts and non-2xx/3xx responses

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def run_wrk(
    url: str, script: Path, seconds: float, connections: int, threads: int, log: Path | None = None
) -> WrkResult:
    """One wrk run; its figures from the script's ``done()``."""
    command = [
        "wrk",
        f"-t{threads}",
        f"-c{connections}",
        f"-d{max(1, round(seconds))}s",
        "--timeout",
        "30s",
        "--latency",
        "-s",
        str(script),
        url,
    ]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if log is not None:
        log.parent.mkdir(parents=True, exist_ok=True)
        log.write_text(f"$ {' '.join(command)}\n{done.stdout}{done.stderr}")
    lines = [line for line in done.stdout.splitlines() if line.startswith(WRK_MARK)]
    if done.returncode != 0 or not lines:
        raise RuntimeError(f"wrk failed ({done.returncode}):\n{done.stdout}{done.stderr}")
    raw = orjson.loads(lines[-1][len(WRK_MARK) :])
    seconds_run = raw["duration_us"] / 1e6
    errors = sum(raw[k] for k in ("connect_errors", "read_errors", "write_errors", "status_errors", "timeouts"))
    return WrkResult(
        requests=raw["requests"],
        seconds=round(seconds_run, 3),
        rps=round(raw["requests"] / seconds_run, 1) if seconds_run else 0.0,
        p50_ms=round(raw["p50_us"] / 1000, 2),
        p90_ms=round(raw["p90_us"] / 1000, 2),
        p99_ms=round(raw["p99_us"] / 1000, 2),
        mean_ms=round(raw["mean_us"] / 1000, 2),
        max_ms=round(raw["max_us"] / 1000, 2),
        errors=errors,
    )
