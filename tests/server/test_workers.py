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

import contextlib
import dataclasses
import glob
import itertools
import os
import signal
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx2
import psutil
import pytest
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import Connection, text

from server.cli import main
from tests.conftest import ROOT
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
    CONTENT_HASH,
    PURGE_DEADLINE,
    SEED_REFERENCE,
    UPDATE_TITLE,
    bearer,
    create_editor,
    on_store,
    page,
    post,
    title_of,
    update_title,
)

WORKERS = 2
RESPONSES = "alphanode_responses_total"
READY_TIMEOUT = 30.0  # seconds for every worker to answer (each loads the store's indexes first)
REPLACED_TIMEOUT = 30.0  # seconds for a killed worker's replacement to answer


@pytest.fixture(scope="module")
def documents(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """20 synthesized documents and the seed document."""
    return small_corpus(tmp_path_factory.mktemp("documents"))


@pytest.fixture
def sqlite_store(tmp_path: Path, documents: Path) -> str:
    url = f"sqlite:///{tmp_path / 'store.db'}"
    import_paths(url, documents)
    return url


# -- an instance and its workers ------------------------------------------------------------


@dataclasses.dataclass
class Instance:
    process: subprocess.Popen[bytes]
    base: str
    metrics_dir: Path
    workers: list[int]

    def client(self) -> httpx2.Client:
        """A client that opens a new connection for each request."""
        return httpx2.Client(base_url=self.base, timeout=10.0, limits=httpx2.Limits(max_keepalive_connections=0))

    def scrape(self) -> dict[str, Any]:
        """The metric families of /metrics, by name."""
        with self.client() as client:
            response = client.get("/metrics")
        assert response.status_code == 200, response.text
        return {family.name: family for family in text_string_to_metric_families(response.text)}

    def of_worker(self, pid: int) -> dict[str, Any]:
        """The metric families one worker wrote to the metrics folder, by name."""
        files = glob.glob(str(self.metrics_dir / f"*_{pid}.db"))
        return {metric.name: metric for metric in MultiProcessCollector.merge(files)}

    def responses(self, pid: int) -> float:
        """GraphQL responses of one worker, whatever their status."""
        return value(self.of_worker(pid), "alphanode_responses", RESPONSES)


def value(families: dict[str, Any], family: str, sample: str, **labels: str) -> float:
    """The sum of a family's samples of that name whose labels include ``labels`` (0 when none)."""
    found = families.get(family)
    if found is None:
        return 0.0
    return float(
        sum(s.value for s in found.samples if s.name == sample and all(s.labels.get(k) == v for k, v in labels.items()))
    )


def clean_environment(metrics_dir: Path) -> dict[str, str]:
    """This process's environment without ALPHANODE_* and Prometheus settings, with the instance's
    metrics folder; the repository's packages first on the path of the server and its workers."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("ALPHANODE_") and k.upper() not in ("PROMETHEUS_MULTIPROC_DIR", "PYTHONPATH")
    }
    env |= {"ALPHANODE_METRICS_DIR": str(metrics_dir), "ALPHANODE_LOG_LEVEL": "warning", "PYTHONPATH": str(ROOT)}
    return env


@contextlib.contextmanager
def instance(
    url: str, folder: Path, warm: Callable[[httpx2.Client], httpx2.Response], *, reuse_port: bool = False
) -> Iterator[Instance]:
    """``alphanode serve --workers 2`` on the store at ``url`` (with ``ALPHANODE_REUSE_PORT`` when
    ``reuse_port``), once each worker has answered ``warm`` (sent until they have); stopped with
    SIGTERM at the end, its log free of tracebacks."""
    metrics_dir = folder / "metrics"
    log_path = folder / "server.log"
    port = free_port()
    env = clean_environment(metrics_dir) | ({"ALPHANODE_REUSE_PORT": "true"} if reuse_port else {})
    with log_path.open("wb") as log:
        server = start_server(port, database_url=url, env=env, output=log, workers=WORKERS)
        try:
            started = Instance(server, f"http://127.0.0.1:{port}", metrics_dir, [])
            assert wait_until_healthy(started.base, server).status_code == 200, log_path.read_text()
            started.workers = worker_pids(server)
            assert len(started.workers) == WORKERS, (started.workers, log_path.read_text())
            until_every_worker_answers(started, warm)
            yield started
        finally:
            stop_process(server, SHUTDOWN_TIMEOUT)
    output = log_path.read_text(errors="replace")
    assert "Traceback" not in output, output
    assert server.returncode == 0, output  # the supervisor stopped its workers and exited


def until_every_worker_answers(
    instance: Instance,
    send: Callable[[httpx2.Client], httpx2.Response],
    *,
    at_least: int = 0,
    counter: Callable[[Instance, int], float] | None = None,
) -> list[httpx2.Response]:
    """``send`` from four threads at a time until each of the instance's workers has answered
    one more (or moved ``counter``, by worker) and at least ``at_least`` were sent; every response."""
    count = counter or (lambda served, pid: served.responses(pid))
    before = {pid: count(instance, pid) for pid in instance.workers}
    responses: list[httpx2.Response] = []
    deadline = time.monotonic() + READY_TIMEOUT
    with ThreadPoolExecutor(4) as pool, instance.client() as client:
        while True:
            responses += pool.map(lambda _: send(client), range(4))
            moved = all(count(instance, pid) > before[pid] for pid in instance.workers)
            if moved and len(responses) >= at_least:
                return responses
            assert time.monotonic() < deadline, f"not every worker moved within {READY_TIMEOUT}s"
            if not moved:
                time.sleep(0.05)  # a worker still starting, say: leave it the cores


def matches_workers(instance: Instance, family: str, sample: str) -> tuple[float, float, float]:
    """(the workers' sum before a scrape, the scrape's value, their sum after it): the scrape's lies
    between the two sums when it adds up the workers (purges may move them meanwhile)."""

    def workers_sum() -> float:
        return sum(value(instance.of_worker(pid), family, sample) for pid in instance.workers)

    before = workers_sum()
    scraped = value(instance.scrape(), family, sample)
    return before, scraped, workers_sum()


def cache_hits(instance: Instance, pid: int) -> float:
    return value(instance.of_worker(pid), "alphanode_response_cache", "alphanode_response_cache_total", result="hit")


def seed_page(client: httpx2.Client) -> httpx2.Response:
    response: httpx2.Response = page(client, SEED_REFERENCE)
    assert response.status_code == 200, response.text
    return response


def title_in_store(url: str, reference: str) -> str:
    def run(conn: Connection) -> str:
        found: str = conn.execute(text("SELECT title FROM post WHERE reference = :r"), {"r": reference}).scalar_one()
        return found

    title: str = on_store(url, run)
    return title


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


@dataclasses.dataclass(frozen=True)
class Outcome:
    """One request of the load: when it began, and its status or the error that ended it."""

    started: float
    status: int | None
    error: Exception | None = None


@pytest.mark.parametrize("reuse_port", [False, True], ids=["shared-socket", "reuse-port"])
def test_a_worker_killed_under_load_takes_only_its_requests_and_is_replaced(
    database_url: str, documents: Path, tmp_path: Path, reuse_port: bool
) -> None:
    import_paths(database_url, documents)
    token = create_editor(database_url)
    with instance(database_url, tmp_path, seed_page, reuse_port=reuse_port) as served:
        outcomes: list[Outcome] = []  # appended to by every load thread (one append is atomic)
        stop = threading.Event()

        def attempt(send: Callable[..., httpx2.Response], *args: Any, **kwargs: Any) -> httpx2.Response | None:
            started = time.monotonic()
            try:
                response = send(*args, **kwargs)
            except httpx2.TransportError as exc:
                outcomes.append(Outcome(started, None, exc))
                return None
            outcomes.append(Outcome(started, response.status_code))
            return response

        def read() -> None:
            with served.client() as client:
                while not stop.is_set():
                    attempt(page, client, SEED_REFERENCE)
                    time.sleep(0.005)

        saved: list[str] = []

        def write() -> None:
            editor = bearer(token)
            with served.client() as client:
                for n in itertools.count():
                    if stop.wait(0.02):
                        return
                    found = attempt(post, client, CONTENT_HASH, {"reference": SEED_REFERENCE}, headers=editor)
                    if found is None or found.status_code != 200:
                        continue
                    current = found.json()["data"]["post"]
                    title = f"written under load {n}"  # a title of its own: a lost answer's write may have committed
                    variables = {"id": current["id"], "title": title, "expectedHash": current["contentHash"]}
                    done = attempt(post, client, UPDATE_TITLE, variables, headers=editor)
                    if done is not None and done.status_code == 200:
                        result = done.json()["data"]["updatePost"]
                        saved.append(
                            title if result == {"__typename": "PostSaved", "post": {"title": title}} else done.text
                        )

        counted = value(served.scrape(), "alphanode_responses", RESPONSES)
        threads = [threading.Thread(target=read) for _ in range(3)] + [threading.Thread(target=write)]
        for thread in threads:
            thread.start()
        try:
            time.sleep(1.0)  # under load: both workers answering, one writing now and then
            writes_before = len(saved)
            # When one worker is killed.
            victim = served.workers[0]
            os.kill(victim, signal.SIGKILL)
            killed = time.monotonic()
            # Then the supervisor starts another in its place, which answers in its turn.
            deadline = killed + REPLACED_TIMEOUT
            while True:
                now = worker_pids(served.process)
                if len(now) == WORKERS and victim not in now:
                    seen = time.monotonic()
                    break
                assert time.monotonic() < deadline, f"no replacement for worker {victim}: {now}"
                time.sleep(0.1)
            (replacement,) = set(now) - set(served.workers)
            while served.responses(replacement) == 0:
                assert time.monotonic() < deadline, f"the replacement {replacement} does not answer"
                time.sleep(0.1)
            replaced = time.monotonic()
            time.sleep(1.0)
        finally:
            stop.set()
            for thread in threads:
                thread.join(timeout=30)
        served.workers = now

        # Only requests in flight on the killed worker failed: one per thread at most, all begun
        # before the kill, each ended by its connection closing (never an error status). With a
        # listening socket for each worker, also a connection the kernel queued on the dying
        # worker's socket in the instant before the kernel closed it (README, Workers): begun
        # before the supervisor had replaced the worker.
        failed = [o for o in outcomes if o.status != 200]
        assert len(failed) <= len(threads), failed
        for outcome in failed:
            assert outcome.status is None, outcome
            assert not isinstance(outcome.error, httpx2.TimeoutException), outcome
            assert outcome.started < (seen if reuse_port else killed), (outcome, killed, seen)
        after_kill = [o for o in outcomes if o.started >= (seen if reuse_port else killed)]
        assert after_kill and all(o.status == 200 for o in after_kill)
        assert sum(o.started >= replaced for o in outcomes) >= 20
        assert len(saved) > writes_before, "no write committed after the kill"
        assert all(title.startswith("written under load ") for title in saved), saved  # each PostSaved

        # Every response the clients got is counted, the killed worker's included (its counters
        # stay in the sum); a request it had counted but not yet sent may be counted too.
        families = served.scrape()
        received = sum(o.status is not None for o in outcomes)
        moved = value(families, "alphanode_responses", RESPONSES) - counted
        assert received <= moved <= received + len(failed), (received, moved, len(failed))
        # The killed worker's gauges are gone from the instance's: what the live workers hold.
        assert glob.glob(str(served.metrics_dir / f"gauge_live*_{victim}.db")) == []
        assert glob.glob(str(served.metrics_dir / f"counter_{victim}.db")) != []
        entries = "alphanode_response_cache_entries"
        before, scraped, after = matches_workers(served, entries, entries)  # purges only lower them now
        assert after <= scraped <= before, (before, scraped, after)

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


# -- the command ------------------------------------------------------------------------------


@pytest.fixture
def served_options(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """What ``alphanode serve`` hands uvicorn.run, which is replaced so that no server starts: the
    app, the options, the environment and the metrics folder's files at that moment."""
    for name in ("ALPHANODE_DATABASE_URL", "ALPHANODE_WORKERS", "ALPHANODE_METRICS_DIR", "ALPHANODE_PORT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
    calls: list[dict[str, Any]] = []

    def run(app: Any, **options: Any) -> None:
        folder = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
        calls.append(
            {
                "app": app,
                "options": options,
                "environment": {k: v for k, v in os.environ.items() if k.startswith(("ALPHANODE_", "PROMETHEUS_"))},
                "files": sorted(os.listdir(folder)) if folder else None,
            }
        )

    monkeypatch.setattr("uvicorn.run", run)
    monkeypatch.setattr("server.supervisor.run", run)
    return calls


def test_serve_with_workers_hands_its_options_to_the_workers_in_the_environment(
    tmp_path: Path, served_options: list[dict[str, Any]]
) -> None:
    url = f"sqlite:///{tmp_path / 'store.db'}"
    assert main(["serve", "--workers", "3", "--database", url, "--port", "8123"]) == 0
    (call,) = served_options
    # The workers build the app from an import string and the environment.
    assert call["app"] == "server.app:create_app"
    assert call["options"]["factory"] is True
    assert call["options"]["workers"] == 3
    assert call["options"]["port"] == 8123
    environment = call["environment"]
    assert environment["ALPHANODE_DATABASE_URL"] == url
    assert environment["ALPHANODE_PORT"] == "8123"
    # Their metrics go to a new, empty folder, removed when the server stops.
    folder = Path(environment["PROMETHEUS_MULTIPROC_DIR"])
    assert call["files"] == []
    assert not folder.exists()
    # This process's environment is as it was.
    assert "PROMETHEUS_MULTIPROC_DIR" not in os.environ
    assert "ALPHANODE_DATABASE_URL" not in os.environ


def test_serve_empties_the_metrics_folder_of_an_earlier_run_and_keeps_it(
    tmp_path: Path, served_options: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "metrics"
    folder.mkdir()
    for name in ("counter_123.db", "histogram_123.db", "gauge_livesum_123.db", "notes.txt"):
        (folder / name).write_bytes(b"from an earlier run")
    monkeypatch.setenv("ALPHANODE_DATABASE_URL", f"sqlite:///{tmp_path / 'store.db'}")
    monkeypatch.setenv("ALPHANODE_WORKERS", "2")
    monkeypatch.setenv("ALPHANODE_METRICS_DIR", str(folder))
    assert main(["serve"]) == 0
    (call,) = served_options
    assert call["options"]["workers"] == 2
    assert call["environment"]["PROMETHEUS_MULTIPROC_DIR"] == str(folder)
    assert call["files"] == ["notes.txt"]  # the metrics' files only
    assert sorted(p.name for p in folder.iterdir()) == ["notes.txt"]


def test_one_worker_serves_in_the_command_process_as_before(
    tmp_path: Path, served_options: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"sqlite:///{tmp_path / 'store.db'}"
    monkeypatch.setenv("ALPHANODE_WORKERS", "4")
    assert main(["serve", "--workers", "1", "--database", url]) == 0  # the option over the setting
    (call,) = served_options
    assert call["app"].state.settings.database_url == url  # an app, built here
    assert call["app"].state.settings.workers == 1
    assert call["options"]["workers"] == 1
    assert "PROMETHEUS_MULTIPROC_DIR" not in call["environment"]


@pytest.mark.parametrize("workers", ["0", "-2", "two"])
def test_serve_refuses_a_number_of_workers_below_one(workers: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["serve", "--workers", workers])
    assert exited.value.code == 2
    assert "--workers" in capsys.readouterr().err
