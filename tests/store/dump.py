"""A logical dump of the store: every row keyed by source ids, without ids or timestamps, and its indexes."""

from __future__ import annotations

import asyncio
from typing import Any

from sqlalchemy import Connection, text

import models
from models.search import SEARCH_COLUMNS


def logical_dump(database_url: str) -> dict[str, list[tuple[Any, ...]]]:
    """Rows of every table as sorted tuples, post ids replaced by source ids (SQLite or PostgreSQL)."""

    async def run() -> dict[str, list[tuple[Any, ...]]]:
        engine = models.create_engine(database_url)
        try:
            async with engine.connect() as conn:
                return await conn.run_sync(_dump)
        finally:
            await engine.dispose()

    return asyncio.run(run())


def _dump(conn: Connection) -> dict[str, list[tuple[Any, ...]]]:
    skip = {"id", "created_at", "updated_at"}
    dump: dict[str, list[tuple[Any, ...]]] = {}
    source: dict[int, str] = {r[0]: r[1] for r in conn.execute(text("SELECT id, source_id FROM post"))}
    columns = conn.execute(text("SELECT * FROM post LIMIT 0")).keys()
    post_columns = [c for c in columns if c not in skip]
    dump["post"] = sorted(tuple(r) for r in conn.execute(text(f"SELECT {', '.join(post_columns)} FROM post")))
    for table in ("post_block", "post_image", "checklist_item", "post_note"):
        mappings = conn.execute(text(f"SELECT * FROM {table}")).mappings()
        dump[table] = sorted(tuple(dict(r, post_id=source[r["post_id"]]).values()) for r in mappings)
    for link, vocabulary, key, names in (
        ("post_stack", "stack_term", "term_id", "v.name"),
        ("post_tool", "tool", "tool_id", "v.name"),
        ("post_entity", "entity", "entity_id", "v.name, v.type"),
    ):
        rows = conn.execute(
            text(f"SELECT l.post_id, l.position, {names} FROM {link} l JOIN {vocabulary} v ON v.id = l.{key}")
        )
        dump[link] = sorted((source[r[0]], *r[1:]) for r in rows)
    rows = conn.execute(text("SELECT post_id, rank, similar_id, score, reasons FROM similar_post"))
    dump["similar_post"] = sorted((source[r[0]], r[1], source[r[2]], r[3], r[4]) for r in rows)
    search, key = ("post_fts", "rowid") if conn.dialect.name == "sqlite" else ("post_search", "post_id")
    rows = conn.execute(text(f"SELECT {key}, {', '.join(SEARCH_COLUMNS)} FROM {search}"))
    dump["search"] = sorted((source[r[0]], *r[1:]) for r in rows)
    # And the indexes, as the database describes them (an import may build some at its end).
    if conn.dialect.name == "sqlite":
        indexes = conn.execute(text("SELECT name, sql FROM sqlite_master WHERE type = 'index'"))
    else:
        indexes = conn.execute(text("SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = 'public'"))
    dump["indexes"] = sorted(tuple(r) for r in indexes)
    return dump
