"""The store the finding tests read (``test_finding_posts.py``, ``test_search_posts.py``): imported once per
module and served through Starlette's ``TestClient``, asked through the fact index and in SQL; and
reading its listings."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.graph.finding import (
    FILTERED_LISTING,
    Store,
    serve,
    walk,
)

TITLE_ASC = {"field": "TITLE", "direction": "ASC"}
GRAPHQL_RESPONSE = "application/graphql-response+json"


@pytest.fixture(scope="module")
def store_url(new_store_url: Callable[[str], str]) -> str:
    """The (empty) database the module's store is imported into: a SQLite file, then a PostgreSQL database."""
    return new_store_url("finding-posts")


@pytest.fixture(scope="module")
def served_store(store_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Store]:
    with serve(store_url, tmp_path_factory.mktemp("finding-posts-corpus")) as served:
        yield served


@pytest.fixture(params=["fact index", "sql"])
def store(served_store: Store, request: pytest.FixtureRequest) -> Iterator[Store]:
    """The store, read through the fact index (loaders.facts) or in SQL alone: both must hold."""
    pool = served_store.client.app.state.read_pool  # type: ignore[attr-defined]
    pool.use_facts = request.param == "fact index"
    try:
        yield served_store
    finally:
        pool.use_facts = True


def posts_of(data: dict[str, Any]) -> dict[str, Any]:
    connection: dict[str, Any] = data["posts"]
    return connection


def listing(
    store: Store, where: dict[str, Any] | None = None, order: dict[str, str] | None = None, first: int = 7
) -> list[dict[str, Any]]:
    """Every page of the FilteredListing operation."""
    return walk(store.client, FILTERED_LISTING, {"where": where, "orderBy": order}, posts_of, first=first)


def check_listing_node(store: Store, node: dict[str, Any]) -> None:
    """A FilteredListing node shows its document's fields."""
    source = store.by_slug[node["slug"]]
    data, meta = source.data, source.data["meta"]
    assert node == {
        "slug": source.slug,
        "title": data["title"],
        "meta": {
            "topic": meta["topic"],
            "viewCount": meta["viewCount"],
            "stack": meta["stack"],
            "tools": meta["tools"],
            "codeLanguage": meta["codeLanguage"],
            "difficulty": meta["difficulty"],
            "revision": {"status": meta["revision"]["status"], "lastReviewed": meta["revision"]["lastReviewed"]},
            "flags": {"needsHumanReview": meta["flags"]["needsHumanReview"]},
        },
        "scores": data["scores"],
    }
