"""What the fact index's tests share: a store of 300 synthesized posts per dialect, the read path
asked through the index and in SQL, and a read pool watched across writes."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import strategies as st
from sqlalchemy import text

from documents import render
from documents.synth import write
from loaders import ReadPool, RequestDb
from loaders import facts as facts_module
from loaders.posts import Ordering, SearchTerms, Selection, count, facet, page
from store.edit import set_archived
from tests.editing import on_store
from tests.graph.finding import OpenPool, import_folder, read_sources

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
