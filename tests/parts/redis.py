"""A private Redis server for a test: its own process, port and folder.

``RedisServer`` starts ``redis-server`` on a free port of 127.0.0.1 with its data in
a folder of the test (no snapshots; with ``persistent=True`` an append-only file
written on every command, so that what it held survives a restart), waits until it
answers PING, and stops it by its process id (SIGTERM, then SIGKILL). ``stop()`` and
``start()`` can be called again and again: the server comes back on the same port,
with the same folder. ``sleep(seconds)`` blocks it (``DEBUG SLEEP``), as a Redis that
answers too slowly would. The machine's shared Redis (port 6379) is never touched.
"""

from __future__ import annotations

import contextlib
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from tests.parts.processes import free_port, stop_process

REDIS_SERVER = "/usr/bin/redis-server"
REDIS_CLI = "/usr/bin/redis-cli"
STARTUP_TIMEOUT = 10.0
STOP_TIMEOUT = 10.0
SHARED_PORT = 6379


class RedisServer:
    """One private redis-server process (restartable on the same port and folder)."""

    def __init__(self, folder: Path, *, persistent: bool = False, port: int | None = None) -> None:
        self.folder = folder
        self.folder.mkdir(parents=True, exist_ok=True)
        self.persistent = persistent
        self.port = port or free_port()
        assert self.port != SHARED_PORT, "the machine's shared Redis is not for tests to stop"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """The URL the service is given."""
        return f"redis://127.0.0.1:{self.port}/0"

    def client(self, timeout: float = 5.0) -> redis.Redis:
        """A plain client of this server, which does not retry (close it after use)."""
        return redis.Redis(
            host="127.0.0.1",
            port=self.port,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            retry=Retry(NoBackoff(), 0),
        )

    def command(self) -> list[str]:
        """The redis-server command line."""
        persistence = ["--appendonly", "yes", "--appendfsync", "always"] if self.persistent else ["--appendonly", "no"]
        return [
            REDIS_SERVER,
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            *persistence,
            "--dir",
            str(self.folder),
            "--daemonize",
            "no",
            "--logfile",
            str(self.folder / "redis.log"),
            "--enable-debug-command",
            "local",
        ]

    def start(self) -> None:
        """Start the server and wait until it answers PING."""
        assert self.process is None, "already running"
        self.process = subprocess.Popen(self.command(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while True:
            if self.process.poll() is not None:
                log = (self.folder / "redis.log").read_text(errors="replace")[-2000:]
                self.process = None
                raise AssertionError(f"redis-server exited at start on port {self.port}: {log}")
            try:
                with self.client(timeout=0.5) as client:
                    if client.ping():
                        return
            except redis.exceptions.RedisError:
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise AssertionError(f"redis-server did not answer on port {self.port} within {STARTUP_TIMEOUT}s")
            time.sleep(0.02)

    def stop(self) -> None:
        """Stop the server: SIGTERM (it writes its append-only file), then SIGKILL if it lingers."""
        process, self.process = self.process, None
        if process is None:
            return
        stop_process(process, STOP_TIMEOUT)

    @property
    def running(self) -> bool:
        """Whether the process is alive."""
        return self.process is not None and self.process.poll() is None

    def sleep(self, seconds: float) -> subprocess.Popen[bytes]:
        """Block the server for ``seconds`` (``DEBUG SLEEP``), in the background; returns once it is blocked."""
        sleeper = subprocess.Popen(
            [REDIS_CLI, "-p", str(self.port), "DEBUG", "SLEEP", str(seconds)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while True:  # blocked once a PING goes unanswered
            try:
                with self.client(timeout=0.05) as client:
                    client.ping()
            except redis.exceptions.TimeoutError:
                return sleeper
            if time.monotonic() > deadline:
                raise AssertionError("DEBUG SLEEP did not block the server")
            time.sleep(0.01)

    def __enter__(self) -> RedisServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


@contextlib.contextmanager
def private_redis(folder: Path, *, persistent: bool = False) -> Iterator[RedisServer]:
    """A running private Redis in ``folder``, stopped afterwards whatever happens."""
    server = RedisServer(folder, persistent=persistent)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    """A private Redis without persistence, in the test's folder."""
    with private_redis(tmp_path / "redis") as server:
        yield server


@pytest.fixture
def persistent_redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    """A private Redis whose data survives a restart (an append-only file, written at every command)."""
    with private_redis(tmp_path / "redis-aof", persistent=True) as server:
        yield server
