"""Mutations over HTTP: who may write, what is refused and why, and edits that race.

Every mutation needs an editor or admin token: a reader gets UNAUTHENTICATED and
a revoked token a 401, and neither writes anything (what any write changes is
compared after each attempt, see ``tests/editing.fingerprint``, and every row of
the store before and after each test, ``tests/editing.snapshot``). A stale
``expectedHash`` is a ``Conflict`` that says the current hash, also when two edits
race. What each write did is checked on ``alphanode export``. (Refused input:
``test_mutations_validation.py``.)

One store per database for the module, holding the seed document; a test that
writes works on posts of its own (``Posts``), synthesized for it with a seed of
its own, so that the tests do not depend on each other.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import itertools
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx2
import pytest
from graphql import build_schema
from starlette.testclient import TestClient

from documents import Document, parse, render, slug_for, to_dict
from documents.synth import synthesize
from server.app import create_app
from server.settings import Settings
from tests.conftest import ROOT, SEED_DOCUMENT
from tests.editing import (
    ARCHIVE_POST,
    CREATE_POST,
    IMPORT_DOCUMENT,
    MARK_REVIEWED,
    RESTORE_POST,
    ROLLBACK_POST,
    SET_STATUS,
    UPDATE_POST,
    Unchanged,
    cli_export,
    cli_import,
    current_hash,
    error_codes,
    graphql,
    headers_for,
    issue_tokens,
    post_graphql,
    post_id,
    post_input,
    revision_rows,
    saved,
    serve,
    settle,
    sha256,
    snapshot,
)

MUTATIONS = (
    "importDocument",
    "createPost",
    "updatePost",
    "markReviewed",
    "setStatus",
    "archivePost",
    "restorePost",
    "rollbackPost",
)
STATUS = "scheduled"  # a status the synthesizer never writes
SEEDS = itertools.count(100)  # synthesizer seeds, one per set of posts


@dataclass(frozen=True)
class Store:
    url: str
    folder: Path
    client: TestClient
    editor: str  # alice
    admin: str  # root
    revoked: str  # mallory's, revoked


@dataclass(frozen=True)
class Posts:
    """A test's own posts: two stored (one with two revisions, one archived) and two the store does not hold."""

    live: Document  # imported from ``live_file``, then its status set to STATUS by alice
    live_file: bytes
    archived: Document  # imported, then archived by alice
    to_import: Document
    to_create: Document

    def calls(self, url: str) -> dict[str, tuple[str, dict[str, Any]]]:
        """Each mutation with variables that would write something."""
        live = post_id(self.live)
        return {
            "importDocument": (IMPORT_DOCUMENT, {"text": render(self.to_import)}),
            "createPost": (CREATE_POST, {"input": post_input(self.to_create)}),
            "updatePost": (
                UPDATE_POST,
                {"id": live, "input": {"title": "a new title"}, "expectedHash": current_hash(url, self.live)},
            ),
            "markReviewed": (MARK_REVIEWED, {"id": live}),
            "setStatus": (SET_STATUS, {"id": live, "status": "published"}),
            "archivePost": (ARCHIVE_POST, {"id": live}),
            "restorePost": (RESTORE_POST, {"id": post_id(self.archived)}),
            "rollbackPost": (ROLLBACK_POST, {"id": live, "revision": 1}),
        }


@pytest.fixture(scope="module")
def store(new_store_url: Callable[[str], str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Store]:
    """The seed document; an editor's token (alice), an admin's (root) and a revoked one (mallory)."""
    url = new_store_url("mutations")
    cli_import(url, SEED_DOCUMENT)
    made = issue_tokens(url, ("alice", "editor"), ("root", "admin"), ("mallory", "editor"), revoked=("mallory",))
    with serve(url) as client:
        folder = tmp_path_factory.mktemp("mutations")
        yield Store(url, folder, client, made["alice"], made["root"], made["mallory"])


@pytest.fixture
def posts(store: Store) -> Posts:
    """Posts of the test's own in the module's store."""
    live, archived, to_import, to_create = synthesize(4, seed=next(SEEDS))
    folder = store.folder / live.source_id
    folder.mkdir()
    (folder / "live.txt").write_text(render(live), encoding="utf-8")
    (folder / "archived.txt").write_text(render(archived), encoding="utf-8")
    cli_import(store.url, folder)
    assert live.meta.revision.status != STATUS
    saved(graphql(store.client, SET_STATUS, {"id": post_id(live), "status": STATUS}, store.editor))
    saved(graphql(store.client, ARCHIVE_POST, {"id": post_id(archived)}, store.editor))
    return Posts(live, (folder / "live.txt").read_bytes(), archived, to_import, to_create)


# -- who may write ---------------------------------------------------------------


def test_the_module_tries_every_mutation_of_the_schema(store: Store, posts: Posts) -> None:
    schema = build_schema((ROOT / "schema.graphql").read_text(encoding="utf-8"))
    assert schema.mutation_type is not None
    assert tuple(schema.mutation_type.fields) == MUTATIONS
    assert tuple(posts.calls(store.url)) == MUTATIONS


def test_every_mutation_as_a_reader_is_unauthenticated_and_writes_nothing(store: Store, posts: Posts) -> None:
    unchanged = Unchanged(store.url, client=store.client)
    for name, (query, variables) in posts.calls(store.url).items():
        body = graphql(store.client, query, variables)
        assert body["data"] is None, name
        assert error_codes(body) == ["UNAUTHENTICATED"], (name, body)
        assert name in body["errors"][0]["message"]
        unchanged.check(f"{name} for a reader")
    unchanged.check_every_row()


def test_every_mutation_with_a_revoked_token_is_401_and_writes_nothing(store: Store, posts: Posts) -> None:
    unchanged = Unchanged(store.url, client=store.client)
    for name, (query, variables) in posts.calls(store.url).items():
        response = post_graphql(store.client, query, variables, store.revoked)
        assert response.status_code == 401, (name, response.text)
        assert response.headers["www-authenticate"].startswith("Bearer")
        assert response.json()["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
        unchanged.check(f"{name} with a revoked token")
    unchanged.check_every_row()


def test_every_mutation_over_get_is_405_with_allow_post_and_writes_nothing(store: Store, posts: Posts) -> None:
    unchanged = Unchanged(store.url, client=store.client)
    for name, (query, variables) in posts.calls(store.url).items():
        response = store.client.get(
            "/graphql",
            params={"query": query, "variables": json.dumps(variables)},
            headers=headers_for(store.editor),
        )
        assert response.status_code == 405, (name, response.text)
        assert response.headers["allow"] == "POST"
        assert response.json()["errors"][0]["extensions"]["code"] == "METHOD_NOT_ALLOWED"
        unchanged.check(f"{name} over GET")
    unchanged.check_every_row()


@pytest.mark.parametrize("role", ["editor", "admin"])
def test_every_mutation_works_for_editors_and_admins(store: Store, posts: Posts, role: str) -> None:
    token, author = (store.editor, "alice") if role == "editor" else (store.admin, "root")
    calls = posts.calls(store.url)
    live = posts.live.meta.reference

    def run(name: str) -> dict[str, Any]:
        query, variables = calls[name]
        body = graphql(store.client, query, variables, token)
        assert "errors" not in body, (name, body)
        result: dict[str, Any] = body["data"]["result"]
        return result

    # Given the test's posts (see ``posts``); when the token's holder runs each mutation in turn, then
    # each did what it says, as the export (or a reader) shows right after it.
    receipt = run("importDocument")
    assert receipt["__typename"] == "ImportReceipt"
    assert (receipt["created"], receipt["updated"], receipt["unchanged"], receipt["rejected"]) == (1, 0, 0, [])
    assert receipt["post"]["slug"] == slug_for(posts.to_import)
    assert cli_export(store.url, posts.to_import.meta.reference) == render(posts.to_import).encode()

    created = run("createPost")
    assert (created["__typename"], created["revision"], created["changed"]) == ("PostSaved", 1, True)
    assert to_dict(parse(cli_export(store.url, posts.to_create.meta.reference))) == to_dict(posts.to_create)

    assert run("updatePost")["__typename"] == "PostSaved"
    assert parse(cli_export(store.url, live)).title == "a new title"

    today = dt.datetime.now(dt.UTC).date()
    assert run("markReviewed")["__typename"] == "PostSaved"
    revision = parse(cli_export(store.url, live)).meta.revision
    assert revision.status == "reviewed"
    assert revision.last_reviewed in (today, dt.datetime.now(dt.UTC).date())

    assert run("setStatus")["__typename"] == "PostSaved"
    assert parse(cli_export(store.url, live)).meta.revision.status == "published"

    archived = run("archivePost")
    assert archived["post"]["archivedAt"] is not None
    by_slug = "query P($slug: String!) { post(slug: $slug) { slug } }"
    assert graphql(store.client, by_slug, {"slug": archived["post"]["slug"]}) == {"data": {"post": None}}

    restored = run("restorePost")
    assert (restored["__typename"], restored["post"]["archivedAt"]) == ("PostSaved", None)
    by_reference = "query P($reference: String!) { post(reference: $reference) { slug } }"
    assert graphql(store.client, by_reference, {"reference": posts.archived.meta.reference})["data"]["post"] == {
        "slug": slug_for(posts.archived)
    }

    assert run("rollbackPost")["__typename"] == "PostSaved"
    assert cli_export(store.url, live) == posts.live_file

    # Each write is in the history under the token's name.
    assert [(r["author"], r["reason"]) for r in revision_rows(store.url, live)][1:] == [
        ("alice", f"status set to {STATUS}"),
        (author, "updated"),
        (author, "marked reviewed"),
        (author, "status set to published"),
        (author, "archived"),
        (author, "rolled back to revision 1"),
    ]
    assert [r["author"] for r in revision_rows(store.url, posts.to_import.meta.reference)] == [author]
    assert [(r["author"], r["reason"]) for r in revision_rows(store.url, posts.to_create.meta.reference)] == [
        (author, "created")
    ]
    assert [(r["author"], r["reason"]) for r in revision_rows(store.url, posts.archived.meta.reference)][1:] == [
        ("alice", "archived"),
        (author, "restored"),
    ]


# -- what a mutation answers ----------------------------------------------------------

SAVED_POST = """
  __typename
  ... on PostSaved {
    post {
      title
      meta { stack tools }
      entities { name type }
      images { url }
      body { __typename }
    }
  }
"""


BLOCK_TYPENAMES = {"heading": "HeadingBlock", "paragraph": "ParagraphBlock", "list": "ListBlock", "image": "ImageBlock"}


def answered(document: Document) -> dict[str, Any]:
    """SAVED_POST's fields of the post, from the document."""
    data = to_dict(document)
    return {
        "title": data["title"],
        "meta": {"stack": data["meta"]["stack"], "tools": data["meta"]["tools"]},
        "entities": data["entities"],
        "images": [{"url": image["url"]} for image in data["images"]],
        "body": [{"__typename": BLOCK_TYPENAMES[block["type"]]} for block in data["body"]],
    }


def test_create_post_answers_the_post_as_created(store: Store, posts: Posts) -> None:
    query = "mutation C($input: PostInput!) { result: createPost(input: $input) { " + SAVED_POST + " } }"
    body = graphql(store.client, query, {"input": post_input(posts.to_create)}, store.editor)
    # PostSaved.post is "the post, as readers will now see it": its lists as well as its columns.
    assert saved(body)["post"] == answered(posts.to_create)


def test_update_post_answers_the_post_as_updated(store: Store, posts: Posts) -> None:
    tools = ["bpftrace", *posts.live.meta.tools[:2]]
    query = (
        "mutation U($id: ID!, $input: PostPatch!, $expectedHash: String!) "
        "{ result: updatePost(id: $id, input: $input, expectedHash: $expectedHash) { " + SAVED_POST + " } }"
    )
    variables = {
        "id": post_id(posts.live),
        "input": {"title": "tracing python services", "meta": {"tools": tools}},
        "expectedHash": current_hash(store.url, posts.live),
    }
    post = saved(graphql(store.client, query, variables, store.editor))["post"]
    assert parse(cli_export(store.url, posts.live.meta.reference)).meta.tools == tuple(tools)
    assert (post["title"], post["meta"]["tools"]) == ("tracing python services", tools)


def test_import_document_creates_the_post_then_changes_nothing(store: Store, posts: Posts) -> None:
    text = render(posts.to_import)
    first = graphql(store.client, IMPORT_DOCUMENT, {"text": text}, store.editor)["data"]["result"]
    assert first["__typename"] == "ImportReceipt", first
    assert (first["created"], first["updated"], first["unchanged"], first["rejected"]) == (1, 0, 0, [])
    assert first["post"]["slug"] == slug_for(posts.to_import)
    assert first["post"]["contentHash"] == sha256(text.encode())
    assert cli_export(store.url, posts.to_import.meta.reference) == text.encode()
    settle(store.client)  # the new post's similar posts, refreshed in the background
    before = snapshot(store.url)

    again = graphql(store.client, IMPORT_DOCUMENT, {"text": text}, store.editor)["data"]["result"]
    assert (again["created"], again["updated"], again["unchanged"], again["rejected"]) == (0, 0, 1, [])
    assert again["post"]["slug"] == slug_for(posts.to_import)
    # Nothing changed but the receipts editors keep of each import.
    settle(store.client)
    after = snapshot(store.url)
    assert after.pop("receipts") == before.pop("receipts") + 1
    assert after == before


def test_a_reader_who_looked_for_a_post_before_it_was_imported_finds_it_after(store: Store, posts: Posts) -> None:
    # Given a reader who asked for a post the store does not hold yet (and got null).
    query = "query P($reference: String!) { post(reference: $reference) { slug } }"
    variables = {"reference": posts.to_import.meta.reference}
    assert graphql(store.client, query, variables) == {"data": {"post": None}}
    # When an editor imports it.
    text = render(posts.to_import)
    receipt = graphql(store.client, IMPORT_DOCUMENT, {"text": text}, store.editor)["data"]["result"]
    assert receipt["created"] == 1, receipt
    # Then the same question finds it, over POST and GET.
    found = {"data": {"post": {"slug": slug_for(posts.to_import)}}}
    assert graphql(store.client, query, variables) == found
    response = store.client.get("/graphql", params={"query": query, "variables": json.dumps(variables)})
    assert response.json() == found


# -- optimistic concurrency ------------------------------------------------------------


def test_update_with_a_stale_hash_is_a_conflict_with_the_current_hash(store: Store, posts: Posts) -> None:
    # Given a hash read before another edit.
    live, reference = post_id(posts.live), posts.live.meta.reference
    stale = current_hash(store.url, posts.live)
    first = {"id": live, "input": {"title": "first edit"}, "expectedHash": stale}
    saved(graphql(store.client, UPDATE_POST, first, store.editor))
    exported = cli_export(store.url, reference)
    unchanged = Unchanged(store.url, client=store.client)
    # When an edit is sent with it.
    second = {"id": live, "input": {"title": "second edit"}, "expectedHash": stale}
    result = graphql(store.client, UPDATE_POST, second, store.admin)["data"]["result"]
    # Then it is a Conflict that says the hash now, and nothing changed.
    assert result["__typename"] == "Conflict", result
    assert result["currentHash"] == sha256(exported)
    unchanged.check_every_row()
    assert cli_export(store.url, reference) == exported


def test_two_concurrent_updates_with_the_same_hash_one_wins_one_conflicts(store: Store, posts: Posts) -> None:
    # Given two editors who read the same hash, each with a client of their own on a server of its own.
    live, reference = post_id(posts.live), posts.live.meta.reference
    expected = current_hash(store.url, posts.live)
    titles = {store.editor: "concurrent edit by alice", store.admin: "concurrent edit by root"}
    app = create_app(Settings(database_url=store.url))

    async def race() -> list[dict[str, Any]]:
        async with app.router.lifespan_context(app):
            transport = httpx2.ASGITransport(app=app)
            async with httpx2.AsyncClient(transport=transport, base_url="http://test") as client:

                async def update(token: str) -> dict[str, Any]:
                    variables = {"id": live, "input": {"title": titles[token]}, "expectedHash": expected}
                    response = await client.post(
                        "/graphql", json={"query": UPDATE_POST, "variables": variables}, headers=headers_for(token)
                    )
                    assert response.status_code == 200, response.text
                    result: dict[str, Any] = response.json()["data"]["result"]
                    return result

                # When both send their edit at once.
                return list(await asyncio.gather(update(store.editor), update(store.admin)))

    results = asyncio.run(race())
    # Then exactly one is saved and the other is a Conflict naming the winner's hash.
    assert sorted(r["__typename"] for r in results) == ["Conflict", "PostSaved"], results
    winner = next(t for t, r in zip(titles, results, strict=True) if r["__typename"] == "PostSaved")
    loser = next(r for r in results if r["__typename"] == "Conflict")
    exported = cli_export(store.url, reference)
    assert loser["currentHash"] == sha256(exported)
    # The stored post is the winner's edit of the post as it was.
    expected_document = to_dict(posts.live)
    expected_document["title"] = titles[winner]
    expected_document["slug"] = slug_for(parse(exported))
    expected_document["meta"]["revision"]["status"] = STATUS  # the fixture's edit
    assert to_dict(parse(exported)) == expected_document
    history = [(r["author"], r["reason"]) for r in revision_rows(store.url, reference)]
    assert history[2:] == [({store.editor: "alice", store.admin: "root"}[winner], "updated")]
