"""The peer: PostGraphile v4 on the benchmark's PostgreSQL store, installed, served and counted.

PostGraphile v4 builds a GraphQL schema by reflection over the tables and compiles
each query, nested relations included, into one SQL statement. It is what a frontend
team would put on this store instead of this API, so ``bench/peers.py`` measures it
beside the API and the hand-written endpoint. Its queries and the check that its
answers hold what the API's hold are in ``bench/peer_content.py``.

- **Install.** ``bench/postgraphile/package.json`` pins the version and
  ``package-lock.json`` locks the tree; :func:`ensure_installed` runs ``npm ci`` into
  that folder unless ``node_modules`` already holds the locked version.
- **Serve.** :func:`serve` starts ``postgraphile`` (its command line, under Node.js)
  on a free port of 127.0.0.1 with the options a production deployment would use
  (:data:`OPTIONS`), waits until it answers a query, and stops it by its process id.
- **Statements.** :func:`count_statements` counts what it sends, from its own log.
"""

from __future__ import annotations

import http.client
import json
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from bench import load

ROOT = Path(__file__).resolve().parents[1]
FOLDER = ROOT / "bench" / "postgraphile"
CLI = FOLDER / "node_modules" / "postgraphile" / "cli.js"
PACKAGE = "postgraphile"

# What a production deployment passes (the CLI's own [RECOMMENDED] flags, no GraphiQL, no
# query log, read-only): --simple-collections both gives plain lists for the relations,
# which the queries below use where the frontend needs no pagination.
OPTIONS = (
    "--schema",
    "public",
    "--disable-graphiql",
    "--dynamic-json",
    "--no-setof-functions-contain-nulls",
    "--simple-collections",
    "both",
    "--legacy-relations",
    "omit",
    "--disable-default-mutations",
    "--disable-query-log",
)

Data = dict[str, Any]


class PeerUnavailable(RuntimeError):
    """PostGraphile cannot be installed or started here (no Node.js or npm, say)."""


class ContentMismatch(AssertionError):
    """The two systems answered the same request with different content."""


# -- install -------------------------------------------------------------------------


def locked_version(folder: Path = FOLDER) -> str:
    """The PostGraphile version ``package-lock.json`` locks."""
    lock = json.loads((folder / "package-lock.json").read_text(encoding="utf-8"))
    return str(lock["packages"][f"node_modules/{PACKAGE}"]["version"])


def installed_version(folder: Path = FOLDER) -> str | None:
    manifest = folder / "node_modules" / PACKAGE / "package.json"
    if not manifest.exists():
        return None
    return str(json.loads(manifest.read_text(encoding="utf-8"))["version"])


def ensure_installed(folder: Path = FOLDER) -> str:
    """``npm ci`` into ``folder`` unless it already holds the locked version; returns the version."""
    wanted = locked_version(folder)
    if installed_version(folder) == wanted:
        return wanted
    npm = shutil.which("npm")
    if npm is None:
        raise PeerUnavailable("PostGraphile needs Node.js 18+ and npm: install them, then run the benchmark again")
    done = subprocess.run(
        [npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"],
        cwd=folder,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0 or installed_version(folder) != wanted:
        raise PeerUnavailable(f"npm ci in {folder} failed ({done.returncode}):\n{done.stdout}{done.stderr}")
    return wanted


# -- serve ---------------------------------------------------------------------------


def command(database_url: str, port: int) -> list[str]:
    node = shutil.which("node")
    if node is None:
        raise PeerUnavailable("PostGraphile needs Node.js 18+: install it, then run the benchmark again")
    connection = database_url.replace("postgresql+asyncpg://", "postgresql://")
    return [node, str(CLI), "--connection", connection, "--host", "127.0.0.1", "--port", str(port), *OPTIONS]


def _answers(port: int) -> bool:
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
        conn.request("POST", load.PATH, body=b'{"query":"{__typename}"}', headers={"Content-Type": "application/json"})
        status = conn.getresponse().status
        conn.close()
    except OSError:
        return False
    return status == 200


@contextmanager
def serve(
    database_url: str, log: Path, *, debug_sql: bool = False, startup_timeout: float = 60.0
) -> Iterator[load.Server]:
    """PostGraphile on a free port until the block ends; stopped by its process id.

    With ``debug_sql`` it logs every statement it sends to PostgreSQL (``DEBUG=postgraphile:postgres``)
    to ``log``: for counting them, not for measuring speed.
    """
    port = load.free_port()
    env = {**os.environ, "NODE_ENV": "production"}
    env.pop("DEBUG", None)
    if debug_sql:
        env["DEBUG"] = "postgraphile:postgres"
        env["DEBUG_COLORS"] = "0"
    with load.run_server(
        "postgraphile",
        command(database_url, port),
        port,
        env,
        log,
        startup_timeout,
        ready=_answers,
        cwd=FOLDER,
        error=PeerUnavailable,
    ) as server:
        yield server


SQL_LOG_MARK = " postgraphile:postgres "


def count_statements(server: load.Server, log: Path, payloads: list[bytes]) -> list[int]:
    """Statements each request made a ``debug_sql`` server send, read from its log after each answer."""
    counts = []
    with log.open("rb") as reading:
        reading.seek(0, os.SEEK_END)
        for payload in payloads:
            status, answer = server.post(payload)
            if status != 200 or b'"errors"' in answer:
                raise ContentMismatch(f"PostGraphile answered {status}: {answer[:500]!r}")
            # Node.js writes the line (to a file, synchronously) before it sends the statement.
            text = reading.read().decode("utf-8", "replace")
            if SQL_LOG_MARK not in text:
                time.sleep(0.2)
                text += reading.read().decode("utf-8", "replace")
            counts.append(sum(SQL_LOG_MARK in line for line in text.splitlines()))
    return counts
