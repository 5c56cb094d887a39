"""The frontend's operations, run over HTTP against a store of the corpus, checked field by field.

One store for the module and database: the corpus (80 synthesized documents and
the real seed document) imported into a SQLite file or a PostgreSQL database,
served by ``create_app`` through Starlette's ``TestClient``. What the API returns is compared with what
``documents.to_dict(parse(text))`` says each document holds.
"""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

import models
from documents import Document, parse, to_dict
from server.app import create_app
from server.settings import Settings
from store.importer import import_sources
from store.sources import collect_sources
from tests.conftest import OPERATIONS

POST_PAGE = (OPERATIONS / "post-page.graphql").read_text(encoding="utf-8")
LISTING = (OPERATIONS / "listing.graphql").read_text(encoding="utf-8")
CORPUS_SIZE = 81

# The fields of a Listing node, for the backward walk (listing.graphql only pages forward).
LISTING_NODE = """
  id
  slug
  title
  meta { topic readingTime viewCount stack tools difficulty }
  scores { quality freshness }
  entities { name type }
  images { url caption }
"""
LISTING_BACKWARD = f"""
query ListingBackward($last: Int!, $before: String) {{
  posts(last: $last, before: $before) {{
    totalCount
    pageInfo {{ hasPreviousPage startCursor }}
    edges {{ cursor node {{ {LISTING_NODE} }} }}
  }}
}}
"""

BLOCK_TYPENAMES = {"heading": "HeadingBlock", "paragraph": "ParagraphBlock", "list": "ListBlock", "image": "ImageBlock"}
REASON_KINDS = ("topic", "entities", "stack", "tools")


@dataclass(frozen=True)
class Source:
    """One document of the corpus: its parsed form and its JSON form."""

    path: Path
    document: Document
    data: dict[str, Any]

    @property
    def slug(self) -> str:
        return str(self.data["slug"])


@dataclass(frozen=True)
class Store:
    client: TestClient
    sources: list[Source]  # in import order: sorted file paths

    @property
    def by_slug(self) -> dict[str, Source]:
        return {s.slug: s for s in self.sources}


@pytest.fixture(scope="module")
def store(corpus: Path, new_store_url: Callable[[str], str]) -> Iterator[Store]:
    url = new_store_url("frontend")
    sources, missing = collect_sources([str(corpus)])
    assert missing == []

    async def load() -> None:
        engine = models.create_engine(url)
        try:
            await models.create_all(engine)
            receipt = await import_sources(engine, sources)
            assert (receipt.created, receipt.rejected) == (CORPUS_SIZE, [])
        finally:
            await engine.dispose()

    asyncio.run(load())
    parsed = []
    for path in sorted(corpus.rglob("*.txt")):
        document = parse(path.read_bytes(), path.name)
        parsed.append(Source(path, document, to_dict(document)))
    with TestClient(create_app(Settings(database_url=url))) as client:
        yield Store(client, parsed)


# -- helpers ----------------------------------------------------------------


def graphql(client: TestClient, query: str, variables: dict[str, Any] | None = None, **extra: Any) -> dict[str, Any]:
    """POST an operation; the HTTP status is 200 with a JSON body whatever happens."""
    response = client.post("/graphql", json={"query": query, "variables": variables or {}, **extra})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/json")
    body: dict[str, Any] = response.json()
    return body


def data_of(client: TestClient, query: str, variables: dict[str, Any] | None = None, **extra: Any) -> dict[str, Any]:
    body = graphql(client, query, variables, **extra)
    assert "errors" not in body, body["errors"]
    data: dict[str, Any] = body["data"]
    return data


def only_error(body: dict[str, Any]) -> dict[str, Any]:
    assert len(body.get("errors", [])) == 1, body
    error: dict[str, Any] = body["errors"][0]
    return error


def decode_global_id(global_id: str) -> str:
    assert "=" not in global_id, "ids are base64url without padding"
    return base64.urlsafe_b64decode(global_id + "=" * (-len(global_id) % 4)).decode("utf-8")


def api_body(data: dict[str, Any]) -> list[dict[str, Any]]:
    """The document's body blocks as the API shows them: ``__typename`` instead of ``type``."""
    blocks = []
    for block in data["body"]:
        fields = {key: value for key, value in block.items() if key != "type"}
        blocks.append({"__typename": BLOCK_TYPENAMES[block["type"]], **fields})
    return blocks


def expected_post_page(source: Source) -> dict[str, Any]:
    """Every field of PostPageFields except ``id`` and ``similarPosts``, from the document."""
    data = source.data
    return {
        "slug": data["slug"],
        "title": data["title"],
        "intro": data["intro"],
        "body": api_body(data),
        "images": data["images"],
        "meta": data["meta"],
        "scores": data["scores"],
        "entities": data["entities"],
    }


def expected_listing_node(source: Source) -> dict[str, Any]:
    data, meta = source.data, source.data["meta"]
    return {
        "id": source.document.source_id,  # compared after decoding the global id
        "slug": data["slug"],
        "title": data["title"],
        "meta": {key: meta[key] for key in ("topic", "readingTime", "viewCount", "stack", "tools", "difficulty")},
        "scores": {key: data["scores"][key] for key in ("quality", "freshness")},
        "entities": data["entities"],
        "images": [{"url": i["url"], "caption": i["caption"]} for i in data["images"]],
    }


def terms(source: Source) -> dict[str, set[str]]:
    """A document's terms by the kind of term a similar post's reason names."""
    meta = source.document.meta
    return {
        "topic": {meta.topic},
        "entities": {f"{e.name} ({e.type})" for e in meta.entities},
        "stack": set(meta.stack),
        "tools": set(meta.tools),
    }


def check_similar_posts(store: Store, source: Source, similar: list[dict[str, Any]]) -> None:
    assert len(similar) <= 5, source.slug
    scores = [s["score"] for s in similar]
    assert scores == sorted(scores, reverse=True), f"{source.slug}: scores are not best first: {scores}"
    assert all(0 < score <= 1 for score in scores), scores
    own = terms(source)
    for entry in similar:
        other = store.by_slug[entry["post"]["slug"]]
        assert other.slug != source.slug, f"{source.slug} is similar to itself"
        assert entry["post"] == {
            "slug": other.slug,
            "title": other.data["title"],
            "scores": {"quality": other.data["scores"]["quality"]},
        }
        theirs = terms(other)
        named: dict[str, set[str]] = {}
        for reason in entry["reasons"]:
            kind, sep, what = reason.partition(": ")
            assert sep and kind in REASON_KINDS, f"{source.slug}: unexpected reason {reason!r}"
            assert kind not in named, f"{source.slug}: two reasons of kind {kind!r}: {entry['reasons']}"
            named[kind] = {what} if kind == "topic" else set(what.split(", "))
        assert named, f"{source.slug} -> {other.slug}: a similar post with no reason"
        for kind in REASON_KINDS:
            shared = own[kind] & theirs[kind]
            assert named.get(kind, set()) == shared, (
                f"{source.slug} -> {other.slug}: reason {kind!r} names {named.get(kind)}, "
                f"the two documents share {shared}"
            )


# -- post page --------------------------------------------------------------


def test_post_page_shows_every_field_of_every_document(store: Store) -> None:
    for source in store.sources:
        post = data_of(store.client, POST_PAGE, {"slug": source.slug}, operationName="PostPage")["post"]
        assert post is not None, source.slug
        assert decode_global_id(post["id"]) == f"Post:{source.document.source_id}"
        shown = {key: value for key, value in post.items() if key not in ("id", "similarPosts")}
        assert shown == expected_post_page(source), source.path.name
        check_similar_posts(store, source, post["similarPosts"])


def test_post_by_reference_gives_the_same_post_as_by_slug(store: Store) -> None:
    for source in store.sources:
        by_reference = data_of(
            store.client, POST_PAGE, {"reference": source.document.reference}, operationName="PostByReference"
        )["post"]
        assert by_reference is not None, source.document.reference
        assert decode_global_id(by_reference["id"]) == f"Post:{source.document.source_id}"
        shown = {key: value for key, value in by_reference.items() if key not in ("id", "similarPosts")}
        assert shown == expected_post_page(source), source.path.name
        check_similar_posts(store, source, by_reference["similarPosts"])


def test_the_seed_document_lists_its_last_review_date_and_joined_lists_as_arrays(store: Store) -> None:
    seed = store.sources[-1]
    assert seed.document.reference == "anp-ref-001632-5801"
    post = data_of(store.client, POST_PAGE, {"slug": seed.slug}, operationName="PostPage")["post"]
    assert post["meta"]["revision"]["lastReviewed"] == "2026-07-02"
    assert post["meta"]["stack"] == ["python services", "backend", "python"]
    assert post["meta"]["tools"] == ["fastapi", "pytest", "uvicorn", "ruff", "git", "logs"]
    assert [b["__typename"] for b in post["body"]].count("ImageBlock") == 3


def test_unknown_slug_gives_a_null_post_and_no_error(store: Store) -> None:
    body = graphql(store.client, POST_PAGE, {"slug": "no-such-post"}, operationName="PostPage")
    assert body == {"data": {"post": None}}


# -- listing ----------------------------------------------------------------


def check_listing_node(store: Store, node: dict[str, Any]) -> None:
    source = store.by_slug[node["slug"]]
    assert dict(node, id=decode_global_id(node["id"])) == dict(
        expected_listing_node(source), id=f"Post:{source.document.source_id}"
    )


def test_listing_walks_every_post_once_newest_first(store: Store) -> None:
    # Given the corpus imported in sorted path order, newest first is the reverse of that order.
    newest_first = [s.slug for s in reversed(store.sources)]
    # When the listing is walked 7 at a time, following endCursor.
    seen: list[str] = []
    after: str | None = None
    pages = 0
    while True:
        posts = data_of(store.client, LISTING, {"first": 7, "after": after}, operationName="Listing")["posts"]
        pages += 1
        assert posts["totalCount"] == CORPUS_SIZE
        edges = posts["edges"]
        assert 1 <= len(edges) <= 7
        for edge in edges:
            check_listing_node(store, edge["node"])
            seen.append(edge["node"]["slug"])
        assert posts["pageInfo"]["endCursor"] == edges[-1]["cursor"]
        if not posts["pageInfo"]["hasNextPage"]:
            break
        assert len(edges) == 7
        after = posts["pageInfo"]["endCursor"]
        assert pages <= CORPUS_SIZE, "the listing does not end"
    # Then every post appears exactly once, newest first.
    assert len(seen) == len(set(seen)) == CORPUS_SIZE
    assert seen == newest_first
    assert pages == 12  # 11 pages of 7 and one of 4


def forward_edges(store: Store) -> list[dict[str, Any]]:
    edges: list[dict[str, Any]] = []
    after: str | None = None
    while True:
        posts = data_of(store.client, LISTING, {"first": 7, "after": after}, operationName="Listing")["posts"]
        edges += posts["edges"]
        if not posts["pageInfo"]["hasNextPage"]:
            return edges
        after = posts["pageInfo"]["endCursor"]


def test_listing_walked_backwards_with_last_and_before_gives_the_same_sequence(store: Store) -> None:
    forward = forward_edges(store)
    backward: list[dict[str, Any]] = []
    before: str | None = None
    while True:
        posts = data_of(store.client, LISTING_BACKWARD, {"last": 7, "before": before})["posts"]
        assert posts["totalCount"] == CORPUS_SIZE
        edges = posts["edges"]
        assert 1 <= len(edges) <= 7
        backward = edges + backward
        assert posts["pageInfo"]["startCursor"] == edges[0]["cursor"]
        if not posts["pageInfo"]["hasPreviousPage"]:
            break
        before = posts["pageInfo"]["startCursor"]
        assert len(backward) <= CORPUS_SIZE, "the backward walk does not end"
    assert [e["node"]["slug"] for e in backward] == [e["node"]["slug"] for e in forward]
    assert backward == forward  # same nodes, same cursors


# -- node and post by id ----------------------------------------------------


def test_node_and_post_by_id_round_trip(store: Store) -> None:
    for source in (store.sources[0], store.sources[40], store.sources[-1]):
        post = data_of(store.client, POST_PAGE, {"slug": source.slug}, operationName="PostPage")["post"]
        data = data_of(
            store.client,
            """query ($id: ID!) {
                 node(id: $id) { __typename id ... on Post { slug title } }
                 post(id: $id) { id slug title }
               }""",
            {"id": post["id"]},
        )
        assert data["node"] == {"__typename": "Post", "id": post["id"], "slug": source.slug, "title": post["title"]}
        assert data["post"] == {"id": post["id"], "slug": source.slug, "title": post["title"]}


def test_ids_of_nothing_resolve_to_null(store: Store) -> None:
    unknown = base64.urlsafe_b64encode(b"Post:no-such-source").decode().rstrip("=")
    other_type = base64.urlsafe_b64encode(b"Author:someone").decode().rstrip("=")
    data = data_of(
        store.client,
        "query ($a: ID!, $b: ID!) { a: node(id: $a) { id } b: node(id: $b) { id } c: post(id: $a) { id } }",
        {"a": unknown, "b": other_type},
    )
    assert data == {"a": None, "b": None, "c": None}


def test_a_garbage_id_is_a_bad_user_input_error(store: Store) -> None:
    error = only_error(graphql(store.client, '{ node(id: "%%%") { id } }'))
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    assert "id" in error["message"]


# -- argument errors --------------------------------------------------------


@pytest.mark.parametrize(
    ("arguments", "named"),
    [
        ('slug: "a", reference: "b"', "slug"),
        ('slug: "a", id: "UG9zdDp4"', "slug"),
        ('id: "UG9zdDp4", reference: "b"', "reference"),
        ("", "slug"),
    ],
    ids=["slug+reference", "slug+id", "id+reference", "none"],
)
def test_post_wants_exactly_one_of_slug_id_reference(store: Store, arguments: str, named: str) -> None:
    query = f"{{ post({arguments}) {{ slug }} }}" if arguments else "{ post { slug } }"
    body = graphql(store.client, query)
    error = only_error(body)
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    assert named in error["message"]
    assert error["path"] == ["post"]
    assert body["data"] == {"post": None}


def _cursor(value: object) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")


@pytest.mark.parametrize(
    ("arguments", "argument"),
    [
        ("first: 0", "first"),
        ("first: 101", "first"),
        ("first: -1", "first"),
        ("last: 0", "last"),
        ("last: 101", "last"),
        ("first: 5, last: 5", "first"),
        ('first: 5, after: "garbage!!"', "after"),
        ('last: 5, before: "not a cursor"', "before"),
        (f'first: 5, after: "{_cursor(["newest-by-title", [3]])}"', "after"),
        # Cursors that decode but do not hold a sort key: still the client's mistake, not a crash.
        (f'first: 5, after: "{_cursor(["newest", []])}"', "after"),
        (f'first: 5, after: "{_cursor(["newest", [None]])}"', "after"),
        (f'last: 5, before: "{_cursor(["newest", [{"id": 1}]])}"', "before"),
        (f'first: 5, after: "{_cursor(["newest", ["x"]])}"', "after"),
    ],
    ids=[
        "first-0",
        "first-101",
        "first-negative",
        "last-0",
        "last-101",
        "first-and-last",
        "garbage-after",
        "garbage-before",
        "cursor-of-another-ordering",
        "cursor-with-empty-key",
        "cursor-with-null-key",
        "cursor-with-object-key",
        "cursor-with-string-key",
    ],
)
def test_bad_page_arguments_give_a_clear_bad_user_input_error(store: Store, arguments: str, argument: str) -> None:
    body = graphql(store.client, f"{{ posts({arguments}) {{ totalCount edges {{ cursor }} }} }}")
    error = only_error(body)
    assert error["extensions"]["code"] == "BAD_USER_INPUT", error
    assert argument in error["message"], error
    assert error["path"] == ["posts"]
    assert body["data"] is None


def test_similar_posts_accepts_0_to_10(store: Store) -> None:
    slug = store.sources[-1].slug
    query = "query ($slug: String!, $n: Int!) { post(slug: $slug) { similarPosts(first: $n) { score } } }"
    assert data_of(store.client, query, {"slug": slug, "n": 0}) == {"post": {"similarPosts": []}}
    ten = data_of(store.client, query, {"slug": slug, "n": 10})["post"]["similarPosts"]
    assert len(ten) == 10
    for n in (11, -1):
        error = only_error(graphql(store.client, query, {"slug": slug, "n": n}))
        assert error["extensions"]["code"] == "BAD_USER_INPUT"
        assert "first" in error["message"]
        assert error["path"] == ["post", "similarPosts"]
