"""A private PgBouncer for a test, in transaction pooling mode: its own process, port and folder.

``PrivatePgBouncer`` runs Debian's ``/usr/sbin/pgbouncer`` (``apt-get install pgbouncer``, which
``.ci/run`` does) on a free port of 127.0.0.1, in front of one PostgreSQL server (a private
cluster of ``tests/parts/postgres.py``), with ``pool_mode = transaction`` and a small pool: at
most ``pool_size`` server sessions for any number of clients, so that the clients' transactions
really take turns on the same few sessions. Its configuration, user list, log and pid file are in
a folder of its own owned by the ``postgres`` user: PgBouncer refuses to run as root, so it runs
as that user (``runuser -u postgres``), and is stopped by its process id. No start-up parameter
is ignored (``ignore_startup_parameters`` is left empty): a client that sends one PgBouncer does
not know of is refused, as by a managed pooler. The machine's own PgBouncer (port 6432, if its
package started one) is never touched.

    with PrivatePgBouncer.create(pg, pool_size=2) as bouncer:
        url = bouncer.url("alphanode")  # postgresql://postgres@127.0.0.1:<port>/alphanode
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from tests.parts.postgres import OWNER, PrivatePostgres, _chown
from tests.parts.processes import FolderPart, free_port, stop_process

PGBOUNCER = Path("/usr/sbin/pgbouncer")
SHARED_PORT = 6432  # the port of the machine's own PgBouncer, if any: never ours
START_TIMEOUT = 10.0
STOP_TIMEOUT = 10.0
# A client waits this long at most for a server session, then PgBouncer ends it with an error: a
# test whose clients wait for each other fails in seconds rather than hangs.
QUERY_WAIT_TIMEOUT = 20


def missing() -> str | None:
    """None when PgBouncer is installed; otherwise what to do about it (a reason to fail)."""
    if PGBOUNCER.exists():
        return None
    return (
        f"no PgBouncer at {PGBOUNCER}: install Debian's with `apt-get install -y --no-install-recommends pgbouncer` "
        "(.ci/run does)"
    )


class PrivatePgBouncer(FolderPart):
    """One pgbouncer process in front of one PostgreSQL server."""

    def __init__(self, folder: Path, pg: PrivatePostgres, port: int, pool_size: int) -> None:
        self.folder = folder
        self.pg = pg
        self.port = port
        self.pool_size = pool_size
        self.host = "127.0.0.1"
        self.config = folder / "pgbouncer.ini"
        self.log = folder / "pgbouncer.log"
        self.pidfile = folder / "pgbouncer.pid"
        self.process: subprocess.Popen[bytes] | None = None

    @classmethod
    def create(cls, pg: PrivatePostgres, pool_size: int = 2) -> PrivatePgBouncer:
        """A PgBouncer for ``pg``'s databases, started; at most ``pool_size`` server sessions a database."""
        folder = Path(tempfile.mkdtemp(prefix="alphanode-pgbouncer-"))
        folder.chmod(0o700)
        port = free_port()
        assert port != SHARED_PORT
        bouncer = cls(folder, pg, port, pool_size)
        try:
            bouncer.write_config()
            _chown(folder)
            bouncer.start()
        except BaseException:
            bouncer.remove()
            raise
        return bouncer

    def url(self, database: str) -> str:
        """The URL of ``database`` through PgBouncer (as PostgreSQL's own, another port)."""
        return f"postgresql://{OWNER}@{self.host}:{self.port}/{database}"

    def write_config(self) -> None:
        (self.folder / "userlist.txt").write_text(f'"{OWNER}" ""\n', encoding="utf-8")
        settings = {
            "listen_addr": self.host,
            "listen_port": str(self.port),
            "unix_socket_dir": "",  # TCP alone
            "auth_type": "trust",  # (the user must still be in auth_file)
            "auth_file": str(self.folder / "userlist.txt"),
            "pool_mode": "transaction",
            "default_pool_size": str(self.pool_size),
            "min_pool_size": "0",
            "reserve_pool_size": "0",
            "max_client_conn": "500",
            "query_wait_timeout": str(QUERY_WAIT_TIMEOUT),
            "logfile": str(self.log),
            "pidfile": str(self.pidfile),
            "admin_users": OWNER,
        }
        lines = [
            "[databases]",
            f"* = host={self.pg.host} port={self.pg.port}",
            "",
            "[pgbouncer]",
            *(f"{name} = {value}" for name, value in settings.items()),
        ]
        self.config.write_text("\n".join(lines) + "\n", encoding="utf-8")

    def start(self) -> None:
        """Start PgBouncer; returns once it accepts connections on its port."""
        assert self.process is None, "already running"
        self.process = subprocess.Popen(
            ["runuser", "-u", OWNER, "--", str(PGBOUNCER), "-q", str(self.config)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            if self.process.poll() is not None:
                self.process = None
                raise AssertionError(f"pgbouncer exited at start on port {self.port}: {self.log_tail()}")
            with contextlib.suppress(OSError), socket.create_connection((self.host, self.port), timeout=0.5):
                if self.pid() is not None:
                    return
            if time.monotonic() > deadline:
                self.stop()
                raise AssertionError(f"pgbouncer did not listen on port {self.port} within {START_TIMEOUT}s")
            time.sleep(0.05)

    def pid(self) -> int | None:
        """PgBouncer's own process id (from its pid file), while it runs."""
        try:
            pid = int(self.pidfile.read_text().strip())
            os.kill(pid, 0)
        except (OSError, ValueError):
            return None
        return pid

    def stop(self) -> None:
        """Stop PgBouncer by its process id: SIGTERM (immediate shutdown), then SIGKILL if it lingers."""
        process, self.process = self.process, None
        pid = self.pid()
        if pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
            deadline = time.monotonic() + STOP_TIMEOUT
            while self.pid() == pid and time.monotonic() < deadline:
                time.sleep(0.05)
            if self.pid() == pid:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        if process is not None:
            stop_process(process, STOP_TIMEOUT)  # runuser, which exits with it
