"""Batch functions: one statement per relation for any number of posts.

Each takes the request's :class:`~loaders.db.RequestDb` and a list of keys and
returns one result per key, in key order: ``None`` or ``[]`` where nothing
matches. Statements are built once, at import time, with an expanding ``IN``
parameter, so SQLAlchemy compiles each of them once per process.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from sqlalchemy import BindParameter, Row, bindparam, select
from sqlalchemy.orm import aliased

from models import (
    ChecklistItem,
    Entity,
    Post,
    PostBlock,
    PostEntity,
    PostImage,
    PostNote,
    PostStack,
    PostTool,
    SimilarPost,
    StackTerm,
    Tool,
    table,
)

from .db import RequestDb

post_t = table(Post)
KEYS: BindParameter[Any] = bindparam("keys", expanding=True)

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
)
POST_COLUMNS = tuple(post_t.c[name] for name in POST_COLUMN_NAMES)


def _post_lookup(column: str) -> Any:
    return select(*POST_COLUMNS).where(post_t.c[column].in_(KEYS))


_POSTS_BY = {name: _post_lookup(name) for name in ("id", "slug", "reference", "source_id")}


async def _posts_by(db: RequestDb, column: str, keys: Sequence[Any]) -> list[Row[Any] | None]:
    rows = await db.all(_POSTS_BY[column], {"keys": list(keys)})
    found = {getattr(row, column): row for row in rows}
    return [found.get(key) for key in keys]


async def posts_by_id(db: RequestDb, keys: Sequence[int]) -> list[Row[Any] | None]:
    return await _posts_by(db, "id", keys)


async def posts_by_slug(db: RequestDb, keys: Sequence[str]) -> list[Row[Any] | None]:
    return await _posts_by(db, "slug", keys)


async def posts_by_reference(db: RequestDb, keys: Sequence[str]) -> list[Row[Any] | None]:
    return await _posts_by(db, "reference", keys)


async def posts_by_source_id(db: RequestDb, keys: Sequence[str]) -> list[Row[Any] | None]:
    return await _posts_by(db, "source_id", keys)


async def _grouped(db: RequestDb, statement: Any, keys: Sequence[int]) -> list[list[Row[Any]]]:
    """Rows of a child table, grouped by their first column (the post id), in key order."""
    groups: defaultdict[int, list[Row[Any]]] = defaultdict(list)
    for row in await db.all(statement, {"keys": list(keys)}):
        groups[row[0]].append(row)
    return [groups.get(key, []) for key in keys]


def _children(table: Any, *columns: str) -> Any:
    return (
        select(table.c.post_id, *(table.c[c] for c in columns))
        .where(table.c.post_id.in_(KEYS))
        .order_by(table.c.post_id, table.c.position)
    )


_BLOCKS = _children(table(PostBlock), "position", "kind", "text", "image", "gap")
_IMAGES = _children(table(PostImage), "position", "caption", "source", "url")
_CHECKLIST = _children(table(ChecklistItem), "text")
_NOTES = _children(table(PostNote), "text")


def _named(link: Any, key: str, vocabulary: Any, *columns: str) -> Any:
    return (
        select(link.c.post_id, *(vocabulary.c[c] for c in columns))
        .join(vocabulary, vocabulary.c.id == link.c[key])
        .where(link.c.post_id.in_(KEYS))
        .order_by(link.c.post_id, link.c.position)
    )


_STACK = _named(table(PostStack), "term_id", table(StackTerm), "name")
_TOOLS = _named(table(PostTool), "tool_id", table(Tool), "name")
_ENTITIES = _named(table(PostEntity), "entity_id", table(Entity), "name", "type")

_similar_t = table(SimilarPost)
_similar_post = aliased(post_t, name="similar")
_SIMILAR = (
    select(
        _similar_t.c.post_id.label("for_post_id"),
        _similar_t.c.score.label("similar_score"),
        _similar_t.c.reasons.label("similar_reasons"),
        *(_similar_post.c[name] for name in POST_COLUMN_NAMES),
    )
    .join(_similar_post, _similar_post.c.id == _similar_t.c.similar_id)
    .where(_similar_t.c.post_id.in_(KEYS))
    .order_by(_similar_t.c.post_id, _similar_t.c.rank)
)


async def blocks_by_post_id(db: RequestDb, keys: Sequence[int]) -> list[list[Row[Any]]]:
    return await _grouped(db, _BLOCKS, keys)


async def images_by_post_id(db: RequestDb, keys: Sequence[int]) -> list[list[Row[Any]]]:
    return await _grouped(db, _IMAGES, keys)


async def entities_by_post_id(db: RequestDb, keys: Sequence[int]) -> list[list[Row[Any]]]:
    return await _grouped(db, _ENTITIES, keys)


async def similar_by_post_id(db: RequestDb, keys: Sequence[int]) -> list[list[Row[Any]]]:
    """Each post's stored similar posts, best first, with the similar post's own row."""
    return await _grouped(db, _SIMILAR, keys)


async def _texts(db: RequestDb, statement: Any, keys: Sequence[int]) -> list[list[str]]:
    return [[row[1] for row in rows] for rows in await _grouped(db, statement, keys)]  # type: ignore[misc]


async def stack_by_post_id(db: RequestDb, keys: Sequence[int]) -> list[list[str]]:
    return await _texts(db, _STACK, keys)


async def tools_by_post_id(db: RequestDb, keys: Sequence[int]) -> list[list[str]]:
    return await _texts(db, _TOOLS, keys)


async def checklist_by_post_id(db: RequestDb, keys: Sequence[int]) -> list[list[str]]:
    return await _texts(db, _CHECKLIST, keys)


async def notes_by_post_id(db: RequestDb, keys: Sequence[int]) -> list[list[str]]:
    return await _texts(db, _NOTES, keys)
