"""A private PostgreSQL cluster for one test: stopped and started at will, removed afterwards.

The binaries are the installed server's (``pg_config --bindir``). The cluster lives in a
folder of its own, owned by the ``postgres`` user (the server refuses to run as root: it is
run with ``runuser -u postgres``), listens on 127.0.0.1 alone, on a free port, with its unix
socket in that folder and trust authentication. ``initdb`` runs once per test session; each
cluster is a copy of that one. The machine's shared server (127.0.0.1:5432) is never touched.

    with PrivatePostgres.create(template) as pg:
        url = pg.url("alphanode")
        pg.stop()     # fast shutdown: sessions are ended, the port refuses connections
        pg.start()    # same port, same data
        replica = pg.streaming_replica(apply_delay=2.0)   # a hot standby of it, 2 s behind
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import asyncpg

from tests.parts.processes import FolderPart, free_port

OWNER = "postgres"
SHARED_PORT = 5432  # the machine's own server: never ours
START_TIMEOUT = 30
STOP_TIMEOUT = 30
T = TypeVar("T")


def bindir() -> Path:
    """The folder of the installed server's programs."""
    found = subprocess.run(["pg_config", "--bindir"], capture_output=True, text=True, check=True).stdout.strip()
    return Path(found)


def available() -> str | None:
    """None when a private cluster can be made here; otherwise why not (a reason to skip)."""
    if os.geteuid() != 0:
        return "a private PostgreSQL cluster needs root (to run the server as the postgres user)"
    try:
        pwd.getpwnam(OWNER)
        programs = bindir()
    except (KeyError, OSError, subprocess.CalledProcessError):
        return "no PostgreSQL server installed (pg_config, the postgres user)"
    if not (programs / "initdb").exists() or not shutil.which("runuser"):
        return "no initdb or runuser"
    return None


def _as_owner(*command: str | Path, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["runuser", "-u", OWNER, "--", *map(str, command)],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=True,
    )


def _chown(folder: Path) -> None:
    owner = pwd.getpwnam(OWNER)
    for path in (folder, *folder.rglob("*")):
        os.lchown(path, owner.pw_uid, owner.pw_gid)


def _new_folder(label: str) -> Path:
    """A folder the postgres user can reach: pytest's own temporary folders are private to root."""
    folder = Path(tempfile.mkdtemp(prefix=f"alphanode-{label}-"))
    folder.chmod(0o700)
    _chown(folder)
    return folder


def make_template() -> Path:
    """``initdb`` once: a cluster's data folder to copy for each test (remove it when done)."""
    folder = _new_folder("pg-template")
    data = folder / "data"
    _as_owner(
        bindir() / "initdb",
        "-D",
        data,
        "-U",
        "postgres",
        "-A",
        "trust",
        "-E",
        "UTF8",
        "--locale=C",
        "--no-sync",
    )
    settings = {
        "listen_addresses": "'127.0.0.1'",
        "fsync": "off",  # a test cluster: a clean shutdown writes everything, a crash of the machine loses it
        "synchronous_commit": "off",
        "full_page_writes": "off",
        "shared_buffers": "'32MB'",
        "max_connections": "60",
        "log_min_messages": "warning",
    }
    with (data / "postgresql.conf").open("a", encoding="utf-8") as conf:
        conf.write("\n# private test cluster\n")
        conf.writelines(f"{name} = {value}\n" for name, value in settings.items())
    return folder


@contextlib.contextmanager
def filled_template(database: str, fill: Callable[[str], T]) -> Iterator[tuple[Path, T]]:
    """A stopped cluster's folder (a template for ``PrivatePostgres.create``) with ``database``
    made and filled by ``fill(its URL)``, and what ``fill`` returned; removed afterwards."""
    folder = make_template()
    try:
        pg = PrivatePostgres(folder, free_port())
        pg.start()
        try:
            pg.execute(f"CREATE DATABASE {database}")
            made = fill(pg.url(database))
        finally:
            pg.stop()
        yield folder, made
    finally:
        shutil.rmtree(folder, ignore_errors=True)


class PrivatePostgres(FolderPart):
    """One private cluster: its folder, port and postmaster."""

    def __init__(self, folder: Path, port: int) -> None:
        self.folder = folder
        self.data = folder / "data"
        self.port = port
        self.log = folder / "server.log"
        self.host = "127.0.0.1"

    @classmethod
    def create(cls, template: Path | None = None) -> PrivatePostgres:
        """A cluster copied from ``template`` (``make_template()``'s folder), or made afresh; started."""
        folder = _new_folder("pg")
        source = template if template is not None else make_template()
        try:
            shutil.copytree(source / "data", folder / "data", symlinks=True)
        finally:
            if template is None:
                shutil.rmtree(source, ignore_errors=True)
        (folder / "data").chmod(0o700)
        _chown(folder)
        pg = cls(folder, free_port())
        try:
            pg.start()
        except BaseException:
            pg.remove()
            raise
        return pg

    def streaming_replica(self, apply_delay: float = 0.0) -> PrivatePostgres:
        """A hot-standby replica of this running cluster (``pg_basebackup -R``), streaming from it; started.

        ``apply_delay`` seconds (``recovery_min_apply_delay``) pass between a commit on this
        cluster and its replay there: the replica lags for certain.
        """
        folder = _new_folder("pg-replica")
        replica = PrivatePostgres(folder, free_port())
        try:
            _as_owner(
                bindir() / "pg_basebackup",
                "-h",
                self.host,
                "-p",
                str(self.port),
                "-U",
                "postgres",
                "-D",
                replica.data,
                "-R",  # standby.signal and primary_conninfo: a streaming replica
                "-X",
                "stream",
                "--checkpoint=fast",
                "--no-sync",
                timeout=START_TIMEOUT * 2,
            )
            settings = {"hot_standby": "on", "recovery_min_apply_delay": f"'{round(apply_delay * 1000)}ms'"}
            with (replica.data / "postgresql.auto.conf").open("a", encoding="utf-8") as conf:
                conf.writelines(f"{name} = {value}\n" for name, value in settings.items())
            replica.start()
        except BaseException:
            replica.remove()
            raise
        return replica

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@{self.host}:{self.port}/{database}"

    def start(self) -> None:
        """Start the server on its port and data; returns once it accepts connections."""
        options = f"-p {self.port} -c unix_socket_directories={self.folder}"
        _as_owner(
            bindir() / "pg_ctl",
            "start",
            "-D",
            self.data,
            "-l",
            self.log,
            "-w",
            "-t",
            str(START_TIMEOUT),
            "-o",
            options,
            timeout=START_TIMEOUT + 10,
        )

    def stop(self, mode: str = "fast") -> None:
        """Stop the server: ``fast`` ends every session first; ``immediate`` as if it crashed."""
        _as_owner(bindir() / "pg_ctl", "stop", "-D", self.data, "-m", mode, "-w", "-t", str(STOP_TIMEOUT))

    def pid(self) -> int | None:
        """The postmaster's process id, while it runs."""
        try:
            first = (self.data / "postmaster.pid").read_text().split("\n", 1)[0]
            pid = int(first)
            os.kill(pid, 0)
        except (OSError, ValueError):
            return None
        return pid

    def running(self) -> bool:
        return self.pid() is not None

    def execute(self, statement: str, database: str = "postgres") -> None:
        """One statement on the cluster (CREATE DATABASE, say)."""

        async def run() -> None:
            conn = await asyncpg.connect(self.url(database), timeout=10)
            try:
                await conn.execute(statement)
            finally:
                await conn.close()

        asyncio.run(run())

    def backends(self, database: str) -> list[tuple[str, str]]:
        """(state, query) of the client sessions on ``database`` other than this one's."""

        async def run() -> list[tuple[str, str]]:
            conn = await asyncpg.connect(self.url("postgres"), timeout=10)
            try:
                rows = await conn.fetch(
                    "SELECT coalesce(state, ''), coalesce(query, '') FROM pg_stat_activity "
                    "WHERE datname = $1 AND backend_type = 'client backend' AND pid <> pg_backend_pid()",
                    database,
                )
                return [(row[0], row[1]) for row in rows]
            finally:
                await conn.close()

        return asyncio.run(run())

    def _signal_and_wait(self, pid: int, sig: signal.Signals, seconds: float) -> bool:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return True
            time.sleep(0.05)
        return False

    def remove(self) -> None:
        """Stop the server by its process id (fast shutdown, then SIGKILL) and remove the folder."""
        pid = self.pid()
        if pid is not None and not self._signal_and_wait(pid, signal.SIGINT, STOP_TIMEOUT):
            self._signal_and_wait(pid, signal.SIGKILL, 5)
        shutil.rmtree(self.folder, ignore_errors=True)
