"""Importing documents: receipts, idempotency, all-or-nothing per document."""

from __future__ import annotations

import asyncio
import io
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncEngine

import models
from documents import parse, render
from models import Post, PostBlock, PostStack, SimilarPending, SimilarPost, table
from store import importer
from store.export import find_post_id, load_document
from store.importer import import_sources
from store.sources import collect_sources, file_source, text_source
from tests.conftest import DIALECTS, SEED_DOCUMENT
from tests.store.dump import _dump as logical_dump_of

pytestmark = pytest.mark.anyio

TABLES = ("post", "post_block", "post_image", "checklist_item", "post_note", "post_stack", "post_tool", "post_entity")


async def counts(engine: AsyncEngine) -> dict[str, int]:
    async with engine.connect() as conn:
        return {t: (await conn.execute(text(f"SELECT count(*) FROM {t}"))).scalar_one() for t in TABLES}


async def test_import_creates_posts_and_reports_counts(engine: AsyncEngine, corpus: Path) -> None:
    sources, missing = collect_sources([str(corpus)])
    receipt = await import_sources(engine, sources)
    assert missing == []
    assert (receipt.created, receipt.updated, receipt.unchanged, receipt.rejected) == (81, 0, 0, [])
    assert receipt.similar_refreshed == 81
    assert (await counts(engine))["post"] == 81


async def test_reimport_reports_unchanged_and_changes_nothing(engine: AsyncEngine, corpus: Path) -> None:
    sources, _ = collect_sources([str(corpus)])
    await import_sources(engine, sources)
    before = await counts(engine)
    async with engine.connect() as conn:
        stamps = (await conn.execute(select(table(Post).c.id, table(Post).c.updated_at))).all()
    receipt = await import_sources(engine, sources)
    assert (receipt.created, receipt.updated, receipt.unchanged) == (0, 0, 81)
    assert receipt.similar_refreshed == 0
    assert "nothing changed" in receipt.summary()
    assert await counts(engine) == before
    async with engine.connect() as conn:
        assert (await conn.execute(select(table(Post).c.id, table(Post).c.updated_at))).all() == stamps


async def test_an_import_changing_a_tenth_of_the_store_refreshes_the_planner_statistics(
    engine: AsyncEngine, corpus: Path, dialect: str
) -> None:
    # Given an empty store, when 81 documents are imported: all of the store changed.
    sources, _ = collect_sources([str(corpus)])
    first = await import_sources(engine, sources)
    # Then the planner's statistics were refreshed.
    assert first.analyzed
    if dialect == "sqlite":
        async with engine.connect() as conn:
            analyzed = (await conn.execute(text("SELECT DISTINCT tbl FROM sqlite_stat1"))).scalars().all()
        assert {"post", "post_entity", "post_stack", "similar_post"} <= set(analyzed)
    # When one document of 81 changes (about 1%), or none does, they are left as they are.
    edited = SEED_DOCUMENT.read_text(encoding="utf-8").replace("final notes", "closing notes")
    one = await import_sources(engine, [text_source("seed.txt", edited)])
    assert (one.updated, one.analyzed) == (1, False)
    again = await import_sources(engine, sources[:5])
    assert again.analyzed is False


@pytest.mark.parametrize("dialect", [p for p in DIALECTS if p.id == "postgresql"], indirect=True)
async def test_a_first_import_leaves_no_dead_rows_on_postgresql(engine: AsyncEngine, corpus: Path) -> None:
    """Every row a first import writes is written once: no dead versions in the post table or any
    other (PostgreSQL writes a new version of a row at each update; SQLite has no row versions)."""
    sources, _ = collect_sources([str(corpus)])
    assert (await import_sources(engine, sources)).created == len(sources)
    async with engine.connect() as conn:
        await conn.exec_driver_sql("CREATE EXTENSION IF NOT EXISTS pgstattuple")
        await conn.commit()
        tables = ["post", "post_search", "post_block", "similar_post", "similar_pending", "post_revision"]
        dead = {
            name: (await conn.execute(text(f"SELECT dead_tuple_count FROM pgstattuple('{name}')"))).scalar_one()
            for name in tables
        }
        live = (await conn.execute(text("SELECT tuple_count FROM pgstattuple('post')"))).scalar_one()
    assert dead == dict.fromkeys(tables, 0)
    assert live == len(sources)


async def test_changed_document_is_updated_in_place(engine: AsyncEngine) -> None:
    original = SEED_DOCUMENT.read_text(encoding="utf-8")
    await import_sources(engine, [text_source("seed.txt", original)])
    edited = original.replace("final notes", "closing notes").replace("  • ruff\n", "")
    receipt = await import_sources(engine, [text_source("seed-edited.txt", edited)])
    assert (receipt.created, receipt.updated, receipt.unchanged) == (0, 1, 0)
    async with engine.connect() as conn:
        post_id = await conn.run_sync(lambda c: find_post_id(c, reference="anp-ref-001632-5801"))
        document = await conn.run_sync(load_document, post_id)
        assert (await conn.execute(select(func.count()).select_from(table(Post)))).scalar_one() == 1
        stack_rows = (
            await conn.execute(select(func.count()).where(table(PostStack).c.post_id == post_id))
        ).scalar_one()
    assert document is not None
    assert render(document) == edited
    assert "ruff" not in document.meta.tools
    assert stack_rows == 3


async def test_bad_documents_never_stop_good_ones_nor_leave_partial_posts(engine: AsyncEngine, corpus: Path) -> None:
    good = sorted(corpus.glob("*.txt"))[:5]
    bad_score = SEED_DOCUMENT.read_text(encoding="utf-8").replace("quality: 96", "quality: 196")
    sources = [text_source("truncated.txt", good[0].read_text()[:900]), *map(file_source, good)]
    sources.insert(3, text_source("bad-score.txt", bad_score))
    sources.append(text_source("binary.bin", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR"))
    receipt = await import_sources(engine, sources, batch_size=2)
    assert receipt.created == 5
    assert {o.name for o in receipt.rejected} == {"truncated.txt", "bad-score.txt", "binary.bin"}
    by_name = {o.name: o.error or "" for o in receipt.rejected}
    assert "bad-score.txt:" in by_name["bad-score.txt"] and "a number from 0 to 100" in by_name["bad-score.txt"]
    assert "truncated" in by_name["truncated.txt"]
    assert not receipt.ok
    async with engine.connect() as conn:
        posts = (await conn.execute(select(func.count()).select_from(table(Post)))).scalar_one()
        orphans = (
            await conn.execute(
                select(func.count())
                .select_from(table(PostBlock))
                .where(table(PostBlock).c.post_id.not_in(select(table(Post).c.id)))
            )
        ).scalar_one()
    assert (posts, orphans) == (5, 0)


async def test_reference_taken_by_another_post_is_rejected_and_not_written(engine: AsyncEngine) -> None:
    original = SEED_DOCUMENT.read_text(encoding="utf-8")
    impostor = original.replace("source id: alphanode-001632", "source id: alphanode-999999")
    receipt = await import_sources(engine, [text_source("a.txt", original), text_source("b.txt", impostor)])
    assert receipt.created == 1
    (rejected,) = receipt.rejected
    assert rejected.name == "b.txt"
    assert "reference 'anp-ref-001632-5801' already belongs to the post with source id 'alphanode-001632'" in (
        rejected.error or ""
    )
    assert (await counts(engine))["post"] == 1


async def test_same_source_id_twice_in_one_run_ends_with_the_later_version(engine: AsyncEngine) -> None:
    original = SEED_DOCUMENT.read_text(encoding="utf-8")
    later = original.replace("view count223096", "view count223097")
    receipt = await import_sources(engine, [text_source("v1.txt", original), text_source("v2.txt", later)])
    assert (receipt.created, receipt.updated) == (1, 1)
    async with engine.connect() as conn:
        views = (await conn.execute(select(table(Post).c.view_count))).scalar_one()
    assert views == 223097


def test_collect_sources_reads_folders_files_and_stdin(corpus: Path, tmp_path: Path) -> None:
    (tmp_path / "notes.md").write_text("not a document")
    (tmp_path / ".hidden").mkdir()
    (tmp_path / ".hidden" / "x.txt").write_text("hidden")
    nested = tmp_path / "nested"
    nested.mkdir()
    (nested / "a.txt").write_text("a")
    stdin = io.BytesIO(SEED_DOCUMENT.read_bytes())
    sources, missing = collect_sources([str(tmp_path), str(SEED_DOCUMENT), "-", str(tmp_path / "nope.txt")], stdin)
    names = [s.name for s in sources]
    assert names == [str(nested / "a.txt"), str(SEED_DOCUMENT), "<stdin>"]
    assert sources[2].read() == SEED_DOCUMENT.read_bytes()
    assert [m.error for m in missing] == [f"{tmp_path / 'nope.txt'}: no such file or folder"]


async def test_every_imported_post_exports_byte_for_byte(engine: AsyncEngine, corpus: Path) -> None:
    files = sorted(corpus.glob("*.txt"))
    await import_sources(engine, [file_source(p) for p in files])
    async with engine.connect() as conn:
        for path in files:
            original = path.read_text(encoding="utf-8")
            reference = parse(original).meta.reference
            post_id = await conn.run_sync(lambda c, r=reference: find_post_id(c, reference=r))
            document = await conn.run_sync(load_document, post_id)
            assert document is not None
            assert render(document) == original, path.name


async def test_similar_posts_are_stored_for_every_post(engine: AsyncEngine, corpus: Path) -> None:
    await import_sources(engine, collect_sources([str(corpus)])[0])
    async with engine.connect() as conn:
        with_similar = (
            await conn.execute(select(func.count(func.distinct(table(SimilarPost).c.post_id))))
        ).scalar_one()
        pending = (await conn.execute(select(func.count()).select_from(table(SimilarPending)))).scalar_one()
    assert with_similar == 81
    assert pending == 0


def test_an_import_in_worker_processes_stores_what_one_in_this_process_does(
    database_url: str, corpus: Path, new_store_url: Callable[[str], str]
) -> None:
    sources = collect_sources([str(corpus)])[0]

    async def run(url: str, workers: int) -> dict[str, list[tuple[object, ...]]]:
        engine = models.create_engine(url)
        try:
            await models.create_all(engine)
            # (Batches of 20 in both: vocabulary ids follow the batches, and reasons name
            # equally rare terms in the order of their ids.)
            receipt = await import_sources(engine, sources, workers=workers, batch_size=20)
            assert (receipt.created, receipt.rejected) == (81, [])
            # Run again, the same files are found unchanged by their hash, without being parsed
            again = await import_sources(engine, sources, workers=workers)
            assert again.unchanged == 81
            async with engine.connect() as conn:
                return await conn.run_sync(logical_dump_of)
        finally:
            await engine.dispose()

    assert asyncio.run(run(database_url, 2)) == asyncio.run(run(new_store_url("in-process"), 0))


async def test_a_stored_text_after_a_newer_one_in_the_same_run_is_written_again(
    engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Unchanged documents are found by hash before they are parsed, also in small imports here
    monkeypatch.setattr(importer, "PARALLEL_FROM", 1)
    original = SEED_DOCUMENT.read_text(encoding="utf-8")
    later = original.replace("view count223096", "view count223097")
    await import_sources(engine, [text_source("v1.txt", original)])
    receipt = await import_sources(
        engine, [text_source("v1.txt", original), text_source("v2.txt", later), text_source("v1-again.txt", original)]
    )
    assert [(o.name, o.status) for o in receipt.outcomes] == [
        ("v1.txt", "unchanged"),
        ("v2.txt", "updated"),
        ("v1-again.txt", "updated"),
    ]
    async with engine.connect() as conn:
        views = (await conn.execute(select(table(Post).c.view_count))).scalar_one()
    assert views == 223096


def test_the_deferred_indexes_are_those_the_migrations_make(tmp_path: Path) -> None:
    """(SQLite: PostgreSQL imports keep their indexes, see the test below.)"""

    async def made() -> dict[str, str]:
        engine = models.create_engine(f"sqlite:///{tmp_path / 'store.db'}")
        try:
            await models.create_all(engine)
            async with engine.connect() as conn:
                rows = await conn.execute(text("SELECT name, sql FROM sqlite_master WHERE type = 'index'"))
                return {row[0]: row[1] for row in rows}
        finally:
            await engine.dispose()

    indexes = asyncio.run(made())
    assert [indexes.get(statement.split()[2]) for statement in importer.DEFERRED_INDEXES] == list(
        importer.DEFERRED_INDEXES
    )


async def test_a_large_import_into_an_empty_store_builds_its_indexes_after_the_last_document(
    engine: AsyncEngine, corpus: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    async with engine.connect() as conn:
        before = await conn.run_sync(logical_dump_of)
    monkeypatch.setattr(importer, "PARALLEL_FROM", 10)  # the corpus's 81 documents make a large import
    caplog.set_level("INFO", logger="alphanode.import")
    receipt = await import_sources(engine, collect_sources([str(corpus)])[0], workers=0)
    assert receipt.created == 81
    deferred = "indexes are built after the last document" in caplog.text
    assert deferred == (engine.dialect.name == "sqlite")
    async with engine.connect() as conn:
        after = await conn.run_sync(logical_dump_of)
    assert after["indexes"] == before["indexes"]
    # A store with posts keeps its indexes while it imports.
    caplog.clear()
    await import_sources(engine, [text_source("seed.txt", SEED_DOCUMENT.read_bytes())] * 12, workers=0)
    assert "indexes are built" not in caplog.text


def test_indexes_an_interrupted_import_left_unmade_are_made_by_the_next(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """(SQLite: only there does an import leave indexes to its end.)"""

    async def run() -> tuple[Any, Any]:
        engine = models.create_engine(f"sqlite:///{tmp_path / 'store.db'}")
        try:
            await models.create_all(engine)
            async with engine.connect() as conn:
                before = await conn.run_sync(logical_dump_of)
            async with engine.begin() as conn:  # as an import killed before its end leaves them
                for statement in importer.DEFERRED_INDEXES[:3]:
                    await conn.execute(text(f"DROP INDEX {statement.split()[2]}"))
            await import_sources(engine, [text_source("seed.txt", SEED_DOCUMENT.read_bytes())])
            async with engine.connect() as conn:
                return before, await conn.run_sync(logical_dump_of)
        finally:
            await engine.dispose()

    caplog.set_level("WARNING", logger="alphanode.import")
    before, after = asyncio.run(run())
    assert "3 indexes an earlier import left unmade were built" in caplog.text
    assert after["indexes"] == before["indexes"] and after["post"]
