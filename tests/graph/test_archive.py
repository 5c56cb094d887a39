"""Archive and restore: an archived post is gone for readers everywhere, and back everywhere once restored.

One store per database: 20 synthesized documents and the seed. The module asks
readers' questions three times: before the seed is archived, while it is, and
after it is restored (``Answers``); each test checks one kind of question. What
"gone" means is computed from the seed document: each facet value, term and
entity of the seed counts one post less, and no list holds it.
"""

from __future__ import annotations

import datetime as dt
import re
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from starlette.testclient import TestClient

from documents import Document, parse, slug_for
from graph.node import encode_id
from tests.editing import (
    ARCHIVE_POST,
    RESTORE_POST,
    SEED_BYTES,
    data,
    documents_in,
    error_codes,
    graphql,
    import_folder,
    issue_tokens,
    saved,
    serve,
    small_corpus,
)

SEED = parse(SEED_BYTES)
SLUG = slug_for(SEED)
ID = encode_id("Post", SEED.source_id)
PAGE_SIZE = 5

PAGE = """query Page($first: Int!, $after: String, $where: PostFilter, $search: String) {
  posts(first: $first, after: $after, where: $where, search: $search) {
    totalCount
    pageInfo { hasNextPage endCursor }
    edges { cursor highlight node { slug title } }
  }
}"""
ONE_POST = """query One($slug: String!, $id: ID!, $reference: String!) {
  bySlug: post(slug: $slug) { slug archivedAt }
  byId: post(id: $id) { slug }
  byReference: post(reference: $reference) { slug }
  node(id: $id) { id ... on Post { slug } }
}"""
FACETS = """query Facets($where: PostFilter, $search: String) {
  facets(where: $where, search: $search, first: 100) {
    topic { value count type }
    stack { value count type }
    tools { value count type }
    entities { value count type }
    codeLanguage { value count type }
    difficulty { value count type }
    status { value count type }
  }
}"""
VOCABULARY = """{
  stacks(first: 100) { totalCount edges { node { name postCount } } }
  tools(first: 100) { totalCount edges { node { name postCount } } }
  entities(first: 100) { totalCount edges { node { name type postCount } } }
}"""
ENTITY = """query Entity($name: String!, $type: String!) {
  entity(name: $name, type: $type) {
    name type postCount
    posts(first: 100) { totalCount edges { node { slug } } }
  }
}"""
SIMILAR = """{
  posts(first: 100) { totalCount edges { node { slug similarPosts(first: 10) { score reasons post { slug } } } } }
}"""


def walk(client: TestClient, token: str | None = None, **arguments: Any) -> dict[str, Any]:
    """Every page of a listing: its total and every edge, in order."""
    edges: list[dict[str, Any]] = []
    after = None
    totals = set()
    while True:
        page = data(client, PAGE, {"first": PAGE_SIZE, "after": after, **arguments}, token)["posts"]
        totals.add(page["totalCount"])
        edges += page["edges"]
        if not page["pageInfo"]["hasNextPage"]:
            break
        after = page["pageInfo"]["endCursor"]
    assert len(totals) == 1, "every page gives the same total"
    return {"totalCount": totals.pop(), "edges": edges}


def title_word(target: Document, documents: list[Document]) -> str:
    """A word of the target's title that the most other titles hold too."""
    words = {w for w in re.findall(r"[a-z]+", target.title) if len(w) > 4}
    return max(sorted(words), key=lambda w: sum(w in d.title.split() for d in documents))


def common_tool(target: Document, documents: list[Document]) -> str:
    """The target's tool that most posts use."""
    counts = Counter(tool for d in documents for tool in d.meta.tools)
    return max(target.meta.tools, key=lambda tool: (counts[tool], tool))


@dataclass(frozen=True)
class Corpus:
    documents: list[Document]
    word: str  # searched for
    tool: str  # filtered by


def reader_answers(client: TestClient, corpus: Corpus) -> dict[str, Any]:
    """Everything a reader may ask that the seed post is (or should not be) part of."""
    meta = SEED.meta
    answers: dict[str, Any] = {
        "post": data(client, ONE_POST, {"slug": SLUG, "id": ID, "reference": meta.reference}),
        "listing": walk(client),
        "filtered": walk(client, where={"toolsAll": [corpus.tool]}),
        "search": walk(client, search=corpus.word),
        "facets": data(client, FACETS)["facets"],
        "facets of the search": data(client, FACETS, {"search": corpus.word})["facets"],
        "vocabulary": data(client, VOCABULARY),
        "similar": data(client, SIMILAR)["posts"],
    }
    for entity in meta.entities:
        variables = {"name": entity.name, "type": entity.type}
        answers[f"entity {entity.name} ({entity.type})"] = data(client, ENTITY, variables)["entity"]
    return answers


@dataclass(frozen=True)
class Answers:
    corpus: Corpus
    before: dict[str, Any]  # readers, before the seed was archived
    during: dict[str, Any]  # readers, while it was archived
    after: dict[str, Any]  # readers, once it was restored
    archived: dict[str, Any]  # archivePost's PostSaved
    restored: dict[str, Any]  # restorePost's PostSaved
    archived_between: tuple[dt.datetime, dt.datetime]
    editor_during: dict[str, Any]
    editor_after: dict[str, Any]
    reader_asking_for_archived: dict[str, Any]


ARCHIVED_LIST = """query Archived($where: PostFilter) {
  posts(first: 100, where: $where) { totalCount edges { node { slug archivedAt } } }
}"""


def editor_answers(client: TestClient, token: str) -> dict[str, Any]:
    return {
        "post": data(client, ONE_POST, {"slug": SLUG, "id": ID, "reference": SEED.meta.reference}, token),
        "archived": data(client, ARCHIVED_LIST, {"where": {"archived": True}}, token)["posts"],
    }


@pytest.fixture(scope="module")
def answers(new_store_url: Callable[[str], str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Answers]:
    url = new_store_url("archive")
    folder = small_corpus(tmp_path_factory.mktemp("archive"))
    import_folder(url, folder)
    documents = list(documents_in(folder).values())
    corpus = Corpus(documents, title_word(SEED, documents), common_tool(SEED, documents))
    token = issue_tokens(url, ("alice", "editor"))["alice"]
    with serve(url) as client:
        before = reader_answers(client, corpus)
        started = dt.datetime.now(dt.UTC)
        archived = saved(graphql(client, ARCHIVE_POST, {"id": ID}, token))
        finished = dt.datetime.now(dt.UTC)
        during = reader_answers(client, corpus)
        editor_during = editor_answers(client, token)
        refused = graphql(client, ARCHIVED_LIST, {"where": {"archived": True}})
        restored = saved(graphql(client, RESTORE_POST, {"id": ID}, token))
        after = reader_answers(client, corpus)
        editor_after = editor_answers(client, token)
    yield Answers(
        corpus, before, during, after, archived, restored, (started, finished), editor_during, editor_after, refused
    )


def without_seed(listing: dict[str, Any]) -> dict[str, Any]:
    """A listing as it is without the seed post; cursors left out (they may encode positions)."""
    return {
        "totalCount": listing["totalCount"] - 1,
        "edges": [{**e, "cursor": None} for e in listing["edges"] if e["node"]["slug"] != SLUG],
    }


def no_cursors(listing: dict[str, Any]) -> dict[str, Any]:
    return {**listing, "edges": [{**e, "cursor": None} for e in listing["edges"]]}


# -- while archived ----------------------------------------------------------------


def test_archive_post_answers_the_post_with_its_archive_time(answers: Answers) -> None:
    post = answers.archived["post"]
    assert (post["slug"], answers.archived["changed"]) == (SLUG, True)
    archived_at = dt.datetime.fromisoformat(post["archivedAt"])
    start, end = answers.archived_between
    assert start <= archived_at <= end


def test_an_archived_post_is_found_by_no_slug_id_reference_or_node(answers: Answers) -> None:
    assert answers.before["post"] == {
        "bySlug": {"slug": SLUG, "archivedAt": None},
        "byId": {"slug": SLUG},
        "byReference": {"slug": SLUG},
        "node": {"id": ID, "slug": SLUG},
    }
    assert answers.during["post"] == {"bySlug": None, "byId": None, "byReference": None, "node": None}


@pytest.mark.parametrize("listing", ["listing", "filtered", "search"])
def test_an_archived_post_leaves_every_page_of_a_listing_it_was_on(answers: Answers, listing: str) -> None:
    before = answers.before[listing]
    assert SLUG in [e["node"]["slug"] for e in before["edges"]], "the seed was on the list"
    assert before["totalCount"] >= 2, "other posts stay on the list"
    if listing == "listing":
        assert before["totalCount"] > PAGE_SIZE, "the listing has several pages"
    assert no_cursors(answers.during[listing]) == without_seed(before)


def _facet_counts(facets: dict[str, Any]) -> dict[str, Counter[tuple[str, str | None]]]:
    return {name: Counter({(v["value"], v["type"]): v["count"] for v in values}) for name, values in facets.items()}


def _seed_facet_values() -> dict[str, list[tuple[str, str | None]]]:
    return _facet_values(SEED)


def _facet_values(document: Document) -> dict[str, list[tuple[str, str | None]]]:
    meta = document.meta
    return {
        "topic": [(meta.topic, None)],
        "stack": [(term, None) for term in meta.stack],
        "tools": [(tool, None) for tool in meta.tools],
        "entities": [(e.name, e.type) for e in meta.entities],
        "codeLanguage": [(meta.code_language, None)],
        "difficulty": [(meta.difficulty, None)],
        "status": [(meta.revision.status, None)],
    }


@pytest.mark.parametrize("facets", ["facets", "facets of the search"])
def test_each_facet_value_of_an_archived_post_counts_one_post_less(answers: Answers, facets: str) -> None:
    before = _facet_counts(answers.before[facets])
    assert all(len(counts) < 100 for counts in before.values()), "each facet lists all its values"
    if facets == "facets":  # every post: the counts are the documents'
        from_documents: dict[str, Counter[tuple[str, str | None]]] = {name: Counter() for name in before}
        for document in answers.corpus.documents:
            for name, values in _facet_values(document).items():
                from_documents[name].update(values)
        assert before == from_documents
    expected = {}
    for name, counts in before.items():
        less = Counter(counts)
        less.subtract(Counter(_seed_facet_values()[name]))
        assert all(count >= 0 for count in less.values()), f"{name}: the seed's values were counted"
        expected[name] = +less  # values no post has any more are not listed
    assert _facet_counts(answers.during[facets]) == expected
    # Still most posts first.
    for values in answers.during[facets].values():
        assert [v["count"] for v in values] == sorted((v["count"] for v in values), reverse=True)


def test_each_term_and_entity_of_an_archived_post_counts_one_post_less(answers: Answers) -> None:
    def counts(vocabulary: dict[str, Any]) -> dict[str, Counter[Any]]:
        return {
            "stacks": Counter({e["node"]["name"]: e["node"]["postCount"] for e in vocabulary["stacks"]["edges"]}),
            "tools": Counter({e["node"]["name"]: e["node"]["postCount"] for e in vocabulary["tools"]["edges"]}),
            "entities": Counter(
                {
                    (e["node"]["name"], e["node"]["type"]): e["node"]["postCount"]
                    for e in vocabulary["entities"]["edges"]
                }
            ),
        }

    before = counts(answers.before["vocabulary"])
    documents = answers.corpus.documents
    assert before == {
        "stacks": Counter(term for d in documents for term in d.meta.stack),
        "tools": Counter(tool for d in documents for tool in d.meta.tools),
        "entities": Counter((e.name, e.type) for d in documents for e in d.meta.entities),
    }
    for kind in ("stacks", "tools", "entities"):
        assert answers.before["vocabulary"][kind]["totalCount"] == len(before[kind]) < 100, "one page holds them all"
    seed = {
        "stacks": Counter(SEED.meta.stack),
        "tools": Counter(SEED.meta.tools),
        "entities": Counter((e.name, e.type) for e in SEED.meta.entities),
    }
    during = counts(answers.during["vocabulary"])
    for kind, terms in seed.items():
        expected = Counter(before[kind])
        expected.subtract(terms)
        assert during[kind] == +expected, kind
        assert answers.during["vocabulary"][kind]["totalCount"] == len(+expected)


def test_an_archived_post_leaves_the_pages_of_its_entities(answers: Answers) -> None:
    for entity in SEED.meta.entities:
        key = f"entity {entity.name} ({entity.type})"
        before, during = answers.before[key], answers.during[key]
        slugs = [e["node"]["slug"] for e in before["posts"]["edges"]]
        assert SLUG in slugs and before["postCount"] == len(slugs) == before["posts"]["totalCount"]
        if before["postCount"] == 1:
            assert during is None, key  # no post readers see mentions it
            continue
        assert during["postCount"] == before["postCount"] - 1, key
        assert during["posts"]["totalCount"] == before["posts"]["totalCount"] - 1
        assert [e["node"]["slug"] for e in during["posts"]["edges"]] == [s for s in slugs if s != SLUG]


def test_an_archived_post_is_no_other_posts_similar_post(answers: Answers) -> None:
    def listed_by(similar: dict[str, Any]) -> set[str]:
        return {
            edge["node"]["slug"]
            for edge in similar["edges"]
            if SLUG in [entry["post"]["slug"] for entry in edge["node"]["similarPosts"]]
        }

    assert listed_by(answers.before["similar"]), "some post listed the seed: the check proves something"
    assert listed_by(answers.during["similar"]) == set()
    slugs = [edge["node"]["slug"] for edge in answers.during["similar"]["edges"]]
    assert SLUG not in slugs and len(slugs) == answers.before["similar"]["totalCount"] - 1


# -- editors ---------------------------------------------------------------------------


def test_editors_still_read_an_archived_post_and_list_the_archived_ones(answers: Answers) -> None:
    post = answers.editor_during["post"]
    assert post["bySlug"] == {"slug": SLUG, "archivedAt": answers.archived["post"]["archivedAt"]}
    assert (post["byId"], post["byReference"]) == ({"slug": SLUG}, {"slug": SLUG})
    archived = answers.editor_during["archived"]
    assert archived == {
        "totalCount": 1,
        "edges": [{"node": {"slug": SLUG, "archivedAt": answers.archived["post"]["archivedAt"]}}],
    }


def test_readers_asking_for_archived_posts_are_unauthenticated(answers: Answers) -> None:
    assert error_codes(answers.reader_asking_for_archived) == ["UNAUTHENTICATED"]
    assert answers.reader_asking_for_archived.get("data") is None


# -- once restored ------------------------------------------------------------------------


def test_restore_post_brings_back_every_answer_readers_had(answers: Answers) -> None:
    assert (answers.restored["post"]["archivedAt"], answers.restored["changed"]) == (None, True)
    assert answers.during != answers.before
    changed = [question for question, before in answers.before.items() if answers.after[question] != before]
    assert changed == [], f"answers that did not come back: {changed}"


def test_once_restored_editors_list_no_archived_post(answers: Answers) -> None:
    assert answers.editor_after["archived"] == {"totalCount": 0, "edges": []}
    assert answers.editor_after["post"]["bySlug"] == {"slug": SLUG, "archivedAt": None}
