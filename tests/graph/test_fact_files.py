"""Workers sharing one fact index through files (loaders.fact_files): mapped rather than built again,
writes published once, files of another format or removed never read, a builder process of its own."""

from __future__ import annotations

import asyncio
import dataclasses
import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import psutil
import pytest

from loaders import ReadPool
from loaders import facts as facts_module
from loaders.posts import Ordering, Selection
from tests.graph import fact_index as shared
from tests.graph.fact_index import Corpus, Watch, facts_at, load_index, rewrite, run

# The store, shared with test_fact_index.py (a module-scoped fixture: made once per module).
corpus = shared.corpus


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
