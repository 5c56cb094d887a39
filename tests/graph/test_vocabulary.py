"""Counting posts over HTTP: facets beside a listing, the vocabulary pages and an entity's page.

One store for the module (see ``tests/graph/finding.py``): 300 synthesized documents, the real seed
document and nine crafted ones, imported into the database of ``store_url``; then one crafted
document is imported again without the stack term, tool and entity only it had, so that the store
holds terms no post uses. Every count is computed in Python from the documents.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from sqlalchemy import text

import models

from .finding import (
    ENTITY_PAGE,
    FACETS,
    FACETS_OF,
    OWN_TERMS,
    Source,
    Store,
    data_of,
    expected_facet,
    only_error,
    ordered,
    post,
    retire_own_terms,
    selected,
    serve,
    slugs_of,
    walk,
)


@pytest.fixture(scope="module")
def store_url(new_store_url: Callable[[str], str]) -> str:
    """The (empty) database the module's store is imported into: a SQLite file, then a PostgreSQL database."""
    return new_store_url("vocabulary")


@pytest.fixture(scope="module")
def store(store_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Store]:
    with serve(store_url, tmp_path_factory.mktemp("vocabulary-corpus")) as served:
        retire_own_terms(served, tmp_path_factory.mktemp("vocabulary-update"))
        yield served


# -- facets -------------------------------------------------------------------

SEED_TOPIC = "keeping staging close to production / python services"
FACET_CASES: dict[str, tuple[dict[str, Any] | None, str | None]] = {
    "no-filter": (None, None),
    "topic": ({"topic": SEED_TOPIC}, None),
    "stackAny": ({"stackAny": ["python", "frontend"]}, None),
    "toolsAll": ({"toolsAll": ["git", "docker"]}, None),
    "entity": ({"entity": {"name": "backend", "type": "area"}}, None),
    "codeLanguage": ({"codeLanguage": "typescript"}, None),
    "difficulty": ({"difficulty": "advanced"}, None),
    "status": ({"status": "published"}, None),
    "not-a-facet-field": ({"minQuality": 80, "hasImages": True}, None),
    "every-facet-field": (
        {
            "topic": SEED_TOPIC,
            "stackAny": ["python"],
            "toolsAll": ["pytest"],
            "entity": {"name": "backend", "type": "area"},
            "codeLanguage": "python",
            "difficulty": "intermediate",
            "status": "drafted",
        },
        None,
    ),
    "search": (None, "runbook"),
    "search-and-filters": ({"difficulty": "beginner", "stackAny": ["javascript", "typescript"]}, "headers"),
}
FACET_NAMES = list(FACETS_OF)
WITH_TYPES = """
query ($where: PostFilter, $search: String, $first: Int!) {
  facets(where: $where, search: $search, first: $first) {
    %s
  }
}
""" % "\n    ".join(f"{name} {{ value count type }}" for name in FACET_NAMES)  # noqa: UP031


def words_of(search: str | None) -> set[str] | None:
    return {search} if search else None


@pytest.mark.parametrize(("where", "search"), FACET_CASES.values(), ids=FACET_CASES.keys())
def test_each_facet_counts_the_selected_posts_as_if_its_own_filter_were_not_set(
    store: Store, where: dict[str, Any] | None, search: str | None
) -> None:
    # The Facets operation: 20 values a facet, without their type.
    facets = data_of(store.client, FACETS, {"where": where, "search": search}, operationName="Facets")["facets"]
    assert set(facets) == set(FACET_NAMES)
    for name in FACET_NAMES:
        expected = [
            {"value": v["value"], "count": v["count"]} for v in expected_facet(store, name, where, words_of(search), 20)
        ]
        assert facets[name] == expected, name


@pytest.mark.parametrize(("where", "search"), FACET_CASES.values(), ids=FACET_CASES.keys())
def test_every_facet_value_with_its_type_up_to_first(
    store: Store, where: dict[str, Any] | None, search: str | None
) -> None:
    for first in (3, 100):
        facets = data_of(store.client, WITH_TYPES, {"where": where, "search": search, "first": first})["facets"]
        for name in FACET_NAMES:
            assert facets[name] == expected_facet(store, name, where, words_of(search), first), (name, first)


def test_facets_filtered_on_a_value_still_show_the_other_values(store: Store) -> None:
    where = {"stackAny": ["python"], "difficulty": "advanced"}
    facets = data_of(store.client, WITH_TYPES, {"where": where, "first": 100})["facets"]
    assert len(facets["stack"]) > 1
    assert {v["value"] for v in facets["difficulty"]} == {"beginner", "intermediate", "advanced"}
    # The other facets count only the posts both filters keep.
    both = selected(store, where)
    assert sum(v["count"] for v in facets["codeLanguage"]) == len(both)


def test_entity_facet_values_are_names_with_their_type(store: Store) -> None:
    facets = data_of(store.client, WITH_TYPES, {"first": 100})["facets"]
    assert {v["type"] for v in facets["entities"]} >= {"stack", "area", "problem", "tool"}
    for name in FACET_NAMES:
        if name != "entities":
            assert all(v["type"] is None for v in facets[name]), name


def test_facets_default_to_twenty_values(store: Store) -> None:
    facets = data_of(store.client, "{ facets { tools { value } entities { value } topic { value } } }")["facets"]
    assert len(facets["tools"]) == len(facets["entities"]) == len(facets["topic"]) == 20


@pytest.mark.parametrize("first", [0, -1, 101])
def test_facets_first_outside_1_to_100_is_a_bad_user_input_error(store: Store, first: int) -> None:
    status, body = post(store.client, WITH_TYPES, {"first": first})
    assert status == 200
    error = only_error(body)
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    assert "first" in error["message"]


# -- stack terms and tools ----------------------------------------------------

TERMS = """
query ($first: Int!, $after: String) {
  %s(first: $first, after: $after) {
    totalCount
    pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
    edges { cursor node { name postCount } }
  }
}
"""
KINDS: dict[str, Callable[[Source], tuple[str, ...]]] = {
    "stacks": lambda s: s.meta.stack,
    "tools": lambda s: s.meta.tools,
}


def term_counts(store: Store, kind: str) -> list[dict[str, Any]]:
    """Every term some post uses, alphabetically (by code point), with how many posts use it."""
    counts = Counter(term for source in store.sources for term in KINDS[kind](source))
    return [{"name": name, "postCount": counts[name]} for name in sorted(counts)]


def test_the_vocabulary_operation_lists_the_first_100_terms_with_exact_counts(store: Store) -> None:
    data = data_of(store.client, ENTITY_PAGE, operationName="Vocabulary")
    for kind in KINDS:
        expected = term_counts(store, kind)
        assert data[kind]["totalCount"] == len(expected)
        assert [edge["node"] for edge in data[kind]["edges"]] == expected[:100]
    assert len(term_counts(store, "tools")) > 100  # the tools list has a second page


@pytest.mark.parametrize("first", [7, 100])
@pytest.mark.parametrize("kind", KINDS.keys())
def test_terms_page_alphabetically_to_the_end(store: Store, kind: str, first: int) -> None:
    pages = walk(store.client, TERMS % kind, {}, lambda data: data[kind], first=first)
    expected = term_counts(store, kind)
    assert [edge["node"] for page in pages for edge in page["edges"]] == expected
    assert all(page["totalCount"] == len(expected) for page in pages)
    assert [page["pageInfo"]["hasPreviousPage"] for page in pages] == [False] + [True] * (len(pages) - 1)


def stored_names(store: Store) -> set[tuple[str, str]]:
    """(table, name) of every row of the vocabulary tables, read from the store itself."""

    async def read() -> set[tuple[str, str]]:
        engine = models.create_engine(store.url)
        try:
            async with engine.connect() as conn:
                names: set[tuple[str, str]] = set()
                for table in ("stack_term", "tool", "entity"):
                    names |= {(table, row[0]) for row in await conn.execute(text(f"SELECT name FROM {table}"))}
                return names
        finally:
            await engine.dispose()

    return asyncio.run(read())


def test_terms_no_post_uses_any_more_are_not_listed(store: Store) -> None:
    # Given terms still in the store's vocabulary tables that no post uses since their post was updated.
    entity = OWN_TERMS["entity"]
    assert {("stack_term", OWN_TERMS["stack"]), ("tool", OWN_TERMS["tool"]), ("entity", entity.name)} <= stored_names(
        store
    )
    assert not any(OWN_TERMS["tool"] in s.meta.tools for s in store.sources)
    # Then no list shows them and the entity has no page.
    listed = {
        kind: {
            edge["node"]["name"]
            for page in walk(store.client, TERMS % kind, {}, lambda d, k=kind: d[k], first=100)
            for edge in page["edges"]
        }
        for kind in KINDS
    }
    assert OWN_TERMS["stack"] not in listed["stacks"] and OWN_TERMS["tool"] not in listed["tools"]
    entities = walk(store.client, ENTITIES, {"type": entity.type}, lambda d: d["entities"], first=100)
    assert entity.name not in {edge["node"]["name"] for page in entities for edge in page["edges"]}
    variables = {"name": entity.name, "type": entity.type, "first": 5}
    assert data_of(store.client, ENTITY_PAGE, variables, operationName="EntityPage") == {"entity": None}


@pytest.mark.parametrize("first", [0, 101])
@pytest.mark.parametrize("field_name", ["stacks", "tools", "entities"])
def test_vocabulary_first_outside_1_to_100_is_a_bad_user_input_error(store: Store, field_name: str, first: int) -> None:
    status, body = post(store.client, f"{{ {field_name}(first: {first}) {{ totalCount }} }}")
    assert status == 200
    error = only_error(body)
    assert error["extensions"]["code"] == "BAD_USER_INPUT" and "first" in error["message"]


def test_a_cursor_of_one_vocabulary_list_is_refused_by_another(store: Store) -> None:
    stack_cursor = data_of(store.client, TERMS % "stacks", {"first": 2})["stacks"]["pageInfo"]["endCursor"]
    problem_cursor = data_of(store.client, ENTITIES, {"type": "problem", "first": 2})["entities"]["pageInfo"][
        "endCursor"
    ]
    for query, variables, field_name in (
        (TERMS % "tools", {"first": 2, "after": stack_cursor}, "tools"),
        (ENTITIES, {"type": "stack", "first": 2, "after": problem_cursor}, "entities"),
        (ENTITIES, {"type": "problem", "first": 2, "after": stack_cursor}, "entities"),
    ):
        status, body = post(store.client, query, variables)
        assert status == 200
        error = only_error(body)
        assert error["extensions"]["code"] == "BAD_USER_INPUT", error
        assert "after" in error["message"]
        assert error["path"] == [field_name]


# -- entities -----------------------------------------------------------------

ENTITIES = """
query ($type: String, $first: Int!, $after: String) {
  entities(type: $type, first: $first, after: $after) {
    totalCount
    pageInfo { hasNextPage endCursor }
    edges { cursor node { name type postCount } }
  }
}
"""


def entity_counts(store: Store, type_: str | None) -> list[dict[str, Any]]:
    counts = Counter(
        (e.name, e.type) for s in store.sources for e in s.meta.entities if type_ is None or e.type == type_
    )
    return [{"name": name, "type": t, "postCount": counts[name, t]} for name, t in sorted(counts)]


@pytest.mark.parametrize(("type_", "first"), [("problem", 7), ("tool", 20), (None, 50)], ids=["problem", "tool", "all"])
def test_entities_page_by_name_then_type_with_exact_counts(store: Store, type_: str | None, first: int) -> None:
    pages = walk(store.client, ENTITIES, {"type": type_}, lambda data: data["entities"], first=first)
    expected = entity_counts(store, type_)
    assert len(expected) > first
    assert [edge["node"] for page in pages for edge in page["edges"]] == expected
    assert pages[0]["totalCount"] == len(expected)


def test_entities_of_a_type_no_post_has_are_an_empty_list(store: Store) -> None:
    entities = data_of(store.client, ENTITIES, {"type": "no such type", "first": 5})["entities"]
    assert entities == {"totalCount": 0, "pageInfo": {"hasNextPage": False, "endCursor": None}, "edges": []}


def mentioning(store: Store, name: str, type_: str) -> list[Source]:
    return [s for s in store.sources if any((e.name, e.type) == (name, type_) for e in s.meta.entities)]


ENTITY_CASES = {
    "stack": ("python services", "stack"),
    "area": ("backend", "area"),
    "problem": ("keeping staging close to production", "problem"),
    "tool": ("pytest", "tool"),
    "rare-tool": ("golangci-lint", "tool"),
}


@pytest.mark.parametrize(("name", "type_"), ENTITY_CASES.values(), ids=ENTITY_CASES.keys())
def test_an_entity_page_lists_exactly_the_posts_mentioning_it_newest_first(store: Store, name: str, type_: str) -> None:
    expected = mentioning(store, name, type_)
    assert expected
    pages = walk(
        store.client,
        ENTITY_PAGE,
        {"name": name, "type": type_},
        lambda data: {**data["entity"]["posts"], "entity": {k: data["entity"][k] for k in ("name", "type")}},
        operation="EntityPage",
    )
    assert all(page["entity"] == {"name": name, "type": type_} for page in pages)
    assert slugs_of(pages) == ordered(expected, None)
    assert pages[0]["totalCount"] == len(expected)
    for page in pages:
        for edge in page["edges"]:
            data = store.by_slug[edge["node"]["slug"]].data
            assert edge["node"] == {
                "slug": data["slug"],
                "title": data["title"],
                "scores": {"quality": data["scores"]["quality"]},
            }
    count = data_of(
        store.client,
        "query ($n: String!, $t: String!) { entity(name: $n, type: $t) { postCount } }",
        {"n": name, "t": type_},
    )
    assert count == {"entity": {"postCount": len(expected)}}


def test_an_entity_page_filters_and_orders_its_posts(store: Store) -> None:
    query = """query ($where: PostFilter, $orderBy: PostOrder) {
      entity(name: "backend", type: "area") {
        posts(first: 100, where: $where, orderBy: $orderBy) { totalCount edges { node { slug } } }
      }
    }"""
    where = {"difficulty": "advanced", "hasImages": True}
    expected = [s for s in mentioning(store, "backend", "area") if s in selected(store, where)]
    order = {"field": "QUALITY", "direction": "ASC"}
    posts = data_of(store.client, query, {"where": where, "orderBy": order})["entity"]["posts"]
    assert [edge["node"]["slug"] for edge in posts["edges"]] == ordered(expected, "QUALITY", "ASC")
    assert posts["totalCount"] == len(expected)


UNKNOWN = {
    "unknown-name": ("no such entity", "stack"),
    "known-name-other-type": ("python services", "problem"),
    "type-as-name": ("stack", "stack"),
    "empty": ("", ""),
}


@pytest.mark.parametrize(("name", "type_"), UNKNOWN.values(), ids=UNKNOWN.keys())
def test_an_entity_no_post_mentions_is_null(store: Store, name: str, type_: str) -> None:
    body = data_of(store.client, ENTITY_PAGE, {"name": name, "type": type_, "first": 5}, operationName="EntityPage")
    assert body == {"entity": None}
