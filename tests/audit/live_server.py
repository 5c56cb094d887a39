"""The real server for tests that speak to it from another program: ``alphanode serve`` under uvicorn.

``live_server(folder)`` imports the seed document into a new SQLite store in ``folder``,
serves it on a free loopback port and yields the base URL (``http://127.0.0.1:PORT``); on
leaving, it stops the server with SIGTERM. The GraphQL-over-HTTP audit and the browser test
of GraphiQL use it.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.conftest import ROOT, SEED_DOCUMENT
from tests.parts.processes import SHUTDOWN_TIMEOUT, free_port, start_server, stop_process, wait_until_healthy


@contextmanager
def live_server(folder: Path, settings: dict[str, str] | None = None) -> Iterator[str]:
    """The seed document served from a new store in ``folder``, with these ``ALPHANODE_*`` settings."""
    url = f"sqlite:///{folder / 'store.db'}"
    imported = subprocess.run(
        [sys.executable, "-m", "server.cli", "import", "--quiet", "--database", url, str(SEED_DOCUMENT)],
        cwd=ROOT,
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert imported.returncode == 0, imported.stderr.decode()
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log = folder / "server.log"
    with log.open("wb") as output:
        env = {**os.environ, **(settings or {})} if settings else None
        server = start_server(port, database_url=url, output=output, env=env)
    try:
        health = wait_until_healthy(base, server)
        assert health.status_code == 200, log.read_text()
        yield base
    finally:
        stop_process(server, SHUTDOWN_TIMEOUT)
    text = log.read_text(encoding="utf-8", errors="replace")
    assert "Traceback" not in text, text
