"""Persisted queries over HTTP: Apollo's automatic protocol, and the allow-list mode.

The protocol (Apollo's automatic persisted queries): a client sends
``extensions.persistedQuery = {"version": 1, "sha256Hash": <hex sha256 of the query text>}``
without the query; an unknown hash is answered with PERSISTED_QUERY_NOT_FOUND, the
client then sends the query with its hash once, and from then on the hash alone runs
it, also over GET (``extensions`` in the query string), where the response can be
cached. With ``persisted_only`` (ALPHANODE_PERSISTED_ONLY) only the frontend's
operations run, each registered by the sha256 of its whole file; any other text is
refused with PERSISTED_QUERY_REQUIRED and nothing new is registered.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2
import pytest
from starlette.testclient import TestClient

from server.app import create_app
from server.settings import Settings
from tests.conftest import OPERATIONS, SEED_DOCUMENT
from tests.factories import import_paths
from tests.server.caching import REDIS_URL, SEED, SEED_SLUG, cache_of

SEED_ENTITY = SEED.meta.entities[0]


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def extension(query: str, version: int = 1) -> dict[str, Any]:
    return {"persistedQuery": {"version": version, "sha256Hash": sha256(query)}}


def send(
    client: TestClient,
    method: str,
    *,
    query: str | None = None,
    extensions: dict[str, Any] | None = None,
    variables: dict[str, Any] | None = None,
    operation: str | None = None,
) -> httpx2.Response:
    if method == "GET":
        params: dict[str, str] = {}
        if query is not None:
            params["query"] = query
        if extensions is not None:
            params["extensions"] = json.dumps(extensions)
        if variables is not None:
            params["variables"] = json.dumps(variables)
        if operation is not None:
            params["operationName"] = operation
        return client.get("/graphql", params=params)
    body: dict[str, Any] = {}
    if query is not None:
        body["query"] = query
    if extensions is not None:
        body["extensions"] = extensions
    if variables is not None:
        body["variables"] = variables
    if operation is not None:
        body["operationName"] = operation
    return client.post("/graphql", json=body)


def codes(response: httpx2.Response) -> list[str]:
    assert response.headers["content-type"].startswith("application/json")
    return [e.get("extensions", {}).get("code") for e in response.json().get("errors", [])]


def ran(response: httpx2.Response) -> dict[str, Any]:
    assert response.status_code == 200, response.text
    body = response.json()
    assert "errors" not in body, body["errors"]
    data: dict[str, Any] = body["data"]
    return data


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> str:
    url = f"sqlite:///{tmp_path_factory.mktemp('persisted') / 'store.db'}"
    import_paths(url, SEED_DOCUMENT)
    return url


@pytest.fixture
def client(store: str) -> Iterator[TestClient]:
    with TestClient(create_app(Settings(database_url=store))) as client:
        yield client


@pytest.fixture
def persisted_only(store: str) -> Iterator[TestClient]:
    with TestClient(create_app(Settings(database_url=store, persisted_only=True))) as client:
        yield client


# -- automatic persisted queries ---------------------------------------------------------


@pytest.mark.parametrize("method", ["POST", "GET"])
def test_the_automatic_protocol_hash_then_query_then_hash(client: TestClient, method: str) -> None:
    query = f'query Apq{method} {{ post(slug: "{SEED_SLUG}") {{ title }} }}'
    # An unknown hash: the client is told to send the query.
    response = send(client, method, extensions=extension(query))
    assert codes(response) == ["PERSISTED_QUERY_NOT_FOUND"]
    assert response.headers["cache-control"] == "no-store"
    # The query with its hash runs, and is kept.
    assert ran(send(client, method, query=query, extensions=extension(query))) == {"post": {"title": SEED.title}}
    # From now on the hash alone runs it, over POST and over GET.
    for again in ("POST", "GET"):
        assert ran(send(client, again, extensions=extension(query))) == {"post": {"title": SEED.title}}


def test_a_query_by_hash_over_get_is_cacheable(client: TestClient) -> None:
    query = "query Count { posts(first: 1) { totalCount } }"
    ran(send(client, "POST", query=query, extensions=extension(query)))
    first = send(client, "GET", extensions=extension(query))
    assert ran(first) == {"posts": {"totalCount": 1}}
    assert first.headers["cache-control"].startswith("public, max-age=")
    assert "etag" in first.headers
    second = send(client, "GET", extensions=extension(query))
    assert cache_of(second) == "hit"
    assert second.content == first.content
    # And revalidates with its ETag.
    response = client.get(
        "/graphql",
        params={"extensions": json.dumps(extension(query))},
        headers={"If-None-Match": first.headers["etag"]},
    )
    assert response.status_code == 304


@pytest.mark.parametrize("method", ["POST", "GET"])
def test_a_hash_that_is_not_the_querys_is_400(client: TestClient, method: str) -> None:
    query = "query Wrong { __typename }"
    wrong = {"persistedQuery": {"version": 1, "sha256Hash": sha256("query Other { __typename }")}}
    response = send(client, method, query=query, extensions=wrong)
    assert response.status_code == 400, response.text
    assert codes(response)
    # Nothing was registered under the wrong hash.
    assert codes(send(client, method, extensions=wrong)) == ["PERSISTED_QUERY_NOT_FOUND"]


@pytest.mark.parametrize("method", ["POST", "GET"])
@pytest.mark.parametrize("version", [2, 0, "1", None])
def test_an_unsupported_version_is_400(client: TestClient, method: str, version: Any) -> None:
    query = "query Versioned { __typename }"
    response = send(client, method, query=query, extensions=extension(query, version))
    assert response.status_code == 400, response.text
    assert codes(response)
    assert "version" in response.json()["errors"][0]["message"].lower()


def test_queries_registered_in_one_app_run_by_hash_in_another_through_redis(store: str, redis_prefix: str) -> None:
    settings = Settings(database_url=store, redis_url=REDIS_URL, redis_prefix=redis_prefix)
    query = "query Shared { posts(first: 1) { edges { node { title } } } }"
    with TestClient(create_app(settings)) as one, TestClient(create_app(settings)) as two:
        assert codes(send(two, "GET", extensions=extension(query))) == ["PERSISTED_QUERY_NOT_FOUND"]
        ran(send(one, "POST", query=query, extensions=extension(query)))
        assert ran(send(two, "GET", extensions=extension(query))) == {
            "posts": {"edges": [{"node": {"title": SEED.title}}]}
        }


# -- registered operations only ------------------------------------------------------------


def frontend_operations() -> list[tuple[Path, str, dict[str, Any]]]:
    """Every operation of the frontend's files, with variables for the seed's store."""
    variables = {
        "EntityPage": {"name": SEED_ENTITY.name, "type": SEED_ENTITY.type, "first": 5},
        "Vocabulary": {},
        "Facets": {},
        "FilteredListing": {"first": 5},
        "Listing": {"first": 5},
        "PostPage": {"slug": SEED_SLUG},
        "PostByReference": {"reference": SEED.meta.reference},
        "Search": {"q": SEED.title.split()[-1], "first": 5},
    }
    found = []
    for path in sorted(OPERATIONS.glob("*.graphql")):
        text = path.read_text(encoding="utf-8")
        for line in text.splitlines():
            if line.startswith("query "):
                name = line.split()[1].split("(")[0]
                found.append((path, name, variables[name]))
    assert len(found) == len(variables)
    return found


OPERATION_IDS = [name for _, name, _ in frontend_operations()]


@pytest.mark.parametrize(("path", "name", "variables"), frontend_operations(), ids=OPERATION_IDS)
@pytest.mark.parametrize("method", ["POST", "GET"])
def test_only_mode_runs_the_frontends_operations_by_hash_and_by_text(
    persisted_only: TestClient, path: Path, name: str, variables: dict[str, Any], method: str
) -> None:
    text = path.read_bytes().decode("utf-8")  # the whole file, byte for byte
    by_hash = send(
        persisted_only,
        method,
        extensions={"persistedQuery": {"version": 1, "sha256Hash": hashlib.sha256(path.read_bytes()).hexdigest()}},
        variables=variables,
        operation=name,
    )
    by_text = send(persisted_only, method, query=text, variables=variables, operation=name)
    assert ran(by_hash) == ran(by_text)
    assert any(value for value in ran(by_text).values()), by_text.text


@pytest.mark.parametrize("method", ["POST", "GET"])
@pytest.mark.parametrize(
    "query",
    [
        "{ __typename }",
        f'query PostPage {{ post(slug: "{SEED_SLUG}") {{ title }} }}',  # a frontend operation's name
        (OPERATIONS / "listing.graphql").read_text(encoding="utf-8") + "\n",  # a frontend file, one byte more
    ],
    ids=["other", "same-name", "one-byte-more"],
)
def test_only_mode_refuses_any_other_text(persisted_only: TestClient, method: str, query: str) -> None:
    response = send(persisted_only, method, query=query, variables={"first": 1})
    assert response.status_code == 400, response.text
    assert codes(response) == ["PERSISTED_QUERY_REQUIRED"]
    assert "data" not in response.json()


@pytest.mark.parametrize("method", ["POST", "GET"])
def test_only_mode_registers_nothing_new(persisted_only: TestClient, method: str) -> None:
    query = "query New { posts(first: 1) { totalCount } }"
    response = send(persisted_only, method, query=query, extensions=extension(query))
    assert response.status_code == 400, response.text
    assert codes(response) == ["PERSISTED_QUERY_REQUIRED"]
    # The hash alone is still unknown.
    response = send(persisted_only, method, extensions=extension(query))
    assert codes(response) in (["PERSISTED_QUERY_NOT_FOUND"], ["PERSISTED_QUERY_REQUIRED"])
    assert "data" not in response.json()
