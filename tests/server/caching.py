"""What the tests of HTTP caching, purges and the fleet share: stores and tokens, requests, and what
their headers say (``Server-Timing``, ``Surrogate-Key``, ``Cache-Control``), Redis key prefixes."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import re
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx2
import redis
from sqlalchemy import Connection, text
from starlette.testclient import TestClient

from documents import parse, slug_for
from store import tokens
from tests.conftest import OPERATIONS, SEED_DOCUMENT
from tests.factories import on_store, small_corpus

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
