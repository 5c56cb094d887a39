"""An edit writes only what it moved, in a handful of statements, whatever the post holds.

Each edit runs as the mutations run it (``store.edit.run_edit``, the similar-posts refresh left
to the server's background refresher); its statements are counted on the engine, as
``bench/writes.py`` counts them.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, select
from sqlalchemy.ext.asyncio import AsyncEngine

from documents import Document, Entity
from models import Post, table
from models.engine import is_sqlite, sync_twin
from store import edit
from store.export import load_document
from store.importer import import_sources
from store.sources import collect_sources

pytestmark = pytest.mark.anyio
WRITES = re.compile(r"^\s*(INSERT INTO|UPDATE|DELETE FROM)\s+(\w+)", re.IGNORECASE)


async def edited(engine: AsyncEngine, change: Any, *args: Any, **kwargs: Any) -> tuple[Any, list[str]]:
    """Run one edit; what it returned and the statements it sent."""
    seen: list[str] = []

    def count(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        seen.append(statement)

    targets = [engine.sync_engine, *([sync_twin(engine)] if is_sqlite(engine) else [])]
    for target in targets:
        event.listen(target, "before_cursor_execute", count)
    try:
        result = await edit.run_edit(engine, change, *args, refresh=False, **kwargs)
    finally:
        for target in targets:
            event.remove(target, "before_cursor_execute", count)
    return result, seen


def written(statements: list[str]) -> list[str]:
    """The tables written, in order."""
    return [m.group(2) for s in statements if (m := WRITES.match(s))]


async def a_post(engine: AsyncEngine, corpus: Path) -> int:
    await import_sources(engine, collect_sources([str(corpus)])[0])
    async with engine.connect() as conn:
        return int((await conn.execute(select(table(Post).c.id).order_by(table(Post).c.id).limit(1))).scalar_one())


async def test_an_edit_writes_only_the_tables_it_moved(engine: AsyncEngine, corpus: Path) -> None:
    post_id = await a_post(engine, corpus)
    log = ["post_revision", "store_version", "purge_log"]
    # A status is the post row, its revision, the store's version and the purge log: one statement each,
    # and one reads the post, its child rows and its latest revision number.
    saved, statements = await edited(engine, edit.set_status, post_id, "in-review", author="t")
    assert saved.status == "updated" and written(statements) == ["post", *log]
    reads = [s for s in statements if s.lstrip().upper().startswith("SELECT")]
    assert len(reads) == (1 if is_sqlite(engine) else 2)  # PostgreSQL: and the purge's commit setting
    assert len(statements) <= 7
    # Marking reviewed moves only the post row too.
    saved, statements = await edited(engine, edit.mark_reviewed, post_id, author="t")
    assert saved.status == "updated" and written(statements) == ["post", *log]
    # A new title moves the slug (checked against every other post's) and the search row.
    retitle = lambda d: dataclasses.replace(d, title=d.title + " again")  # noqa: E731
    saved, statements = await edited(engine, edit.change_document, post_id, retitle, author="t", reason="r")
    search = ["post_fts", "post_fts"] if is_sqlite(engine) else ["post_search"]  # PostgreSQL: an upsert
    assert written(statements) == ["post", *search, *log]
    assert len(statements) <= 11

    # New tools: the tool vocabulary, the post's tool links and the similar-posts mark (tools are not
    # searched: the search row stays); nothing else.
    def tools(document: Document) -> Document:
        return dataclasses.replace(document, meta=dataclasses.replace(document.meta, tools=("git", "zz-new-tool")))

    saved, statements = await edited(engine, edit.change_document, post_id, tools, author="t", reason="r")
    assert written(statements) == ["post", "tool", "post_tool", "post_tool", "similar_pending", *log]
    # Archiving: the post row, the mark, and the log.
    saved, statements = await edited(engine, edit.set_archived, post_id, True, author="t")
    assert saved.status == "updated" and written(statements) == ["post", "similar_pending", *log]
    # And the post reads back as it was written.
    async with engine.connect() as conn:
        document = await conn.run_sync(lambda c: load_document(c, post_id))
    assert document is not None and document.meta.tools == ("git", "zz-new-tool")
    assert document.title.endswith(" again") and document.meta.revision.status == "reviewed"


async def test_an_edit_that_moves_nothing_writes_nothing(engine: AsyncEngine, corpus: Path) -> None:
    post_id = await a_post(engine, corpus)
    saved, statements = await edited(engine, edit.change_document, post_id, lambda d: d, author="t", reason="r")
    assert saved.status == "unchanged" and written(statements) == []

    def entity(document: Document) -> Document:
        return dataclasses.replace(document, meta=dataclasses.replace(document.meta, entities=(Entity("x", "y"),)))

    saved, statements = await edited(engine, edit.change_document, post_id, entity, author="t", reason="r")
    assert (
        saved.status == "updated" and "post_entity" in written(statements) and "post_block" not in written(statements)
    )
