"""Writes through a PostgreSQL outage, on a private cluster the tests stop and start: a write in flight
when PostgreSQL stops either committed or not, and the caller can tell; an import cut short says so and
completes when run again."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import asyncpg
import httpx2
import pytest

from documents.synth import write
from server.app import create_app
from server.settings import Settings
from tests.conftest import ROOT
from tests.editing import export_all, revision_rows
from tests.parts.postgres import PrivatePostgres
from tests.server.outage_pg import DATABASE, Template, check_outage_answer
from tests.store.dump import logical_dump

pytestmark = pytest.mark.postgres


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
