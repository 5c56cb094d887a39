"""GraphQL over HTTP through the ASGI app: methods, media types, bodies, errors, health.

Every error is a JSON body (never a bare 500, never a traceback), with the status
the GraphQL-over-HTTP specification gives it.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2
import pytest
from starlette.testclient import TestClient

import models
from documents import parse, slug_for
from server.app import create_app
from server.settings import Settings
from store.importer import import_sources
from store.sources import file_source
from tests.conftest import SEED_DOCUMENT, PostgresServer

SEED = parse(SEED_DOCUMENT.read_bytes())
SEED_SLUG = slug_for(SEED)
GRAPHQL_RESPONSE = "application/graphql-response+json"
BY_SLUG = "query Post($slug: String!) { post(slug: $slug) { title meta { reference } } }"


def checked(response: httpx2.Response) -> httpx2.Response:
    """The response, after checking that it leaks no traceback."""
    assert "Traceback" not in response.text
    return response


def json_error(response: httpx2.Response, status: int, code: str | None = None) -> str:
    """Check a JSON error response; return its message."""
    checked(response)
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"errors"}, body
    (error,) = body["errors"]
    if code is not None:
        assert error["extensions"]["code"] == code
    message: str = error["message"]
    assert message
    return message


def import_seed(url: str) -> None:
    async def run() -> None:
        engine = models.create_engine(url)
        try:
            await models.create_all(engine)
            receipt = await import_sources(engine, [file_source(SEED_DOCUMENT)])
            assert receipt.created == 1
        finally:
            await engine.dispose()

    asyncio.run(run())


@pytest.fixture
def client(database_url: str) -> Iterator[TestClient]:
    """The app on a store holding the seed document."""
    import_seed(database_url)
    with TestClient(create_app(Settings(database_url=database_url))) as client:
        yield client


# -- queries over GET and POST ----------------------------------------------


def test_get_runs_a_query_and_answers_json(client: TestClient) -> None:
    response = checked(client.get("/graphql", params={"query": BY_SLUG, "variables": json.dumps({"slug": SEED_SLUG})}))
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    assert response.json() == {"data": {"post": {"title": SEED.title, "meta": {"reference": SEED.reference}}}}


def test_post_runs_a_query_and_answers_json(client: TestClient) -> None:
    response = checked(client.post("/graphql", json={"query": BY_SLUG, "variables": {"slug": SEED_SLUG}}))
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    assert response.json()["data"]["post"]["title"] == SEED.title


def test_post_accepts_json_with_a_charset(client: TestClient) -> None:
    response = checked(
        client.post(
            "/graphql",
            content=json.dumps({"query": "{ posts(first: 1) { totalCount } }"}).encode(),
            headers={"content-type": "application/json; charset=utf-8"},
        )
    )
    assert response.status_code == 200
    assert response.json() == {"data": {"posts": {"totalCount": 1}}}


def test_a_mutation_over_get_is_405_with_allow_post(client: TestClient) -> None:
    response = client.get("/graphql", params={"query": "mutation { importDocuments { created } }"})
    message = json_error(response, 405, "METHOD_NOT_ALLOWED")
    assert response.headers["allow"] == "POST"
    assert "POST" in message


# -- bodies the endpoint refuses --------------------------------------------


def test_a_body_that_is_not_utf8_is_400_not_500(client: TestClient) -> None:
    body = b'{"query": "{ posts { totalCount } }", "x": "\xff\xfe"}'
    response = client.post("/graphql", content=body, headers={"content-type": "application/json"})
    assert "UTF-8" in json_error(response, 400, "BAD_REQUEST")


def test_invalid_json_is_400(client: TestClient) -> None:
    response = client.post("/graphql", content=b'{"query": ', headers={"content-type": "application/json"})
    assert "JSON" in json_error(response, 400, "BAD_REQUEST")


@pytest.mark.parametrize(
    "body",
    [b'[{"query": "{ __typename }"}]', b"null", b'"{ __typename }"', b"42"],
    ids=["array", "null", "string", "number"],
)
def test_a_json_body_that_is_not_an_object_is_400(client: TestClient, body: bytes) -> None:
    response = client.post("/graphql", content=body, headers={"content-type": "application/json"})
    assert "JSON object" in json_error(response, 400, "BAD_REQUEST")


@pytest.mark.parametrize(
    ("payload", "named"),
    [
        ({"query": 5}, "query"),
        ({"query": "{ __typename }", "variables": [1]}, "variables"),
        ({"query": "{ __typename }", "operationName": 3}, "operationName"),
        ({"variables": {}}, "query"),
    ],
    ids=["query-not-a-string", "variables-not-an-object", "operation-name-not-a-string", "no-query"],
)
def test_malformed_parameters_are_400_naming_the_parameter(
    client: TestClient, payload: dict[str, Any], named: str
) -> None:
    assert named in json_error(client.post("/graphql", json=payload), 400, "BAD_REQUEST")


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", None])
def test_a_body_that_is_not_json_is_415(client: TestClient, content_type: str | None) -> None:
    headers = {"content-type": content_type} if content_type else {}
    response = client.post("/graphql", content=b'{"query": "{ __typename }"}', headers=headers)
    assert "application/json" in json_error(response, 415, "UNSUPPORTED_MEDIA_TYPE")


def test_a_body_over_max_body_bytes_is_413(database_url: str) -> None:
    big = json.dumps({"query": "{ __typename }", "variables": {"pad": "x" * 2_000}}).encode()
    with TestClient(create_app(Settings(database_url=database_url, max_body_bytes=1_000))) as client:
        # Declared by Content-Length.
        response = client.post("/graphql", content=big, headers={"content-type": "application/json"})
        assert "1000 bytes" in json_error(response, 413, "PAYLOAD_TOO_LARGE")
        # Streamed without a Content-Length: counted as it arrives.
        chunks = iter([big[:600], big[600:1200], big[1200:]])
        response = client.post("/graphql", content=chunks, headers={"content-type": "application/json"})
        assert "content-length" not in response.request.headers
        json_error(response, 413, "PAYLOAD_TOO_LARGE")
        # Just under the limit is fine.
        small = json.dumps({"query": "{ __typename }"}).encode()
        response = checked(client.post("/graphql", content=small, headers={"content-type": "application/json"}))
        assert response.status_code == 200
        assert response.json() == {"data": {"__typename": "Query"}}


# -- media types and request errors -----------------------------------------


def test_accept_graphql_response_json_gets_that_media_type(client: TestClient) -> None:
    response = checked(client.post("/graphql", json={"query": "{ __typename }"}, headers={"accept": GRAPHQL_RESPONSE}))
    assert response.status_code == 200
    assert response.headers["content-type"].startswith(GRAPHQL_RESPONSE)
    assert response.json() == {"data": {"__typename": "Query"}}


def test_a_validation_error_is_400_without_data_for_graphql_response_json(client: TestClient) -> None:
    query = {"query": "{ posts { noSuchField } }"}
    response = checked(client.post("/graphql", json=query, headers={"accept": GRAPHQL_RESPONSE}))
    assert response.status_code == 400
    assert response.headers["content-type"].startswith(GRAPHQL_RESPONSE)
    body = response.json()
    assert "data" not in body
    assert "noSuchField" in body["errors"][0]["message"]


def test_a_validation_error_is_200_for_application_json(client: TestClient) -> None:
    query = {"query": "{ posts { noSuchField } }"}
    response = checked(client.post("/graphql", json=query, headers={"accept": "application/json"}))
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert "data" not in body
    assert "noSuchField" in body["errors"][0]["message"]


def test_a_syntax_error_names_its_line_and_column(client: TestClient) -> None:
    response = checked(client.post("/graphql", json={"query": "{\n  posts(first: ) { totalCount }\n}"}))
    assert response.status_code == 200
    (error,) = response.json()["errors"]
    assert error["message"].startswith("Syntax Error")
    assert error["locations"] == [{"line": 2, "column": 16}]


def test_an_operation_name_not_in_the_document_is_400(client: TestClient) -> None:
    payload = {"query": "query A { __typename } query B { __typename }", "operationName": "C"}
    assert "'C'" in json_error(client.post("/graphql", json=payload), 400, "BAD_REQUEST")


def test_several_operations_without_an_operation_name_is_400(client: TestClient) -> None:
    # The GraphQL spec (GetOperation): several operations and no operationName is a request error;
    # the frontend's post-page.graphql holds two, so running "the first one" would be a silent guess.
    payload = {"query": "query A { __typename } query B { posts(first: 1) { totalCount } }"}
    assert "operationName" in json_error(client.post("/graphql", json=payload), 400, "BAD_REQUEST")


def test_a_document_without_operations_is_400_saying_so(client: TestClient) -> None:
    payload = {"query": "fragment F on Query { __typename }"}
    message = json_error(client.post("/graphql", json=payload), 400, "BAD_REQUEST")
    assert "no operation" in message


# -- GraphiQL, health, unknown paths ----------------------------------------


def test_a_browser_opening_graphql_gets_graphiql_served_locally(client: TestClient) -> None:
    response = checked(client.get("/graphql", headers={"accept": "text/html,application/xhtml+xml"}))
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert "graphiql" in response.text
    assert "https://" not in response.text


def test_healthz_is_ok_when_the_database_answers(client: TestClient) -> None:
    response = checked(client.get("/healthz"))
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    assert response.json() == {"status": "ok", "database": "ok"}
    assert response.headers["cache-control"] == "no-store"  # a cache in front must ask every time


@pytest.mark.parametrize("breakage", ["file-unreadable", "directory-gone"])
def test_healthz_is_503_without_details_when_the_database_does_not_answer(tmp_path: Path, breakage: str) -> None:
    # SQLite only: its file breaks under the app (the PostgreSQL case is the next test).
    # Given a running app whose database then becomes unusable.
    folder = tmp_path / "data"
    folder.mkdir()
    database = folder / "store.db"
    app = create_app(Settings(database_url=f"sqlite:///{database}"))
    with TestClient(app) as client:
        assert checked(client.get("/healthz")).status_code == 200
        # Pooled connections keep their open file: close them first, so the check must open the path.
        client.portal.call(app.state.engine.dispose)  # type: ignore[union-attr]
        if breakage == "directory-gone":
            folder.rename(tmp_path / "moved")
        else:
            database.chmod(0)
            if os.geteuid() == 0:  # permissions do not bind root: make the file unreadable as a database
                for path in folder.iterdir():
                    path.write_bytes(b"this is not a database file" * 10)
        # When the health check runs.
        response = checked(client.get("/healthz"))
    # Then it says so, and nothing about where or why.
    assert response.status_code == 503
    assert response.headers["content-type"].startswith("application/json")
    assert response.json() == {"status": "error", "database": "unavailable"}
    assert response.headers["cache-control"] == "no-store"
    for secret in (str(tmp_path), "store.db", "sqlite", "SELECT"):
        assert secret.lower() not in response.text.lower()


@pytest.mark.postgres
def test_healthz_is_503_without_details_when_the_postgresql_database_is_dropped(
    postgres_server: PostgresServer,
) -> None:
    # Given a running app whose PostgreSQL database is then dropped, its sessions ended.
    url = postgres_server.create_database()
    database = url.rsplit("/", 1)[1]
    app = create_app(Settings(database_url=url))
    with TestClient(app) as client:
        assert checked(client.get("/healthz")).status_code == 200
        postgres_server.drop_database(database)
        # When the health check runs, on a pooled connection the server ended and then on a new one.
        responses = [checked(client.get("/healthz")) for _ in range(2)]
    # Then it says so, and nothing about where or why.
    for response in responses:
        assert response.status_code == 503
        assert response.headers["content-type"].startswith("application/json")
        assert response.json() == {"status": "error", "database": "unavailable"}
        for secret in (database, "127.0.0.1", "postgres", "SELECT"):
            assert secret.lower() not in response.text.lower()


def test_an_unknown_path_is_a_json_404(client: TestClient) -> None:
    assert json_error(client.get("/no/such/path"), 404, "NOT_FOUND")


def test_an_unsupported_method_on_graphql_is_a_json_405(client: TestClient) -> None:
    response = client.put("/graphql", json={"query": "{ __typename }"})
    json_error(response, 405, "METHOD_NOT_ALLOWED")
    assert "POST" in response.headers["allow"]


# -- the read pool ------------------------------------------------------------


def test_the_read_pool_has_two_connections_on_sqlite_and_eight_on_postgresql_unless_told(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import_seed(database_url)
    expected = 2 if database_url.startswith("sqlite") else 8
    with TestClient(create_app(Settings(database_url=database_url))) as client:
        assert client.app.state.read_pool.size == expected  # type: ignore[attr-defined]
        assert checked(client.post("/graphql", json={"query": BY_SLUG, "variables": {"slug": SEED_SLUG}})).json() == {
            "data": {"post": {"title": SEED.title, "meta": {"reference": SEED.meta.reference}}}
        }
    monkeypatch.setenv("ALPHANODE_READ_POOL_SIZE", "3")
    with TestClient(create_app(Settings(database_url=database_url))) as client:
        assert client.app.state.read_pool.size == 3  # type: ignore[attr-defined]
    monkeypatch.setenv("ALPHANODE_READ_POOL_SIZE", "0")
    with pytest.raises(ValueError, match="read_pool_size"):
        Settings(database_url=database_url)
