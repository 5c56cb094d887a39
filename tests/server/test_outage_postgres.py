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
import threading
import time
from pathlib import Path
from typing import Any

import httpx2
import orjson
import pytest

from documents.synth import write
from server.app import create_app
from server.settings import Settings
from tests.editing import import_folder
from tests.parts.postgres import PrivatePostgres
from tests.parts.processes import SHUTDOWN_TIMEOUT, free_port, start_server, stop_process, wait_until_healthy
from tests.parts.proxy import Proxy
from tests.server.outage_pg import (
    DATABASE,
    LEAKS,
    RECOVERY,
    Answer,
    Template,
    body_for,
    check_outage_answer,
    open_files,
    steady_load,
    until,
)

pytestmark = pytest.mark.postgres


# -- PostgreSQL stopped and started again, through the ASGI app ---------------------------------


async def _stopped_under_load(http: httpx2.AsyncClient, pg: PrivatePostgres, editor: dict[str, str]) -> float:
    """Stop PostgreSQL under the load; what the API says meanwhile. When it stopped."""
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
    return stopped


async def _started_again(
    http: httpx2.AsyncClient, pg: PrivatePostgres, template: Template, editor: dict[str, str]
) -> tuple[float, dict[str, float]]:
    """Start PostgreSQL again, with the same data on the same port; when, and how long until the API
    served a query and said it was healthy."""
    await asyncio.to_thread(pg.start)
    back = time.monotonic()

    async def serves() -> bool:
        response = await http.post("/graphql", json=body_for(template, 0), headers=editor)
        check_outage_answer(response.status_code, response.headers, response.text)
        return response.status_code == 200

    async def healthy() -> bool:
        return (await http.get("/healthz")).status_code == 200

    return back, {"graphql": await until(serves, RECOVERY), "healthz": await until(healthy, RECOVERY)}


async def _writes_and_the_poller_work_again(
    http: httpx2.AsyncClient, services: Any, template: Template, editor: dict[str, str], url: str, folder: Path
) -> float:
    """The write engine serves a mutation, the purge-log poller still runs, and a write by another
    process (an import) reaches this one: the poller and the fact index follow. How long the poller took."""
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
    total = "{ posts(first: 1) { totalCount } }"
    before = (await http.post("/graphql", json={"query": total}, headers=editor)).json()
    write(folder, 1, seed=9_001)
    await asyncio.to_thread(import_folder, url, folder)

    async def followed() -> bool:
        return bool(purger.last > seen + 1)

    took = await until(followed, 3.0)
    filtered = "{ posts(first: 1, where: {stackAny: []}) { totalCount } }"
    after = await http.post("/graphql", json={"query": filtered}, headers=editor)
    assert after.json()["data"]["posts"]["totalCount"] == before["data"]["posts"]["totalCount"] + 1
    return took


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
            transport = httpx2.ASGITransport(app=app)
            async with httpx2.AsyncClient(transport=transport, base_url="http://test", timeout=30) as http:
                stop = asyncio.Event()
                clients = [asyncio.create_task(steady_load(http, template, stop, answers, n)) for n in range(6)]
                await asyncio.sleep(0.5)
                # When PostgreSQL stops under the load, and starts again.
                stopped = await _stopped_under_load(http, pg, editor)
                down = [a for a in answers if a.sent > stopped]
                back, times = await _started_again(http, pg, template, editor)
                recovered.update(times)
                await asyncio.sleep(0.3)
                stop.set()
                await asyncio.gather(*clients)
                services = app.state.services
                recovered["purge-log"] = await _writes_and_the_poller_work_again(
                    http, services, template, editor, url, tmp_path / "extra"
                )
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
