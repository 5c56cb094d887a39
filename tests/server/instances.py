"""An instance of ``alphanode serve --workers N`` for the tests: started on a free port, its workers
found among its children, which worker answered read from its metrics; and a load that a worker is
killed under."""

from __future__ import annotations

import contextlib
import dataclasses
import glob
import itertools
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx2
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import Connection, text

from tests.conftest import ROOT
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
    SEED_REFERENCE,
    UPDATE_TITLE,
    bearer,
    on_store,
    page,
    post,
)

WORKERS = 2
RESPONSES = "alphanode_responses_total"
READY_TIMEOUT = 30.0  # seconds for every worker to answer (each loads the store's indexes first)
REPLACED_TIMEOUT = 30.0  # seconds for a killed worker's replacement to answer


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


@dataclasses.dataclass(frozen=True)
class Outcome:
    """One request of the load: when it began, and its status or the error that ended it."""

    started: float
    status: int | None
    error: Exception | None = None


class Load:
    """Three readers of the seed's page and a writer retitling it, on threads, until stopped: what
    each request began at and how it ended, and the titles each write saved."""

    def __init__(self, served: Instance, token: str) -> None:
        self.served = served
        self.token = token
        self.outcomes: list[Outcome] = []  # appended to by every load thread (one append is atomic)
        self.saved: list[str] = []
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self._read) for _ in range(3)] + [threading.Thread(target=self._write)]

    def __enter__(self) -> Load:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=30)

    def _attempt(self, send: Callable[..., httpx2.Response], *args: Any, **kwargs: Any) -> httpx2.Response | None:
        started = time.monotonic()
        try:
            response = send(*args, **kwargs)
        except httpx2.TransportError as exc:
            self.outcomes.append(Outcome(started, None, exc))
            return None
        self.outcomes.append(Outcome(started, response.status_code))
        return response

    def _read(self) -> None:
        with self.served.client() as client:
            while not self.stop.is_set():
                self._attempt(page, client, SEED_REFERENCE)
                time.sleep(0.005)

    def _write(self) -> None:
        editor = bearer(self.token)
        with self.served.client() as client:
            for n in itertools.count():
                if self.stop.wait(0.02):
                    return
                found = self._attempt(post, client, CONTENT_HASH, {"reference": SEED_REFERENCE}, headers=editor)
                if found is None or found.status_code != 200:
                    continue
                current = found.json()["data"]["post"]
                title = f"written under load {n}"  # a title of its own: a lost answer's write may have committed
                variables = {"id": current["id"], "title": title, "expectedHash": current["contentHash"]}
                done = self._attempt(post, client, UPDATE_TITLE, variables, headers=editor)
                if done is not None and done.status_code == 200:
                    result = done.json()["data"]["updatePost"]
                    self.saved.append(
                        title if result == {"__typename": "PostSaved", "post": {"title": title}} else done.text
                    )


@dataclasses.dataclass(frozen=True)
class Kill:
    """A worker killed under load: when, when the supervisor's replacement was seen, when it answered."""

    victim: int
    killed: float
    seen: float
    replaced: float
    workers: list[int]


def kill_a_worker(served: Instance) -> Kill:
    """SIGKILL the first worker; wait for the supervisor to start another and for it to answer."""
    victim = served.workers[0]
    os.kill(victim, signal.SIGKILL)
    killed = time.monotonic()
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
    return Kill(victim, killed, seen, time.monotonic(), now)


def check_only_its_requests_failed(load: Load, kill: Kill, writes_before: int, reuse_port: bool) -> None:
    """Only requests in flight on the killed worker failed: one per thread at most, all begun
    before the kill, each ended by its connection closing (never an error status). With a
    listening socket for each worker, also a connection the kernel queued on the dying
    worker's socket in the instant before the kernel closed it (README, Workers): begun
    before the supervisor had replaced the worker."""
    failed = [o for o in load.outcomes if o.status != 200]
    assert len(failed) <= len(load.threads), failed
    cut = kill.seen if reuse_port else kill.killed
    for outcome in failed:
        assert outcome.status is None, outcome
        assert not isinstance(outcome.error, httpx2.TimeoutException), outcome
        assert outcome.started < cut, (outcome, kill.killed, kill.seen)
    after_kill = [o for o in load.outcomes if o.started >= cut]
    assert after_kill and all(o.status == 200 for o in after_kill)
    assert sum(o.started >= kill.replaced for o in load.outcomes) >= 20
    assert len(load.saved) > writes_before, "no write committed after the kill"
    assert all(title.startswith("written under load ") for title in load.saved), load.saved  # each PostSaved


def check_the_metrics_kept_the_killed_workers_counts(served: Instance, load: Load, kill: Kill, counted: float) -> None:
    """Every response the clients got is counted, the killed worker's included (its counters
    stay in the sum); a request it had counted but not yet sent may be counted too. The killed
    worker's gauges are gone from the instance's: what the live workers hold."""
    failed = [o for o in load.outcomes if o.status != 200]
    families = served.scrape()
    received = sum(o.status is not None for o in load.outcomes)
    moved = value(families, "alphanode_responses", RESPONSES) - counted
    assert received <= moved <= received + len(failed), (received, moved, len(failed))
    assert glob.glob(str(served.metrics_dir / f"gauge_live*_{kill.victim}.db")) == []
    assert glob.glob(str(served.metrics_dir / f"counter_{kill.victim}.db")) != []
    entries = "alphanode_response_cache_entries"
    before, scraped, after = matches_workers(served, entries, entries)  # purges only lower them now
    assert after <= scraped <= before, (before, scraped, after)
