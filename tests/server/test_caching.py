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

The helpers at the top (stores, tokens, ``Server-Timing``) are shared with the
other test modules of the feature.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import re
import shutil
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx2
import pytest
import redis
from sqlalchemy import Connection, text
from starlette.testclient import TestClient

from documents import parse, render, slug_for
from graph.node import encode_id
from server.app import create_app
from server.settings import Settings
from store import tokens
from tests.conftest import OPERATIONS, SEED_DOCUMENT
from tests.factories import import_files, import_paths, on_store, small_corpus

REDIS_URL = "redis://127.0.0.1:6379/0"
POST_PAGE = (OPERATIONS / "post-page.graphql").read_text(encoding="utf-8")
LISTING = (OPERATIONS / "listing.graphql").read_text(encoding="utf-8")
FACETS = (OPERATIONS / "facets.graphql").read_text(encoding="utf-8")
ENTITY_PAGE = (OPERATIONS / "entity-page.graphql").read_text(encoding="utf-8")  # EntityPage and Vocabulary
SEED = parse(SEED_DOCUMENT.read_bytes())
SEED_SLUG = slug_for(SEED)
SEED_REFERENCE = SEED.meta.reference
CONTENT_HASH = "query Hash($reference: String!) { post(reference: $reference) { id contentHash } }"
UPDATE_TITLE = """mutation Update($id: ID!, $title: String!, $expectedHash: String!) {
  updatePost(id: $id, input: {title: $title}, expectedHash: $expectedHash) {
    __typename
    ... on PostSaved { post { title } }
  }
}"""
PURGE_DEADLINE = 1.0  # seconds: a write anywhere purges every process within this


# -- stores and tokens ------------------------------------------------------------


synthesized_corpus = small_corpus  # (the name the fleet tests import)


def create_editor(url: str, name: str = "editor") -> str:
    """A new editor token, made by what ``alphanode token create`` calls, in a transaction."""

    def run(conn: Connection) -> str:
        token = tokens.create_token(conn, name, "editor")
        conn.commit()
        return token

    token: str = on_store(url, run)
    return token


def ids_by_slug(url: str, slugs: list[str]) -> dict[str, int]:
    """Post ids straight from the database."""

    def run(conn: Connection) -> dict[str, int]:
        found = {}
        for slug in slugs:
            found[slug] = conn.execute(text("SELECT id FROM post WHERE slug = :slug"), {"slug": slug}).scalar_one()
        return found

    result: dict[str, int] = on_store(url, run)
    return result


@dataclasses.dataclass(frozen=True)
class Trio:
    """Three posts for purge tests, chosen from the similar_post table: A; B, unrelated to A (neither is
    among the other's ten similar posts); C, whose post page (five similar posts) shows A."""

    a: str  # references
    b: str
    c: str
    a_id: int
    b_id: int
    c_id: int


def pick_trio(url: str) -> Trio:
    def run(conn: Connection) -> Trio:
        posts = dict(conn.execute(text("SELECT id, reference FROM post")).all())
        similar: dict[int, list[int]] = {post_id: [] for post_id in posts}
        for post_id, similar_id in conn.execute(
            text("SELECT post_id, similar_id FROM similar_post ORDER BY post_id, rank")
        ):
            similar[post_id].append(similar_id)
        for c_id in sorted(posts):
            for a_id in similar[c_id][:5]:
                for b_id in sorted(posts):
                    unrelated = (
                        b_id not in (a_id, c_id)
                        and a_id not in similar[b_id]
                        and b_id not in similar[a_id]
                        and b_id not in similar[c_id]
                    )
                    if unrelated:
                        return Trio(posts[a_id], posts[b_id], posts[c_id], a_id, b_id, c_id)
        raise AssertionError("no three posts fit")

    trio: Trio = on_store(url, run)
    return trio


@pytest.fixture
def redis_prefix() -> Iterator[str]:
    """A Redis key prefix of this test's own; every key under it is deleted afterwards."""
    prefix = f"alphanode-test-{uuid.uuid4().hex}:"
    try:
        yield prefix
    finally:
        delete_redis_keys(prefix)


def delete_redis_keys(prefix: str) -> None:
    with redis.Redis.from_url(REDIS_URL) as client:
        names = list(client.scan_iter(match=prefix + "*", count=1000))
        if names:
            client.delete(*names)


def redis_key_count(prefix: str) -> int:
    with redis.Redis.from_url(REDIS_URL) as client:
        return len(list(client.scan_iter(match=prefix + "*", count=1000)))


# -- requests and what their headers say ------------------------------------------------


def timing(response: httpx2.Response) -> dict[str, dict[str, str]]:
    """Server-Timing as {metric: {param: value}} (``dur``, ``desc``)."""
    header = response.headers.get("server-timing")
    assert header is not None, f"no Server-Timing on a {response.status_code} response"
    metrics: dict[str, dict[str, str]] = {}
    for part in header.split(","):
        name, *params = (p.strip() for p in part.split(";"))
        values = {}
        for param in params:
            key, _, value = param.partition("=")
            values[key.strip()] = value.strip().strip('"')
        metrics[name] = values
    return metrics


def cache_of(response: httpx2.Response) -> str:
    return timing(response)["cache"]["desc"]


def statements_of(response: httpx2.Response) -> int:
    match = re.fullmatch(r"(\d+) statements?", timing(response)["db"]["desc"])
    assert match, timing(response)["db"]
    return int(match.group(1))


def keys_of(response: httpx2.Response) -> list[str]:
    return response.headers.get("surrogate-key", "").split()


def directives(response: httpx2.Response) -> set[str]:
    return {d.strip() for d in response.headers.get("cache-control", "").split(",") if d.strip()}


def get(client: TestClient | httpx2.Client, query: str, variables: dict[str, Any] | None = None, **kw: Any) -> Any:
    params = {"query": query}
    if variables is not None:
        params["variables"] = json.dumps(variables)
    if kw.get("operation"):
        params["operationName"] = kw["operation"]
    return client.get("/graphql", params=params, headers=kw.get("headers") or {})


def post(client: TestClient | httpx2.Client, query: str, variables: dict[str, Any] | None = None, **kw: Any) -> Any:
    body: dict[str, Any] = {"query": query, "variables": variables or {}}
    if kw.get("operation"):
        body["operationName"] = kw["operation"]
    return client.post("/graphql", json=body, headers=kw.get("headers") or {})


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def page(client: TestClient | httpx2.Client, reference: str, headers: dict[str, str] | None = None) -> Any:
    """The frontend's post page (by reference, which an edit of the title does not change), over GET."""
    return get(client, POST_PAGE, {"reference": reference}, operation="PostByReference", headers=headers)


def title_of(response: httpx2.Response) -> str:
    assert response.status_code == 200, response.text
    body = response.json()
    assert "errors" not in body, body
    title: str = body["data"]["post"]["title"]
    return title


def update_title(client: TestClient | httpx2.Client, token: str, reference: str, title: str) -> httpx2.Response:
    """updatePost on the post's title, with the contentHash an editor reads first."""
    found = post(client, CONTENT_HASH, {"reference": reference}, headers=bearer(token)).json()["data"]["post"]
    response = post(
        client,
        UPDATE_TITLE,
        {"id": found["id"], "title": title, "expectedHash": found["contentHash"]},
        headers=bearer(token),
    )
    assert response.status_code == 200, response.text
    result = response.json()["data"]["updatePost"]
    assert result == {"__typename": "PostSaved", "post": {"title": title}}, result
    return response


def warm(client: TestClient, send: Callable[[], httpx2.Response]) -> httpx2.Response:
    """Send a request until the server's cache answers it (the second time); the cached response."""
    first = send()
    assert first.status_code == 200, first.text
    second = send()
    assert cache_of(second) == "hit", timing(second)
    assert second.content == first.content
    return second


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


# -- targeted purges: in the process and in Redis, on SQLite and PostgreSQL -------------------------


@dataclasses.dataclass
class Served:
    url: str
    client: TestClient
    token: str
    trio: Trio
    documents: Path


@pytest.fixture(params=["memory", "redis"])
def served(request: pytest.FixtureRequest, database_url: str, tmp_path: Path, corpus: Path) -> Iterator[Served]:
    """The app on a store of its own (the session's corpus), with the in-process cache or Redis."""
    documents = tmp_path / "documents"
    shutil.copytree(corpus, documents)
    import_paths(database_url, documents)
    token = create_editor(database_url)
    extra: dict[str, Any] = {}
    if request.param == "redis":
        extra = {"redis_url": REDIS_URL, "redis_prefix": request.getfixturevalue("redis_prefix")}
    with TestClient(create_app(Settings(database_url=database_url, **extra))) as client:
        yield Served(database_url, client, token, pick_trio(database_url), documents)
    if request.param == "redis":
        assert redis_key_count(extra["redis_prefix"]) > 0  # it did use Redis (the fixture deletes the keys)


def test_an_edit_purges_exactly_the_responses_that_show_the_post(served: Served) -> None:
    client, trio = served.client, served.trio
    # Given the pages of A, B and C, a listing and the facets in the cache.
    pages = {ref: warm(client, lambda ref=ref: page(client, ref)) for ref in (trio.a, trio.b, trio.c)}
    assert f"p{trio.a_id}" in keys_of(pages[trio.c])  # C's page shows A among its similar posts
    assert f"p{trio.a_id}" not in keys_of(pages[trio.b])
    warm(client, lambda: get(client, LISTING, {"first": 20}))
    warm(client, lambda: get(client, FACETS, {}, operation="Facets"))

    # When an editor changes A's title.
    new_title = f"a title nobody wrote before {uuid.uuid4().hex[:8]}"
    update_title(client, served.token, trio.a, new_title)

    # Then A's page is computed again and shows the new title.
    response = page(client, trio.a)
    assert cache_of(response) == "miss"
    assert title_of(response) == new_title
    # C's page, which shows A's title among its similar posts, too.
    response = page(client, trio.c)
    assert cache_of(response) == "miss"
    shown = [item["post"]["title"] for item in response.json()["data"]["post"]["similarPosts"]]
    assert new_title in shown
    # Lists and counts are purged.
    assert cache_of(get(client, LISTING, {"first": 20})) == "miss"
    assert cache_of(get(client, FACETS, {}, operation="Facets")) == "miss"
    # B, unrelated to A, is still served from the cache.
    response = page(client, trio.b)
    assert cache_of(response) == "hit"
    assert response.content == pages[trio.b].content


def _changed_copy(path: Path, title: str) -> Any:
    document = parse(path.read_bytes(), path.name)
    changed = dataclasses.replace(document, title=title)
    path.write_text(render(changed), encoding="utf-8")
    return changed


def test_a_cli_import_purges_the_running_apps_page_within_a_second(served: Served) -> None:
    client, trio = served.client, served.trio
    warm(client, lambda: page(client, trio.a))
    warm(client, lambda: page(client, trio.b))
    # Given A's document changed on disk, imported by another process (the command line's code).
    path = next(p for p in served.documents.glob("*.txt") if parse(p.read_bytes(), p.name).meta.reference == trio.a)
    new_title = f"imported from the command line {uuid.uuid4().hex[:8]}"
    _changed_copy(path, new_title)
    receipt = import_files(served.url, path)
    assert receipt.updated == 1
    imported = time.monotonic()
    # Then the running app drops its copy of A's page within a second.
    while True:
        response = page(client, trio.a)
        if title_of(response) == new_title:
            break
        assert cache_of(response) == "hit"
        assert time.monotonic() - imported < PURGE_DEADLINE, "the import did not purge the app's cache within 1 s"
        time.sleep(0.02)
    took = time.monotonic() - imported
    assert took <= PURGE_DEADLINE, took
    assert cache_of(response) == "miss"
    assert cache_of(page(client, trio.b)) == "hit"


# -- the purge webhook ---------------------------------------------------------------------------


class _Hook(BaseHTTPRequestHandler):
    """Keeps each request's content type and body in its server's ``received``."""

    def do_POST(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        body = self.rfile.read(length)
        self.server.received.append((self.headers.get("content-type"), body))  # type: ignore[attr-defined]
        self.send_response(204)
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextlib.contextmanager
def webhook_server() -> Iterator[tuple[str, list[Any]]]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Hook)
    server.received = []  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/purge", server.received  # type: ignore[attr-defined]
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def test_the_purge_webhook_gets_the_keys_of_a_change(tmp_path: Path, corpus: Path) -> None:
    url = f"sqlite:///{tmp_path / 'store.db'}"
    import_paths(url, corpus)
    token = create_editor(url)
    trio = pick_trio(url)
    with (
        webhook_server() as (hook, received),
        TestClient(create_app(Settings(database_url=url, purge_webhook=hook))) as client,
    ):
        update_title(client, token, trio.a, "a title for the content delivery network")
        deadline = time.monotonic() + 2.0
        keys: set[str] = set()
        while not ({f"p{trio.a_id}", "lists"} <= keys) and time.monotonic() < deadline:
            time.sleep(0.02)
            keys = set()
            for content_type, body in list(received):
                assert content_type.startswith("application/json")
                payload = json.loads(body)
                assert set(payload) == {"keys"} and isinstance(payload["keys"], list)
                keys |= set(payload["keys"])
    assert f"p{trio.a_id}" in keys, keys
    assert "lists" in keys
    assert f"p{trio.b_id}" not in keys


def test_a_purge_and_a_store_in_redis_never_leave_a_stale_page_whichever_lands_first(redis_prefix: str) -> None:
    # Process 2 stores a page computed before a write (purge-log id 5 changed post 1; it started at 4),
    # while process 1 applies that write's purge. Storing and purging are each one atomic script in
    # Redis, so they can only land one before the other: either way the old page must not stay cached
    # (it would be served until its time to live, an hour).
    from server.caching import Entry, RedisCache

    old = Entry(b"old", '"old"', ("p1",), "application/json")

    async def run() -> tuple[bool, Entry | None, bool, Entry | None]:
        storing, purging = RedisCache(REDIS_URL, redis_prefix), RedisCache(REDIS_URL, redis_prefix)
        try:
            # The purge lands first: the store sees its mark and refuses.
            await purging.purge(["p1"], 5)
            refused = await storing.put("old-page", old, started_at=4)
            after_refusal = await purging.get("old-page")
            # The store lands first (a page that began after an older purge): the purge removes it.
            stored = await storing.put("old-page-2", Entry(b"old", '"old"', ("p2",), "application/json"), 4)
            await purging.purge(["p2"], 6)
            after_purge = await purging.get("old-page-2")
            return refused, after_refusal, stored, after_purge
        finally:
            await storing.close()
            await purging.close()

    refused, after_refusal, stored, after_purge = asyncio.run(run())
    assert (refused, after_refusal) == (False, None)
    assert stored is True
    assert after_purge is None


def test_the_in_process_cache_remembers_a_bounded_number_of_purges_and_never_stores_what_they_replaced() -> None:
    # Each purged surrogate key's generation is kept so that a page computed before the purge is not
    # stored after it. A store of a million posts would keep a million such marks: past the bound the
    # oldest are forgotten, and a page begun before the newest forgotten one is refused (a miss later,
    # never a stale page).
    from server.caching import Entry, MemoryCache

    def page(key: str) -> Entry:
        return Entry(b"body of " + key.encode(), f'"{key}"', (key,), "application/json")

    async def run() -> None:
        cache = MemoryCache(max_marks=3)
        for generation, key in enumerate(("p1", "p2", "p3", "p4", "p5"), start=10):
            await cache.purge([key], generation)
        assert cache.purge_marks == 3  # p3, p4, p5 kept; p1 (10) and p2 (11) forgotten
        # Begun before p2's forgotten purge: refused whatever its keys, as p2's own page would be.
        assert await cache.put("page-p9", page("p9"), started_at=10) is False
        assert await cache.put("page-p2", page("p2"), started_at=10) is False
        # Begun after it: a page of a key still remembered is judged by its own mark…
        assert await cache.put("page-p5", page("p5"), started_at=13) is False
        assert await cache.put("page-p3", page("p3"), started_at=13) is True
        # …and a page of a forgotten key is stored.
        assert await cache.put("page-p1", page("p1"), started_at=11) is True
        assert await cache.get("page-p1") == page("p1")
        # A key purged again moves to the newest end: purging two more forgets p4, not p3.
        await cache.purge(["p3"], 15)
        await cache.purge(["p6"], 16)
        assert cache.purge_marks == 3
        assert await cache.put("page-p4", page("p4"), started_at=13) is True  # p4 (13) forgotten: 13 >= 13
        assert await cache.put("page-p3b", page("p3"), started_at=14) is False  # p3's mark is 15

    asyncio.run(run())
