"""What every real part of the tests needs: a free port, a served API, and a process stopped by its id."""

from __future__ import annotations

import contextlib
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType
from typing import IO, Self

import httpx2
import psutil

from tests.conftest import ROOT

STARTUP_TIMEOUT = 20.0  # seconds for a started server to answer /healthz
SHUTDOWN_TIMEOUT = 10.0  # seconds for a process to exit after SIGTERM

# The machine's shared servers (PostgreSQL, Redis, and Varnish's where its package runs one):
# never a test's to take, stop or reconfigure.
SHARED_PORTS = frozenset({5432, 6379, 6081})


def free_port() -> int:
    """A TCP port of 127.0.0.1 that nothing listens on (now), never a shared server's."""
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind(("127.0.0.1", 0))
            port: int = sock.getsockname()[1]
        if port not in SHARED_PORTS:
            return port


class FolderPart:
    """A private server of a test that lives in a folder of its own, with a log there: stopped by
    its process id and its folder removed by ``remove()``, also when the ``with`` block fails."""

    folder: Path
    log: Path

    def stop(self) -> None:
        raise NotImplementedError

    def log_tail(self, size: int = 3000) -> str:
        """The end of the server's log, for a failing test's message."""
        try:
            return self.log.read_text(errors="replace")[-size:]
        except OSError:
            return "(no log)"

    def remove(self) -> None:
        """Stop it and remove its folder."""
        self.stop()
        shutil.rmtree(self.folder, ignore_errors=True)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.remove()


def stop_process(process: subprocess.Popen[bytes], timeout: float) -> None:
    """SIGTERM, then SIGKILL if it has not exited within ``timeout`` seconds; waits for it.

    Its children (a supervisor's workers) are found first and killed if still running after it:
    a supervisor killed with SIGKILL would leave them serving, orphaned.
    """
    children: list[psutil.Process] = []
    if process.poll() is None:
        with contextlib.suppress(psutil.Error):
            children = psutil.Process(process.pid).children(recursive=True)
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=timeout)
    _, alive = psutil.wait_procs(children, timeout=timeout)
    for child in alive:
        with contextlib.suppress(psutil.Error):
            child.kill()


def start_server(
    port: int,
    *,
    database_url: str | None = None,
    env: dict[str, str] | None = None,
    output: IO[bytes] | int | None = subprocess.PIPE,
    workers: int | None = None,
) -> subprocess.Popen[bytes]:
    """``alphanode serve`` (as ``python -m server.cli serve``) on ``port`` of 127.0.0.1, from the
    repository's root, with ``--workers`` when given; its standard error goes with its output to
    ``output`` unless that is a pipe. Stop it with :func:`stop_process`."""
    command = [sys.executable, "-m", "server.cli", "serve", "--port", str(port)]
    if database_url is not None:
        command += ["--database", database_url]
    if workers is not None:
        command += ["--workers", str(workers)]
    stderr = subprocess.PIPE if output == subprocess.PIPE else subprocess.STDOUT
    return subprocess.Popen(command, cwd=ROOT, env=env, stdout=output, stderr=stderr)


def wait_until_healthy(base: str, server: subprocess.Popen[bytes]) -> httpx2.Response:
    """The first answer of ``base``/healthz (any status), within ``STARTUP_TIMEOUT``; fails if the
    server exits first."""
    deadline = time.monotonic() + STARTUP_TIMEOUT
    with httpx2.Client(timeout=2.0) as client:
        while True:
            assert server.poll() is None, "the server exited before answering"
            try:
                return client.get(f"{base}/healthz")
            except httpx2.TransportError:
                if time.monotonic() > deadline:
                    raise AssertionError(f"no answer from {base}/healthz within {STARTUP_TIMEOUT}s") from None
                time.sleep(0.1)


def worker_pids(server: subprocess.Popen[bytes]) -> list[int]:
    """The worker processes of ``alphanode serve --workers N`` running now: the children uvicorn's
    supervisor (the server's own process) started through multiprocessing's spawn, by id."""
    found = []
    for child in psutil.Process(server.pid).children():
        try:
            if child.status() != psutil.STATUS_ZOMBIE and "spawn_main" in " ".join(child.cmdline()):
                found.append(child.pid)
        except psutil.NoSuchProcess:  # it ended meanwhile (ZombieProcess is one)
            continue
    return sorted(found)
