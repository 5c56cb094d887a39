"""The API through PgBouncer in transaction pooling mode, as managed PostgreSQL offers it.

A private cluster (``tests/parts/postgres.py``) behind a private PgBouncer (``tests/parts/pgbouncer.py``,
``pool_mode = transaction``, two server sessions for every client): each transaction of a client
connection may run on another server session, and no start-up parameter but PgBouncer's own is
accepted. The store is made and filled through PgBouncer (migrations, the import, a token), and the
app is served with ``ALPHANODE_DATABASE_URL`` naming PgBouncer and ``pgbouncer=true``. Under dozens
of concurrent requests, the frontend's reads and editors' writes, from one server process and from
two, every answer is a 200 without errors and every write is committed: no prepared statement,
setting or lock of one transaction is looked for in another, and no request or refresh holds a
server session while it waits for another (three processes' refreshes of similar posts at once
take turns on the two sessions).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import httpx2
import orjson
import pytest

import models
from documents import parse, slug_for
from server.app import create_app
from server.settings import Settings
from store.similar import refresh_similar
from tests.conftest import OPERATIONS
from tests.editing import create_token, import_folder, post_id, revision_rows, small_corpus
from tests.parts import pgbouncer
from tests.parts.pgbouncer import PrivatePgBouncer
from tests.parts.postgres import PrivatePostgres, available
from tests.parts.processes import SHUTDOWN_TIMEOUT, free_port, start_server, stop_process, wait_until_healthy

pytestmark = pytest.mark.postgres

DATABASE = "alphanode"
POOL_SIZE = 2  # server sessions PgBouncer opens at most: far fewer than the app's client connections
READS = 40  # concurrent reads of a round
WRITES = 6  # concurrent writes of a round
QUERIES = {path.stem: path.read_text(encoding="utf-8") for path in OPERATIONS.glob("*.graphql")}
SEARCHES = ("python", "docker", "testing", "database", "api", "rust", "cache", "security")
SET_STATUS = "mutation S($id: ID!, $status: String!) { setStatus(id: $id, status: $status) { __typename } }"


@dataclass
class Stack:
    pg: PrivatePostgres
    bouncer: PrivatePgBouncer
    url: str  # through PgBouncer, with pgbouncer=true
    direct: str  # the cluster itself, for the test's own checks
    token: str
    slugs: list[str]
    references: list[str]
    ids: list[str]


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """A cluster with an empty database behind PgBouncer; the store made and filled through PgBouncer."""
    reason = available()
    if reason is not None:
        pytest.skip(reason)
    if (why := pgbouncer.missing()) is not None:
        pytest.fail(why)
    with PrivatePostgres.create() as pg:
        pg.execute(f"CREATE DATABASE {DATABASE}")
        with PrivatePgBouncer.create(pg, pool_size=POOL_SIZE) as bouncer:
            url = f"{bouncer.url(DATABASE)}?pgbouncer=true"
            corpus = small_corpus(tmp_path_factory.mktemp("pgbouncer-corpus"), 30)
            import_folder(url, corpus)  # the migrations, the import and its refresh of similar posts
            token = create_token(url, "editor")
            documents = [parse(path.read_bytes()) for path in sorted(corpus.glob("*.txt"))]
            yield Stack(
                pg,
                bouncer,
                url,
                pg.url(DATABASE),
                token,
                [slug_for(d) for d in documents],
                [d.meta.reference for d in documents],
                [post_id(d) for d in documents],
            )


def read_body(stack: Stack, n: int) -> dict[str, Any]:
    """The frontend's operations in turn, each with variables that find something."""
    choices: list[tuple[str, str, dict[str, Any]]] = [
        ("post-page", "PostPage", {"slug": stack.slugs[n % len(stack.slugs)]}),
        ("search", "Search", {"q": SEARCHES[n % len(SEARCHES)], "first": 5}),
        ("listing", "Listing", {"first": 3 + n % 7}),
        ("facets", "Facets", {"search": SEARCHES[n % len(SEARCHES)]} if n % 2 else {}),
        ("search", "Search", {"q": SEARCHES[(n + 3) % len(SEARCHES)], "first": 10}),
        ("filtered-listing", "FilteredListing", {"first": 5, "where": {"stackAny": ["python"]}}),
    ]
    file, name, variables = choices[n % len(choices)]
    return {"query": QUERIES[file], "operationName": name, "variables": variables}


def write_body(stack: Stack, n: int, status: str) -> dict[str, Any]:
    """An editor's write: a post's status (each write of a round a post of its own)."""
    return {"query": SET_STATUS, "variables": {"id": stack.ids[n], "status": status}}


def check_answer(status: int, text: str) -> dict[str, Any]:
    assert status == 200, text[:2000]
    body: dict[str, Any] = orjson.loads(text)
    assert "errors" not in body, text[:2000]
    return body


class Sessions:
    """The most server sessions on the store's database at once, sampled while it runs (in a thread)."""

    def __init__(self, pg: PrivatePostgres) -> None:
        self.pg = pg
        self.most = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.most = max(self.most, len(self.pg.backends(DATABASE)))
            time.sleep(0.1)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(10)


def committed(stack: Stack, writes: dict[int, str]) -> None:
    """Each post's newest revision is the write's, read straight from the cluster."""
    for n, status in writes.items():
        newest = revision_rows(stack.direct, stack.references[n])[-1]
        assert (newest["author"], newest["reason"]) == ("editor", f"status set to {status}"), newest


async def refreshed(stack: Stack, seconds: float = 20.0) -> None:
    """Wait until no post waits for its similar posts (every refresh after the writes is done)."""
    conn = await asyncpg.connect(stack.direct, timeout=10)
    try:
        deadline = time.monotonic() + seconds
        while await conn.fetchval("SELECT count(*) FROM similar_pending"):
            assert time.monotonic() < deadline, f"similar posts not refreshed within {seconds}s"
            await asyncio.sleep(0.05)
    finally:
        await conn.close()


def trouble_in(records: list[logging.LogRecord]) -> list[str]:
    """What the app logged that says something went wrong: its own warnings, anyone's errors."""
    return [
        f"{r.name}: {r.getMessage()}"
        for r in records
        if r.levelno >= logging.ERROR or (r.levelno >= logging.WARNING and r.name.startswith("alphanode"))
    ]


def test_concurrent_reads_and_writes_through_pgbouncer_in_transaction_mode_all_answer(
    stack: Stack, caplog: pytest.LogCaptureFixture
) -> None:
    timeout = 10.0
    app = create_app(Settings(database_url=stack.url, cache=False, request_timeout=timeout))
    rounds: list[list[tuple[int, str]]] = []
    writes: dict[int, str] = {}
    opened: list[int] = []

    async def run() -> None:
        async with app.router.lifespan_context(app):
            pool = app.state.read_pool
            # The server's limits of a read transaction reach the server session that runs it.
            conn = await pool.acquire()
            try:
                await conn.begin()
                for setting in ("statement_timeout", "idle_in_transaction_session_timeout"):
                    assert [tuple(row) for row in await conn.fetch(f"SHOW {setting}", ())] == [("11s",)]
                await conn.end()
            finally:
                await pool.release(conn)
            transport = httpx2.ASGITransport(app=app)
            headers = {"Authorization": f"Bearer {stack.token}"}
            async with httpx2.AsyncClient(transport=transport, base_url="http://test", timeout=60) as http:
                sessions.start()

                async def ask(body: dict[str, Any], editor: bool = False) -> tuple[int, str]:
                    response = await http.post("/graphql", json=body, headers=headers if editor else {})
                    return response.status_code, response.text

                for round_ in range(3):  # statements a connection prepared in one round are used again in the next
                    statuses = {n: f"checked {round_}.{n}" for n in range(WRITES)}
                    writes.update(statuses)
                    answers = await asyncio.gather(
                        *(ask(read_body(stack, READS * round_ + n)) for n in range(READS)),
                        *(ask(write_body(stack, n, status), editor=True) for n, status in statuses.items()),
                    )
                    rounds.append(answers)
                    opened.append(pool.usage().open)
                sessions.stop()
            await refreshed(stack)

    sessions = Sessions(stack.pg)
    try:
        asyncio.run(run())
    finally:
        sessions.stop()
    for answers in rounds:
        for status, text in answers[:READS]:
            check_answer(status, text)
        for status, text in answers[READS:]:
            assert check_answer(status, text)["data"]["setStatus"]["__typename"] == "PostSaved", text
    committed(stack, writes)
    # The app's connections were really shared: more client connections than server sessions.
    assert max(opened) > POOL_SIZE, opened
    assert 0 < sessions.most <= POOL_SIZE, sessions.most
    assert trouble_in(caplog.records) == []
    print(f"{len(rounds) * (READS + WRITES)} requests; {max(opened)} read connections on {sessions.most} sessions")


def test_two_server_processes_share_pgbouncer_and_their_refreshes_take_turns(stack: Stack, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ALPHANODE_")}
    env |= {"ALPHANODE_DATABASE_URL": stack.url, "ALPHANODE_CACHE": "false"}
    logs = [tmp_path / "one.log", tmp_path / "two.log"]
    writes: dict[int, str] = {}
    answers: list[tuple[int, str]] = []
    with contextlib.ExitStack() as cleanup:
        bases = []
        for log in logs:
            port = free_port()
            out = cleanup.enter_context(log.open("wb"))
            server = start_server(port, env=env, output=out)
            cleanup.callback(stop_process, server, SHUTDOWN_TIMEOUT)
            base = f"http://127.0.0.1:{port}"
            assert wait_until_healthy(base, server).status_code == 200, log.read_text()
            bases.append(base)

        async def run() -> None:
            headers = {"Authorization": f"Bearer {stack.token}"}
            async with contextlib.AsyncExitStack() as clients:
                http = [
                    await clients.enter_async_context(httpx2.AsyncClient(base_url=base, timeout=60)) for base in bases
                ]

                async def ask(n: int, body: dict[str, Any], editor: bool = False) -> tuple[int, str]:
                    response = await http[n % 2].post("/graphql", json=body, headers=headers if editor else {})
                    return response.status_code, response.text

                for round_ in range(3):  # each process writes, then refreshes, while the other does too
                    statuses = {n: f"shared {round_}.{n}" for n in range(WRITES)}
                    writes.update(statuses)
                    answers.extend(
                        await asyncio.gather(
                            *(ask(n, read_body(stack, n)) for n in range(READS // 2)),
                            *(ask(n, write_body(stack, n, status), editor=True) for n, status in statuses.items()),
                        )
                    )
            await refreshed(stack)

        asyncio.run(run())
    for status, text in answers:
        check_answer(status, text)
    committed(stack, writes)
    for log in logs:  # (the refreshes and the purge-log pollers of both ran through PgBouncer too)
        text = log.read_text(errors="replace")
        assert not any(word in text for word in ("Traceback", "ERROR", "WARNING")), text[-3000:]


def test_refreshes_of_three_processes_take_turns_on_two_server_sessions(stack: Stack) -> None:
    # Three processes' refreshes at once (each an engine as a server's refresher has: two
    # connections), every post marked: one recomputes them all, the others then find nothing.
    async def run() -> list[list[int]]:
        engines = [models.create_engine(stack.url, pool_size=2, max_overflow=0) for _ in range(3)]
        conn = await asyncpg.connect(stack.direct, timeout=10)
        try:
            posts = await conn.fetchval("SELECT count(*) FROM post")
            done = []
            for _ in range(5):
                await refreshed(stack)
                await conn.execute("INSERT INTO similar_pending (post_id, state) SELECT id, 1 FROM post")
                # Within the refreshes' time, well before PgBouncer's query_wait_timeout would end a wait.
                counts = await asyncio.wait_for(asyncio.gather(*(refresh_similar(e) for e in engines)), 15)
                assert sorted(counts) == [0, 0, posts], counts
                done.append(counts)
            return done
        finally:
            await conn.close()
            for engine in engines:
                await engine.dispose()

    done = asyncio.run(run())
    assert len(done) == 5
