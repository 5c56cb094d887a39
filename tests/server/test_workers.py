"""``alphanode serve --workers N``: several server processes on one port, as one instance.

Real parts only: the server is ``python -m server.cli serve --workers 2`` on a free port of
127.0.0.1, spoken to over sockets, its workers found among its children (psutil). Which
worker answered a request is read from the metrics each worker keeps in the instance's
metrics folder (``ALPHANODE_METRICS_DIR``, a file per worker and kind of metric, named by
its process id), never from a response: ``/metrics`` answers with the sum over workers,
whichever worker serves it. Requests go each on a new connection (no keep-alive), so that
the kernel hands them to either worker and a killed worker takes only the requests it was
answering with it.
"""

from __future__ import annotations

import signal
import socket
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psutil
import pytest

from tests.editing import small_corpus
from tests.factories import import_paths
from tests.parts.processes import (
    SHUTDOWN_TIMEOUT,
    free_port,
    start_server,
    stop_process,
    wait_until_healthy,
    worker_pids,
)
from tests.server.caching import (
    PURGE_DEADLINE,
    SEED_REFERENCE,
    create_editor,
    title_of,
    update_title,
)
from tests.server.instances import (
    RESPONSES,
    WORKERS,
    Load,
    cache_hits,
    check_only_its_requests_failed,
    check_the_metrics_kept_the_killed_workers_counts,
    clean_environment,
    instance,
    kill_a_worker,
    matches_workers,
    seed_page,
    title_in_store,
    until_every_worker_answers,
    value,
)


@pytest.fixture(scope="module")
def documents(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """20 synthesized documents and the seed document."""
    return small_corpus(tmp_path_factory.mktemp("documents"))


@pytest.fixture
def sqlite_store(tmp_path: Path, documents: Path) -> str:
    url = f"sqlite:///{tmp_path / 'store.db'}"
    import_paths(url, documents)
    return url


# -- the tests --------------------------------------------------------------------------------


def test_two_workers_answer_and_metrics_add_them_up(sqlite_store: str, tmp_path: Path) -> None:
    with instance(sqlite_store, tmp_path, seed_page) as served:
        # Two distinct processes, children of the server's, both alive and both answering.
        assert len(set(served.workers)) == WORKERS and served.process.pid not in served.workers
        assert worker_pids(served.process) == served.workers

        before = served.scrape()
        with ThreadPoolExecutor(4) as pool, served.client() as client:
            statuses = list(pool.map(lambda _: seed_page(client).status_code, range(40)))
        assert statuses == [200] * 40
        after = served.scrape()

        # /metrics counts every worker's responses, whichever worker answers the scrape: 40 more.
        total = value(after, "alphanode_responses", RESPONSES, status="200")
        assert total - value(before, "alphanode_responses", RESPONSES, status="200") == 40
        per_worker = {pid: served.responses(pid) for pid in served.workers}
        assert all(count > 0 for count in per_worker.values()), per_worker
        assert sum(per_worker.values()) == total
        # The histograms too: a count per response.
        duration = "alphanode_request_duration_seconds"
        assert value(after, duration, duration + "_count") == total

        # Each worker caches the page in its own cache: the instance's gauge is their sum.
        entries = "alphanode_response_cache_entries"
        held = {pid: value(served.of_worker(pid), entries, entries) for pid in served.workers}
        assert all(count >= 1 for count in held.values()), held
        assert value(after, entries, entries) == sum(held.values())
        # Whether the cache answers is one value for the instance, not one per worker.
        (up,) = after["alphanode_cache_up"].samples
        assert up.value == 1.0 and "pid" not in up.labels


def test_a_write_through_one_worker_is_served_by_every_worker_within_the_purge_deadline(
    sqlite_store: str, tmp_path: Path
) -> None:
    token = create_editor(sqlite_store)
    with instance(sqlite_store, tmp_path, seed_page) as served:
        # Given each worker has the post's page in its cache (each answered it from there).
        old = {title_of(r) for r in until_every_worker_answers(served, seed_page, counter=cache_hits)}
        assert len(old) == 1

        # When an editor changes the title through one of them.
        new = f"written through one worker {uuid.uuid4().hex[:8]}"
        with served.client() as client:
            update_title(client, token, SEED_REFERENCE, new)
        written = time.monotonic()

        # Then, within the purge deadline, reads say the old title or the new one (from a worker
        # that has not yet read the purge log)...
        early: list[str] = []
        with served.client() as client:
            while time.monotonic() - written < PURGE_DEADLINE:
                early.append(title_of(seed_page(client)))
        assert set(early) <= old | {new}
        assert early[-1] == new
        # ...and every read begun after it says the new one, from both workers.
        late = until_every_worker_answers(served, seed_page, at_least=40)
        assert {title_of(response) for response in late} == {new}
        # Each worker purged the post's keys from its cache, following the purge log.
        purged = "alphanode_cache_purged_keys"
        purges = {pid: value(served.of_worker(pid), purged, purged + "_total") for pid in served.workers}
        assert all(count >= 1 for count in purges.values()), purges
        before, scraped, after = matches_workers(served, purged, purged + "_total")
        assert before <= scraped <= after, (before, scraped, after)
    assert title_in_store(sqlite_store, SEED_REFERENCE) == new


@pytest.mark.parametrize("reuse_port", [False, True], ids=["shared-socket", "reuse-port"])
def test_a_worker_killed_under_load_takes_only_its_requests_and_is_replaced(
    database_url: str, documents: Path, tmp_path: Path, reuse_port: bool
) -> None:
    import_paths(database_url, documents)
    token = create_editor(database_url)
    with instance(database_url, tmp_path, seed_page, reuse_port=reuse_port) as served:
        counted = value(served.scrape(), "alphanode_responses", RESPONSES)
        with Load(served, token) as load:
            time.sleep(1.0)  # under load: both workers answering, one writing now and then
            writes_before = len(load.saved)
            # When one worker is killed, the supervisor starts another in its place, which answers in its turn.
            kill = kill_a_worker(served)
            time.sleep(1.0)
        served.workers = kill.workers
        check_only_its_requests_failed(load, kill, writes_before, reuse_port)
        check_the_metrics_kept_the_killed_workers_counts(served, load, kill, counted)

        # And a write after the kill commits, and every worker serves it within the purge deadline.
        final = f"written after the kill {uuid.uuid4().hex[:8]}"
        with served.client() as client:
            update_title(client, token, SEED_REFERENCE, final)
        time.sleep(PURGE_DEADLINE)
        late = until_every_worker_answers(served, seed_page, at_least=20)
        assert {title_of(response) for response in late} == {final}
    assert title_in_store(database_url, SEED_REFERENCE) == final


def test_each_worker_accepts_on_a_listening_socket_of_its_own(sqlite_store: str, tmp_path: Path) -> None:
    """SO_REUSEPORT (server/supervisor.py): connections opened all at once and kept, as a load
    generator or a proxy does, are spread over the workers by the kernel."""
    with instance(sqlite_store, tmp_path, seed_page, reuse_port=True) as served:
        port = int(served.base.rsplit(":", 1)[1])
        workers = [psutil.Process(pid) for pid in served.workers]
        # Given every worker listening on a socket of its own on the port...
        listening = [
            [c for c in worker.net_connections("tcp") if c.status == psutil.CONN_LISTEN and c.laddr.port == port]
            for worker in workers
        ]
        assert [len(sockets) for sockets in listening] == [1] * WORKERS, listening
        supervisor = psutil.Process(served.process.pid)
        assert not [c for c in supervisor.net_connections("tcp") if c.status == psutil.CONN_LISTEN]
        # ...when 24 connections are opened together and each sends a request, keeping it open...
        connections = [socket.create_connection(("127.0.0.1", port), timeout=10) for _ in range(24)]
        try:
            for conn in connections:
                conn.sendall(b"GET /healthz HTTP/1.1\r\nHost: test\r\n\r\n")
            for conn in connections:
                assert conn.recv(65536).startswith(b"HTTP/1.1 200")
            # ...then every worker holds some of them (all on one: 2 chances in 2**24).
            held = [
                sum(c.status == psutil.CONN_ESTABLISHED and c.laddr.port == port for c in w.net_connections("tcp"))
                for w in workers
            ]
        finally:
            for conn in connections:
                conn.close()
        assert sum(held) == 24 and min(held) > 0, held
        # And a second server started on the same port fails to start, as without SO_REUSEPORT.
        env = clean_environment(tmp_path / "second-metrics") | {"ALPHANODE_REUSE_PORT": "true"}
        with (tmp_path / "second.log").open("wb") as log:
            second = start_server(port, database_url=sqlite_store, env=env, output=log, workers=WORKERS)
            try:
                second.wait(timeout=60)
            finally:
                stop_process(second, SHUTDOWN_TIMEOUT)  # by its pid, and its workers, had it started
        told = (tmp_path / "second.log").read_text(errors="replace")
        assert second.returncode != 0 and "Address already in use" in told, told[-2000:]
        assert seed_page(served.client()).status_code == 200  # the first serves on


@pytest.mark.parametrize("workers", [1, 2])
def test_serve_removes_the_index_folder_it_made_when_stopped(sqlite_store: str, tmp_path: Path, workers: int) -> None:
    """The fact index's folder (a new temporary one by default) goes when SIGTERM stops the server."""
    temporary = tmp_path / "tmp"
    temporary.mkdir()
    env = clean_environment(tmp_path / "metrics") | {"TMPDIR": str(temporary)}
    with (tmp_path / "server.log").open("wb") as log:
        server = start_server(free_port(), database_url=sqlite_store, env=env, output=log, workers=workers)
        try:
            base = f"http://127.0.0.1:{server.args[server.args.index('--port') + 1]}"
            assert wait_until_healthy(base, server).status_code == 200
            made = list(temporary.glob("alphanode-index-*"))
            assert len(made) == 1 and any(made[0].rglob("meta.json")), made  # the index, shared through it
        finally:
            stop_process(server, SHUTDOWN_TIMEOUT)
    assert server.returncode in (0, -signal.SIGTERM), (tmp_path / "server.log").read_text()
    assert list(temporary.glob("alphanode-index-*")) == []
