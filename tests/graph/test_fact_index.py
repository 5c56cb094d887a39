"""The fact index (loaders.facts): the same answers as SQL, kept current by every write.

A store of 300 synthesized posts per dialect. Each check asks the read path twice,
through the fact index and in SQL (``ReadPool.use_facts``), and compares: which posts
a selection holds in which order page after page, how many, and every facet. Then
writes of each kind (an import of changed documents, an editor's change, archiving)
and what the index does about them: a delta read in the request's snapshot, or a
full load when the purge log no longer covers the versions it missed.
"""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.testclient import TestClient

from documents import render
from loaders import ReadPool
from loaders import facts as facts_module
from loaders.posts import STOP_WORDS, Ordering, SearchTerms, Selection
from server.app import create_app
from server.settings import Settings
from tests.graph import fact_index as shared
from tests.graph.fact_index import (
    POSTS,
    Corpus,
    Watch,
    answer,
    archive,
    execute,
    facts_at,
    load_index,
    rewrite,
    run,
    selections,
)
from tests.graph.finding import import_folder, read_sources

# The fixtures, shared with test_fact_files.py.
corpus = shared.corpus
watch = shared.watch


ORDERINGS = [
    Ordering(key, descending)
    for key in ("newest", "view_count", "quality", "last_reviewed", "title", "relevance")
    for descending in (True, False)
]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_the_index_answers_what_sql_answers(corpus: Corpus, data: st.DataObject) -> None:
    selection = data.draw(selections(corpus.values), "selection")
    ordering = data.draw(st.sampled_from(ORDERINGS), "ordering")
    if ordering.key == "relevance" and selection.search is None:
        ordering = Ordering()

    async def both(pool: ReadPool) -> tuple[dict[str, Any], dict[str, Any]]:
        return await answer(pool, selection, ordering, True), await answer(pool, selection, ordering, False)

    indexed, in_sql = run(corpus.url, both)
    assert indexed == in_sql


@pytest.mark.parametrize("index", ["own", "mapped"])
def test_broad_selections_agree_in_every_ordering(corpus: Corpus, index: str, tmp_path: Path) -> None:
    """The selections random drawing rarely makes: everything, one flag, a search alone; with the
    worker's own index, and with one it maps from the files another worker wrote."""
    share = tmp_path / "index" if index == "mapped" else None
    if share is not None:
        assert run(corpus.url, load_index, share)["published"] == 1  # another worker builds it
    word = next(w for w in corpus.values["words"] if w not in STOP_WORDS and len(w) > 3)
    cases = [Selection(), Selection(has_images=True), Selection(search=SearchTerms.parse(word))]

    async def compare(pool: ReadPool) -> int:
        checked = 0
        for selection in cases:
            for ordering in ORDERINGS:
                if ordering.key == "relevance" and selection.search is None:
                    continue
                indexed = await answer(pool, selection, ordering, True)
                assert indexed == await answer(pool, selection, ordering, False), (selection, ordering)
                assert indexed["count"] == len(indexed["ids"]) > 0
                checked += 1
        if share is not None:
            assert (pool.facts.loads, pool.facts.maps) == (0, 1)
            assert isinstance(pool.facts.current and pool.facts.current.present, np.memmap)
        return checked

    assert run(corpus.url, compare, share) == 2 * (len(ORDERINGS) - 2) + len(ORDERINGS)


def test_an_import_reaches_the_index_as_a_delta(corpus: Corpus, watch: Watch, tmp_path: Path) -> None:
    moved = Selection(status="retired-by-test")
    assert watch.ask(moved)["count"] == 0
    loads = watch.index.loads
    # When three posts get a status no post had, and one post's stack a new term.
    rewrite(
        tmp_path / "a",
        corpus,
        3,
        lambda m: dataclasses.replace(m, revision=dataclasses.replace(m.revision, status="retired-by-test")),
    )
    rewrite(tmp_path / "b", corpus, 1, lambda m: dataclasses.replace(m, stack=(*m.stack, "delta stack")), start=10)
    # Then the next request applies both writes' changes, without loading the index again.
    assert watch.ask(moved)["count"] == 3
    assert watch.ask(Selection(stack_any=("delta stack",)))["count"] == 1
    assert watch.index.loads == loads and watch.index.deltas >= 1
    facets = watch.ask(Selection())["facets"]
    assert ("retired-by-test", None, 3) in facets["status"]
    assert ("delta stack", None, 1) in facets["stack"]
    # And the posts changed back leave no trace of those values.
    rewrite(tmp_path / "c", corpus, 3, lambda m: m)
    assert watch.ask(moved)["count"] == 0
    assert "retired-by-test" not in {value for value, _, _ in watch.ask(Selection())["facets"]["status"]}


def test_archived_posts_leave_the_index(corpus: Corpus, watch: Watch) -> None:
    everything = watch.ask(Selection())
    first = everything["ids"][0]
    archive(corpus.url, first, True)
    try:
        after = watch.ask(Selection())
        assert first not in after["ids"] and after["count"] == everything["count"] - 1
    finally:
        archive(corpus.url, first, False)
    assert watch.ask(Selection())["count"] == everything["count"]


def test_a_pruned_log_makes_a_full_load(corpus: Corpus, watch: Watch, tmp_path: Path) -> None:
    watch.ask(Selection(has_images=True))
    loads = watch.index.loads
    rewrite(tmp_path / "a", corpus, 2, lambda m: dataclasses.replace(m, view_count=m.view_count + 1))
    execute(corpus.url, "DELETE FROM purge_log")  # as pruning after its retention does
    watch.ask(Selection(has_images=True))
    assert watch.index.loads == loads + 1


def test_many_changes_make_a_full_load(
    corpus: Corpus, watch: Watch, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    watch.ask(Selection(has_images=False))
    loads, deltas = watch.index.loads, watch.index.deltas
    monkeypatch.setattr(facts_module, "DELTA_LIMIT", 4)
    rewrite(tmp_path / "a", corpus, 5, lambda m: dataclasses.replace(m, view_count=m.view_count + 2))
    watch.ask(Selection(has_images=False))
    assert (watch.index.loads, watch.index.deltas) == (loads + 1, deltas)


def test_a_snapshot_older_than_the_index_reads_sql(corpus: Corpus, watch: Watch) -> None:
    watch.ask(Selection(has_images=True))
    current = watch.index.current
    assert current is not None
    current.version += 1_000  # as if another request had moved the index past this one's snapshot

    assert watch.loop.run_until_complete(facts_at(watch.pool)) is None
    # And its answers, all from SQL, are still right (ask compares them with SQL's).
    assert watch.ask(Selection(has_images=True))["count"] > 0


def test_a_server_loads_the_index_before_it_serves(corpus: Corpus) -> None:
    app = create_app(Settings(database_url=corpus.url, cache=False))
    with TestClient(app) as client:
        index = app.state.read_pool.facts
        # Given a server that has answered nothing yet, its index is loaded at the store's version.
        assert index.loads == 1 and index.current is not None
        assert int(index.current.present.sum()) == POSTS
        # Then a filtered listing loads nothing more.
        response = client.post("/graphql", json={"query": "{ posts(where: {hasImages: true}) { totalCount } }"})
        assert response.status_code == 200 and response.json()["data"]["posts"]["totalCount"] > 0
        assert index.loads == 1


def test_a_server_on_a_new_store_starts_with_an_empty_index(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'new.db'}"
    app = create_app(Settings(database_url=url, cache=False))
    with TestClient(app) as client:
        response = client.post("/graphql", json={"query": "{ facets { topic { value count } } }"})
        assert response.status_code == 200, response.text
        assert response.json()["data"]["facets"]["topic"] == []
        index = app.state.read_pool.facts
        assert index.current is not None and not index.current.present.any()


def test_the_title_order_follows_retitled_posts(corpus: Corpus, watch: Watch, tmp_path: Path) -> None:
    by_title = Ordering("title", descending=False)
    before = watch.ask(Selection(), by_title)["ids"]
    index = watch.index
    assert index.current is not None and index.current.title_order_made is not None  # made by that walk
    # When two posts get titles that sort first and last, in one import.
    folder = tmp_path / "retitled"
    folder.mkdir()
    sources = read_sources(corpus.folder)
    for source, title in ((sources[5], "Aardvark first: a retitled post"), (sources[6], "zzz last, retitled")):
        (folder / source.path.name).write_text(render(dataclasses.replace(source.document, title=title)), "utf-8")
    assert asyncio.run(import_folder(corpus.url, folder)).updated == 2
    # Then the next request (any ordering) applies the change to the title order it carries over,
    # without sorting every title again...
    watch.ask(Selection(has_images=True))
    assert index.loads == 1 and index.deltas >= 1
    carried = index.current.title_order_made if index.current is not None else None
    assert carried is not None and carried.rank is None  # updated in place, rank not yet made
    titles = index.current.titles if index.current is not None else None
    assert titles is not None
    pairs = [(titles[int(i)], int(i)) for i in carried.order]
    assert pairs == sorted(pairs) and pairs[-1] == ("zzz last, retitled", sources[6].id)
    # ...and pages by title agree with SQL.
    after = watch.ask(Selection(), by_title)["ids"]
    assert after[0] == sources[5].id and after[-1] == sources[6].id
    assert sorted(after) == sorted(before)
    # And back: the original titles return to their places.
    for source in (sources[5], sources[6]):
        (folder / source.path.name).write_text(render(source.document), "utf-8")
    assert asyncio.run(import_folder(corpus.url, folder)).updated == 2
    assert watch.ask(Selection(), by_title)["ids"] == before


def test_kept_searches_stay_within_their_budget_least_recently_used_out_first(monkeypatch: pytest.MonkeyPatch) -> None:
    facts = facts_module.Facts.empty(1)
    monkeypatch.setattr(facts_module, "MATCHES_BUDGET", 3 * 800)
    for key in "abc":  # 800 bytes each: ids of 100 matches
        facts_module.remember_matches(facts, key, np.zeros(100, dtype=np.int64))
    ranking = (np.zeros(50, dtype=np.int64), np.zeros(50, dtype=np.float64), [1])  # ids and relevances: 800
    facts_module.remember_matches(facts, "ranked", ranking)
    assert list(facts.matches) == ["b", "c", "ranked"]
    assert facts_module.kept_matches(facts, "b") is not None  # used: now the most recent
    facts_module.remember_matches(facts, "d", np.zeros(100, dtype=np.int64))
    assert list(facts.matches) == ["ranked", "b", "d"]
    # One search larger than the whole budget is still kept, alone: the request in hand uses it.
    facts_module.remember_matches(facts, "huge", np.zeros(1_000, dtype=np.int64))
    assert list(facts.matches) == ["huge"]
