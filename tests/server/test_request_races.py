"""Requests whose fields fail while others are still reading, many at once, on both databases.

An error that nulls a whole response (a root field out of range) ends the request while a
sibling field's statement is still queued on the request's connection. The connection must
go back to the read pool only once that statement is done, outside any transaction, and the
sibling must not open another connection behind the request's back.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx2
import pytest

from documents.synth import write
from server.app import create_app
from server.settings import Settings
from tests.editing import create_token, headers_for, import_folder, small_corpus

# posts(first: 500) is refused (BAD_USER_INPUT) and nulls the response; stacks and facets are
# still reading when it is.
NULLED = "{ posts(first: 500) { totalCount } stacks(first: 1) { totalCount } facets { topic { value count } } }"
GOOD = "{ stacks(first: 2) { totalCount edges { node { name } } } posts(first: 3) { totalCount } }"
CLIENTS = 16
ROUNDS = 25


@pytest.fixture(scope="module")
def store(new_store_url: Any, tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    url: str = new_store_url("races")
    import_folder(url, small_corpus(tmp_path_factory.mktemp("races-corpus"), 30))
    return url, create_token(url, "racer", "editor")


def test_a_nulled_response_gives_its_connection_back_idle_under_concurrent_clients(store: tuple[str, str]) -> None:
    url, token = store
    # The cache off: every request reads the store (an editor's would not be cached anyway).
    app = create_app(Settings(database_url=url, cache=False))
    statuses: list[int] = []
    codes: list[str] = []
    good: list[dict[str, Any]] = []

    async def client(n: int, http: httpx2.AsyncClient) -> None:
        for round_ in range(ROUNDS):
            query = NULLED if (n + round_) % 2 else GOOD
            response = await http.post("/graphql", json={"query": query}, headers=headers_for(token))
            statuses.append(response.status_code)
            body = response.json()
            codes.extend(e["extensions"]["code"] for e in body.get("errors", ()))
            if query is GOOD:
                good.append(body["data"])

    async def run() -> None:
        async with app.router.lifespan_context(app):
            pool = app.state.read_pool
            transport = httpx2.ASGITransport(app=app)
            async with httpx2.AsyncClient(transport=transport, base_url="http://test") as http:
                await asyncio.gather(*(client(n, http) for n in range(CLIENTS)))
            # Every connection is back in the pool, and none is inside a transaction.
            usage = pool.usage()
            assert usage.idle == usage.open <= usage.size, usage
            assert usage.idle_in_transaction == 0, usage

    asyncio.run(run())
    assert statuses == [200] * (CLIENTS * ROUNDS)
    # Only the refused page size, never a transaction error coming back as an internal one.
    assert set(codes) == {"BAD_USER_INPUT"}, codes
    assert len(codes) == CLIENTS * ROUNDS // 2
    # The good requests all answered the same, whole.
    assert all(d == good[0] for d in good) and good[0]["stacks"]["totalCount"] > 0


@pytest.mark.parametrize("value", [None, "null-literal"])
def test_similar_posts_with_a_null_first_is_the_clients_error(store: tuple[str, str], value: Any) -> None:
    url, _ = store
    app = create_app(Settings(database_url=url, cache=False))
    if value is None:
        query = "query Q($k: Int) { posts(first: 2) { edges { node { similarPosts(first: $k) { score } } } } }"
        payload: dict[str, Any] = {"query": query, "variables": {"k": None}}
    else:
        payload = {"query": "{ posts(first: 2) { edges { node { similarPosts(first: null) { score } } } } }"}

    async def run() -> httpx2.Response:
        async with app.router.lifespan_context(app):
            transport = httpx2.ASGITransport(app=app)
            async with httpx2.AsyncClient(transport=transport, base_url="http://test") as http:
                return await http.post("/graphql", json=payload)

    response = asyncio.run(run())
    body = response.json()
    assert "Traceback" not in response.text
    (error,) = body["errors"]
    if value is None:  # coerced while executing: the client's value, named
        assert error["extensions"]["code"] == "BAD_USER_INPUT", body
        assert "Argument 'first'" in error["message"] and "$k" in error["message"]
    else:  # a literal null is refused by validation, before anything runs
        assert error["extensions"]["code"] == "GRAPHQL_VALIDATION_FAILED", body
        assert "data" not in body


IMPORT = "mutation I($text: String!) { importDocument(text: $text) { __typename } }"
SET_STATUS = "mutation S($id: ID!, $status: String!) { setStatus(id: $id, status: $status) { __typename } }"
WRITERS = 24
EDIT_ROUNDS = 4


def test_concurrent_edits_all_answer_saved_and_leave_every_posts_similar_posts_whole(
    store: tuple[str, str], tmp_path: Path
) -> None:
    # Given editors changing two dozen posts at once, again and again, through one server (on PostgreSQL its writes run
    # concurrently, and a refresh of the similar posts of what they touched follows them in the background).
    url, token = store
    app = create_app(Settings(database_url=url, cache=False))
    folder = tmp_path / "new"
    write(folder, WRITERS // 2 * EDIT_ROUNDS, seed=99)
    new_texts = [p.read_text(encoding="utf-8") for p in sorted(folder.glob("*.txt"))]

    async def run() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        async with app.router.lifespan_context(app):
            transport = httpx2.ASGITransport(app=app)
            async with httpx2.AsyncClient(transport=transport, base_url="http://test") as http:
                listed = await http.post("/graphql", json={"query": "{ posts(first: 24) { edges { node { id } } } }"})
                ids = [e["node"]["id"] for e in listed.json()["data"]["posts"]["edges"]]

                async def edit(n: int) -> dict[str, Any]:
                    variables = {"id": ids[n], "status": f"edited-{n % 3}"}
                    response = await http.post(
                        "/graphql", json={"query": SET_STATUS, "variables": variables}, headers=headers_for(token)
                    )
                    assert response.status_code == 200, response.text
                    body: dict[str, Any] = response.json()
                    return body

                async def import_one(text: str) -> dict[str, Any]:
                    response = await http.post(
                        "/graphql", json={"query": IMPORT, "variables": {"text": text}}, headers=headers_for(token)
                    )
                    assert response.status_code == 200, response.text
                    body: dict[str, Any] = response.json()
                    return body

                answers: list[dict[str, Any]] = []
                for round_ in range(EDIT_ROUNDS):
                    # New posts mark their neighbours for refreshing: refreshes overlap.
                    texts = new_texts[round_ * WRITERS // 2 : (round_ + 1) * WRITERS // 2]
                    answers += await asyncio.gather(
                        *(edit(n) for n in range(WRITERS // 2)), *(import_one(t) for t in texts)
                    )
                # (Similar posts are refreshed in the background: new posts have theirs once it settles.)
                await asyncio.wait_for(app.state.services.refresher.settled(), 30)
                similar = "{ posts(first: 24) { edges { node { similarPosts(first: 10) { post { id } } } } } }"
                after = await http.post("/graphql", json={"query": similar}, headers=headers_for(token))
                return answers, after.json()["data"]["posts"]["edges"]

    answers, edges = asyncio.run(run())
    # Then every edit says it was saved: none fails after committing.
    assert [a.get("errors") for a in answers] == [None] * (WRITERS * EDIT_ROUNDS), answers
    assert {next(iter(a["data"].values()))["__typename"] for a in answers} == {"PostSaved", "ImportReceipt"}
    # And every post still has its similar posts, each once.
    for edge in edges:
        shown = [s["post"]["id"] for s in edge["node"]["similarPosts"]]
        assert shown and len(shown) == len(set(shown)), edge
