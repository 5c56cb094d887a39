"""Codes of errors outside an operation's execution, told by graphql-core's error types and the
error classes of the HTTP layer (server/http), never by the wording of a message."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from starlette.testclient import TestClient

from server.app import create_app
from server.settings import Settings

QUERY = "query Count($n: Int!) { posts(first: $n) { totalCount } }"


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    store = tmp_path_factory.mktemp("http-errors") / "store.db"
    with TestClient(create_app(Settings(database_url=f"sqlite:///{store}"))) as client:
        yield client


def codes(body: dict[str, Any]) -> list[str]:
    return [error["extensions"]["code"] for error in body["errors"]]


@pytest.mark.parametrize(
    "variables", [{"n": "ten"}, {}, {"n": None}], ids=["wrong type", "missing", "null for non-null"]
)
def test_a_variable_that_does_not_coerce_is_bad_user_input_and_no_data(client: TestClient, variables: Any) -> None:
    answer = client.post("/graphql", json={"query": QUERY, "variables": variables})
    assert answer.status_code == 200  # application/json: a request error still answers 200
    body = answer.json()
    assert codes(body) == ["BAD_USER_INPUT"], body
    assert "data" not in body
    strict = client.post(
        "/graphql",
        json={"query": QUERY, "variables": variables},
        headers={"Accept": "application/graphql-response+json"},
    )
    assert strict.status_code == 400
    assert codes(strict.json()) == ["BAD_USER_INPUT"]


def test_a_variable_that_coerces_runs(client: TestClient) -> None:
    body = client.post("/graphql", json={"query": QUERY, "variables": {"n": 3}}).json()
    assert body == {"data": {"posts": {"totalCount": 0}}}


def test_an_unknown_persisted_query_is_200_in_json_and_400_in_graphql_response_json(client: TestClient) -> None:
    ask = {"extensions": {"persistedQuery": {"version": 1, "sha256Hash": "a" * 64}}}
    plain = client.post("/graphql", json=ask)
    assert (plain.status_code, codes(plain.json())) == (200, ["PERSISTED_QUERY_NOT_FOUND"])
    strict = client.post("/graphql", json=ask, headers={"Accept": "application/graphql-response+json"})
    assert (strict.status_code, codes(strict.json())) == (400, ["PERSISTED_QUERY_NOT_FOUND"])
    wrong = client.post("/graphql", json={"extensions": {"persistedQuery": {"version": 2, "sha256Hash": "a" * 64}}})
    assert (wrong.status_code, codes(wrong.json())) == (400, ["PERSISTED_QUERY_VERSION"])
