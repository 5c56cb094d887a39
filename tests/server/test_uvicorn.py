"""The real server: ``alphanode serve`` under uvicorn, spoken to over a socket, stopped with SIGTERM."""

from __future__ import annotations

import signal
import subprocess
import sys

import httpx2

from documents import parse, slug_for
from tests.conftest import OPERATIONS, ROOT, SEED_DOCUMENT
from tests.parts.processes import SHUTDOWN_TIMEOUT, free_port, start_server, wait_until_healthy


def test_serve_answers_the_post_page_over_a_socket_and_stops_cleanly_on_sigterm(database_url: str) -> None:
    # Given a store holding the seed document, imported with the CLI.
    url = database_url
    imported = subprocess.run(
        [sys.executable, "-m", "server.cli", "import", "--database", url, str(SEED_DOCUMENT)],
        cwd=ROOT,
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert imported.returncode == 0, imported.stderr.decode()
    assert b"1 created" in imported.stdout

    # When the server runs on a free port.
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    server = start_server(port, database_url=url)
    try:
        health = wait_until_healthy(base, server)
        assert health.status_code == 200
        assert health.json() == {"status": "ok", "database": "ok"}

        # Then the post page comes back over the socket.
        seed = parse(SEED_DOCUMENT.read_bytes())
        response = httpx2.post(
            f"{base}/graphql",
            json={
                "query": (OPERATIONS / "post-page.graphql").read_text(encoding="utf-8"),
                "operationName": "PostPage",
                "variables": {"slug": slug_for(seed)},
            },
            timeout=10.0,
        )
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("application/json")
        post = response.json()["data"]["post"]
        assert post["title"] == seed.title
        assert post["meta"]["reference"] == "anp-ref-001632-5801"

        # And SIGTERM stops it cleanly and promptly.
        server.send_signal(signal.SIGTERM)
        _, stderr = server.communicate(timeout=SHUTDOWN_TIMEOUT)
        log = stderr.decode()
        # uvicorn shuts down gracefully, then re-raises the signal it caught: the exit status says
        # "ended by SIGTERM" (-15), as for any program that does not handle it (uvicorn's capture_signals).
        assert server.returncode in (0, -signal.SIGTERM), log
        assert "Application shutdown complete." in log
        assert "Finished server process" in log
        assert "Traceback" not in log
        assert "ERROR" not in log
    finally:
        if server.poll() is None:
            server.kill()
        server.wait(timeout=SHUTDOWN_TIMEOUT)
        for pipe in (server.stdout, server.stderr):
            if pipe is not None:
                pipe.close()
