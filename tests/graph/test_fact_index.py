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
import datetime as dt
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import psutil
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import text
from starlette.testclient import TestClient

from documents import render
from documents.synth import write
from loaders import ReadPool, RequestDb
from loaders import facts as facts_module
from loaders.posts import STOP_WORDS, Ordering, SearchTerms, Selection, count, facet, page
from server.app import create_app
from server.settings import Settings
from store.edit import set_archived
from tests.editing import on_store

from .finding import OpenPool, import_folder, read_sources

POSTS = 300
SEED = 515


@dataclasses.dataclass
class Corpus:
    url: str
    folder: Path
    values: dict[str, list[Any]]


@pytest.fixture(scope="module")
def corpus(new_store_url: Callable[[str], str], tmp_path_factory: pytest.TempPathFactory) -> Corpus:
    url = new_store_url("fact-index")
    folder = tmp_path_factory.mktemp("fact-index")
    write(folder, POSTS, seed=SEED)
    assert asyncio.run(import_folder(url, folder)).created == POSTS
    sources = read_sources(folder)
    metas = [s.meta for s in sources]
    values = {
        "topic": sorted({m.topic for m in metas}),
        "stack": sorted({t for m in metas for t in m.stack}),
        "tools": sorted({t for m in metas for t in m.tools}),
        "entities": sorted({(e.name, e.type) for m in metas for e in m.entities}),
        "code_language": sorted({m.code_language for m in metas}),
        "difficulty": sorted({m.difficulty for m in metas}),
        "status": sorted({m.revision.status for m in metas}),
        "words": sorted({w for s in sources[:40] for w in s.data["title"].lower().split() if w.isalpha()}),
    }
    return Corpus(url, folder, values)


def run(url: str, work: Callable[[ReadPool], Any], share: Path | None = None) -> Any:
    """``work(pool)`` on a new pool; its fact index shared through ``share`` (as a worker's) when given."""

    async def main() -> Any:
        pool = await ReadPool.open(url, 2)
        if share is not None:
            pool.facts.share(share)
        try:
            return await work(pool)
        finally:
            await pool.close()

    return asyncio.run(main())


async def answer(pool: ReadPool, selection: Selection, ordering: Ordering, use_facts: bool) -> dict[str, Any]:
    """Every page of the selection (5 a page, forward), its count and its facets, by one read path."""
    pool.use_facts = use_facts
    pool.aggregates.clear()
    try:
        ids: list[int] = []
        after = None
        for _ in range(100):
            db = RequestDb(pool)
            try:
                found = await page(db, selection, ordering, 5, forward=True, after=after)
            finally:
                await db.close()
            ids += [row["id"] for row in found.rows]
            if not found.more:
                break
            after = found.keys[-1]
        db = RequestDb(pool)
        try:
            total = await count(db, selection)
            facets = {
                name: await facet(db, selection, name, 100)
                for name in facts_module.LINKS | dict.fromkeys(("topic", "code_language", "difficulty", "status"))
            }
            back = await page(db, selection, ordering, 4, forward=False, before=after) if after else None
        finally:
            await db.close()
        return {"ids": ids, "count": total, "facets": facets, "back": back and [r["id"] for r in back.rows]}
    finally:
        pool.use_facts = True


def selections(values: dict[str, list[Any]]) -> st.SearchStrategy[Selection]:
    def one(name: str) -> st.SearchStrategy[Any]:
        return st.sampled_from(values[name])

    fields = {
        "topic": one("topic"),
        "stack_any": st.lists(one("stack"), min_size=1, max_size=3).map(tuple),
        "tools_all": st.lists(one("tools"), min_size=1, max_size=2).map(tuple),
        "entity": one("entities"),
        "code_language": one("code_language"),
        "difficulty": one("difficulty"),
        "status": one("status"),
        "ai_generated_style": st.booleans(),
        "has_images": st.booleans(),
        "needs_human_review": st.booleans(),
        "min_quality": st.integers(0, 100),
        "min_depth": st.integers(0, 100),
        "view_count_min": st.integers(0, 50_000),
        "view_count_max": st.integers(0, 50_000),
        "reviewed_after": st.dates(dt.date(2023, 1, 1), dt.date(2026, 1, 1)),
        "reviewed_before": st.dates(dt.date(2023, 1, 1), dt.date(2026, 1, 1)),
        "search": st.lists(one("words"), min_size=1, max_size=2).map(lambda w: SearchTerms.parse(" ".join(w))),
    }
    return st.fixed_dictionaries({}, optional=fields).map(lambda chosen: Selection(**chosen))


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


async def facts_at(pool: ReadPool) -> facts_module.Facts | None:
    """The pool's index as a request gets it (loaded, mapped or brought up to date first)."""
    db = RequestDb(pool)
    try:
        return await pool.facts.at(db)
    finally:
        await db.close()


async def load_index(pool: ReadPool) -> dict[str, int]:
    """Load (or map) the pool's index as a request does; what it took."""
    assert await facts_at(pool) is not None
    index = pool.facts
    return {"loads": index.loads, "maps": index.maps, "published": index.published, "deltas": index.deltas}


class Watch(OpenPool):
    """A pool kept open across writes, to see what its index does; a worker sharing its index
    through ``share`` when given."""

    def __init__(self, url: str, share: Path | None = None) -> None:
        super().__init__(url)
        if share is not None:
            self.pool.facts.share(share)

    def ask(self, selection: Selection, ordering: Ordering | None = None) -> dict[str, Any]:
        ordering = ordering or Ordering()
        indexed = self.loop.run_until_complete(answer(self.pool, selection, ordering, True))
        assert indexed == self.loop.run_until_complete(answer(self.pool, selection, ordering, False))
        return indexed

    @property
    def index(self) -> facts_module.FactIndex:
        return self.pool.facts


@pytest.fixture
def watch(corpus: Corpus) -> Iterator[Watch]:
    w = Watch(corpus.url)
    yield w
    w.close()


def rewrite(folder: Path, corpus: Corpus, count: int, change: Callable[[Any], Any], start: int = 0) -> None:
    """Import new versions of ``count`` documents from the ``start``-th on, changed by ``change(meta)``."""
    folder.mkdir(parents=True, exist_ok=True)
    for source in read_sources(corpus.folder)[start : start + count]:
        meta = change(source.meta)
        (folder / source.path.name).write_text(
            render(dataclasses.replace(source.document, meta=meta)), encoding="utf-8"
        )
    receipt = asyncio.run(import_folder(corpus.url, folder))
    assert receipt.updated == count


def archive(url: str, post_id: int, archived: bool) -> None:
    """Archive or restore a post as an editor does (store.edit: the version and the purge log too)."""

    def edit(conn: Any) -> None:
        set_archived(conn, post_id, archived, author="test")
        conn.commit()

    on_store(url, edit)


def execute(url: str, statement: str) -> None:
    def run_it(conn: Any) -> None:
        conn.execute(text(statement))
        conn.commit()

    on_store(url, run_it)


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


# -- workers sharing one index through files (loaders.fact_files) ---------------------------


@pytest.fixture
def workers(corpus: Corpus, tmp_path: Path) -> Iterator[tuple[Watch, Watch]]:
    """Two workers of one instance: pools sharing their index through one folder."""
    first, second = Watch(corpus.url, tmp_path / "index"), Watch(corpus.url, tmp_path / "index")
    yield first, second
    first.close()
    second.close()


def snapshots(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("v"))


def test_a_second_worker_maps_the_index_the_first_built(workers: tuple[Watch, Watch], tmp_path: Path) -> None:
    first, second = workers
    everything = first.ask(Selection())
    assert (first.index.loads, first.index.published) == (1, 1)
    # Then the second worker maps the first's files instead of reading the store...
    assert second.ask(Selection()) == everything
    assert (second.index.loads, second.index.maps, second.index.published) == (0, 1, 0)
    mine, theirs = first.index.current, second.index.current
    assert mine is not None and theirs is not None
    assert mine.source == theirs.source and mine.source is not None
    # ...read-only, so that neither can change what the other reads.
    assert isinstance(theirs.present, np.memmap) and not theirs.present.flags.writeable
    assert isinstance(theirs.links["stack"][0], np.memmap) and isinstance(theirs.titles.blob, np.memmap)
    assert snapshots(tmp_path / "index") == [f"v{mine.version}"]


def test_a_write_is_published_once_and_mapped_by_the_others(
    corpus: Corpus, workers: tuple[Watch, Watch], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first, second = workers
    monkeypatch.setattr(facts_module, "PUBLISH_INTERVAL", 0.0)
    first.ask(Selection())
    second.ask(Selection())
    rewrite(tmp_path / "a", corpus, 2, lambda m: dataclasses.replace(m, view_count=m.view_count + 7))
    # The first worker to see the write applies it and publishes the result...
    first.ask(Selection(has_images=True))
    assert (first.index.deltas, first.index.published) == (1, 2)
    # ...and the other maps that instead of applying it too.
    second.ask(Selection(has_images=True))
    assert (second.index.loads, second.index.deltas, second.index.maps) == (0, 0, 2)
    mine, theirs = first.index.current, second.index.current
    assert mine is not None and theirs is not None and mine.version == theirs.version
    assert mine.source == theirs.source
    # Two snapshots are kept: the newest, and the one before it.
    rewrite(tmp_path / "b", corpus, 1, lambda m: dataclasses.replace(m, view_count=m.view_count + 9))
    first.ask(Selection())
    assert len(snapshots(tmp_path / "index")) == 2 and first.index.published == 3


def test_writes_between_publications_go_to_each_workers_copy(
    corpus: Corpus, workers: tuple[Watch, Watch], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first, second = workers
    first.ask(Selection())
    second.ask(Selection())
    monkeypatch.setattr(facts_module, "PUBLISH_INTERVAL", 3600.0)
    first.index._publish_after = second.index._publish_after = 0.0  # each published long ago
    rewrite(tmp_path / "a", corpus, 1, lambda m: dataclasses.replace(m, view_count=m.view_count + 3))
    first.ask(Selection())
    rewrite(tmp_path / "b", corpus, 1, lambda m: dataclasses.replace(m, view_count=m.view_count + 4))
    # The first publishes the first write, then applies the next to its own copy (Watch.ask
    # compares every answer with SQL's)...
    first.ask(Selection())
    mine = first.index.current
    assert mine is not None and mine.source is None and first.index.published == 2
    # ...and the second maps the published one and applies the rest itself.
    second.ask(Selection())
    assert (second.index.maps, second.index.deltas, second.index.loads) == (2, 1, 0)


def test_a_title_order_one_worker_sorted_is_mapped_by_the_next(workers: tuple[Watch, Watch], tmp_path: Path) -> None:
    first, second = workers
    by_title = Ordering("title", descending=False)
    walked = first.ask(Selection(), by_title)["ids"]
    mine = first.index.current
    assert mine is not None and mine.source is not None and (mine.source / "title-order.npy").exists()
    second.ask(Selection(has_images=True))
    theirs = second.index.current
    assert theirs is not None and isinstance(theirs.title_order_made and theirs.title_order_made.order, np.memmap)
    assert second.ask(Selection(), by_title)["ids"] == walked


def test_files_of_another_format_or_removed_are_not_read(corpus: Corpus, tmp_path: Path) -> None:
    folder = tmp_path / "index"
    assert run(corpus.url, load_index, folder)["published"] == 1
    (version,) = snapshots(folder)
    meta = folder / version / "meta.json"
    meta.write_bytes(meta.read_bytes().replace(b'"format":1', b'"format":99'))
    # A worker finds a snapshot it cannot read: it builds one of its own, which replaces it.
    assert run(corpus.url, load_index, folder) == {"loads": 1, "maps": 0, "published": 1, "deltas": 0}
    # A worker whose snapshot is removed under it (a newer one published meanwhile) reads on.
    watch = Watch(corpus.url, folder)
    try:
        counted = watch.ask(Selection())["count"]
        for path in folder.iterdir():
            shutil.rmtree(path) if path.is_dir() else path.unlink()
        assert watch.ask(Selection())["count"] == counted
    finally:
        watch.close()


def test_a_builder_process_makes_the_full_load(corpus: Corpus, tmp_path: Path) -> None:
    """Given the store's URL, a worker leaves the full load to a process of its own
    (loaders.fact_build) and maps what it wrote, as the other workers do."""
    folder = tmp_path / "index"
    watch = Watch(corpus.url)
    watch.pool.facts.share(folder, corpus.url)
    try:
        counted = watch.ask(Selection(has_images=True))["count"]
        index = watch.index
        assert (index.built_apart, index.loads, index.maps) == (1, 1, 0)
        assert index.current is not None and index.current.source is not None
        assert isinstance(index.current.present, np.memmap)
    finally:
        watch.close()
    # A builder that cannot read the store fails; the worker then loads the index itself.
    broken = Watch(corpus.url)
    broken.pool.facts.share(tmp_path / "elsewhere", "sqlite:////nonexistent/folder/store.db")
    try:
        assert broken.ask(Selection(has_images=True))["count"] == counted
        assert (broken.index.built_apart, broken.index.loads, broken.index.published) == (0, 1, 1)
    finally:
        broken.close()


def test_workers_starting_together_build_the_index_once(corpus: Corpus, tmp_path: Path) -> None:
    """The building lock: of two workers needing the index at once, one builds it and the other
    waits, then maps what the first wrote."""
    folder = tmp_path / "index"

    async def together() -> list[dict[str, int]]:
        pools = [await ReadPool.open(corpus.url, 2) for _ in range(2)]
        try:
            for pool in pools:
                pool.facts.share(folder)
            return list(await asyncio.gather(*(load_index(pool) for pool in pools)))
        finally:
            for pool in pools:
                await pool.close()

    done = asyncio.run(together())
    assert sorted((d["loads"], d["maps"]) for d in done) == [(0, 1), (1, 0)]
    assert len(snapshots(folder)) == 1


def test_a_request_cancelled_while_the_builder_works_stops_the_builder(corpus: Corpus, tmp_path: Path) -> None:
    """A server stopping during its start-up does not leave a builder process running."""

    async def cancelled() -> psutil.Process:
        pool = await ReadPool.open(corpus.url, 2)
        pool.facts.share(tmp_path / "index", corpus.url)
        try:
            request = asyncio.create_task(facts_at(pool))
            me = psutil.Process()
            for _ in range(500):  # the builder appears among this process's children
                builders = [p for p in me.children() if "loaders.fact_build" in " ".join(p.cmdline())]
                if builders:
                    break
                await asyncio.sleep(0.01)
            else:
                pytest.fail("no builder process started")
            request.cancel()
            with pytest.raises(asyncio.CancelledError):
                await request
            return builders[0]
        finally:
            await pool.close()

    builder = asyncio.run(cancelled())
    assert not builder.is_running()  # stopped by its pid, and waited for
