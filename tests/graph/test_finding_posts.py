"""Finding posts over HTTP: filters, orderings and keyset pages (search, and what finding costs in SQL:
``test_search_posts.py``).

One store for the module (see ``tests/graph/finding.py``): 300 synthesized documents, the real seed
document and nine crafted ones, imported into the database of ``store_url`` and served by
``create_app`` through Starlette's ``TestClient``. Every expectation is computed in Python from the
parsed documents: which posts a filter or a search selects, and in which order.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ROOT
from tests.graph import finding_store as shared
from tests.graph.finding import (
    FILTERED_LISTING,
    SORT_KEYS,
    Source,
    Store,
    data_of,
    import_folder,
    only_error,
    ordered,
    post,
    read_sources,
    selected,
    slug_set,
    slugs_of,
    write_new_documents,
)
from tests.graph.finding_store import GRAPHQL_RESPONSE, TITLE_ASC, check_listing_node, listing

# The store's fixtures (module-scoped: made once per module).
store_url = shared.store_url
served_store = shared.served_store
store = shared.store


# -- filters ------------------------------------------------------------------

SEED_TOPIC = "keeping staging close to production / python services"

# Each PostFilter field alone; booleans both ways; bounds at values some posts have exactly.
ONE_FIELD = {
    "topic": {"topic": SEED_TOPIC},
    "stackAny": {"stackAny": ["python", "frontend"]},
    "stackAny-unknown-term": {"stackAny": ["no such stack", "python"]},
    "toolsAll": {"toolsAll": ["pytest", "git"]},
    "toolsAll-repeated": {"toolsAll": ["git", "git"]},
    "entity": {"entity": {"name": "python services", "type": "stack"}},
    "entity-problem": {"entity": {"name": "keeping staging close to production", "type": "problem"}},
    "codeLanguage": {"codeLanguage": "typescript"},
    "codeLanguage-c#": {"codeLanguage": "c#"},
    "difficulty": {"difficulty": "advanced"},
    "status": {"status": "needs review"},
    "aiGeneratedStyle-true": {"aiGeneratedStyle": True},
    "aiGeneratedStyle-false": {"aiGeneratedStyle": False},
    "hasImages-true": {"hasImages": True},
    "hasImages-false": {"hasImages": False},
    "imageHeavy-true": {"imageHeavy": True},
    "imageHeavy-false": {"imageHeavy": False},
    "needsHumanReview-true": {"needsHumanReview": True},
    "needsHumanReview-false": {"needsHumanReview": False},
    "minQuality": {"minQuality": 80},
    "minQuality-seed-exactly": {"minQuality": 96},
    "minFreshness": {"minFreshness": 70},
    "minDepth": {"minDepth": 60},
    "minClarity": {"minClarity": 85},
    "viewCountMin": {"viewCountMin": 100_000},
    "viewCountMax": {"viewCountMax": 1_000},
    "readingTimeMin": {"readingTimeMin": 12},
    "readingTimeMax": {"readingTimeMax": 6},
    "reviewedAfter": {"reviewedAfter": "2026-01-01"},
    "reviewedBefore": {"reviewedBefore": "2024-06-30"},
}
COMBINED = {
    "stack+tools+difficulty": {"stackAny": ["python", "javascript"], "toolsAll": ["git"], "difficulty": "intermediate"},
    "entity+quality+images": {"entity": {"name": "backend", "type": "area"}, "minQuality": 70, "hasImages": True},
    "status+review-window+review-flag": {
        "status": "published",
        "reviewedAfter": "2025-01-01",
        "reviewedBefore": "2025-12-31",
        "needsHumanReview": False,
    },
    "views+flags+scores": {
        "viewCountMin": 1_000,
        "viewCountMax": 100_000,
        "aiGeneratedStyle": True,
        "imageHeavy": False,
        "minDepth": 50,
        "minClarity": 60,
        "minFreshness": 40,
    },
    "topic+codeLanguage": {"topic": SEED_TOPIC, "codeLanguage": "python"},
    "seed-views-exactly": {"viewCountMin": 223_096, "viewCountMax": 223_096},
    "seed-review-day-exactly": {"reviewedAfter": "2026-07-02", "reviewedBefore": "2026-07-02"},
    "seed-reading-time-exactly": {"readingTimeMin": 5, "readingTimeMax": 5},
}
NOTHING = {
    "unknown-difficulty": {"difficulty": "expert"},
    "unknown-tool-among-known": {"toolsAll": ["pytest", "no-such-tool"]},
    "entity-of-another-type": {"entity": {"name": "python services", "type": "problem"}},
    "empty-view-window": {"viewCountMin": 1_000, "viewCountMax": 999},
    "empty-reading-time-window": {"readingTimeMin": 10, "readingTimeMax": 9},
}
EVERYTHING = {
    "empty-object": {},
    "null-fields": {"topic": None, "stackAny": None, "minQuality": None, "reviewedAfter": None, "entity": None},
    "empty-lists": {"stackAny": [], "toolsAll": []},
    "lowest-bounds": {
        "minQuality": 0,
        "minFreshness": 0,
        "minDepth": 0,
        "minClarity": 0,
        "viewCountMin": 0,
        "readingTimeMin": 0,
    },
}


def check_filter(store: Store, where: dict[str, Any]) -> list[Source]:
    expected = selected(store, where)
    pages = listing(store, where, first=50)
    found = slugs_of(pages)
    assert len(found) == len(set(found)), "a post appears twice"
    assert set(found) == slug_set(expected)
    assert pages[0]["totalCount"] == len(expected)
    for page in pages:
        for edge in page["edges"]:
            check_listing_node(store, edge["node"])
    return expected


@pytest.mark.parametrize("where", ONE_FIELD.values(), ids=ONE_FIELD.keys())
def test_each_filter_field_alone_selects_the_posts_whose_document_matches(store: Store, where: dict) -> None:
    expected = check_filter(store, where)
    assert 0 < len(expected) < len(store.sources), "the filter should select some posts, not all"


@pytest.mark.parametrize("where", COMBINED.values(), ids=COMBINED.keys())
def test_combined_filters_select_the_posts_matching_every_field(store: Store, where: dict) -> None:
    expected = check_filter(store, where)
    assert expected, "the combination should select some posts"


@pytest.mark.parametrize("where", NOTHING.values(), ids=NOTHING.keys())
def test_filters_nothing_matches_give_an_empty_connection(store: Store, where: dict) -> None:
    assert check_filter(store, where) == []
    posts = data_of(store.client, FILTERED_LISTING, {"first": 7, "where": where})["posts"]
    assert posts == {"totalCount": 0, "pageInfo": {"hasNextPage": False, "endCursor": None}, "edges": []}


@pytest.mark.parametrize("where", EVERYTHING.values(), ids=EVERYTHING.keys())
def test_unset_fields_empty_lists_and_lowest_bounds_do_not_filter(store: Store, where: dict) -> None:
    assert len(check_filter(store, where)) == len(store.sources)


def test_that_empty_lists_do_not_filter_is_documented() -> None:
    schema = (ROOT / "schema.graphql").read_text(encoding="utf-8")
    assert "unset fields, and empty lists, do not filter" in " ".join(schema.split())


def test_review_date_bounds_are_inclusive_and_leave_out_posts_never_reviewed(store: Store) -> None:
    never = {s.slug for s in store.sources if s.meta.revision.last_reviewed is None}
    assert len(never) >= 3
    seed = next(s for s in store.sources if s.document.reference == "anp-ref-001632-5801")
    for where in ({"reviewedAfter": "1900-01-01"}, {"reviewedBefore": "2100-12-31"}):
        found = slug_set(selected(store, where))
        assert set(slugs_of(listing(store, where, first=100))) == found
        assert not found & never and len(found) == len(store.sources) - len(never)
    exact = set(slugs_of(listing(store, {"reviewedAfter": "2026-07-02", "reviewedBefore": "2026-07-02"})))
    assert seed.slug in exact


OUT_OF_RANGE = {
    "minQuality-101": ({"minQuality": 101}, "minQuality"),
    "minQuality-negative": ({"minQuality": -1}, "minQuality"),
    "minFreshness-101": ({"minFreshness": 101}, "minFreshness"),
    "minDepth-negative": ({"minDepth": -1}, "minDepth"),
    "minClarity-101": ({"minClarity": 101}, "minClarity"),
    "viewCountMin-negative": ({"viewCountMin": -5}, "viewCountMin"),
    "viewCountMax-negative": ({"viewCountMax": -1}, "viewCountMax"),
    "readingTimeMin-negative": ({"readingTimeMin": -3}, "readingTimeMin"),
    "readingTimeMax-negative": ({"readingTimeMax": -1}, "readingTimeMax"),
}


@pytest.mark.parametrize(("where", "named"), OUT_OF_RANGE.values(), ids=OUT_OF_RANGE.keys())
@pytest.mark.parametrize("accept", ["application/json", GRAPHQL_RESPONSE])
def test_values_out_of_range_are_a_bad_user_input_error_naming_the_field(
    store: Store, where: dict, named: str, accept: str
) -> None:
    for query, path in (
        (FILTERED_LISTING, ["posts"]),
        ("query ($where: PostFilter) { facets(where: $where) { topic { value } } }", ["facets"]),
    ):
        # The error comes from the field: the response has data (null), so the status is 200 either way.
        status, body = post(store.client, query, {"first": 7, "where": where}, accept=accept)
        assert status == 200, body
        error = only_error(body)
        assert error["extensions"]["code"] == "BAD_USER_INPUT", error
        assert named in error["message"]
        assert error["path"] == path
        assert body["data"] is None


BAD_DATES = {"feb-30": "2026-02-30", "yesterday": "yesterday", "no-dashes": "20260702", "with-time": "2026-07-02T00"}


@pytest.mark.parametrize("value", BAD_DATES.values(), ids=BAD_DATES.keys())
@pytest.mark.parametrize("bound", ["reviewedAfter", "reviewedBefore"])
def test_an_invalid_date_in_variables_is_a_variable_coercion_error(store: Store, value: str, bound: str) -> None:
    status, body = post(store.client, FILTERED_LISTING, {"first": 7, "where": {bound: value}})
    assert status == 200, body
    error = only_error(body)
    assert "Date" in error["message"] and value in error["message"] and bound in error["message"], error
    assert error.get("extensions", {}).get("code") != "INTERNAL_SERVER_ERROR"


@pytest.mark.parametrize("value", BAD_DATES.values(), ids=BAD_DATES.keys())
def test_an_invalid_date_in_variables_is_400_without_data_for_graphql_response_json(store: Store, value: str) -> None:
    # GraphQL over HTTP: a variable coercion failure is a request error: no data entry and, with
    # application/graphql-response+json, status 400 (as the validation errors of tests/server/test_http.py).
    status, body = post(
        store.client, FILTERED_LISTING, {"first": 7, "where": {"reviewedAfter": value}}, accept=GRAPHQL_RESPONSE
    )
    assert "Date" in only_error(body)["message"]
    assert "data" not in body, body
    assert status == 400, body


@pytest.mark.parametrize("value", BAD_DATES.values(), ids=BAD_DATES.keys())
def test_an_invalid_date_literal_in_the_query_is_a_validation_error_not_an_internal_one(
    store: Store, value: str
) -> None:
    query = f'{{ posts(where: {{reviewedAfter: "{value}"}}) {{ totalCount }} }}'
    for accept, expected_status in (("application/json", 200), (GRAPHQL_RESPONSE, 400)):
        status, body = post(store.client, query, accept=accept)
        error = only_error(body)
        assert error.get("extensions", {}).get("code") != "INTERNAL_SERVER_ERROR", error
        assert "Date" in error["message"] and value in error["message"], error
        assert "data" not in body
        assert status == expected_status


# -- orderings ----------------------------------------------------------------

BACKWARD_PAGE = 25  # pages read backwards hold 25 posts: the walks are checked against the 7-post forward walks
SORT_FILTER = {"difficulty": "intermediate"}  # holds crafted posts: never reviewed, titles not in lowercase ASCII
BACKWARD = """
query Backward($last: Int!, $before: String, $where: PostFilter, $orderBy: PostOrder) {
  posts(last: $last, before: $before, where: $where, orderBy: $orderBy) {
    totalCount
    pageInfo { hasPreviousPage hasNextPage startCursor endCursor }
    edges { cursor node { slug } }
  }
}
"""


def walk_backward(store: Store, where: dict[str, Any] | None, order: dict[str, str] | None) -> list[dict[str, Any]]:
    """Every page from the end with last/before following startCursor, in the order they come."""
    pages: list[dict[str, Any]] = []
    before: str | None = None
    while True:
        variables = {"last": BACKWARD_PAGE, "before": before, "where": where, "orderBy": order}
        page = data_of(store.client, BACKWARD, variables)["posts"]
        pages.append(page)
        edges = page["edges"]
        assert 1 <= len(edges) <= BACKWARD_PAGE
        assert page["pageInfo"]["startCursor"] == edges[0]["cursor"]
        assert page["pageInfo"]["endCursor"] == edges[-1]["cursor"]
        assert page["pageInfo"]["hasNextPage"] == (before is not None)
        if not page["pageInfo"]["hasPreviousPage"]:
            return pages
        assert len(edges) == BACKWARD_PAGE
        before = page["pageInfo"]["startCursor"]
        assert len(pages) <= 100, "the backward walk does not end"


def check_order(store: Store, where: dict[str, Any] | None, order: dict[str, str] | None) -> None:
    """Forward 7 at a time, the posts in the Python order; backwards, the same posts and cursors."""
    field_name = order["field"] if order else None
    expected = ordered(selected(store, where), field_name, order.get("direction", "DESC") if order else "DESC")
    pages = listing(store, where, order)
    assert slugs_of(pages) == expected
    assert pages[0]["totalCount"] == len(expected)
    for page in pages:
        for edge in page["edges"]:
            check_listing_node(store, edge["node"])
    # Backwards from the end: the same posts with the same cursors, each page the posts before the previous one.
    forward_edges = [edge for page in pages for edge in page["edges"]]
    end = len(forward_edges)
    for page in walk_backward(store, where, order):
        start = max(0, end - BACKWARD_PAGE)
        assert page["edges"] == [
            {"cursor": e["cursor"], "node": {"slug": e["node"]["slug"]}} for e in forward_edges[start:end]
        ]
        assert page["totalCount"] == len(expected)
        end = start
    assert end == 0


@pytest.mark.parametrize("filtered", [False, True], ids=["all", "filtered"])
@pytest.mark.parametrize("direction", ["ASC", "DESC"])
@pytest.mark.parametrize("field_name", SORT_KEYS.keys())
def test_every_ordering_walks_pages_in_key_then_id_order(
    store: Store, field_name: str, direction: str, filtered: bool
) -> None:
    if filtered:
        assert sum(s.meta.revision.last_reviewed is None for s in selected(store, SORT_FILTER)) >= 2
    check_order(store, SORT_FILTER if filtered else None, {"field": field_name, "direction": direction})


@pytest.mark.parametrize("filtered", [False, True], ids=["all", "filtered"])
def test_without_order_by_posts_come_newest_first(store: Store, filtered: bool) -> None:
    check_order(store, SORT_FILTER if filtered else None, None)


def test_order_by_without_direction_is_descending(store: Store) -> None:
    pages = listing(store, None, {"field": "VIEW_COUNT"}, first=100)
    assert slugs_of(pages) == ordered(store.sources, "VIEW_COUNT", "DESC")


def test_never_reviewed_posts_sort_as_oldest_and_titles_by_code_point(store: Store) -> None:
    never = [s for s in store.sources if s.meta.revision.last_reviewed is None]
    oldest_first = slugs_of(listing(store, None, {"field": "LAST_REVIEWED", "direction": "ASC"}, first=100))
    assert oldest_first[: len(never)] == [s.slug for s in never]  # by id among themselves
    titles = [
        store.by_slug[slug].document.title
        for slug in slugs_of(listing(store, None, {"field": "TITLE", "direction": "ASC"}, first=100))
    ]
    crafted = [
        "10 checks before a release",  # digits before capitals
        "Zero downtime, capitalised",  # capitals before the underscore
        "_underscore sorts between upper and lower case",  # the underscore before lowercase
        "practical guide to keeping staging close to production with python services",  # lowercase
        "Émile's notes on flaky checks",  # Latin-1 after ASCII
        "ärger mit timeouts",
        "Ωmega release notes",  # Greek after Latin-1
        "Ｆullwidth letters sort after Greek",  # U+FF26, still in the Basic Multilingual Plane
        "🚀 launch notes",  # U+1F680 last: by code point, not by UTF-16 unit
    ]
    positions = [titles.index(title) for title in crafted]
    assert positions == sorted(positions)
    assert titles[-5:] == crafted[-5:]


def cursor_of(
    store: Store, where: dict[str, Any] | None, order: dict[str, str] | None, search: str | None = None
) -> str:
    query = """query ($where: PostFilter, $orderBy: PostOrder, $search: String) {
      posts(first: 3, where: $where, orderBy: $orderBy, search: $search) { pageInfo { endCursor } } }"""
    cursor: str = data_of(store.client, query, {"where": where, "orderBy": order, "search": search})["posts"][
        "pageInfo"
    ]["endCursor"]
    return cursor


FOREIGN_CURSORS = {
    "other-direction": ((None, TITLE_ASC, None), (None, {"field": "TITLE", "direction": "DESC"}, None), "ordering"),
    "other-field": ((None, {"field": "VIEW_COUNT"}, None), (None, {"field": "QUALITY"}, None), "ordering"),
    "default-vs-ordered": ((None, None, None), (None, {"field": "VIEW_COUNT"}, None), "ordering"),
    "other-filter": (({"difficulty": "beginner"}, None, None), ({"difficulty": "advanced"}, None, None), "filter"),
    "filter-added": ((None, TITLE_ASC, None), ({"hasImages": True}, TITLE_ASC, None), "filter"),
    "other-search": ((None, None, "runbook"), (None, None, "headers"), "filter"),
}


@pytest.mark.parametrize(("given", "used", "word"), FOREIGN_CURSORS.values(), ids=FOREIGN_CURSORS.keys())
@pytest.mark.parametrize("argument", ["after", "before"])
def test_a_cursor_from_another_ordering_or_filter_is_refused(
    store: Store, given: tuple, used: tuple, word: str, argument: str
) -> None:
    cursor = cursor_of(store, *given)
    size = "first" if argument == "after" else "last"
    query = f"""query ($where: PostFilter, $orderBy: PostOrder, $search: String, $cursor: String) {{
      posts({size}: 3, {argument}: $cursor, where: $where, orderBy: $orderBy, search: $search) {{ totalCount }} }}"""
    status, body = post(
        store.client, query, {"where": used[0], "orderBy": used[1], "search": used[2], "cursor": cursor}
    )
    assert status == 200
    error = only_error(body)
    assert error["extensions"]["code"] == "BAD_USER_INPUT", error
    assert word in error["message"] and argument in error["message"], error
    assert body["data"] is None


def test_keyset_pages_survive_an_import_between_two_pages(store: Store, tmp_path: Path) -> None:
    # Given three walks half way through: VIEW_COUNT DESC, TITLE ASC and newest first.
    before = list(store.sources)
    orders: list[dict[str, str] | None] = [{"field": "VIEW_COUNT", "direction": "DESC"}, TITLE_ASC, None]
    seen: list[list[str]] = [[] for _ in orders]
    cursors: list[str | None] = [None for _ in orders]

    def step(n: int) -> bool:
        page = data_of(store.client, FILTERED_LISTING, {"first": 7, "after": cursors[n], "orderBy": orders[n]})["posts"]
        seen[n] += [edge["node"]["slug"] for edge in page["edges"]]
        cursors[n] = page["pageInfo"]["endCursor"]
        return bool(page["pageInfo"]["hasNextPage"])

    half = len(before) // 7 // 2
    for n in range(len(orders)):
        for _ in range(half):
            assert step(n)
    reached = [slugs[-1] for slugs in seen]
    # When 20 new documents are imported into the same store.
    folder = tmp_path / "new"
    write_new_documents(folder, 20, after=sum(1 for s in before if s.path.parent.name == "new"))
    new = read_sources(folder, first_id=len(before) + 1)
    assert asyncio.run(import_folder(store.url, folder)).created == 20
    store.add(new)
    # And the walks go on to the end.
    for n in range(len(orders)):
        while step(n):
            assert len(seen[n]) <= len(store.sources)
    # Then every post of the start appears exactly once, a new one at most once, all in the ordering's order.
    old, added = slug_set(before), slug_set(new)
    for n, order in enumerate(orders):
        assert len(seen[n]) == len(set(seen[n])), f"{order}: a post appears twice"
        assert set(seen[n]) >= old, f"{order}: posts of the start are missing: {old - set(seen[n])}"
        assert set(seen[n]) <= old | added
        field_name = order["field"] if order else None
        everything = ordered(store.sources, field_name, order["direction"] if order else "DESC")
        assert seen[n] == [slug for slug in everything if slug in set(seen[n])]
        if order is not None:  # some new posts sort after the page reached: the walk had to meet them
            assert set(everything[everything.index(reached[n]) + 1 :]) & added
    # Newest first, the new posts come before the page the walk had reached.
    assert not set(seen[2]) & added
    assert data_of(store.client, FILTERED_LISTING, {"first": 1})["posts"]["totalCount"] == len(store.sources)
