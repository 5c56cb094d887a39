"""Read stored posts back as documents: the export path."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from sqlalchemy import Connection, select

from documents import Document
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
    StackTerm,
    Tool,
    table,
)

from .rows import from_rows

post_t = table(Post)


def find_post_id(conn: Connection, *, reference: str | None = None, slug: str | None = None) -> int | None:
    """The id of the post with this reference or slug, or None."""
    column = post_t.c.reference if reference is not None else post_t.c.slug
    value = reference if reference is not None else slug
    return conn.execute(select(post_t.c.id).where(column == value)).scalar_one_or_none()


def load_document(conn: Connection, post_id: int) -> Document | None:
    """The stored post as a document, or None if there is no such post."""
    post = conn.execute(select(post_t).where(post_t.c.id == post_id)).one_or_none()
    if post is None:
        return None
    return from_rows(post, *_children(conn, post_id))


def iter_documents(conn: Connection) -> Iterator[tuple[int, Document]]:
    """Every stored post, by id."""
    for post_id in conn.execute(select(post_t.c.id).order_by(post_t.c.id)).scalars().all():
        document = load_document(conn, post_id)
        if document is not None:
            yield post_id, document


def _children(conn: Connection, post_id: int) -> tuple[Any, ...]:
    def ordered(child: Any, *columns: Any) -> list[Any]:
        return list(conn.execute(select(*columns).where(child.c.post_id == post_id).order_by(child.c.position)).all())

    block, image = table(PostBlock), table(PostImage)
    checklist, note = table(ChecklistItem), table(PostNote)
    blocks = ordered(block, block.c.kind, block.c.text, block.c.image, block.c.gap)
    images = ordered(image, image.c.position, image.c.caption, image.c.source, image.c.url)
    checklist_items = [r.text for r in ordered(checklist, checklist.c.text)]
    notes = [r.text for r in ordered(note, note.c.text)]
    stack = _names(conn, table(PostStack), "term_id", table(StackTerm), post_id)
    tools = _names(conn, table(PostTool), "tool_id", table(Tool), post_id)
    link, entity = table(PostEntity), table(Entity)
    entities = [
        (r.name, r.type)
        for r in conn.execute(
            select(entity.c.name, entity.c.type)
            .join(link, link.c.entity_id == entity.c.id)
            .where(link.c.post_id == post_id)
            .order_by(link.c.position)
        )
    ]
    return blocks, images, checklist_items, notes, stack, tools, entities


def _names(conn: Connection, link: Any, key: str, vocabulary: Any, post_id: int) -> list[str]:
    return list(
        conn.execute(
            select(vocabulary.c.name)
            .join(link, link.c[key] == vocabulary.c.id)
            .where(link.c.post_id == post_id)
            .order_by(link.c.position)
        ).scalars()
    )
