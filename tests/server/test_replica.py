"""A PostgreSQL streaming replica for public reads, on private clusters the tests start and stop.

Each test gets a primary copied from a cluster made once with a small store, and a hot standby
of it made with ``pg_basebackup -R`` whose ``recovery_min_apply_delay`` holds every commit back
for ``DELAY`` seconds: the replica lags for certain. The servers are in-process apps
(``TestClient``) with ``ALPHANODE_READ_DATABASE_URL`` set to the replica.

What is proved: public reads go to the replica while it is current; a write's purge is never
undone by a page computed from the replica before it replayed the write (in the process that
wrote, and in another instance that only follows the purge log), while the replica is shown to
still hold the old row; a replica further behind than ``replica_max_lag``, or down, is not read
from (every public request still answers 200 from the primary) and ``/healthz`` says so; and it
is read from again once it is back and has caught up.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from starlette.testclient import TestClient

from server.app import create_app
from server.cli import main
from server.replica import LONG_HEADER, SHORT_HEADER, WAL_PAGE, WAL_SEGMENT, record_boundary
from server.settings import Settings
from tests.factories import import_paths
from tests.parts.postgres import PrivatePostgres, available, filled_template
from tests.server.caching import (
    PURGE_DEADLINE,
    cache_of,
    create_editor,
    page,
    synthesized_corpus,
    title_of,
    update_title,
)
from tests.server.test_observability import scrape, value

pytestmark = pytest.mark.postgres

DATABASE = "alphanode"
DELAY = 2.0  # seconds every commit waits before the replica replays it
CHECK = 0.1  # seconds between the apps' checks of where the replica is


@dataclass
class Template:
    folder: Path  # a stopped cluster's folder holding the store
    token: str  # an editor's
    references: list[str]


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Template]:
    reason = available()
    if reason is not None:
        pytest.skip(reason)

    def fill(url: str) -> tuple[str, list[str]]:
        import_paths(url, synthesized_corpus(tmp_path_factory.mktemp("replica-corpus"), 4))
        return create_editor(url), [row[0] for row in query(url, "SELECT reference FROM post ORDER BY id")]

    with filled_template(DATABASE, fill) as (folder, (token, references)):
        yield Template(folder, token, references)


@dataclass
class Cluster:
    primary: PrivatePostgres
    replica: PrivatePostgres

    def settings(self, **overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "database_url": self.primary.url(DATABASE),
            "read_database_url": self.replica.url(DATABASE),
            "replica_check_interval": CHECK,
            "replica_max_lag": 30.0,
            "purge_interval": 0.05,
            **overrides,
        }
        return Settings(**values)


@pytest.fixture
def cluster(template: Template) -> Iterator[Cluster]:
    with PrivatePostgres.create(template.folder) as primary:
        replica = primary.streaming_replica(apply_delay=DELAY)
        try:
            yield Cluster(primary, replica)
        finally:
            replica.remove()


def query(url: str, statement: str) -> list[Any]:
    async def run() -> list[Any]:
        conn = await asyncpg.connect(url, timeout=10)
        try:
            return list(await conn.fetch(statement))
        finally:
            await conn.close()

    return asyncio.run(run())


def title_on(pg: PrivatePostgres, reference: str) -> str:
    """The post's title as that server has it now (the primary, or what the replica has replayed)."""
    rows = query(pg.url(DATABASE), f"SELECT title FROM post WHERE reference = '{reference}'")
    return str(rows[0][0])


def health(client: TestClient) -> dict[str, Any]:
    response = client.get("/healthz")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def wait_for(predicate: Callable[[], bool], seconds: float, what: str) -> float:
    """Seconds until ``predicate()`` holds; fails past ``seconds``."""
    started = time.monotonic()
    while not predicate():
        assert time.monotonic() - started < seconds, f"{what}: not within {seconds}s"
        time.sleep(0.02)
    return time.monotonic() - started


def reads_on(client: TestClient, target: str) -> float:
    """Public requests that read there, by /metrics."""
    return value(scrape(client), "alphanode_public_reads", "alphanode_public_reads_total", target=target)


def gauge(client: TestClient, name: str) -> float:
    return value(scrape(client), name, name)


def replica_in_use(client: TestClient) -> bool:
    return bool(health(client)["replica"]["reads"] == "replica")


# -- the fence: pure ------------------------------------------------------------------------


def test_an_insert_position_past_a_page_header_is_the_boundary_a_replica_replays_to() -> None:
    page_start = 37 * WAL_PAGE
    assert record_boundary(page_start + SHORT_HEADER) == page_start
    segment_start = 3 * WAL_SEGMENT
    assert record_boundary(segment_start + LONG_HEADER) == segment_start
    # Anywhere else, the position is a record's end as it stands.
    for position in (page_start, page_start + SHORT_HEADER + 8, page_start + LONG_HEADER, segment_start + 64):
        assert record_boundary(position) == position


def test_a_replica_of_a_sqlite_store_is_refused_at_start_up(tmp_path: Path) -> None:
    settings = Settings(database_url=f"sqlite:///{tmp_path / 'store.db'}", read_database_url="postgresql://x@h/db")
    with pytest.raises(ValueError, match="SQLite has no replicas"), TestClient(create_app(settings)):
        pass


def test_serve_refuses_a_replica_of_a_sqlite_store_with_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("ALPHANODE_READ_DATABASE_URL", "postgresql://app@127.0.0.1/alphanode")
    assert main(["serve", "--database", f"sqlite:///{tmp_path / 'store.db'}"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ALPHANODE_READ_DATABASE_URL is a PostgreSQL streaming replica"), err
    assert "Traceback" not in err
    assert not (tmp_path / "store.db").exists()  # refused before anything was made


# -- a lagging replica ------------------------------------------------------------------------


def test_a_write_is_never_undone_by_a_page_read_from_the_replica_before_it_replayed_the_write(
    cluster: Cluster, template: Template
) -> None:
    reference = template.references[0]
    # Two instances on the same primary and replica, each with its own cache: one writes, the
    # other only follows the purge log.
    with (
        TestClient(create_app(cluster.settings(replica_max_lag=1.0))) as one,
        TestClient(create_app(cluster.settings(replica_max_lag=1.0))) as two,
    ):
        # Given both read the replica, and cached the post page from it.
        wait_for(lambda: replica_in_use(one) and replica_in_use(two), 10, "both instances read the replica")
        old_title = title_of(page(one, reference))
        before = reads_on(two, "replica")
        assert title_of(page(two, reference)) == old_title
        assert reads_on(two, "replica") == before + 1  # read there, not from the primary
        assert cache_of(page(two, reference)) == "hit"

        # When an editor changes the title through instance one.
        new_title = f"written on the primary {uuid.uuid4().hex[:8]}"
        update_title(one, template.token, reference, new_title)
        written = time.monotonic()

        # Then the replica still has the old title (it lags for certain)...
        assert title_on(cluster.replica, reference) == old_title
        assert title_on(cluster.primary, reference) == new_title
        # ...yet instance one answers the new one at once, and instance two within a purge.
        assert title_of(page(one, reference)) == new_title
        wait_for(lambda: title_of(page(two, reference)) == new_title, PURGE_DEADLINE, "instance two's purge")
        # And from then on neither ever answers the old title again: while the replica lags (their
        # pages come from the primary until it has replayed the write), nor once they read it again.
        states: set[str] = set()
        back: set[int] = set()  # the instances seen reading the replica again
        while len(back) < 2:
            assert time.monotonic() - written < 4 * DELAY, (states, back)
            for n, client in enumerate((one, two)):
                assert title_of(page(client, reference)) == new_title
                body = health(client)["replica"]
                states.add(body["state"])
                if body["reads"] == "replica":
                    back.add(n)
            time.sleep(0.05)
        assert time.monotonic() - written >= DELAY  # not before the replica replayed the write
        assert title_on(cluster.replica, reference) == new_title
        # More than replica_max_lag behind meanwhile: said so.
        assert "lagging" in states, states
        for client in (one, two):
            assert title_of(page(client, reference)) == new_title

        # Once caught up, public reads go to the replica again; an editor's read never does.
        wait_for(lambda: replica_in_use(two), 5, "reads back on the replica")
        before = reads_on(two, "replica")
        title_of(page(two, template.references[2]))
        assert reads_on(two, "replica") == before + 1
        assert health(two)["replica"]["state"] == "ok"
        primary_reads = reads_on(two, "primary")
        editor = {"Authorization": f"Bearer {template.token}"}
        assert title_of(page(two, template.references[3], headers=editor))
        assert reads_on(two, "replica") == before + 1  # (not counted: not a public read)
        assert reads_on(two, "primary") == primary_reads


# -- a replica away ---------------------------------------------------------------------------


def test_a_replica_that_is_down_is_not_read_until_it_is_back_and_every_public_read_still_answers(
    cluster: Cluster, template: Template
) -> None:
    with TestClient(create_app(cluster.settings(cache=False))) as client:
        wait_for(lambda: replica_in_use(client), 10, "reads on the replica")
        for reference in template.references:
            assert title_of(page(client, reference))

        # When the replica stops, every public read still answers, from the primary at once.
        cluster.replica.stop()
        for n in range(20):
            assert title_of(page(client, template.references[n % len(template.references)]))
        body = health(client)  # still 200: the primary serves
        assert body["status"] == "ok"
        assert body["replica"] == {"state": "down", "lag_seconds": None, "reads": "primary"}
        assert gauge(client, "alphanode_replica_lag_seconds") == -1
        primary_reads = reads_on(client, "primary")
        assert title_of(page(client, template.references[0]))
        assert reads_on(client, "primary") == primary_reads + 1

        # When it is back, public reads go to it again once it has caught up.
        cluster.replica.start()
        wait_for(lambda: replica_in_use(client), 10, "reads back on the replica")
        before = reads_on(client, "replica")
        assert title_of(page(client, template.references[0]))
        assert reads_on(client, "replica") == before + 1
        assert gauge(client, "alphanode_replica_reads_up") == 1
