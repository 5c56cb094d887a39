"""GraphQL over HTTP, by the specification: graphql-http's audit suite against the real server.

``audit.mjs`` runs the ``auditServer`` function of the npm package ``graphql-http`` (the
GraphQL over HTTP working group's reference implementation; exact version in
``package.json`` and ``package-lock.json``; ``make test`` runs ``npm ci --prefix tests/audit``)
against ``alphanode serve`` on a free port, and prints each audit's result as JSON. A MUST
that fails is an ``error``, a SHOULD a ``warn``, a MAY a ``notice``: this test allows no
error and no warning, and prints the notices.

The other tests here check what the specification asks and the audit does not: Accept
negotiation (406, case, quality values, charset), a request charset other than UTF-8 (415),
GET with every parameter, HEAD, subscriptions, and GraphiQL's introspection query.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2
import pytest
from graphql import get_introspection_query

from tests.audit.live_server import live_server

AUDIT_DIR = Path(__file__).resolve().parent
AUDIT_SCRIPT = AUDIT_DIR / "audit.mjs"
GRAPHQL_HTTP = AUDIT_DIR / "node_modules" / "graphql-http" / "package.json"
AUDIT_TIMEOUT = 120.0
GRAPHQL_RESPONSE = "application/graphql-response+json"
JSON = "application/json"
TYPENAME = json.dumps({"query": "{ __typename }"}).encode()


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with live_server(tmp_path_factory.mktemp("audit")) as url:
        yield url


@pytest.fixture(scope="module")
def client(base: str) -> Iterator[httpx2.Client]:
    with httpx2.Client(base_url=base, timeout=10.0) as client:
        yield client


def run_audit(url: str) -> list[dict[str, Any]]:
    """graphql-http's audit results for the endpoint at ``url``; fails the test when it cannot run."""
    node = shutil.which("node")
    if node is None:
        pytest.fail("node is not installed: the GraphQL-over-HTTP audit needs Node.js 18+ and npm (CI has them)")
    if not GRAPHQL_HTTP.exists():
        pytest.fail(f"graphql-http is not installed in {AUDIT_DIR}: run `npm ci --prefix tests/audit` (make test does)")
    done = subprocess.run(
        [node, str(AUDIT_SCRIPT), url], capture_output=True, text=True, timeout=AUDIT_TIMEOUT, check=False
    )
    assert done.returncode == 0, f"audit.mjs failed ({done.returncode}):\n{done.stderr}"
    results: list[dict[str, Any]] = json.loads(done.stdout)
    return results


def describe(result: dict[str, Any]) -> str:
    response = result.get("response") or {}
    return (
        f"{result['status'].upper()} {result['id']} {result['name']}: {result.get('reason')}"
        f" (got {response.get('status')} {response.get('contentType')}: {response.get('body')})"
    )


def test_the_graphql_http_audit_finds_no_must_or_should_failure(base: str, capsys: pytest.CaptureFixture[str]) -> None:
    # When graphql-http audits the endpoint.
    results = run_audit(f"{base}/graphql")

    # Then every audit ran, and no MUST (error) or SHOULD (warn) failed.
    assert len(results) >= 50, results
    by_status: dict[str, list[dict[str, Any]]] = {}
    for result in results:
        by_status.setdefault(result["status"], []).append(result)
    summary = ", ".join(f"{len(by_status.get(s, []))} {s}" for s in ("ok", "notice", "warn", "error"))
    failures = by_status.get("error", []) + by_status.get("warn", [])
    with capsys.disabled():  # shown on a passing run too
        print(f"\ngraphql-http audit of {len(results)} requirements: {summary}")
        for result in by_status.get("notice", []):
            print(f"  {describe(result)}")
    assert not failures, "\n".join(describe(result) for result in failures)


# -- what the specification asks beyond the audit ------------------------------


def post(
    client: httpx2.Client, accept: str | None, content_type: str = JSON, body: bytes = TYPENAME
) -> httpx2.Response:
    headers = {"content-type": content_type}
    if accept is not None:
        headers["accept"] = accept
    return client.post("/graphql", content=body, headers=headers)


def error_code(response: httpx2.Response) -> str:
    """The code of a JSON error body (every request error has one)."""
    assert response.headers["content-type"].startswith(JSON), response.headers
    (error,) = response.json()["errors"]
    code: str = error["extensions"]["code"]
    return code


@pytest.mark.parametrize(
    ("accept", "media_type"),
    [
        (None, JSON),
        ("", JSON),
        ("*/*", JSON),
        ("application/*", JSON),
        (JSON, JSON),
        (GRAPHQL_RESPONSE, GRAPHQL_RESPONSE),
        ("Application/GraphQL-Response+JSON", GRAPHQL_RESPONSE),
        (f"{GRAPHQL_RESPONSE}; charset=utf-8, {JSON}; charset=utf-8", GRAPHQL_RESPONSE),
        (f"{JSON}, {GRAPHQL_RESPONSE}", GRAPHQL_RESPONSE),
        (f"{JSON}, {GRAPHQL_RESPONSE};q=0.5", JSON),
        (f"{GRAPHQL_RESPONSE};q=0, */*", JSON),
        ("text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8", JSON),
        (f"text/plain, {GRAPHQL_RESPONSE};q=0.1", GRAPHQL_RESPONSE),
    ],
)
def test_the_response_media_type_follows_the_accept_header(
    client: httpx2.Client, accept: str | None, media_type: str
) -> None:
    response = post(client, accept)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == f"{media_type}; charset=utf-8"
    assert response.json() == {"data": {"__typename": "Query"}}


@pytest.mark.parametrize(
    "accept",
    ["text/plain", "application/xml", f"{JSON};q=0", f"{JSON}; charset=iso-8859-1", f"{GRAPHQL_RESPONSE};q=0"],
)
def test_an_accept_header_naming_no_type_we_answer_in_is_406(client: httpx2.Client, accept: str) -> None:
    response = post(client, accept)
    assert response.status_code == 406, response.text
    assert error_code(response) == "NOT_ACCEPTABLE"
    assert GRAPHQL_RESPONSE in response.json()["errors"][0]["message"]


def test_a_get_with_a_query_and_only_text_html_accepted_is_406(client: httpx2.Client) -> None:
    response = client.get("/graphql", params={"query": "{ __typename }"}, headers={"accept": "text/html"})
    assert response.status_code == 406
    assert error_code(response) == "NOT_ACCEPTABLE"


@pytest.mark.parametrize(
    "content_type",
    ["application/json; charset=utf-8", 'APPLICATION/JSON; Charset="UTF-8"', "application/json;charset=utf8"],
)
def test_a_json_body_in_utf8_is_accepted_whatever_the_case(client: httpx2.Client, content_type: str) -> None:
    response = post(client, None, content_type)
    assert response.status_code == 200, response.text
    assert response.json() == {"data": {"__typename": "Query"}}


@pytest.mark.parametrize(
    "content_type",
    ["application/json; charset=iso-8859-1", "application/json; charset=utf-16", "application/graphql", "text/plain"],
)
def test_a_body_in_another_encoding_or_media_type_is_415(client: httpx2.Client, content_type: str) -> None:
    response = post(client, None, content_type)
    assert response.status_code == 415, response.text
    assert error_code(response) == "UNSUPPORTED_MEDIA_TYPE"


def test_a_get_takes_every_parameter_as_the_specification_encodes_it(client: httpx2.Client) -> None:
    params = {
        "query": "query Type($name: String!) { __type(name: $name) { name } }",
        "operationName": "Type",
        "variables": json.dumps({"name": "Post"}),
        "extensions": json.dumps({"some": "value"}),
    }
    response = client.get("/graphql", params=params, headers={"accept": GRAPHQL_RESPONSE})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith(GRAPHQL_RESPONSE)
    assert response.json() == {"data": {"__type": {"name": "Post"}}}
    # An empty operationName, variables or extensions is the same as none.
    empty = {"query": "{ __typename }", "operationName": "", "variables": "", "extensions": ""}
    response = client.get("/graphql", params=empty)
    assert response.status_code == 200, response.text
    assert response.json() == {"data": {"__typename": "Query"}}


@pytest.mark.parametrize("parameter", ["variables", "extensions"])
@pytest.mark.parametrize("value", ["{not json", "[1]", '"a string"'])
def test_a_get_parameter_that_is_not_a_json_object_is_400(client: httpx2.Client, parameter: str, value: str) -> None:
    response = client.get("/graphql", params={"query": "{ __typename }", parameter: value})
    assert response.status_code == 400, response.text
    assert error_code(response) == "BAD_REQUEST"
    assert parameter in response.json()["errors"][0]["message"]


def test_head_answers_as_get_without_a_body(client: httpx2.Client) -> None:
    params = {"query": "{ __typename }"}
    got = client.get("/graphql", params=params)
    head = client.head("/graphql", params=params)
    assert head.status_code == got.status_code == 200
    assert head.content == b""
    assert head.headers["content-type"] == got.headers["content-type"]
    assert head.headers["etag"] == got.headers["etag"]


@pytest.mark.parametrize("method", ["GET", "POST"])
def test_a_subscription_is_a_400_not_a_405(client: httpx2.Client, method: str) -> None:
    query = "subscription { __typename }"
    if method == "GET":
        response = client.get("/graphql", params={"query": query})
    else:
        response = post(client, None, body=json.dumps({"query": query}).encode())
    assert response.status_code == 400, response.text
    assert "allow" not in response.headers
    assert "subscriptions" in response.json()["errors"][0]["message"]


def test_graphiqls_introspection_query_passes_the_limits(client: httpx2.Client) -> None:
    # GraphiQL loads the schema with this query (descriptions, deprecated input values); its
    # ofType chains are 8 deep, and the depth limit must not refuse it.
    query = get_introspection_query(descriptions=True, input_value_deprecation=True)
    response = post(client, GRAPHQL_RESPONSE, body=json.dumps({"query": query}).encode())
    assert response.status_code == 200, response.text
    body = response.json()
    assert "errors" not in body, body["errors"]
    fields = {t["name"]: t for t in body["data"]["__schema"]["types"]}["Query"]["fields"]
    assert {f["name"]: f for f in fields}["posts"]["description"]
