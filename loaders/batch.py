"""Batch functions: one statement per relation for any number of posts.

Each takes the request's :class:`~loaders.db.RequestDb` and a list of keys and
returns one result per key, in key order: ``None`` or ``[]`` where nothing
matches. Rows index by column name.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from .db import RequestDb, Row
from .sql import Sql, keys_param, sql

# Every column the API reads from a post row; layout and bookkeeping stay behind.
POST_COLUMN_NAMES = (
    "id",
    "source_id",
    "slug",
    "title",
    "intro",
    "topic",
    "summary",
    "outline_context",
    "outline_problem",
    "outline_stack",
    "outline_action",
    "ai_brief",
    "code_language",
    "difficulty",
    "reading_time",
    "view_count",
    "quality",
    "freshness",
    "depth",
    "clarity",
    "status",
    "version",
    "last_reviewed",
    "reference",
    "meta_hash",
    "ai_generated_style",
    "has_images",
    "image_heavy",
    "needs_human_review",
    "generator",
    "paragraphs",
    "scenario",
    "seed",
    "content_hash",
    "archived_at",
)


def post_columns(alias: str = "post") -> str:
    """The post columns, qualified by ``alias``, as a SELECT list."""
    return ", ".join(f"{alias}.{name}" for name in POST_COLUMN_NAMES)


POST_COLUMNS = post_columns()

# (column, include archived posts) -> statement; readers never see archived posts.
_POSTS_BY = {
    (column, archived): sql(
        f"SELECT {POST_COLUMNS} FROM post WHERE post.{column} IN :keys"
        + ("" if archived else " AND post.archived_at IS NULL")
    )
    for column in ("id", "slug", "reference", "source_id")
    for archived in (False, True)
}


async def _posts_by(db: RequestDb, column: str, keys: Sequence[Any]) -> list[Row | None]:
    rows = await db.fetch(_POSTS_BY[(column, db.include_archived)], (keys_param(db.dialect, keys),))
    db.note_posts(rows)
    found = {row[column]: row for row in rows}
    if len(found) < len(set(keys)):
        # A miss ("no such post") changes when any post is written: it depends on them all.
        db.lists_seen = True
    return [found.get(key) for key in keys]


async def posts_by_id(db: RequestDb, keys: Sequence[int]) -> list[Row | None]:
    return await _posts_by(db, "id", keys)


async def posts_by_slug(db: RequestDb, keys: Sequence[str]) -> list[Row | None]:
    return await _posts_by(db, "slug", keys)


async def posts_by_reference(db: RequestDb, keys: Sequence[str]) -> list[Row | None]:
    return await _posts_by(db, "reference", keys)


async def posts_by_source_id(db: RequestDb, keys: Sequence[str]) -> list[Row | None]:
    return await _posts_by(db, "source_id", keys)


async def _grouped(db: RequestDb, statement: Sql, keys: Sequence[int]) -> list[list[Row]]:
    """Rows of a child table, grouped by their first column (the post id), in key order."""
    groups: defaultdict[int, list[Row]] = defaultdict(list)
    for row in await db.fetch(statement, (keys_param(db.dialect, keys),)):
        groups[row[0]].append(row)
    return [groups.get(key, []) for key in keys]


def _children(table: str, columns: str) -> Sql:
    return sql(f"SELECT post_id, {columns} FROM {table} WHERE post_id IN :keys ORDER BY post_id, position")


def _named(link: str, key: str, vocabulary: str, columns: str) -> Sql:
    return sql(
        f"SELECT l.post_id, {columns} FROM {link} l JOIN {vocabulary} v ON v.id = l.{key} "
        "WHERE l.post_id IN :keys ORDER BY l.post_id, l.position"
    )


_BLOCKS = _children("post_block", "position, kind, text, image, gap")
_IMAGES = _children("post_image", "position, caption, source, url")
_CHECKLIST = _children("checklist_item", "text")
_NOTES = _children("post_note", "text")
_STACK = _named("post_stack", "term_id", "stack_term", "v.name")
_TOOLS = _named("post_tool", "tool_id", "tool", "v.name")
_ENTITIES = _named("post_entity", "entity_id", "entity", "v.name, v.type")
# The similar post's own row comes in the same statement.
_SIMILAR = sql(
    f"SELECT s.post_id AS for_post_id, s.score AS similar_score, s.reasons AS similar_reasons, "
    f"{post_columns('p')} FROM similar_post s JOIN post p ON p.id = s.similar_id AND p.archived_at IS NULL "
    "WHERE s.post_id IN :keys ORDER BY s.post_id, s.rank"
)


_REVISIONS = sql(
    "SELECT post_id, number, author, reason, created_at, content_hash FROM post_revision "
    "WHERE post_id IN :keys ORDER BY post_id, number DESC"
)


async def revisions_by_post_id(db: RequestDb, keys: Sequence[int]) -> list[list[Row]]:
    """Each post's revisions, newest first."""
    return await _grouped(db, _REVISIONS, keys)


async def blocks_by_post_id(db: RequestDb, keys: Sequence[int]) -> list[list[Row]]:
    return await _grouped(db, _BLOCKS, keys)


async def images_by_post_id(db: RequestDb, keys: Sequence[int]) -> list[list[Row]]:
    return await _grouped(db, _IMAGES, keys)


async def entities_by_post_id(db: RequestDb, keys: Sequence[int]) -> list[list[Row]]:
    return await _grouped(db, _ENTITIES, keys)


async def similar_by_post_id(db: RequestDb, keys: Sequence[int]) -> list[list[Row]]:
    """Each post's stored similar posts, best first, with the similar post's own row.

    The caller notes the ones it shows (``RequestDb.note_posts``): fewer than are stored.
    """
    return await _grouped(db, _SIMILAR, keys)


async def _texts(db: RequestDb, statement: Sql, keys: Sequence[int]) -> list[list[str]]:
    return [[row[1] for row in rows] for rows in await _grouped(db, statement, keys)]


async def stack_by_post_id(db: RequestDb, keys: Sequence[int]) -> list[list[str]]:
    return await _texts(db, _STACK, keys)


async def tools_by_post_id(db: RequestDb, keys: Sequence[int]) -> list[list[str]]:
    return await _texts(db, _TOOLS, keys)


async def checklist_by_post_id(db: RequestDb, keys: Sequence[int]) -> list[list[str]]:
    return await _texts(db, _CHECKLIST, keys)


async def notes_by_post_id(db: RequestDb, keys: Sequence[int]) -> list[list[str]]:
    return await _texts(db, _NOTES, keys)
