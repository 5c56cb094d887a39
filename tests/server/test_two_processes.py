"""Two real server processes sharing one store and one Redis cache.

``alphanode serve`` twice (``python -m server.cli serve``), configured only by the
environment (ALPHANODE_DATABASE_URL, ALPHANODE_REDIS_URL, ALPHANODE_REDIS_PREFIX),
spoken to over sockets. A page read through one is a hit on the other; a write
through one reaches readers of the other within a second; and it purges only what
it changed: a page unrelated to the edited post stays cached.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import httpx2

from tests.factories import import_paths
from tests.parts.processes import SHUTDOWN_TIMEOUT, free_port, start_server, wait_until_healthy
from tests.server.caching import (
    PURGE_DEADLINE,
    REDIS_URL,
    cache_of,
    create_editor,
    delete_redis_keys,
    page,
    pick_trio,
    redis_key_count,
    title_of,
    update_title,
)


@contextlib.contextmanager
def servers(env: dict[str, str], logs: list[Path]) -> Iterator[list[httpx2.Client]]:
    """``alphanode serve`` once per log file, each on a free port with this environment, started together;
    a client for each; all stopped (SIGTERM) and their output files closed at the end."""
    started: list[tuple[subprocess.Popen[bytes], IO[bytes], str]] = []
    try:
        for log in logs:
            port = free_port()
            out: IO[bytes] = log.open("wb")
            process = start_server(port, env=env, output=out)
            started.append((process, out, f"http://127.0.0.1:{port}"))
        with contextlib.ExitStack() as stack:
            clients = []
            for (process, _, base), log in zip(started, logs, strict=True):
                assert wait_until_healthy(base, process).status_code == 200, log.read_text()
                clients.append(stack.enter_context(httpx2.Client(base_url=base, timeout=10.0)))
            yield clients
    finally:
        for process, _, _ in started:
            if process.poll() is None:
                process.terminate()
        for process, out, _ in started:
            try:
                process.communicate(timeout=SHUTDOWN_TIMEOUT)
            except subprocess.TimeoutExpired:
                process.kill()
                process.communicate()
            out.close()


def test_a_write_through_one_process_reaches_the_other_within_a_second(
    database_url: str, corpus: Path, tmp_path: Path
) -> None:
    import_paths(database_url, corpus)
    token = create_editor(database_url)
    trio = pick_trio(database_url)
    prefix = f"alphanode-test-{uuid.uuid4().hex}:"
    env = {k: v for k, v in os.environ.items() if not k.startswith("ALPHANODE_")}
    env |= {
        "ALPHANODE_DATABASE_URL": database_url,
        "ALPHANODE_REDIS_URL": REDIS_URL,
        "ALPHANODE_REDIS_PREFIX": prefix,
        "ALPHANODE_LOG_LEVEL": "warning",
    }
    try:
        with servers(env, [tmp_path / "one.log", tmp_path / "two.log"]) as (one, two):
            # A's page read through process 1, then through process 2: the cache is shared.
            first = page(one, trio.a)
            assert cache_of(first) == "miss"
            second = page(two, trio.a)
            assert cache_of(second) == "hit"
            assert second.content == first.content
            # B's page is cached too.
            assert cache_of(page(two, trio.b)) in ("miss", "hit")
            b_cached = page(two, trio.b)
            assert cache_of(b_cached) == "hit"

            # A query registered through one process runs by hash through the other.
            query = "query Shared { posts(first: 1) { totalCount } }"
            persisted = {"persistedQuery": {"version": 1, "sha256Hash": hashlib.sha256(query.encode()).hexdigest()}}
            registered = one.post("/graphql", json={"query": query, "extensions": persisted})
            assert registered.status_code == 200
            by_hash = two.get("/graphql", params={"extensions": json.dumps(persisted)})
            assert by_hash.json() == registered.json()

            # When an editor changes A's title through process 1.
            new_title = f"written through process one {uuid.uuid4().hex[:8]}"
            update_title(one, token, trio.a, new_title)
            written = time.monotonic()
            # Then process 2 serves the new title within a second.
            while True:
                response = page(two, trio.a)
                if title_of(response) == new_title:
                    break
                assert time.monotonic() - written < PURGE_DEADLINE, "process 2 still serves the old page after 1 s"
                time.sleep(0.02)
            took = time.monotonic() - written
            assert took <= PURGE_DEADLINE, took
            # And B's page, unrelated to A, is still served from the cache.
            response = page(two, trio.b)
            assert cache_of(response) == "hit"
            assert response.content == b_cached.content
            assert cache_of(page(one, trio.b)) == "hit"
        for name in ("one.log", "two.log"):
            log = (tmp_path / name).read_text(errors="replace")
            assert "Traceback" not in log, log
        assert redis_key_count(prefix) > 0  # the processes did share Redis
    finally:
        delete_redis_keys(prefix)
