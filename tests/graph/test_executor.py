"""The batched executor gives exactly what Strawberry's executor gives, or hands the operation back."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import strawberry

import models
from graph import Context
from graph.executor import DocumentCache, Executor, Unsupported
from graph.executor.internals import graphql_schema
from graph.schema import executor, schema
from loaders import ReadPool, RequestDb
from store.importer import import_sources
from store.sources import collect_sources
from tests.conftest import OPERATIONS

SEED_REFERENCE = "anp-ref-001632-5801"


@pytest.fixture(scope="module")
def store(corpus: Path, new_store_url: Callable[[str], str]) -> Iterator[Any]:
    url = new_store_url("executor")

    async def load() -> None:
        engine = models.create_engine(url)
        await models.create_all(engine)
        await import_sources(engine, collect_sources([str(corpus)])[0])
        await engine.dispose()

    asyncio.run(load())
    yield url


def both(
    url: str, query: str, variables: dict[str, Any] | None = None, operation: str | None = None
) -> tuple[Any, Any]:
    """(batched data, regular result) for one operation, each with its own request context."""

    async def run() -> tuple[Any, Any]:
        pool = await ReadPool.open(url)
        try:
            prepared = executor.prepare(query, operation)
            assert prepared is not None, "the batched executor should take this operation"
            db = RequestDb(pool)
            try:
                fast = await executor.execute(prepared, variables, Context.create(db))
            finally:
                await db.close()
            db = RequestDb(pool)
            try:
                regular = await schema.execute(query, variables, Context.create(db), operation_name=operation)
            finally:
                await db.close()
            return fast, regular
        finally:
            await pool.close()

    return asyncio.run(run())


def same_json(fast: Any, regular: Any) -> bool:
    """The two results as JSON text: the same values, and the same keys in the same order."""
    return json.dumps(fast) == json.dumps(regular)


def slug_of(url: str) -> str:
    fast, _ = both(url, "{ posts(first: 3) { edges { node { slug } } } }")
    return str(fast["posts"]["edges"][2]["node"]["slug"])


@pytest.mark.parametrize(
    ("file", "operation"),
    [("post-page.graphql", "PostPage"), ("post-page.graphql", "PostByReference"), ("listing.graphql", None)],
)
def test_frontend_operations_give_identical_results(store: str, file: str, operation: str | None) -> None:
    query = (OPERATIONS / file).read_text(encoding="utf-8")
    variables = {"slug": slug_of(store), "reference": SEED_REFERENCE, "first": 40}
    fast, regular = both(store, query, variables, operation)
    assert regular.errors is None
    assert same_json(fast, regular.data)
    assert fast, "the result must hold data"


QUERIES = {
    "aliases-and-typename": (
        """query { a: posts(first: 2) { __typename totalCount edges { c: cursor node { __typename t: title
           meta { s: stack stack } } } } b: post(reference: "anp-ref-001632-5801") { id } }""",
        None,
    ),
    "fragments-on-union-and-interface": (
        """query($r: String!) { post(reference: $r) { ...F body { ... on HeadingBlock { text }
           ... on ListBlock { items } ...Img } } }
           fragment F on Node { id ... on Post { slug } }
           fragment Img on ImageBlock { image { position url } }""",
        {"r": SEED_REFERENCE},
    ),
    "skip-and-include-with-variables": (
        """query($yes: Boolean!, $no: Boolean!) { posts(first: 3) { edges { node { slug @include(if: $yes)
           title @skip(if: $yes) meta @include(if: $no) { topic } scores @skip(if: $no) { quality } } } } }""",
        {"yes": True, "no": False},
    ),
    "same-field-merged-from-two-selections": (
        """{ posts(first: 2) { edges { node { meta { topic } meta { summary revision { status } }
           meta { revision { version } } } } } }""",
        None,
    ),
    "nested-similar-posts": (
        """{ posts(first: 5) { edges { node { similarPosts(first: 3) { score post {
           similarPosts(first: 2) { reasons post { slug entities { name type } } } } } } } } }""",
        None,
    ),
    "node-with-inline-fragment": (
        """query($id: ID!) { node(id: $id) { id ... on Post { title images { url position } } } }""",
        {"id": "UG9zdDphbHBoYW5vZGUtMDAxNjMy"},
    ),
    "backward-page": (
        """{ posts(last: 4) { pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
           edges { node { slug } } } }""",
        None,
    ),
    "missing-post-is-null": ("""{ post(slug: "no-such-post") { title } }""", None),
}


@pytest.mark.parametrize("name", sorted(QUERIES))
def test_varied_queries_give_identical_results(store: str, name: str) -> None:
    query, variables = QUERIES[name]
    fast, regular = both(store, query, variables)
    assert regular.errors is None
    assert same_json(fast, regular.data)


@pytest.mark.parametrize(
    ("query", "operation"),
    [
        ("{ posts(first: 500) { totalCount } }", None),  # a resolver error: the regular executor reports it
        ("{ __schema { queryType { name } } }", None),  # introspection
    ],
)
def test_errors_and_introspection_are_handed_back(store: str, query: str, operation: str | None) -> None:
    prepared = executor.prepare(query, operation)
    assert prepared is not None

    async def run() -> None:
        pool = await ReadPool.open(store)
        db = RequestDb(pool)
        try:
            with pytest.raises(Exception):  # noqa: B017 - any exception hands the operation back
                await executor.execute(prepared, None, Context.create(db))
        finally:
            await db.close()
            await pool.close()

    asyncio.run(run())


@pytest.mark.parametrize(
    ("query", "operation"),
    [
        ("{ nope }", None),  # does not validate
        ("mutation { x }", None),
        ("query A { posts { totalCount } } query B { posts { totalCount } }", None),  # which one?
        ("query A { posts { totalCount } }", "B"),
        ("{ posts(first: 1) { totalCount }", None),  # syntax error
    ],
)
def test_operations_it_cannot_run_are_not_prepared(query: str, operation: str | None) -> None:
    assert executor.prepare(query, operation) is None


# -- scalar attributes: completed in one pass when their values need no serializing --------------


@strawberry.type
class Item:
    name: str
    count: int
    ready: bool
    code: strawberry.ID


@strawberry.type
class Items:
    @strawberry.field
    def items(self) -> list[Item]:
        return list(ITEMS)


ITEMS: list[Item] = []
ITEMS_QUERY = "{ items { name count ready code } }"
items_schema = strawberry.Schema(query=Items)
items_executor = Executor(items_schema)


def run_items(items: list[Item]) -> tuple[Any, Any]:
    """(batched data, regular result) over these items."""
    ITEMS[:] = items

    async def run() -> tuple[Any, Any]:
        prepared = items_executor.prepare(ITEMS_QUERY, None)
        assert prepared is not None
        return await items_executor.execute(prepared, None, None), await items_schema.execute(ITEMS_QUERY)

    try:
        return asyncio.run(run())
    finally:
        ITEMS.clear()


def test_scalar_attributes_of_other_python_types_are_serialized_like_strawberry_does() -> None:
    plain = Item(name="a", count=1, ready=True, code=strawberry.ID("x"))
    # An int where a String is declared, a bool where an Int is, an int where an ID is: each
    # breaks the one-pass read at its own position and the field is completed the general way.
    odd = Item(name=5, count=True, ready=False, code=7)  # type: ignore[arg-type]
    fast, regular = run_items([plain, odd, plain])
    assert regular.errors is None
    assert same_json(fast, regular.data)
    assert fast["items"][1] == {"name": "5", "count": 1, "ready": False, "code": "7"}


def test_an_int_outside_32_bits_is_handed_back() -> None:
    big = Item(name="a", count=2**31, ready=True, code=strawberry.ID("x"))
    with pytest.raises(Unsupported):
        run_items([Item(name="b", count=0, ready=True, code=strawberry.ID("y")), big])
    ITEMS[:] = [big]  # and Strawberry's executor answers with an error
    try:
        regular = asyncio.run(items_schema.execute(ITEMS_QUERY))
    finally:
        ITEMS.clear()
    assert regular.errors and "32-bit" in regular.errors[0].message


def test_both_executors_share_one_parse_and_validation_cache() -> None:
    query = "{ posts(first: 1) { totalCount } __typename }"
    assert schema.documents is not None
    assert executor.documents is schema.documents
    result = asyncio.run(schema.execute("{ __typename }"))
    assert result.errors is None
    assert "{ __typename }" in executor.documents  # Strawberry's executor filled the shared cache
    prepared = executor.prepare(query, None)
    assert prepared is not None
    assert prepared.document is executor.documents.get(query).document
    assert executor.parsed(query) == (executor.documents.get(query), False)


def test_the_document_cache_keeps_the_most_recently_used_within_its_bound() -> None:
    documents = DocumentCache(2)
    documents.bind(graphql_schema(schema))
    first = documents.get("{ __typename }")
    documents.get("{ a: __typename }")
    assert documents.get("{ __typename }") is first  # a hit: now the most recently used
    documents.get("{ b: __typename }")
    assert "{ __typename }" in documents and "{ b: __typename }" in documents
    assert "{ a: __typename }" not in documents  # the least recently used went
