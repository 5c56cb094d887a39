"""Limits on what one request may ask for: each with its documented default and a configured value.

The defaults are those of ``server/settings.py`` and ``graph/limits.py``: depth 12,
aliases 30, tokens 5,000, nodes 5,000 (GitHub's count: each list multiplies what is
under it by its ``first``), a body of 1,000,000 bytes and 10 s per operation.
Over a limit, a request is refused before it runs with a 4xx, a JSON body and a
GraphQL error whose ``extensions.code`` names the limit; the server stays healthy.
Depth is counted in fields: ``{ post { title } }`` is 2 deep, and the post page
(post > similarPosts > post > scores > quality) is 5, as graph/limits.py says.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2
import pytest
from starlette.testclient import TestClient

from server.app import create_app
from server.settings import Settings
from tests.conftest import OPERATIONS
from tests.factories import import_paths
from tests.server.caching import SEED, SEED_SLUG

POST_PAGE = (OPERATIONS / "post-page.graphql").read_text(encoding="utf-8")
LISTING = (OPERATIONS / "listing.graphql").read_text(encoding="utf-8")
NORMAL = "query Normal($slug: String!) { post(slug: $slug) { title similarPosts(first: 2) { score } } }"

DEFAULTS = Settings()


def test_the_documented_defaults() -> None:
    assert (DEFAULTS.max_depth, DEFAULTS.max_aliases, DEFAULTS.max_tokens, DEFAULTS.max_nodes) == (12, 30, 5000, 5000)
    assert (DEFAULTS.max_body_bytes, DEFAULTS.request_timeout) == (1_000_000, 10.0)


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory, corpus: Path) -> str:
    url = f"sqlite:///{tmp_path_factory.mktemp('limits') / 'store.db'}"
    import_paths(url, corpus)
    return url


@pytest.fixture(scope="module")
def client(store: str) -> Iterator[TestClient]:
    """The app with the default limits."""
    with TestClient(create_app(Settings(database_url=store))) as client:
        yield client


def send(client: TestClient, method: str, query: str, variables: dict[str, Any] | None = None) -> httpx2.Response:
    if method == "GET":
        params = {"query": query}
        if variables:
            params["variables"] = json.dumps(variables)
        return client.get("/graphql", params=params)
    return client.post("/graphql", json={"query": query, "variables": variables or {}})


def refused(response: httpx2.Response, code: str, status: int = 400) -> str:
    """A clear refusal: the status, a JSON body with one error naming the limit, no data; its message."""
    assert response.status_code == status, (response.status_code, response.text[:500])
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert "data" not in body or body["data"] is None, body
    # One error (or one per operation of the document, which is validated whole), each naming the limit.
    assert body["errors"], body
    assert {e.get("extensions", {}).get("code") for e in body["errors"]} == {code}, body
    assert response.headers["cache-control"] == "no-store"
    message: str = body["errors"][0]["message"]
    assert message and "Traceback" not in response.text
    return message


def accepted(response: httpx2.Response) -> dict[str, Any]:
    assert response.status_code == 200, response.text[:500]
    body = response.json()
    assert "errors" not in body, body["errors"]
    data: dict[str, Any] = body["data"]
    return data


def healthy(client: TestClient) -> None:
    """The health check answers and a normal query still runs."""
    health = client.get("/healthz")
    assert health.status_code == 200
    assert health.json() == {"status": "ok", "database": "ok"}
    data = accepted(client.post("/graphql", json={"query": NORMAL, "variables": {"slug": SEED_SLUG}}))
    assert data["post"]["title"] == SEED.title


# -- depth -----------------------------------------------------------------------------


def nested(depth: int, *, fragments: bool = False) -> str:
    """A query exactly ``depth`` fields deep, through similar posts: post > similarPosts > post > ... > slug."""
    assert depth >= 2
    fields = ["post"] + ["similarPosts(first: 1)" if i % 2 else "post" for i in range(1, depth - 1)]
    leaf = "score" if fields[-1].startswith("similarPosts") else "slug"
    if not fragments:
        text = leaf
        for field in reversed(fields[1:]):
            text = f"{field} {{ {text} }}"
        return f'{{ post(slug: "{SEED_SLUG}") {{ {text} }} }}'
    # The same depth, with each level of similar posts in a fragment of its own.
    names = [f"F{i}" for i in range(len(fields))]
    parts = []
    for i, field in enumerate(fields[1:], start=1):
        on = "SimilarPost" if field == "post" else "Post"
        inner = f"...{names[i + 1]}" if i + 1 < len(fields) else leaf
        parts.append(f"fragment {names[i]} on {on} {{ {field} {{ {inner} }} }}")
    head = f'{{ post(slug: "{SEED_SLUG}") {{ ...{names[1]} }} }}' if len(fields) > 1 else ""
    return head + "\n" + "\n".join(parts)


@pytest.mark.parametrize("fragments", [False, True], ids=["inline", "fragments"])
@pytest.mark.parametrize("method", ["POST", "GET"])
def test_a_query_deeper_than_12_is_refused(client: TestClient, method: str, fragments: bool) -> None:
    accepted(send(client, method, nested(12, fragments=fragments)))
    message = refused(send(client, method, nested(13, fragments=fragments)), "QUERY_TOO_DEEP")
    assert "12" in message
    healthy(client)


def test_a_configured_depth(store: str) -> None:
    post_page = {"query": POST_PAGE, "operationName": "PostPage", "variables": {"slug": SEED_SLUG}}
    with TestClient(create_app(Settings(database_url=store, max_depth=5))) as client:
        accepted(client.post("/graphql", json=post_page))  # 5 deep, as graph/limits.py says
        accepted(send(client, "POST", nested(5)))
        refused(send(client, "POST", nested(6)), "QUERY_TOO_DEEP")
        healthy(client)
    with TestClient(create_app(Settings(database_url=store, max_depth=4))) as client:
        refused(client.post("/graphql", json=post_page), "QUERY_TOO_DEEP")


# -- aliases ------------------------------------------------------------------------------


def aliased(count: int) -> str:
    return "{ " + " ".join(f"a{i}: __typename" for i in range(count)) + " }"


@pytest.mark.parametrize("method", ["POST", "GET"])
def test_more_than_30_aliases_are_refused(client: TestClient, method: str) -> None:
    assert len(accepted(send(client, method, aliased(30)))) == 30
    refused(send(client, method, aliased(31)), "TOO_MANY_ALIASES")
    healthy(client)


def test_a_configured_number_of_aliases(store: str) -> None:
    with TestClient(create_app(Settings(database_url=store, max_aliases=3))) as client:
        accepted(send(client, "POST", aliased(3)))
        refused(send(client, "POST", aliased(4)), "TOO_MANY_ALIASES")
        healthy(client)


# -- tokens -------------------------------------------------------------------------------


def with_tokens(values: int) -> str:
    """A valid document of about ``values`` + 30 tokens: a long list in a variable's default."""
    items = ", ".join('"x"' for _ in range(values))
    return f"query Long($s: [String!] = [{items}]) {{ posts(first: 1, where: {{stackAny: $s}}) {{ totalCount }} }}"


@pytest.mark.parametrize("method", ["POST", "GET"])
def test_a_document_of_more_than_5000_tokens_is_refused(client: TestClient, method: str) -> None:
    accepted(send(client, method, with_tokens(4_900)))
    message = refused(send(client, method, with_tokens(5_100)), "TOO_MANY_TOKENS")
    assert "5,000" in message or "5000" in message
    healthy(client)


def test_a_configured_number_of_tokens(store: str) -> None:
    with TestClient(create_app(Settings(database_url=store, max_tokens=100))) as client:
        accepted(send(client, "POST", with_tokens(50)))
        refused(send(client, "POST", with_tokens(120)), "TOO_MANY_TOKENS")
        healthy(client)


def test_a_short_document_with_a_syntax_error_is_a_syntax_error(client: TestClient) -> None:
    # Ten tokens: whatever the error says, it is not over the limit of tokens.
    response = send(client, "POST", "{ __typename } tokens")
    body = response.json()
    codes = [e.get("extensions", {}).get("code") for e in body["errors"]]
    assert "TOO_MANY_TOKENS" not in codes, body
    assert "Syntax Error" in body["errors"][0]["message"]


# -- nodes --------------------------------------------------------------------------------

NESTED_LISTS = (
    "posts(first: {n}) { edges { node { similarPosts(first: 10) { post { similarPosts(first: 10) { score } } } } } }"
)


@pytest.mark.parametrize("method", ["POST", "GET"])
def test_an_operation_that_may_return_more_than_5000_nodes_is_refused(client: TestClient, method: str) -> None:
    # 100 + 100 * 10 + 100 * 10 * 10 = 11,100 nodes.
    message = refused(send(client, method, "{ " + NESTED_LISTS.replace("{n}", "100") + " }"), "QUERY_TOO_COMPLEX")
    assert "11,100" in message or "11100" in message
    # 2 + 20 + 200 = 222: runs.
    data = accepted(send(client, method, "{ " + NESTED_LISTS.replace("{n}", "2") + " }"))
    assert len(data["posts"]["edges"]) == 2
    healthy(client)


@pytest.mark.parametrize("method", ["POST", "GET"])
def test_the_node_count_uses_the_variables(client: TestClient, method: str) -> None:
    query = "query Nested($n: Int!) { " + NESTED_LISTS.replace("{n}", "$n") + " }"
    refused(send(client, method, query, {"n": 100}), "QUERY_TOO_COMPLEX")
    assert len(accepted(send(client, method, query, {"n": 2}))["posts"]["edges"]) == 2
    # A count found within the limit is remembered for those page sizes only: the same text with
    # a larger page is counted again and refused, the smaller one still runs.
    refused(send(client, method, query, {"n": 100}), "QUERY_TOO_COMPLEX")
    assert len(accepted(send(client, method, query, {"n": 2}))["posts"]["edges"]) == 2
    refused(
        send(client, method, query.replace("$n: Int!", "$n: Int!, $m: Int"), {"n": 100, "m": 2}), "QUERY_TOO_COMPLEX"
    )
    healthy(client)


def test_the_node_count_uses_a_variables_default_value(client: TestClient) -> None:
    # No variables are sent: $n is 100, its default, and the operation may return 11,100 nodes.
    query = "query Nested($n: Int = 100) { " + NESTED_LISTS.replace("{n}", "$n") + " }"
    refused(send(client, "POST", query), "QUERY_TOO_COMPLEX")
    healthy(client)


def test_a_configured_number_of_nodes(store: str) -> None:
    # 100 + 100 * 10 = 1,100 nodes: within the default, over a limit of 1,000.
    query = "{ posts(first: 100) { edges { node { similarPosts(first: 10) { score } } } } }"
    with TestClient(create_app(Settings(database_url=store, max_nodes=1_000))) as client:
        refused(send(client, "POST", query), "QUERY_TOO_COMPLEX")
        accepted(send(client, "POST", query.replace("first: 100", "first: 90")))  # 990
        healthy(client)


# -- body size ------------------------------------------------------------------------------


def body_of(size: int) -> bytes:
    """A valid JSON request of exactly ``size`` bytes (padded in a variable)."""
    query = "query Pad($pad: String) { __typename post(slug: $pad) { title } }"
    base = json.dumps({"query": query, "variables": {"pad": ""}}).encode()
    body = json.dumps({"query": query, "variables": {"pad": "x" * (size - len(base))}}).encode()
    assert len(body) == size
    return body


def test_a_body_over_1000000_bytes_is_413(client: TestClient) -> None:
    headers = {"content-type": "application/json"}
    assert accepted(client.post("/graphql", content=body_of(1_000_000), headers=headers)) == {
        "__typename": "Query",
        "post": None,
    }
    response = client.post("/graphql", content=body_of(1_000_001), headers=headers)
    refused(response, "PAYLOAD_TOO_LARGE", 413)
    # Sent in chunks without a Content-Length, it is counted as it arrives.
    big = body_of(1_000_001)
    chunks = iter([big[i : i + 65_536] for i in range(0, len(big), 65_536)])
    response = client.post("/graphql", content=chunks, headers=headers)
    assert "content-length" not in response.request.headers
    refused(response, "PAYLOAD_TOO_LARGE", 413)
    healthy(client)


def test_a_configured_body_size(store: str) -> None:
    headers = {"content-type": "application/json"}
    with TestClient(create_app(Settings(database_url=store, max_body_bytes=2_000))) as client:
        accepted(client.post("/graphql", content=body_of(2_000), headers=headers))
        refused(client.post("/graphql", content=body_of(2_001), headers=headers), "PAYLOAD_TOO_LARGE", 413)
        healthy(client)


# -- time ---------------------------------------------------------------------------------

HEAVY = """query Heavy {
  posts(first: 100) {
    totalCount
    edges { node { title body { __typename } meta { stack tools } entities { name }
      similarPosts(first: 10) { score post { title meta { tools } } } } }
  }
}"""


def test_an_operation_over_the_time_limit_is_refused_and_the_server_stays_healthy(
    database_url: str, corpus: Path
) -> None:
    import_paths(database_url, corpus)
    settings = Settings(database_url=database_url, request_timeout=0.000001, cache=False)
    with TestClient(create_app(settings)) as client:
        pool_size = client.app.state.read_pool.size  # type: ignore[attr-defined]
        assert pool_size >= 2
        # More requests than the read pool has connections: none may be lost to a timed-out request.
        for _ in range(pool_size + 4):
            message = refused(send(client, "POST", HEAVY), "TIMEOUT")
            assert "1e-06" in message or "0.000001" in message
        assert client.get("/healthz").status_code == 200
        # The same process, with the limit set back to its default: every connection of the pool still works.
        client.app.state.services.settings.request_timeout = DEFAULTS.request_timeout  # type: ignore[attr-defined]
        for _ in range(pool_size + 4):
            data = accepted(send(client, "POST", HEAVY))
            assert len(data["posts"]["edges"]) == 81
        healthy(client)


# -- the frontend's operations ----------------------------------------------------------------


def test_the_frontends_operations_at_their_largest_are_within_the_default_limits(client: TestClient) -> None:
    entity = SEED.meta.entities[0]
    calls = [
        ("entity-page.graphql", "EntityPage", {"name": entity.name, "type": entity.type, "first": 100}),
        ("entity-page.graphql", "Vocabulary", {}),
        ("facets.graphql", "Facets", {}),
        ("filtered-listing.graphql", "FilteredListing", {"first": 100}),
        ("listing.graphql", "Listing", {"first": 100}),
        ("post-page.graphql", "PostPage", {"slug": SEED_SLUG}),
        ("post-page.graphql", "PostByReference", {"reference": SEED.meta.reference}),
        ("search.graphql", "Search", {"q": "python", "first": 100}),
    ]
    for file, operation, variables in calls:
        text = (OPERATIONS / file).read_text(encoding="utf-8")
        for method in ("POST", "GET"):
            if method == "POST":
                response = client.post(
                    "/graphql", json={"query": text, "operationName": operation, "variables": variables}
                )
            else:
                params = {"query": text, "operationName": operation, "variables": json.dumps(variables)}
                response = client.get("/graphql", params=params)
            data = accepted(response)
            assert any(value for value in data.values()), (operation, data)
