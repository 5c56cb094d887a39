"""An edit's reads and writes of one stored post, in as few statements as the change needs.

An editor's edit reads the post (its row, child rows, vocabulary and latest revision number)
in one statement, applies the change to its document, and writes only the tables whose rows
the change moved: a new status is the post row, a revision, the store's version and the
purge log, not the post's seven child tables and its search row again. Both documents are
split into rows the same way (``store.rows.to_rows``), so "moved" is a comparison of rows.
Imports, which write many posts, go through ``store.write`` instead.
"""

from __future__ import annotations

import datetime as dt
from collections import namedtuple
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy import ColumnElement, Connection, Text, cast, delete, func, insert, literal, or_, select, update

from documents import Document
from models import (
    ChecklistItem,
    Entity,
    Post,
    PostBlock,
    PostEntity,
    PostImage,
    PostNote,
    PostRevision,
    PostStack,
    PostTool,
    StackTerm,
    Tool,
    table,
)

from . import pending, purge, revisions
from .bulk import replace_search
from .rows import PostRows, from_rows, to_rows
from .write import VocabularyCache, bump_store_version, ensure_entities, ensure_names

post_t = table(Post)
block_t, image_t = table(PostBlock), table(PostImage)
checklist_t, note_t = table(ChecklistItem), table(PostNote)
stack_t, tool_t, entity_t = table(StackTerm), table(Tool), table(Entity)
post_stack_t, post_tool_t, post_entity_t = table(PostStack), table(PostTool), table(PostEntity)
revision_t = table(PostRevision)

_Block = namedtuple("_Block", "position kind text image gap")
_Image = namedtuple("_Image", "position caption source url")
# Columns of the post row that are bookkeeping, not content: left out when rows are compared.
_BOOKKEEPING = frozenset({"content_hash", "created_at", "updated_at"})


@dataclass(frozen=True, slots=True)
class Stored:
    """A stored post as an edit reads it."""

    post_id: int
    source_id: str
    content_hash: str
    archived: bool
    revision: int  # its latest revision's number
    document: Document


def _json_list(dialect: str, *columns: ColumnElement[Any]) -> ColumnElement[Any]:
    """A JSON array of one array of ``columns`` per row (text)."""
    if dialect == "sqlite":
        return func.json_group_array(func.json_array(*columns))
    return func.coalesce(cast(func.json_agg(func.json_build_array(*columns)), Text), literal("[]"))


def _load_statement(dialect: str, post_id: int) -> Any:
    def listed(source: Any, owner: Any, *columns: ColumnElement[Any]) -> Any:
        return (
            select(_json_list(dialect, owner.c.position, *columns))
            .select_from(source)
            .where(owner.c.post_id == post_t.c.id)
            .scalar_subquery()
        )

    b, i, c, n = block_t, image_t, checklist_t, note_t
    statement = select(
        post_t,
        listed(b, b, b.c.kind, b.c.text, b.c.image, b.c.gap).label("_blocks"),
        listed(i, i, i.c.caption, i.c.source, i.c.url).label("_images"),
        listed(c, c, c.c.text).label("_checklist"),
        listed(n, n, n.c.text).label("_notes"),
        listed(post_stack_t.join(stack_t, stack_t.c.id == post_stack_t.c.term_id), post_stack_t, stack_t.c.name).label(
            "_stack"
        ),
        listed(post_tool_t.join(tool_t, tool_t.c.id == post_tool_t.c.tool_id), post_tool_t, tool_t.c.name).label(
            "_tools"
        ),
        listed(
            post_entity_t.join(entity_t, entity_t.c.id == post_entity_t.c.entity_id),
            post_entity_t,
            entity_t.c.name,
            entity_t.c.type,
        ).label("_entities"),
        select(func.coalesce(func.max(revision_t.c.number), 0))
        .where(revision_t.c.post_id == post_t.c.id)
        .scalar_subquery()
        .label("_revision"),
    ).where(post_t.c.id == post_id)
    # The post's row locked for the rest of the transaction (SQLite's write lock is the store's).
    return statement.with_for_update(of=post_t) if dialect == "postgresql" else statement


def _rows(text: str) -> list[list[Any]]:
    """A JSON array of arrays, the first value of each its position: in position order."""
    return sorted(orjson.loads(text), key=lambda row: row[0])


def load(conn: Connection, post_id: int) -> Stored | None:
    """The post, read in one statement; None when there is none."""
    row = conn.execute(_load_statement(conn.dialect.name, post_id)).first()
    if row is None:
        return None
    document = from_rows(
        row,
        [_Block(*r) for r in _rows(row._blocks)],
        [_Image(*r) for r in _rows(row._images)],
        [r[1] for r in _rows(row._checklist)],
        [r[1] for r in _rows(row._notes)],
        [r[1] for r in _rows(row._stack)],
        [r[1] for r in _rows(row._tools)],
        [(r[1], r[2]) for r in _rows(row._entities)],
    )
    return Stored(row.id, row.source_id, row.content_hash, row.archived_at is not None, row._revision, document)


def taken_key(conn: Connection, post_id: int, rows: PostRows) -> str | None:
    """What another post already holds of these rows' reference and slug, said as an import says it."""
    reference, slug = rows.post["reference"], rows.post["slug"]
    found = conn.execute(
        select(post_t.c.reference, post_t.c.slug, post_t.c.source_id)
        .where(or_(post_t.c.reference == reference, post_t.c.slug == slug), post_t.c.id != post_id)
        .limit(1)
    ).first()
    if found is None:
        return None
    column, value = ("reference", reference) if found.reference == reference else ("slug", slug)
    return f"{column} {value!r} already belongs to the post with source id {found.source_id!r}"


def old_rows(stored: Stored) -> PostRows:
    """The stored post's rows, as ``to_rows`` makes them (its page text left out: not compared)."""
    return to_rows(stored.document, text="")


def write(
    conn: Connection,
    stored: Stored,
    old: PostRows,
    new: PostRows,
    *,
    author: str,
    reason: str,
    now: dt.datetime,
    archived_at: dt.datetime | bool | None = False,
) -> int:
    """Write what moved from ``old`` to ``new`` (and the archive time, when not False); the new
    revision's number."""
    post_id = stored.post_id
    changes = {k: v for k, v in new.post.items() if k not in _BOOKKEEPING and old.post.get(k) != v}
    values: dict[str, Any] = {**changes, "content_hash": new.post["content_hash"], "updated_at": now}
    if archived_at is not False:
        values["archived_at"] = archived_at
    conn.execute(update(post_t).where(post_t.c.id == post_id).values(values))
    _children(conn, post_id, old, new)
    terms_moved = (old.post["topic"], old.stack, old.tools, old.entities) != (
        new.post["topic"],
        new.stack,
        new.tools,
        new.entities,
    )
    if terms_moved or archived_at is not False:
        pending.mark(conn, [post_id], pending.CHANGED)
    if old.search != new.search:
        replace_search(conn, post_id, new.search)
    number = stored.revision + 1
    revisions.insert_numbered(conn, [(post_id, number, new.text, new.post["content_hash"], author, reason)], now)
    version = bump_store_version(conn)
    purge.record(conn, [post_id], lists=True, version=version)
    return number


def _children(conn: Connection, post_id: int, old: PostRows, new: PostRows) -> None:
    """Rewrite the child tables whose rows moved."""
    plain: Sequence[tuple[str, Any, tuple[str, ...]]] = (
        ("blocks", block_t, ("position", "kind", "text", "image", "gap")),
        ("images", image_t, ("position", "caption", "source", "url")),
        ("checklist", checklist_t, ("position", "text")),
        ("notes", note_t, ("position", "text")),
    )
    for name, target, columns in plain:
        rows = getattr(new, name)
        if rows != getattr(old, name):
            conn.execute(delete(target).where(target.c.post_id == post_id))
            _insert(conn, target, [{"post_id": post_id, **{c: r[c] for c in columns}} for r in rows])
    vocabulary = VocabularyCache()
    if new.stack != old.stack:
        ids = ensure_names(conn, stack_t, set(new.stack), vocabulary.stack)
        _links(conn, post_stack_t, "term_id", post_id, [ids[n] for n in new.stack])
    if new.tools != old.tools:
        ids = ensure_names(conn, tool_t, set(new.tools), vocabulary.tools)
        _links(conn, post_tool_t, "tool_id", post_id, [ids[n] for n in new.tools])
    if new.entities != old.entities:
        entity_ids = ensure_entities(conn, set(new.entities), vocabulary.entities)
        _links(conn, post_entity_t, "entity_id", post_id, [entity_ids[e] for e in new.entities])


def _links(conn: Connection, target: Any, column: str, post_id: int, ids: list[int]) -> None:
    conn.execute(delete(target).where(target.c.post_id == post_id))
    _insert(conn, target, [{"post_id": post_id, column: i, "position": n} for n, i in enumerate(ids, 1)])


def _insert(conn: Connection, target: Any, rows: list[dict[str, Any]]) -> None:
    """A post's few child rows in one statement (``COPY``, for many rows, costs more round trips)."""
    if rows:
        conn.execute(insert(target), rows)


__all__ = ["Stored", "load", "old_rows", "taken_key", "write"]
