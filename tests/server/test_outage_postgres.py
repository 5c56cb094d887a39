"""The API through a PostgreSQL outage and a slow PostgreSQL, on a private cluster the tests stop and start.

Each test gets its own cluster (``tests/parts/postgres.py``, copied from one made per session
with a store of 21 posts and an editor's token). While PostgreSQL is down every answer is a
200 (a response cached before) or the documented 503: ``DATABASE_UNAVAILABLE``, with
``Retry-After``, and nothing of a traceback or SQL; ``/healthz`` answers 503. Once PostgreSQL
accepts connections again the same process answers 200 within seconds, without a restart: the
read pool, the write engine, the purge-log poller and the fact index all recover by themselves.
A slow PostgreSQL (``tests/parts/proxy.py`` delays every chunk) costs requests their time limit
(``TIMEOUT``), never the read pool, a connection or a file descriptor.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import httpx2
import orjson
import pytest

from documents import parse, slug_for
from documents.synth import write
from server.app import create_app
from server.settings import Settings
from tests.conftest import OPERATIONS, ROOT
from tests.editing import create_token, export_all, import_folder, post_id, revision_rows, small_corpus
from tests.parts.postgres import PrivatePostgres, available, filled_template
from tests.parts.processes import SHUTDOWN_TIMEOUT, free_port, start_server, stop_process, wait_until_healthy
from tests.parts.proxy import Proxy
from tests.store.dump import logical_dump

pytestmark = pytest.mark.postgres

DATABASE = "alphanode"
RECOVERY = 5.0  # seconds from PostgreSQL accepting connections to the API answering 200, at most
LEAKS = ("Traceback", "SELECT", "sqlalchemy", "asyncpg", 'File "')


@dataclass
class Template:
    folder: Path
    corpus: Path
    token: str
    slugs: list[str]
    references: list[str]
    ids: list[str]


@pytest.fixture(scope="session")
def template(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Template]:
    """A cluster's data folder, stopped, holding the store: 21 posts and an editor's token."""
    reason = available()
    if reason is not None:
        pytest.skip(reason)
    corpus = small_corpus(tmp_path_factory.mktemp("outage-corpus"), 20)

    def fill(url: str) -> str:
        import_folder(url, corpus)
        return create_token(url, "editor")

    with filled_template(DATABASE, fill) as (folder, token):
        documents = [parse(path.read_bytes()) for path in sorted(corpus.glob("*.txt"))]
        yield Template(
            folder,
            corpus,
            token,
            [slug_for(d) for d in documents],
            [d.meta.reference for d in documents],
            [post_id(d) for d in documents],
        )


@pytest.fixture
def pg(template: Template) -> Iterator[PrivatePostgres]:
    with PrivatePostgres.create(template.folder) as cluster:
        yield cluster


def operations(template: Template, n: int) -> tuple[str, dict[str, Any]]:
    """The frontend's operations in turn, each with variables that find something."""
    choices: list[tuple[str, dict[str, Any]]] = [
        ("PostPage", {"slug": template.slugs[n % len(template.slugs)]}),
        ("Listing", {"first": 5}),
        ("Facets", {}),
        ("Search", {"q": "python", "first": 5}),
        ("FilteredListing", {"first": 5, "where": {"stackAny": ["python"]}}),
    ]
    return choices[n % len(choices)]


QUERIES = {path.stem: path.read_text(encoding="utf-8") for path in OPERATIONS.glob("*.graphql")}
FILES = {
    "PostPage": "post-page",
    "Listing": "listing",
    "Facets": "facets",
    "Search": "search",
    "FilteredListing": "filtered-listing",
}


def body_for(template: Template, n: int) -> dict[str, Any]:
    name, variables = operations(template, n)
    return {"query": QUERIES[FILES[name]], "operationName": name, "variables": variables}


def check_outage_answer(status: int, headers: Any, text: str) -> None:
    """A 200, or the documented 503: DATABASE_UNAVAILABLE with Retry-After; never a traceback or SQL."""
    assert status in (200, 503), (status, text)
    if status == 503:
        for leak in LEAKS:  # (a post may well name sqlalchemy among its tools: error bodies only)
            assert leak not in text, text
        assert headers.get("retry-after", "").isdigit(), dict(headers)
        body = orjson.loads(text)
        assert body["errors"][0]["extensions"]["code"] == "DATABASE_UNAVAILABLE", body
    else:
        assert '"errors"' not in text, text


def open_files() -> int:
    """File descriptors this process has open (sockets included)."""
    return len(os.listdir("/proc/self/fd"))


@dataclass
class Answer:
    sent: float
    seconds: float
    status: int
    text: str
    headers: dict[str, str] = field(default_factory=dict)


async def steady_load(
    http: httpx2.AsyncClient, template: Template, stop: asyncio.Event, answers: list[Answer], n: int
) -> None:
    """One client: the frontend's operations one after another, an editor's token on every other."""
    headers = {"Authorization": f"Bearer {template.token}"} if n % 2 else {}
    i = n
    while not stop.is_set():
        sent = time.monotonic()
        response = await http.post("/graphql", json=body_for(template, i), headers=headers)
        answers.append(
            Answer(sent, time.monotonic() - sent, response.status_code, response.text, dict(response.headers))
        )
        i += 1
        await asyncio.sleep(0.01)


async def until(predicate: Any, seconds: float, interval: float = 0.05) -> float:
    """Wait for ``await predicate()`` to be true; the seconds it took. Fails past ``seconds``."""
    started = time.monotonic()
    while not await predicate():
        assert time.monotonic() - started < seconds, f"not within {seconds}s"
        await asyncio.sleep(interval)
    return time.monotonic() - started


# -- PostgreSQL stopped and started again, through the ASGI app ---------------------------------


def test_reads_answer_503_while_postgres_is_down_and_every_pool_recovers_without_a_restart(
    pg: PrivatePostgres, template: Template, tmp_path: Path
) -> None:
    url = pg.url(DATABASE)
    timeout = 5.0
    app = create_app(Settings(database_url=url, request_timeout=timeout, env="production", purge_interval=0.1))
    answers: list[Answer] = []
    editor = {"Authorization": f"Bearer {template.token}"}
    recovered: dict[str, float] = {}

    async def run() -> None:
        async with app.router.lifespan_context(app):
            services = app.state.services
            transport = httpx2.ASGITransport(app=app)
            async with httpx2.AsyncClient(transport=transport, base_url="http://test", timeout=30) as http:
                stop = asyncio.Event()
                clients = [asyncio.create_task(steady_load(http, template, stop, answers, n)) for n in range(6)]
                await asyncio.sleep(0.5)

                # When PostgreSQL stops under the load.
                await asyncio.to_thread(pg.stop)
                stopped = time.monotonic()
                health = await http.get("/healthz")
                assert health.status_code == 503, health.text
                # GraphiQL's production check reads the token: the outage, not a 500.
                page = await http.get("/graphql", headers={**editor, "Accept": "text/html"})
                check_outage_answer(page.status_code, page.headers, page.text)
                assert page.status_code == 503
                metrics = await http.get("/metrics")
                assert metrics.status_code == 200
                await asyncio.sleep(1.5)
                down = [a for a in answers if a.sent > stopped]

                # And starts again, with the same data on the same port.
                await asyncio.to_thread(pg.start)
                back = time.monotonic()

                async def serves() -> bool:
                    response = await http.post("/graphql", json=body_for(template, 0), headers=editor)
                    check_outage_answer(response.status_code, response.headers, response.text)
                    return response.status_code == 200

                async def healthy() -> bool:
                    return (await http.get("/healthz")).status_code == 200

                recovered["graphql"] = await until(serves, RECOVERY)
                recovered["healthz"] = await until(healthy, RECOVERY)
                await asyncio.sleep(0.3)
                stop.set()
                await asyncio.gather(*clients)

                # The write engine serves a mutation; the purge-log poller still runs.
                purger = services.purger
                assert purger is not None and purger._task is not None and not purger._task.done()
                seen = purger.last
                changed = await http.post(
                    "/graphql",
                    json={
                        "query": "mutation M($id: ID!) { markReviewed(id: $id) { __typename } }",
                        "variables": {"id": template.ids[0]},
                    },
                    headers=editor,
                )
                assert changed.status_code == 200 and "PostSaved" in changed.text, changed.text

                # A write by another process (an import) reaches this one: the poller and the fact index follow.
                before = (
                    await http.post("/graphql", json={"query": "{ posts(first: 1) { totalCount } }"}, headers=editor)
                ).json()
                extra = tmp_path / "extra"
                write(extra, 1, seed=9_001)
                await asyncio.to_thread(import_folder, url, extra)

                async def followed() -> bool:
                    return purger.last > seen + 1

                recovered["purge-log"] = await until(followed, 3.0)
                after = await http.post(
                    "/graphql",
                    json={"query": "{ posts(first: 1, where: {stackAny: []}) { totalCount } }"},
                    headers=editor,
                )
                assert after.json()["data"]["posts"]["totalCount"] == before["data"]["posts"]["totalCount"] + 1
                assert back - stopped > 1.0
                assert down, "requests were sent while PostgreSQL was down"

    asyncio.run(run())
    for answer in answers:
        check_outage_answer(answer.status, answer.headers, answer.text)
        assert answer.seconds < timeout, answer
    statuses = {a.status for a in answers}
    assert statuses == {200, 503}, statuses
    print(f"recovered after PostgreSQL came back: {recovered}")


# -- the real server over a socket ------------------------------------------------------------------


def test_uvicorn_serves_again_within_seconds_of_postgres_coming_back(
    pg: PrivatePostgres, template: Template, tmp_path: Path
) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("ALPHANODE_")}
    env |= {"ALPHANODE_DATABASE_URL": pg.url(DATABASE), "ALPHANODE_REQUEST_TIMEOUT": "5", "ALPHANODE_CACHE": "false"}
    log = tmp_path / "server.log"
    answers: list[Answer] = []
    stop = threading.Event()

    def client(n: int) -> None:
        with httpx2.Client(base_url=base, timeout=30) as http:
            i = n
            while not stop.is_set():
                sent = time.monotonic()
                response = http.post("/graphql", json=body_for(template, i))
                answers.append(
                    Answer(sent, time.monotonic() - sent, response.status_code, response.text, dict(response.headers))
                )
                i += 1
                time.sleep(0.01)

    with log.open("wb") as out:
        server = start_server(port, env=env, output=out)
        threads = [threading.Thread(target=client, args=(n,)) for n in range(4)]
        try:
            assert wait_until_healthy(base, server).status_code == 200, log.read_text()
            for thread in threads:
                thread.start()
            time.sleep(0.5)
            pg.stop()
            stopped = time.monotonic()
            with httpx2.Client(base_url=base, timeout=10) as http:
                assert http.get("/healthz").status_code == 503
                time.sleep(1.0)
                pg.start()
                back = time.monotonic()
                while True:
                    response = http.post("/graphql", json=body_for(template, 1))
                    check_outage_answer(response.status_code, response.headers, response.text)
                    if response.status_code == 200:
                        break
                    assert time.monotonic() - back < RECOVERY, "no 200 within 5 s of PostgreSQL's return"
                    time.sleep(0.05)
                recovery = time.monotonic() - back
                assert http.get("/healthz").status_code == 200
        finally:
            stop.set()
            for thread in threads:
                if thread.is_alive():
                    thread.join(30)
            stop_process(server, SHUTDOWN_TIMEOUT)
    for answer in answers:
        check_outage_answer(answer.status, answer.headers, answer.text)
        assert answer.seconds < 5.0, answer
    assert [a for a in answers if a.sent > stopped and a.status == 503], "503s while PostgreSQL was down"
    text = log.read_text()
    assert "Traceback" not in text, text
    assert "INTERNAL_SERVER_ERROR" not in text
    print(f"uvicorn served again {recovery:.2f}s after PostgreSQL accepted connections")


# -- writes in flight ---------------------------------------------------------------------------

UPDATE = """mutation Update($id: ID!, $input: PostPatch!, $expectedHash: String!) {
  result: updatePost(id: $id, input: $input, expectedHash: $expectedHash) {
    __typename
    ... on PostSaved { revision changed post { contentHash title } }
    ... on Conflict { message currentHash }
  }
}"""
CURRENT = "query Current($id: ID!) { post(id: $id) { id contentHash } }"


def test_a_write_in_flight_when_postgres_stops_either_committed_or_not_and_the_caller_can_tell(
    pg: PrivatePostgres, template: Template
) -> None:
    url = pg.url(DATABASE)
    app = create_app(Settings(database_url=url, request_timeout=5, cache=False))
    editor = {"Authorization": f"Bearer {template.token}"}
    # What each editor was told: (reference, title sent, status, revision, content hash) for each mutation.
    told: list[tuple[str, str, int, int | None, str | None]] = []

    async def editing(http: httpx2.AsyncClient, n: int, stop: asyncio.Event) -> None:
        reference = template.references[n]
        edit = 0
        current: dict[str, Any] | None = None
        while not stop.is_set():
            if current is None:  # read the post's hash, as a caller does after a 503
                response = await http.post(
                    "/graphql", json={"query": CURRENT, "variables": {"id": template.ids[n]}}, headers=editor
                )
                check_outage_answer(response.status_code, response.headers, response.text)
                if response.status_code != 200:
                    await asyncio.sleep(0.05)
                    continue
                current = response.json()["data"]["post"]
            assert current is not None
            edit += 1
            title = f"edited during the outage number {edit} of {n}"
            variables = {"id": current["id"], "input": {"title": title}, "expectedHash": current["contentHash"]}
            response = await http.post("/graphql", json={"query": UPDATE, "variables": variables}, headers=editor)
            check_outage_answer(response.status_code, response.headers, response.text)
            if response.status_code == 200:
                result = response.json()["data"]["result"]
                assert result["__typename"] == "PostSaved", result
                told.append((reference, title, 200, result["revision"], result["post"]["contentHash"]))
                current = {"id": current["id"], "contentHash": result["post"]["contentHash"]}
            else:
                told.append((reference, title, 503, None, None))
                current = None

    async def run() -> None:
        async with app.router.lifespan_context(app):
            transport = httpx2.ASGITransport(app=app)
            async with httpx2.AsyncClient(transport=transport, base_url="http://test", timeout=30) as http:
                stop = asyncio.Event()
                editors = [asyncio.create_task(editing(http, n, stop)) for n in range(4)]
                await asyncio.sleep(0.8)
                await asyncio.to_thread(pg.stop)
                await asyncio.sleep(0.5)
                await asyncio.to_thread(pg.start)
                await asyncio.sleep(1.5)
                stop.set()
                await asyncio.gather(*editors)

    asyncio.run(run())
    assert any(status == 200 for _, _, status, _, _ in told)
    exported = export_all(url)
    for reference in {r for r, *_ in told}:
        history = revision_rows(url, reference)
        by_number = {row["number"]: row for row in history}
        # Every success told is in the history, as told.
        for ref, title, status, revision, content_hash in told:
            if ref == reference and status == 200:
                assert revision in by_number and by_number[revision]["content_hash"] == content_hash
                assert title in by_number[revision]["text"]
        # No post is half-written: what it exports is its newest revision's text.
        assert exported[reference].decode("utf-8") == history[-1]["text"]
    # A 503 may or may not have committed: the history tells which.
    texts = {reference: [row["text"] for row in revision_rows(url, reference)] for reference in {r for r, *_ in told}}
    unknown = [(ref, title) for ref, title, status, _, _ in told if status == 503]
    committed = sum(1 for ref, title in unknown if any(title in text for text in texts[ref]))
    saved = sum(1 for t in told if t[2] == 200)
    print(f"mutations: {saved} saved; {len(unknown)} answered 503, of which {committed} had committed")


# -- an import interrupted ----------------------------------------------------------------------

IMPORTED = 1_500


def _import(url: str, corpus: Path) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ALPHANODE_")}
    return subprocess.Popen(
        [sys.executable, "-m", "server.cli", "import", "--database", url, "--batch-size", "100", "-q", str(corpus)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def test_an_import_cut_short_by_the_outage_says_so_and_completes_when_run_again(
    pg: PrivatePostgres, tmp_path: Path
) -> None:
    corpus = tmp_path / "corpus"
    write(corpus, IMPORTED, seed=23)
    pg.execute("CREATE DATABASE clean")
    pg.execute("CREATE DATABASE interrupted")
    clean, interrupted = pg.url("clean"), pg.url("interrupted")
    first = _import(clean, corpus)
    out, err = first.communicate(timeout=300)
    assert first.returncode == 0, err.decode()

    # Given an import that PostgreSQL stops under, after some batches committed.
    process = _import(interrupted, corpus)

    async def posts() -> int:
        try:
            conn = await asyncpg.connect(interrupted, timeout=5)
        except (OSError, asyncpg.PostgresError):
            return 0
        try:
            return int(await conn.fetchval("SELECT count(*) FROM post"))
        except asyncpg.PostgresError:
            return 0  # no table yet
        finally:
            await conn.close()

    deadline = time.monotonic() + 120
    while asyncio.run(posts()) < 300 and process.poll() is None:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    pg.stop()
    out, err = process.communicate(timeout=60)
    pg.start()
    written = asyncio.run(posts())
    message = err.decode()

    # Then it ends with one message naming the cause, a non-zero status and no traceback, not a
    # rejection for every document left.
    assert 0 < written < IMPORTED, "the import must be stopped half way for this test to mean anything"
    assert process.returncode != 0
    assert "Traceback" not in message, message
    assert "rejected:" not in out.decode(), out.decode()[-2000:]
    assert "database" in message and "run the import again" in message, message

    # When it runs again, it completes, and the store equals a clean import's.
    rerun = _import(interrupted, corpus)
    out, err = rerun.communicate(timeout=300)
    assert rerun.returncode == 0, err.decode()
    assert f"{IMPORTED - written} created" in out.decode()
    assert logical_dump(interrupted) == logical_dump(clean)
    print(f"import stopped after {written} posts: {message.strip()}")


# -- a slow PostgreSQL ------------------------------------------------------------------------


def test_a_slow_postgres_costs_requests_their_time_limit_never_the_pool_a_connection_or_a_file(
    pg: PrivatePostgres, template: Template
) -> None:
    timeout = 1.0
    with Proxy(pg.host, pg.port) as proxy:
        url = f"postgresql://postgres@127.0.0.1:{proxy.port}/{DATABASE}"
        app = create_app(Settings(database_url=url, request_timeout=timeout, cache=False))
        fds_before = open_files()
        answers: list[Answer] = []

        async def ask(http: httpx2.AsyncClient, n: int) -> Answer:
            sent = time.monotonic()
            response = await http.post("/graphql", json=body_for(template, n))
            return Answer(sent, time.monotonic() - sent, response.status_code, response.text)

        async def run() -> None:
            async with app.router.lifespan_context(app):
                pool = app.state.read_pool
                conn = await pool.acquire()
                try:  # the server ends a read statement (or transaction) a little after the request time limit
                    await conn.begin()
                    for setting in ("statement_timeout", "idle_in_transaction_session_timeout"):
                        assert [tuple(row) for row in await conn.fetch(f"SHOW {setting}", ())] == [("2s",)]
                    await conn.end()
                finally:
                    await pool.release(conn)
                transport = httpx2.ASGITransport(app=app)
                async with httpx2.AsyncClient(transport=transport, base_url="http://test", timeout=30) as http:
                    warm = await asyncio.gather(*(ask(http, n) for n in range(pool.size)))
                    assert {a.status for a in warm} == {200}
                    # When every chunk waits 300 ms, more requests at once than the pool has connections.
                    proxy.delay = 0.3
                    answers.extend(await asyncio.gather(*(ask(http, n) for n in range(2 * pool.size))))
                    # Then, the slowness over, requests are answered at once: no connection is stuck.
                    proxy.delay = 0.0
                    started = time.monotonic()
                    after = await asyncio.gather(*(ask(http, n) for n in range(2 * pool.size)))
                    assert {a.status for a in after} == {200}, [a.text for a in after if a.status != 200]
                    assert time.monotonic() - started < 1.0
                    usage = pool.usage()
                    assert usage.idle == usage.open <= usage.size, usage
                    sessions = await asyncio.to_thread(pg.backends, DATABASE)
                    assert all(state == "idle" for state, _ in sessions), sessions
                    assert len(sessions) <= pool.size + 10  # the read pool and the write engine's, at most

        asyncio.run(run())
        # Nothing leaks: no session left on the server, no file descriptor in this process.
        deadline = time.monotonic() + 5
        while pg.backends(DATABASE) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert pg.backends(DATABASE) == []
        assert proxy.open_connections == 0
        assert open_files() <= fds_before
    codes = []
    for answer in answers:
        if answer.status == 200:
            continue
        for leak in LEAKS:
            assert leak not in answer.text
        codes.append(orjson.loads(answer.text)["errors"][0]["extensions"]["code"])
        # The time limit, plus ending the request's transaction through the slow link.
        assert answer.seconds < timeout + 3.0, answer
    assert codes and set(codes) == {"TIMEOUT"}, [a.text for a in answers]
    print(f"slow: {len(codes)} of {len(answers)} timed out; longest {max(a.seconds for a in answers):.2f}s")
