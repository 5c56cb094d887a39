"""HTTP caching and the response cache, through the ASGI app on real stores.

What is expected comes from the issue the feature answers and from HTTP itself
(RFC 9110/9111): a public query over GET may be kept by browsers and CDNs
(``public, max-age, stale-while-revalidate``, an ``ETag``, ``304`` for a matching
``If-None-Match``); a request with credentials is ``private, no-store`` and never
touches the shared cache; mutations and answers with errors are never kept.
``Surrogate-Key`` names what a response holds, so that a write purges exactly the
responses it changed: ``p<id>`` per post (ids read from the database here) and
``lists`` for lists, counts and searches. Whether a response came from the
server's cache is read from ``Server-Timing`` (``cache;desc="hit"``).

The helpers are in ``tests/server/caching.py``; purges in ``test_purges.py``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from starlette.testclient import TestClient

from graph.node import encode_id
from server.app import create_app
from server.settings import Settings
from tests.factories import import_paths
from tests.server.caching import (
    ENTITY_PAGE,
    FACETS,
    LISTING,
    POST_PAGE,
    SEED,
    SEED_REFERENCE,
    SEED_SLUG,
    bearer,
    cache_of,
    create_editor,
    directives,
    get,
    ids_by_slug,
    keys_of,
    page,
    post,
    statements_of,
    synthesized_corpus,
    title_of,
    warm,
)

# -- a store to read (module-scoped, SQLite): 230 synthesized posts and the seed ----------------

MANY = 230


@pytest.fixture(scope="module")
def read_store(tmp_path_factory: pytest.TempPathFactory) -> str:
    folder = synthesized_corpus(tmp_path_factory.mktemp("caching") / "documents", MANY)
    url = f"sqlite:///{tmp_path_factory.mktemp('caching-store') / 'store.db'}"
    import_paths(url, folder)
    return url


@pytest.fixture(scope="module")
def read_token(read_store: str) -> str:
    return create_editor(read_store, "reader-of-drafts")


MAX_AGE, STALE = 123, 4567


@pytest.fixture
def client(read_store: str) -> Iterator[TestClient]:
    """The app with non-default cache lifetimes, on the read store."""
    settings = Settings(database_url=read_store, cache_max_age=MAX_AGE, cache_stale_while_revalidate=STALE)
    with TestClient(create_app(settings)) as client:
        yield client


# -- Cache-Control, ETag, 304 --------------------------------------------------------------


def test_a_public_get_is_public_with_the_configured_lifetimes_and_an_etag(client: TestClient) -> None:
    first = page(client, SEED_REFERENCE)
    assert title_of(first) == SEED.title
    assert first.headers["cache-control"] == f"public, max-age={MAX_AGE}, stale-while-revalidate={STALE}"
    etag = first.headers["etag"]
    assert re.fullmatch(r'"[^"]+"', etag), etag  # a strong, quoted entity tag
    # The response differs by credentials: a shared cache must not give it to a request with a token.
    assert "authorization" in first.headers["vary"].lower()
    assert cache_of(first) == "miss"
    # Served again from the server's cache: the same bytes, the same ETag.
    second = page(client, SEED_REFERENCE)
    assert cache_of(second) == "hit"
    assert second.content == first.content
    assert second.headers["etag"] == etag
    assert second.headers["cache-control"] == first.headers["cache-control"]


def test_the_default_lifetimes_are_those_of_the_settings(read_store: str) -> None:
    with TestClient(create_app(Settings(database_url=read_store))) as client:
        response = page(client, SEED_REFERENCE)
    assert response.status_code == 200
    assert response.headers["cache-control"] == "public, max-age=60, stale-while-revalidate=300"


@pytest.mark.parametrize(
    "if_none_match",
    ["{etag}", '"nope", {etag}, "other"', "W/{etag}", '"nope", W/{etag}', "*"],
    ids=["exact", "list", "weak", "weak-in-list", "star"],
)
def test_a_matching_if_none_match_is_304_with_no_body(client: TestClient, if_none_match: str) -> None:
    first = page(client, SEED_REFERENCE)
    etag = first.headers["etag"]
    for _ in range(2):
        response = page(client, SEED_REFERENCE, headers={"If-None-Match": if_none_match.format(etag=etag)})
        assert response.status_code == 304, (if_none_match, response.status_code)
        assert response.content == b""
        # A 304 carries what the 200 would have: its validator and its freshness.
        assert response.headers["etag"] == etag
        assert response.headers["cache-control"] == first.headers["cache-control"]
        assert "server-timing" in response.headers


def test_an_if_none_match_that_does_not_match_gets_the_whole_response(client: TestClient) -> None:
    first = page(client, SEED_REFERENCE)
    response = page(client, SEED_REFERENCE, headers={"If-None-Match": '"not-the-etag", W/"nor-this"'})
    assert response.status_code == 200
    assert response.content == first.content


def test_an_editor_gets_private_no_store_and_never_touches_the_cache(client: TestClient, read_token: str) -> None:
    # Given the public post page in the cache.
    warm(client, lambda: page(client, SEED_REFERENCE))
    # When an editor asks for the same page, twice.
    for _ in range(2):
        response = page(client, SEED_REFERENCE, headers=bearer(read_token))
        # Then it is computed for them every time: never served from the cache...
        assert response.status_code == 200
        assert title_of(response) == SEED.title
        assert response.headers["cache-control"] == "private, no-store"
        assert cache_of(response) == "bypass"
        assert statements_of(response) > 0
    # ... and never stored into it: a query only the editor asked is a miss for the public.
    listing = {"first": 3}
    for _ in range(2):
        assert cache_of(get(client, LISTING, listing, headers=bearer(read_token))) == "bypass"
    assert cache_of(get(client, LISTING, listing)) == "miss"
    # The same with POST.
    assert cache_of(post(client, LISTING, {"first": 4}, headers=bearer(read_token))) == "bypass"
    assert cache_of(post(client, LISTING, {"first": 4})) == "miss"


def test_mutations_are_no_store(client: TestClient, read_token: str) -> None:
    # A mutation that is refused (no token) and one that is answered (an unknown post) write nothing.
    mutation = f'mutation {{ markReviewed(id: "{encode_id("Post", "no-such-post")}") {{ __typename }} }}'
    for headers in ({}, bearer(read_token)):
        for _ in range(2):
            response = post(client, mutation, headers=headers)
            assert response.status_code in (200, 401), response.text
            assert "no-store" in directives(response), response.headers.get("cache-control")
            assert "public" not in directives(response)
            assert cache_of(response) == "bypass"


def test_a_response_with_errors_is_no_store_and_never_cached(client: TestClient) -> None:
    query = "{ posts(first: 500) { totalCount } }"  # first is 1..100: a BAD_USER_INPUT error
    for send in (get, post):
        for _ in range(2):
            response = send(client, query)
            body = response.json()
            assert [e["extensions"]["code"] for e in body["errors"]] == ["BAD_USER_INPUT"]
            assert response.headers["cache-control"] == "no-store"
            assert cache_of(response) == "miss"  # looked up, computed, not kept: a miss again


def test_post_queries_are_served_from_the_cache_but_are_no_store(client: TestClient) -> None:
    variables = {"reference": SEED_REFERENCE}
    first = post(client, POST_PAGE, variables, operation="PostByReference")
    second = post(client, POST_PAGE, variables, operation="PostByReference")
    assert (cache_of(first), cache_of(second)) == ("miss", "hit")
    assert second.content == first.content
    assert statements_of(second) == 0
    for response in (first, second):
        assert response.headers["cache-control"] == "no-store"


# -- Surrogate-Key --------------------------------------------------------------------------


def test_the_post_page_names_the_post_and_each_of_its_similar_posts(client: TestClient, read_store: str) -> None:
    response = get(client, POST_PAGE, {"slug": SEED_SLUG}, operation="PostPage")
    assert response.status_code == 200
    similar = [item["post"]["slug"] for item in response.json()["data"]["post"]["similarPosts"]]
    assert len(similar) == 5
    ids = ids_by_slug(read_store, [SEED_SLUG, *similar])
    # Exactly those posts: no `lists`, or every write anywhere would purge every post page.
    assert sorted(keys_of(response)) == sorted(f"p{i}" for i in ids.values())
    # The same header when the page comes from the cache.
    again = get(client, POST_PAGE, {"slug": SEED_SLUG}, operation="PostPage")
    assert cache_of(again) == "hit"
    assert sorted(keys_of(again)) == sorted(keys_of(response))


def test_a_listing_names_its_posts_and_lists(client: TestClient, read_store: str) -> None:
    response = get(client, LISTING, {"first": 10})
    slugs = [edge["node"]["slug"] for edge in response.json()["data"]["posts"]["edges"]]
    assert len(slugs) == 10
    keys = keys_of(response)
    assert "lists" in keys
    assert {f"p{i}" for i in ids_by_slug(read_store, slugs).values()} <= set(keys)
    assert len(keys) == len(set(keys))


@pytest.mark.parametrize(
    ("query", "operation", "variables"),
    [(FACETS, "Facets", {}), (ENTITY_PAGE, "Vocabulary", {})],
    ids=["facets", "vocabulary"],
)
def test_facets_and_vocabulary_name_lists(
    client: TestClient, query: str, operation: str, variables: dict[str, Any]
) -> None:
    response = get(client, query, variables, operation=operation)
    assert response.status_code == 200
    assert "errors" not in response.json()
    # They count posts and show no post's data.
    assert keys_of(response) == ["lists"]


def test_a_response_holding_more_than_200_posts_is_named_by_lists_alone(client: TestClient) -> None:
    listing = "query Page($after: String) { posts(first: 100, after: $after) { pageInfo { endCursor } } }"
    cursors: list[str | None] = [None]
    for _ in range(2):
        body = post(client, listing, {"after": cursors[-1]}).json()
        cursors.append(body["data"]["posts"]["pageInfo"]["endCursor"])
    query = """query ThreePages($b: String!, $c: String!) {
      a: posts(first: 100) { edges { node { slug } } }
      b: posts(first: 100, after: $b) { edges { node { slug } } }
      c: posts(first: 100, after: $c) { edges { node { slug } } }
    }"""
    response = get(client, query, {"b": cursors[1], "c": cursors[2]})
    data = response.json()["data"]
    slugs = {edge["node"]["slug"] for part in "abc" for edge in data[part]["edges"]}
    assert len(slugs) == MANY + 1 > 200
    assert response.headers["surrogate-key"] == "lists"
    # A page of 100 posts names each (within the cap of 200 keys).
    hundred = get(client, LISTING, {"first": 100})
    keys = keys_of(hundred)
    assert "lists" in keys
    assert 101 <= len(keys) <= 200
