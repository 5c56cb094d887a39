"""The reads a reader's page makes use the selective indexes, with or without planner statistics.

SQLite only: its planner picks an index by rules when a store has no statistics
(``sqlite_stat1``), as a store of few posts or one that has only had small imports
has not, and by the statistics when it has them. A full index on ``archived_at``
once lured it into answering a slug lookup through that index, which every
public post is in: a scan of the whole table, 90 ms at 100,000 posts where the
slug's unique index takes a tenth of a millisecond. These tests read the plan
of every statement the post page and the post lookups send (``EXPLAIN QUERY
PLAN``) and fail on a plan that reads more of ``post`` than the posts asked for.
"""

from __future__ import annotations

import asyncio
import re
import shutil
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

import models
from documents import parse, slug_for
from documents.synth import write
from server.app import create_app
from server.settings import Settings
from store.importer import import_sources
from store.sources import collect_sources
from tests.conftest import OPERATIONS, SEED_DOCUMENT
from tests.graph.test_statement_count import Recorder

POST_PAGE = (OPERATIONS / "post-page.graphql").read_text(encoding="utf-8")
FRAGMENT = POST_PAGE[POST_PAGE.index("fragment PostPageFields") :]
BY_ID = "query ById($id: ID!) { post(id: $id) { ...PostPageFields } }\n" + FRAGMENT
BY_REFERENCE = (
    "query ByReference($reference: String!) { post(reference: $reference) { ...PostPageFields } }\n" + FRAGMENT
)

# What a plan may say about the post table when a page asks for given posts: found by its
# primary key or a unique key (slug, reference, source id), never scanned or found through another index.
_POST_LINE = re.compile(r"\b(SCAN|SEARCH) (post|p)\b(?! *_)(.*)")
_BY_KEY = re.compile(
    r"USING (INTEGER PRIMARY KEY \(rowid=\?\)|INDEX sqlite_autoindex_post_\d+ \((slug|reference|source_id)=\?\))"
)


@dataclass(frozen=True)
class Store:
    path: Path
    client: TestClient
    recorder: Recorder
    seed_slug: str
    seed_reference: str


@pytest.fixture(scope="module", params=["with statistics", "without statistics"])
def store(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Store]:
    folder = tmp_path_factory.mktemp("plans")
    documents = folder / "documents"
    write(documents, 60, seed=5)
    shutil.copy(SEED_DOCUMENT, documents / SEED_DOCUMENT.name)
    path = folder / "store.db"
    url = f"sqlite:///{path}"

    async def load() -> None:
        engine = models.create_engine(url)
        try:
            await models.create_all(engine)
            receipt = await import_sources(engine, collect_sources([str(documents)])[0])
            assert receipt.analyzed and not receipt.rejected
        finally:
            await engine.dispose()

    asyncio.run(load())
    if request.param == "without statistics":
        with sqlite3.connect(path) as conn:
            conn.execute("DROP TABLE sqlite_stat1")
    seed = parse(SEED_DOCUMENT.read_bytes())
    app = create_app(Settings(database_url=url, cache=False))
    recorder = Recorder()
    with TestClient(app) as client:
        client.portal.call(app.state.read_pool.trace, recorder)
        yield Store(path, client, recorder, slug_for(seed), seed.meta.reference)


def ask(store: Store, query: str, variables: dict[str, Any], operation: str | None = None) -> dict[str, Any]:
    response = store.client.post("/graphql", json={"query": query, "variables": variables, "operationName": operation})
    assert response.status_code == 200 and "errors" not in response.json(), response.text
    data: dict[str, Any] = response.json()["data"]
    return data


def plans(store: Store, query: str, variables: dict[str, Any], operation: str | None = None) -> list[tuple[str, str]]:
    """(statement, its plan) for each statement one request sends, BEGIN and ROLLBACK left out."""
    store.client.app.state.read_pool.aggregates.clear()  # type: ignore[attr-defined]
    store.recorder.clear()
    assert ask(store, query, variables, operation)["post"] is not None
    found = []
    with sqlite3.connect(store.path) as conn:
        for statement in store.recorder.statements:
            if statement.split()[0].upper() in ("BEGIN", "ROLLBACK"):
                continue
            rows = conn.execute("EXPLAIN QUERY PLAN " + statement, [None] * statement.count("?")).fetchall()
            found.append((statement, "\n".join(row[-1] for row in rows)))
    return found


def post_lines(plan: str) -> list[str]:
    return [m.group(0) for m in map(_POST_LINE.search, plan.splitlines()) if m]


def test_the_post_page_finds_its_post_by_slug_through_the_unique_index(store: Store) -> None:
    found = plans(store, POST_PAGE, {"slug": store.seed_slug}, "PostPage")
    lines = [line for _, plan in found for line in post_lines(plan)]
    assert lines, found  # the lookup and the similar posts' own rows
    assert [line for line in lines if not _BY_KEY.search(line)] == [], found
    assert any("(slug=?)" in line for line in lines)


def test_lookups_by_id_and_reference_use_the_primary_and_unique_keys(store: Store) -> None:
    seed_id = ask(store, "query($slug: String!) { post(slug: $slug) { id } }", {"slug": store.seed_slug})["post"]["id"]
    for query, variables, key in (
        (BY_ID, {"id": seed_id}, "="),
        (BY_REFERENCE, {"reference": store.seed_reference}, "(reference=?)"),
    ):
        lines = [line for _, plan in plans(store, query, variables) for line in post_lines(plan)]
        assert [line for line in lines if not _BY_KEY.search(line)] == []
        assert any(key in line for line in lines)


def test_no_reader_query_goes_through_the_archived_index(store: Store) -> None:
    found = plans(store, POST_PAGE, {"slug": store.seed_slug}, "PostPage")
    assert [plan for _, plan in found if "ix_post_archived_at" in plan] == []
