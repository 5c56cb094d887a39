"""Browsers on other origins (CORS): listed origins only, a token for listed origins only, preflights
kept by the browser, and ``Vary: Origin`` on every answer so that shared caches keep one copy per origin.

Through the ASGI app; ``tests/browser/test_cors_browser.py`` tries the same with a real browser.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from documents import parse, slug_for
from server.app import create_app
from server.settings import Settings
from tests.conftest import SEED_DOCUMENT
from tests.factories import import_paths

ALLOWED, OTHER = "https://www.example.com", "https://elsewhere.example.net"
SLUG = slug_for(parse(SEED_DOCUMENT.read_bytes()))
QUERY = "query Post($slug: String!) { post(slug: $slug) { title } }"


@pytest.fixture
def store(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'store.db'}"
    assert import_paths(url, SEED_DOCUMENT).created == 1
    return url


@pytest.fixture
def client(store: str) -> Iterator[TestClient]:
    settings = Settings(database_url=store, cors_origins=f"{ALLOWED}, https://preview.example.com", cors_max_age=900)
    with TestClient(create_app(settings)) as client:
        yield client


def get(client: TestClient, origin: str | None, **headers: str) -> dict[str, str]:
    if origin is not None:
        headers["Origin"] = origin
    params = {"query": QUERY, "variables": json.dumps({"slug": SLUG})}
    response = client.get("/graphql", params=params, headers=headers)
    assert response.status_code in (200, 304), response.text
    return {k.lower(): v for k, v in response.headers.items()}


def vary(headers: dict[str, str]) -> set[str]:
    return {v.strip().lower() for v in headers.get("vary", "").split(",")}


def test_a_listed_origin_may_read_the_answer(client: TestClient) -> None:
    headers = get(client, ALLOWED)
    assert headers["access-control-allow-origin"] == ALLOWED
    assert headers["access-control-expose-headers"] == "ETag"
    assert "access-control-allow-credentials" not in headers  # tokens, not cookies
    # The answer's own Vary is kept, Origin added: a shared cache keeps one copy per origin.
    assert {"accept", "authorization", "origin"} <= vary(headers)


def test_another_origin_gets_no_cors_header_and_no_answer_it_may_read(client: TestClient) -> None:
    for origin in (OTHER, "https://www.example.com.evil.test", "http://www.example.com"):
        headers = get(client, origin)
        assert "access-control-allow-origin" not in headers, origin
        assert "origin" in vary(headers)
    # Without an Origin (a server, the CDN's fetch) nothing changes but Vary.
    headers = get(client, None)
    assert "access-control-allow-origin" not in headers and "origin" in vary(headers)


def test_preflights_allow_the_token_to_listed_origins_only_and_are_kept(client: TestClient) -> None:
    asked = {"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "authorization, content-type"}
    allowed = client.options("/graphql", headers={"Origin": ALLOWED, **asked})
    assert allowed.status_code == 200
    assert allowed.headers["access-control-allow-origin"] == ALLOWED
    assert {h.strip().lower() for h in allowed.headers["access-control-allow-headers"].split(",")} >= {
        "authorization",
        "content-type",
    }
    assert set(allowed.headers["access-control-allow-methods"].replace(" ", "").split(",")) >= {"GET", "POST"}
    assert allowed.headers["access-control-max-age"] == "900"
    refused = client.options("/graphql", headers={"Origin": OTHER, **asked})
    assert refused.status_code == 400 and "access-control-allow-origin" not in refused.headers
    # A header nobody listed is refused to listed origins too.
    odd = client.options("/graphql", headers={"Origin": ALLOWED, **asked, "Access-Control-Request-Headers": "x-odd"})
    assert odd.status_code == 400


def test_a_listed_origin_posts_with_a_token_and_revalidates_with_the_etag(client: TestClient) -> None:
    body = {"query": QUERY, "variables": {"slug": SLUG}}
    answer = client.post("/graphql", json=body, headers={"Origin": ALLOWED, "Authorization": "Bearer not-a-token"})
    assert answer.status_code == 401 and answer.headers["access-control-allow-origin"] == ALLOWED
    first = get(client, ALLOWED)
    again = get(client, ALLOWED, **{"If-None-Match": first["etag"]})
    assert again["access-control-allow-origin"] == ALLOWED and again["etag"] == first["etag"]


def test_no_origin_is_listed_by_default(store: str) -> None:
    assert Settings(database_url=store).cors_origin_list == []
    with TestClient(create_app(Settings(database_url=store))) as client:
        headers = get(client, ALLOWED)
        assert "access-control-allow-origin" not in headers and "origin" not in vary(headers)
        preflight = client.options("/graphql", headers={"Origin": ALLOWED, "Access-Control-Request-Method": "POST"})
        assert "access-control-allow-origin" not in preflight.headers
