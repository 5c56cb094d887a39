"""Finding posts by full-text search over HTTP, and what finding posts costs in SQL statements. The store
is ``tests/graph/finding_store.py``'s; every expectation is computed in Python from the parsed documents."""

from __future__ import annotations

import re
from typing import Any

import pytest

from tests.graph import finding_store as shared
from tests.graph.finding import (
    FACETS,
    FILTERED_LISTING,
    SEARCH,
    Source,
    Store,
    contains_phrase,
    data_of,
    has_no_other_form,
    only_error,
    ordered,
    other_units,
    post,
    search_units,
    selected,
    slug_set,
    slugs_of,
    tokens,
    vocabulary,
    walk,
)
from tests.graph.finding_store import TITLE_ASC, posts_of

# The store's fixtures (module-scoped: made once per module).
store_url = shared.store_url
served_store = shared.served_store
store = shared.store


# -- search -------------------------------------------------------------------

SEARCH_POSTS = """
query ($q: String, $first: Int!, $after: String, $where: PostFilter, $orderBy: PostOrder) {
  posts(search: $q, first: $first, after: $after, where: $where, orderBy: $orderBy) {
    totalCount
    pageInfo { hasNextPage endCursor }
    edges { cursor highlight node { slug } }
  }
}
"""
WORDS = {
    "rare-tool": "golangci",
    "rare-tool-2": "leakcanary",
    "problem-word": "onboarding",
    "stack-word-in-topic": "storefronts",
    "checklist-word": "runbook",
    "checklist-word-2": "headers",
    "paragraph-word": "archaeology",
    "summary-word": "emphasis",
    "crafted-intro-only": "quokka",
    "upper-case-query": "RUNBOOK",
}
MARK = re.compile(r"</?mark>")


def check_highlight(highlight: str | None, words: set[str]) -> None:
    """Matched words in <mark>, the rest escaped: no other tag, no unescaped '<'."""
    assert highlight is not None
    marked = re.findall(r"<mark>(.*?)</mark>", highlight)
    assert marked, highlight
    assert {m.lower() for m in marked} <= words, highlight
    assert highlight.count("<mark>") == highlight.count("</mark>")
    assert "<" not in MARK.sub("", highlight), highlight


def search_walk(store: Store, q: str, *, where: dict | None = None, order: dict | None = None, first: int = 7):
    variables = {"q": q, "where": where, "orderBy": order}
    return walk(store.client, SEARCH_POSTS, variables, posts_of, first=first)


def check_search(store: Store, q: str, words: set[str], *, where: dict | None = None) -> list[Source]:
    expected = selected(store, where, words)
    pages = search_walk(store, q, where=where)
    found = slugs_of(pages)
    assert len(found) == len(set(found)), "a post appears twice"
    assert set(found) == slug_set(expected)
    assert pages[0]["totalCount"] == len(expected)
    for page in pages:
        for edge in page["edges"]:
            check_highlight(edge["highlight"], words)
    return expected


@pytest.mark.parametrize("word", WORDS.values(), ids=WORDS.keys())
def test_search_finds_exactly_the_posts_containing_the_word(store: Store, word: str) -> None:
    lower = word.lower()
    assert has_no_other_form(lower, vocabulary(store.sources)), f"{word}: stemming could change what matches"
    expected = check_search(store, word, {lower})
    assert 0 < len(expected) < len(store.sources)
    # The Search operation (relevance, 7 a page) finds the same posts, each once.
    pages = walk(store.client, SEARCH, {"q": word}, posts_of, operation="Search")
    assert sorted(slugs_of(pages)) == sorted(slug_set(expected))
    for page in pages:
        for edge in page["edges"]:
            check_highlight(edge["highlight"], {lower})
            node = edge["node"]
            data = store.by_slug[node["slug"]].data
            assert node["meta"] == {"topic": data["meta"]["topic"], "summary": data["meta"]["summary"]}
            assert node["title"] == data["title"] and node["scores"]["quality"] == data["scores"]["quality"]


def test_the_search_operation_with_a_filter_finds_the_matches_the_filter_keeps(store: Store) -> None:
    where = {"difficulty": "intermediate", "hasImages": True}
    expected = selected(store, where, {"runbook"})
    assert 0 < len(expected) < len(selected(store, None, {"runbook"}))
    pages = walk(store.client, SEARCH, {"q": "runbook", "where": where}, posts_of, operation="Search")
    assert sorted(slugs_of(pages)) == sorted(slug_set(expected))
    assert pages[0]["totalCount"] == len(expected)


def test_a_highlight_escapes_the_text_around_the_marks(store: Store) -> None:
    (edge,) = data_of(store.client, SEARCH, {"q": "quokka", "first": 7}, operationName="Search")["posts"]["edges"]
    assert "<mark>quokka</mark>" in edge["highlight"]
    assert "&lt;probe&gt;" in edge["highlight"] and "&amp;" in edge["highlight"]


def test_words_only_in_fields_search_does_not_look_at_find_nothing(store: Store) -> None:
    for word in ("sanitized", "pretending", "placeholder"):  # notes and the ai brief
        assert any(word in tokens(u) for s in store.sources for u in other_units(s.document))
        assert not any(word in tokens(u) for s in store.sources for u in search_units(s.document))
        posts = data_of(store.client, SEARCH_POSTS, {"q": word, "first": 5})["posts"]
        assert posts["totalCount"] == 0 and posts["edges"] == []


PHRASES = {
    "adjacent": ("baseline metrics", ["baseline", "metrics"]),
    "reversed": ("metrics baseline", ["metrics", "baseline"]),
    "with-stop-word-inside": ("logged in traffic", ["logged", "in", "traffic"]),
    "three-words": ("better than memory", ["better", "than", "memory"]),
}


@pytest.mark.parametrize(("text", "phrase"), PHRASES.values(), ids=PHRASES.keys())
def test_a_quoted_phrase_finds_the_posts_with_those_words_adjacent(store: Store, text: str, phrase: list[str]) -> None:
    words = {w for w in phrase if w not in ("in", "than")}
    everywhere = vocabulary(store.sources)
    assert all(has_no_other_form(w, everywhere) for w in words)
    expected = [s for s in store.sources if contains_phrase(s, phrase)]
    assert len(expected) < len(selected(store, None, words)), "some posts have the words apart"
    pages = search_walk(store, f'"{text}"', first=25)
    assert set(slugs_of(pages)) == slug_set(expected)
    assert pages[0]["totalCount"] == len(expected)


A, B = "runbook", "headers"  # words without other forms in the corpus; some posts have both, more only one
HOSTILE = {
    "trailing-quote": ('runbook"', {A}),
    "leading-quote": ('"runbook', {A}),
    "and": ("runbook AND headers", {A, B}),
    "or": ("runbook OR headers", {A, B}),
    "not": ("NOT runbook", {A}),
    "star": ("runbook*", {A}),
    "minus": ("runbook -headers", {A, B}),
    "parentheses": ("(runbook)", {A}),
    "colon": ("runbook: headers", {A, B}),
    "column-filter": ("title:runbook", {"title", A}),
    "fts5-column-set": ("{title intro}: runbook", {"title", "intro", A}),
    "near": ("NEAR(runbook headers)", {A, B}),
    "caret": ("^runbook", {A}),
    "sql-injection": ("'; DROP TABLE post; --", {"drop", "table", "post"}),
    "emoji-and-word": ("🚀runbook 🙂", {A}),
    "nul-character": ("runbook\x00headers", {A, B}),
    "long": (("runbook " * 300)[:2000], {A}),
    "quoted-phrase": ('"runbook headers"', None),  # the phrase: no post has them adjacent
}
NO_WORDS = {
    "backslash": "\\",
    "two-backslashes": "\\\\",
    "percent-underscore": "%_",
    "emoji": "🚀",
    "stop-words": "the and or not",
    "quotes": '""',
    "quoted-space": '" "',
    "long-nonsense": "x" * 2000,
    "long-punctuation": "*-()" * 500,
}


@pytest.mark.parametrize(("text", "words"), HOSTILE.values(), ids=HOSTILE.keys())
def test_hostile_search_text_is_only_words(store: Store, text: str, words: set[str] | None) -> None:
    if words is None:
        expected = [s for s in store.sources if contains_phrase(s, [A, B])]
    else:
        expected = selected(store, None, words)
        if expected:
            everywhere = vocabulary(store.sources)
            assert all(has_no_other_form(w, everywhere) for w in words)
    pages = search_walk(store, text, first=50)
    assert set(slugs_of(pages)) == slug_set(expected)
    assert pages[0]["totalCount"] == len(expected)
    for page in pages:
        for edge in page["edges"]:
            check_highlight(edge["highlight"], words or {A, B})
    facets = data_of(store.client, FACETS, {"search": text})["facets"]
    assert sum(v["count"] for v in facets["difficulty"]) == len(expected)


@pytest.mark.parametrize("text", NO_WORDS.values(), ids=NO_WORDS.keys())
def test_search_text_without_words_is_no_error(store: Store, text: str) -> None:
    for order in (None, {"field": "RELEVANCE"}, TITLE_ASC):
        pages = search_walk(store, text, order=order, first=50)
        assert len(slugs_of(pages)) == pages[0]["totalCount"]
    data_of(store.client, SEARCH, {"q": text, "first": 7}, operationName="Search")
    data_of(store.client, FACETS, {"search": text})


def test_hostile_search_leaves_the_store_as_it_was(store: Store) -> None:
    assert data_of(store.client, FILTERED_LISTING, {"first": 1})["posts"]["totalCount"] == len(store.sources)


def test_relevance_without_a_search_is_a_bad_user_input_error(store: Store) -> None:
    for search in (None, "", "  "):
        status, body = post(store.client, SEARCH_POSTS, {"q": search, "first": 5, "orderBy": {"field": "RELEVANCE"}})
        assert status == 200
        error = only_error(body)
        assert error["extensions"]["code"] == "BAD_USER_INPUT"
        assert "RELEVANCE" in error["message"] and "search" in error["message"]


def test_search_in_another_order_keeps_its_highlights(store: Store) -> None:
    expected = selected(store, None, {A})
    pages = search_walk(store, A, order=TITLE_ASC)
    assert slugs_of(pages) == ordered(expected, "TITLE", "ASC")
    for page in pages:
        for edge in page["edges"]:
            check_highlight(edge["highlight"], {A})


# -- statements ---------------------------------------------------------------


def statements(store: Store, query: str, variables: dict[str, Any], operation: str) -> tuple[dict[str, Any], list[str]]:
    """What the request returns and the statements it ran, with no aggregate and no search cached.

    The fact index (loaders.facts) is brought to the store's version first: loading it is a
    cost of the first request after a write, not of each request.
    """
    pool = store.client.app.state.read_pool  # type: ignore[attr-defined]
    data_of(store.client, query, variables, operationName=operation)
    pool.aggregates.clear()
    if pool.facts.current is not None:
        pool.facts.current.matches.clear()
    store.recorder.statements.clear()
    store.recorder.on = True
    try:
        data = data_of(store.client, query, variables, operationName=operation)
    finally:
        store.recorder.on = False
    return data, list(store.recorder.statements)


def labels(recorded: list[str]) -> list[str]:
    """Each statement by its first keyword and, for a SELECT, the first table it reads (sorted)."""
    out = []
    for text in recorded:
        keyword = re.match(r"\s*(\w+)", text).group(1).upper()  # type: ignore[union-attr]
        table = re.search(r"\bFROM\s+(\w+)", text, re.I)
        out.append(f"SELECT {table.group(1) if table else '?'}" if keyword == "SELECT" else keyword)
    return sorted(out)


def test_a_filtered_listing_costs_six_statements_whatever_the_page_size(store: Store) -> None:
    store.client.app.state.read_pool.use_facts = True  # type: ignore[attr-defined]  # what it counts
    variables = {"where": {"aiGeneratedStyle": True}, "orderBy": TITLE_ASC}
    assert len(selected(store, variables["where"])) > 100
    small, one = statements(store, FILTERED_LISTING, {**variables, "first": 1}, "FilteredListing")
    large, hundred = statements(store, FILTERED_LISTING, {**variables, "first": 100}, "FilteredListing")
    assert len(small["posts"]["edges"]) == 1 and len(large["posts"]["edges"]) == 100
    # BEGIN, the store's version, the page's posts (their ids and totalCount come from the fact
    # index), stack terms and tools of the page's posts, ROLLBACK.
    assert (
        labels(one)
        == labels(hundred)
        == ["BEGIN", "ROLLBACK", "SELECT post", "SELECT post_stack", "SELECT post_tool", "SELECT store_version"]
    )


def test_a_search_costs_four_statements_whatever_the_page_size(store: Store, store_url: str) -> None:
    pool = store.client.app.state.read_pool  # type: ignore[attr-defined]
    pool.use_facts = True  # what it counts
    assert len(selected(store, None, {"rollback"})) > 100
    small, one = statements(store, SEARCH, {"q": "rollback", "first": 1}, "Search")
    large, hundred = statements(store, SEARCH, {"q": "rollback", "first": 100}, "Search")
    assert len(small["posts"]["edges"]) == 1 and len(large["posts"]["edges"]) == 100
    # BEGIN, the store's version, the page with its snippets (one WITH statement), ROLLBACK.
    expected = ["BEGIN", "ROLLBACK", "SELECT store_version", "WITH"]
    if store_url.startswith("postgresql"):
        # And every match ranked by ts_rank in one statement, kept with the fact index: the page's
        # ids and totalCount come from it, and so would the next pages'.
        assert labels(one) == labels(hundred) == sorted([*expected, "WITH"])
        return
    # On SQLite the search is ranked and counted in memory (loaders.postings), from the word's
    # posting list, which the first search of the word reads: one statement more, that once.
    assert labels(one) == labels(hundred) == expected
    current = pool.facts.current
    assert current is not None and current.text is not None
    current.text.lists.lists.clear()
    _, first = statements(store, SEARCH, {"q": "rollback", "first": 1}, "Search")
    assert labels(first) == sorted([*expected, "SELECT temp"])


def test_the_second_page_of_a_search_costs_no_ranking_after_the_first(store: Store, store_url: str) -> None:
    pool = store.client.app.state.read_pool  # type: ignore[attr-defined]
    pool.use_facts = True
    first, _ = statements(store, SEARCH, {"q": "rollback", "first": 10}, "Search")
    after = {"q": "rollback", "first": 10, "after": first["posts"]["pageInfo"]["endCursor"]}
    # The second page ranks every match once (kept with the fact index; on SQLite ranked in memory,
    # see the test above)...
    second, ranked = statements(store, SEARCH, after, "Search")
    sqlite = store_url.startswith("sqlite")
    page_only = ["BEGIN", "ROLLBACK", "SELECT store_version", "WITH"]
    assert labels(ranked) == (page_only if sqlite else sorted([*page_only, "WITH"]))
    # ...and the pages after it read only their posts: BEGIN, the version, the page, ROLLBACK.
    third_after = {**after, "after": second["posts"]["pageInfo"]["endCursor"]}
    pool.aggregates.clear()
    store.recorder.statements.clear()
    store.recorder.on = True
    try:
        third = data_of(store.client, SEARCH, third_after, operationName="Search")
    finally:
        store.recorder.on = False
    assert labels(store.recorder.statements) == page_only
    # The same pages as SQL alone gives, page by page.
    pool.use_facts = False
    in_sql = data_of(store.client, SEARCH, {"q": "rollback", "first": 30}, operationName="Search")
    assert slugs_of([first["posts"], second["posts"], third["posts"]]) == slugs_of([in_sql["posts"]])
    assert len(slugs_of([in_sql["posts"]])) == 30


def test_facets_cost_three_statements_whatever_the_filter_or_size(store: Store, store_url: str) -> None:
    store.client.app.state.read_pool.use_facts = True  # type: ignore[attr-defined]  # what it counts
    _, plain = statements(store, FACETS, {}, "Facets")
    where = {"stackAny": ["python"], "minQuality": 50}
    _, searched = statements(store, FACETS, {"where": where, "search": A}, "Facets")
    query = FACETS.replace(
        "facets(where: $where, search: $search)", "facets(where: $where, search: $search, first: 100)"
    )
    assert query != FACETS
    _, hundred = statements(store, query, {"where": where}, "Facets")
    # BEGIN, the store's version, ROLLBACK: every facet is counted in the fact index. On PostgreSQL
    # a search adds the statement that finds the posts it matches; on SQLite they come from the
    # posting lists kept in memory (loaders.postings).
    expected = ["BEGIN", "ROLLBACK", "SELECT store_version"]
    assert labels(plain) == labels(hundred) == expected
    if store_url.startswith("postgresql"):
        assert labels(searched) == sorted([*expected, "SELECT alphanode_search_ids"])
    else:
        assert labels(searched) == expected


def test_facets_in_sql_cost_ten_statements_whatever_the_filter_or_size(store: Store) -> None:
    pool = store.client.app.state.read_pool  # type: ignore[attr-defined]
    pool.use_facts = False
    try:
        _, plain = statements(store, FACETS, {}, "Facets")
        where = {"stackAny": ["python"], "minQuality": 50}
        _, filtered = statements(store, FACETS, {"where": where, "search": A}, "Facets")
    finally:
        pool.use_facts = True
    # BEGIN, the store's version, one statement per facet (7), ROLLBACK. With no filter, the stack,
    # tools and entities facets count from their link tables alone.
    expected = ["BEGIN", "ROLLBACK"] + ["SELECT post"] * 7 + ["SELECT store_version"]
    unfiltered = ["BEGIN", "ROLLBACK"] + ["SELECT post"] * 4
    unfiltered += ["SELECT post_entity", "SELECT post_stack", "SELECT post_tool", "SELECT store_version"]
    assert labels(filtered) == expected
    assert labels(plain) == unfiltered


def test_facets_asked_again_cost_three_statements_until_the_store_changes(store: Store) -> None:
    pool = store.client.app.state.read_pool  # type: ignore[attr-defined]
    pool.use_facts = False  # counted in SQL, as without the fact index
    try:
        _, cold = statements(store, FACETS, {}, "Facets")
        store.recorder.statements.clear()
        store.recorder.on = True
        try:
            warm = data_of(store.client, FACETS, {}, operationName="Facets")
        finally:
            store.recorder.on = False
    finally:
        pool.use_facts = True
    assert len(cold) == 10
    # BEGIN, the store's version (unchanged, so every facet comes from the cache), ROLLBACK.
    assert labels(store.recorder.statements) == ["BEGIN", "ROLLBACK", "SELECT store_version"]
    assert warm == statements(store, FACETS, {}, "Facets")[0]
