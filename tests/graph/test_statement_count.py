"""A request costs a fixed number of SQL statements, whatever the page size (no N+1).

Statements are counted where the driver receives them, on every connection of
the app's read pool, while the app serves real requests through ``TestClient``:
SQLite's own trace callback, or asyncpg's query logger on PostgreSQL. The counts
are the same on both: PostgreSQL's BEGIN is one query (``BEGIN ISOLATION LEVEL
REPEATABLE READ READ ONLY`` with the request's limits, ``SET LOCAL``, in the same
round trip), and its ROLLBACK ``ROLLBACK``, and the read pool neither resets a
connection it gets back (asyncpg's reset query would be one more statement per
request) nor lets asyncpg look up array types during a request (see ``loaders.db``).
"""

from __future__ import annotations

import asyncio
import re
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
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

POST_PAGE = (OPERATIONS / "post-page.graphql").read_text(encoding="utf-8")
FRAGMENT = POST_PAGE[POST_PAGE.index("fragment PostPageFields") :]
SYNTHESIZED = 120

# Every field of the Listing operation and, through the fragment, every field of the post page.
EVERYTHING = (
    """
query Everything($first: Int!) {
  posts(first: $first) {
    totalCount
    pageInfo { hasNextPage endCursor }
    edges {
      cursor
      node {
        ...PostPageFields
        id
        slug
        title
        meta { topic readingTime viewCount stack tools difficulty }
        scores { quality freshness }
        entities { name type }
        images { url caption }
      }
    }
  }
}
"""
    + FRAGMENT
)

_FROM = re.compile(r"\bFROM\s+(\w+)", re.I)


@dataclass
class Recorder:
    """The SQL statements the engine sent to the database since the last ``clear``."""

    statements: list[str] = field(default_factory=list)

    def __call__(self, statement: str) -> None:
        if not statement.startswith("PRAGMA"):  # a new connection's settings, not the request's
            self.statements.append(statement)

    def clear(self) -> None:
        self.statements.clear()

    def labels(self) -> list[str]:
        """Each statement named by what it does: BEGIN, or the first table it reads."""
        names = []
        for statement in self.statements:
            keyword = statement.strip().split()[0].upper().rstrip(";")
            if keyword in ("BEGIN", "ROLLBACK"):
                names.append(keyword)
            else:
                match = _FROM.search(statement)
                names.append(match.group(1) if match else statement)
        return sorted(names)


@dataclass(frozen=True)
class Served:
    client: TestClient
    recorder: Recorder
    seed_slug: str


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, new_store_url: Callable[[str], str]) -> Iterator[Served]:
    documents = tmp_path_factory.mktemp("statements") / "documents"
    write(documents, SYNTHESIZED, seed=23)
    shutil.copy(SEED_DOCUMENT, documents / SEED_DOCUMENT.name)
    url = new_store_url("statements")

    async def load() -> None:
        engine = models.create_engine(url)
        try:
            await models.create_all(engine)
            receipt = await import_sources(engine, collect_sources([str(documents)])[0])
            assert (receipt.created, receipt.rejected) == (SYNTHESIZED + 1, [])
        finally:
            await engine.dispose()

    asyncio.run(load())
    # Without the response cache, which would answer a repeated request with no statement at all.
    app = create_app(Settings(database_url=url, cache=False))
    recorder = Recorder()
    with TestClient(app) as client:
        # The read pool exists once the lifespan has started.
        client.portal.call(app.state.read_pool.trace, recorder)
        yield Served(client, recorder, slug_for(parse(SEED_DOCUMENT.read_bytes())))


def run(served: Served, query: str, variables: dict[str, Any], operation: str | None = None) -> dict[str, Any]:
    """Serve one request with no aggregate cached (a cold request), recording its statements."""
    served.client.app.state.read_pool.aggregates.clear()  # type: ignore[attr-defined]
    served.recorder.clear()
    response = served.client.post("/graphql", json={"query": query, "variables": variables, "operationName": operation})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    assert "errors" not in body, body["errors"]
    data: dict[str, Any] = body["data"]
    return data


# BEGIN, then one statement per relation: the page of posts, the total count, blocks,
# images (body and images share one loader), stack, tools, entities, checklist, notes
# and similar posts (each similar post's own row comes with it, in the same join);
# ROLLBACK ends the read transaction.
EVERYTHING_STATEMENTS = [
    "BEGIN",
    "ROLLBACK",
    "checklist_item",
    "post",  # the page
    "post",  # totalCount
    "post_block",
    "post_entity",
    "post_image",
    "post_note",
    "post_stack",
    "post_tool",
    "similar_post",
    "store_version",  # totalCount is an aggregate, cached until the store's version changes
]
# BEGIN, the post by slug, blocks, images, stack, tools, entities, checklist, notes, similar posts, ROLLBACK.
POST_PAGE_STATEMENTS = [
    "BEGIN",
    "ROLLBACK",
    "checklist_item",
    "post",
    "post_block",
    "post_entity",
    "post_image",
    "post_note",
    "post_stack",
    "post_tool",
    "similar_post",
]


def test_a_page_of_100_posts_costs_the_same_statements_as_a_page_of_1(served: Served) -> None:
    # Given a store of more than 100 posts.
    # When a page of 1 and a page of 100 are read with every field of every post.
    one = run(served, EVERYTHING, {"first": 1})
    statements_for_one = served.recorder.labels()
    hundred = run(served, EVERYTHING, {"first": 100})
    statements_for_hundred = served.recorder.labels()
    # Then both pages are full and each cost the same 13 statements.
    assert len(one["posts"]["edges"]) == 1
    assert len(hundred["posts"]["edges"]) == 100
    assert one["posts"]["totalCount"] == hundred["posts"]["totalCount"] == SYNTHESIZED + 1
    assert all(edge["node"]["similarPosts"] for edge in hundred["posts"]["edges"])
    assert len(served.recorder.statements) == 13
    assert statements_for_one == statements_for_hundred == EVERYTHING_STATEMENTS


def test_the_post_page_costs_eleven_statements(served: Served) -> None:
    data = run(served, POST_PAGE, {"slug": served.seed_slug}, "PostPage")
    assert data["post"]["slug"] == served.seed_slug
    assert len(data["post"]["similarPosts"]) == 5
    assert len(served.recorder.statements) == 11
    assert served.recorder.labels() == POST_PAGE_STATEMENTS


def test_each_request_reads_afresh_with_nothing_cached_across_requests(served: Served) -> None:
    counts = []
    for _ in range(3):
        run(served, POST_PAGE, {"slug": served.seed_slug}, "PostPage")
        counts.append(len(served.recorder.statements))
    assert counts == [11, 11, 11]
