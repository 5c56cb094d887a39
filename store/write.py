"""Write a batch of documents in one transaction: insert, update or skip each.

Functions here take a synchronous SQLAlchemy ``Connection`` inside a
transaction the caller owns; async callers use ``AsyncConnection.run_sync``.
Bulk statements are ``executemany`` over plain dicts: the ORM's unit of work is
an order of magnitude slower for imports and buys nothing here.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from sqlalchemy import Connection, bindparam, delete, insert, select, text, update
from sqlalchemy.dialects import postgresql, sqlite

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

from .rows import PostRows, to_rows

post_t = table(Post)
block_t = table(PostBlock)
image_t = table(PostImage)
checklist_t = table(ChecklistItem)
note_t = table(PostNote)
stack_t = table(StackTerm)
tool_t = table(Tool)
entity_t = table(Entity)
post_stack_t = table(PostStack)
post_tool_t = table(PostTool)
post_entity_t = table(PostEntity)

CHILD_TABLES = (block_t, image_t, checklist_t, note_t, post_stack_t, post_tool_t, post_entity_t)

# SQLite allows 32,766 bound parameters per statement; PostgreSQL 65,535.
IN_CHUNK = 5_000

Status = Literal["created", "updated", "unchanged", "rejected"]


@dataclass(slots=True)
class Incoming:
    """A parsed document on its way into the store."""

    name: str  # where it came from: a file name, "-" or "mutation"
    text: str
    document: Document


@dataclass(slots=True)
class Outcome:
    """What happened to one document."""

    name: str
    source_id: str
    status: Status
    post_id: int | None = None
    error: str | None = None


@dataclass(slots=True)
class VocabularyCache:
    """Ids of stack terms, tools and entities already known to exist, kept across batches."""

    stack: dict[str, int] = field(default_factory=dict)
    tools: dict[str, int] = field(default_factory=dict)
    entities: dict[tuple[str, str], int] = field(default_factory=dict)

    def copy(self) -> VocabularyCache:
        """A copy to use inside a transaction; merge it back only once the transaction commits."""
        return VocabularyCache(dict(self.stack), dict(self.tools), dict(self.entities))

    def merge(self, other: VocabularyCache) -> None:
        self.stack.update(other.stack)
        self.tools.update(other.tools)
        self.entities.update(other.entities)


def chunks(values: Sequence[Any], size: int = IN_CHUNK) -> Iterable[Sequence[Any]]:
    for start in range(0, len(values), size):
        yield values[start : start + size]


def write_batch(
    conn: Connection,
    batch: Sequence[Incoming],
    vocabulary: VocabularyCache | None = None,
    now: dt.datetime | None = None,
) -> list[Outcome]:
    """Insert, update or skip each document of ``batch``; the caller commits.

    A document whose reference or slug belongs to another post is rejected and
    not written; the others are. Source ids must be unique within a batch.
    """
    vocabulary = vocabulary or VocabularyCache()
    now = now or dt.datetime.now(dt.UTC)
    source_ids = [item.document.source_id for item in batch]
    if len(set(source_ids)) != len(source_ids):
        raise ValueError("a batch holds each source id once")

    existing: dict[str, tuple[int, str]] = {}
    for part in chunks(source_ids):
        for row in conn.execute(
            select(post_t.c.source_id, post_t.c.id, post_t.c.content_hash).where(post_t.c.source_id.in_(part))
        ):
            existing[row.source_id] = (row.id, row.content_hash)

    outcomes: list[Outcome] = []
    to_write: list[tuple[Incoming, PostRows, int | None]] = []
    for item in batch:
        source_id = item.document.source_id
        rows = to_rows(item.document, item.text, now)
        known = existing.get(source_id)
        if known and known[1] == rows.post["content_hash"]:
            outcomes.append(Outcome(item.name, source_id, "unchanged", known[0]))
        else:
            to_write.append((item, rows, known[0] if known else None))

    to_write = _reject_taken_keys(conn, to_write, outcomes)
    if not to_write:
        return outcomes

    created = [(item, rows) for item, rows, post_id in to_write if post_id is None]
    updated = [(item, rows, post_id) for item, rows, post_id in to_write if post_id is not None]
    ids: dict[str, int] = {}
    if created:
        values = [dict(rows.post, similar_state=2) for _, rows in created]
        result = conn.execute(
            insert(post_t).returning(post_t.c.id, post_t.c.source_id, sort_by_parameter_order=True),
            values,
        )
        for row in result:
            ids[row.source_id] = row.id
        outcomes += [
            Outcome(item.name, item.document.source_id, "created", ids[item.document.source_id]) for item, _ in created
        ]
    if updated:
        values = []
        for item, rows, post_id in updated:
            changes = {k: v for k, v in rows.post.items() if k != "created_at"}
            values.append(dict(changes, similar_state=2, _id=post_id))
            ids[item.document.source_id] = post_id
        conn.execute(update(post_t).where(post_t.c.id == bindparam("_id")), values)
        updated_ids = [post_id for _, _, post_id in updated]
        for child in CHILD_TABLES:
            for part in chunks(updated_ids):
                conn.execute(delete(child).where(child.c.post_id.in_(part)))
        outcomes += [Outcome(item.name, item.document.source_id, "updated", post_id) for item, _, post_id in updated]

    all_rows = [(ids[item.document.source_id], rows) for item, rows, _ in to_write]
    _write_children(conn, all_rows, vocabulary)
    write_search(conn, [(post_id, rows.search) for post_id, rows in all_rows])
    return outcomes


def _reject_taken_keys(
    conn: Connection,
    to_write: list[tuple[Incoming, PostRows, int | None]],
    outcomes: list[Outcome],
) -> list[tuple[Incoming, PostRows, int | None]]:
    """Reject documents whose reference or slug another post (stored, or earlier in the batch) has."""
    references = [rows.post["reference"] for _, rows, _ in to_write]
    slugs = [rows.post["slug"] for _, rows, _ in to_write]
    owner: dict[tuple[str, str], str] = {}
    for column, values in (("reference", references), ("slug", slugs)):
        col = post_t.c[column]
        for part in chunks(values):
            for row in conn.execute(select(col, post_t.c.source_id).where(col.in_(part))):
                owner[(column, row[0])] = row.source_id
    kept = []
    for item, rows, post_id in to_write:
        source_id = item.document.source_id
        clash = None
        for column in ("reference", "slug"):
            holder = owner.setdefault((column, rows.post[column]), source_id)
            if holder != source_id:
                clash = f"{column} {rows.post[column]!r} already belongs to the post with source id {holder!r}"
                break
        if clash:
            outcomes.append(Outcome(item.name, source_id, "rejected", error=f"{item.name}: {clash}"))
        else:
            kept.append((item, rows, post_id))
    return kept


def _write_children(conn: Connection, posts: list[tuple[int, PostRows]], vocabulary: VocabularyCache) -> None:
    stack_ids = _ensure_names(conn, stack_t, {n for _, r in posts for n in r.stack}, vocabulary.stack)
    tool_ids = _ensure_names(conn, tool_t, {n for _, r in posts for n in r.tools}, vocabulary.tools)
    entity_ids = _ensure_entities(conn, {e for _, r in posts for e in r.entities}, vocabulary.entities)
    blocks, images, checklist, notes, stack, tools, entities = [], [], [], [], [], [], []
    for post_id, rows in posts:
        blocks += [dict(r, post_id=post_id) for r in rows.blocks]
        images += [dict(r, post_id=post_id) for r in rows.images]
        checklist += [dict(r, post_id=post_id) for r in rows.checklist]
        notes += [dict(r, post_id=post_id) for r in rows.notes]
        stack += [{"post_id": post_id, "term_id": stack_ids[n], "position": i} for i, n in enumerate(rows.stack, 1)]
        tools += [{"post_id": post_id, "tool_id": tool_ids[n], "position": i} for i, n in enumerate(rows.tools, 1)]
        entities += [
            {"post_id": post_id, "entity_id": entity_ids[e], "position": i} for i, e in enumerate(rows.entities, 1)
        ]
    for child, values in (
        (block_t, blocks),
        (image_t, images),
        (checklist_t, checklist),
        (note_t, notes),
        (post_stack_t, stack),
        (post_tool_t, tools),
        (post_entity_t, entities),
    ):
        if values:
            conn.execute(insert(child), values)


_SEARCH_DELETE = {
    "sqlite": text("DELETE FROM post_fts WHERE rowid IN :ids").bindparams(bindparam("ids", expanding=True)),
    "postgresql": text("DELETE FROM post_search WHERE post_id IN :ids").bindparams(bindparam("ids", expanding=True)),
}
_SEARCH_INSERT = {
    "sqlite": text(
        "INSERT INTO post_fts (rowid, title, intro, body, checklist, summary, topic) "
        "VALUES (:post_id, :title, :intro, :body, :checklist, :summary, :topic)"
    ),
    "postgresql": text(
        "INSERT INTO post_search (post_id, title, intro, body, checklist, summary, topic) "
        "VALUES (:post_id, :title, :intro, :body, :checklist, :summary, :topic)"
    ),
}


def write_search(conn: Connection, posts: list[tuple[int, dict[str, str]]]) -> None:
    """Replace the search index rows of these posts."""
    if not posts:
        return
    dialect = conn.dialect.name
    delete_posts_from_search(conn, [post_id for post_id, _ in posts])
    conn.execute(_SEARCH_INSERT[dialect], [dict(fields, post_id=post_id) for post_id, fields in posts])


def delete_posts_from_search(conn: Connection, post_ids: list[int]) -> None:
    for part in chunks(post_ids):
        conn.execute(_SEARCH_DELETE[conn.dialect.name], {"ids": list(part)})


def _insert_ignoring_conflicts(conn: Connection, target: Any, values: list[dict[str, Any]]) -> None:
    dialect = conn.dialect.name
    stmt = (sqlite.insert(target) if dialect == "sqlite" else postgresql.insert(target)).on_conflict_do_nothing()
    conn.execute(stmt, values)


def _ensure_names(conn: Connection, table: Any, names: set[str], cache: dict[str, int]) -> dict[str, int]:
    missing = sorted(names - cache.keys())
    if missing:
        _insert_ignoring_conflicts(conn, table, [{"name": n} for n in missing])
        for part in chunks(missing):
            for row in conn.execute(select(table.c.name, table.c.id).where(table.c.name.in_(part))):
                cache[row.name] = row.id
    return cache


def _ensure_entities(
    conn: Connection, entities: set[tuple[str, str]], cache: dict[tuple[str, str], int]
) -> dict[tuple[str, str], int]:
    missing = sorted(entities - cache.keys())
    if missing:
        _insert_ignoring_conflicts(conn, entity_t, [{"name": n, "type": t} for n, t in missing])
        names = sorted({n for n, _ in missing})
        for part in chunks(names):
            for row in conn.execute(
                select(entity_t.c.name, entity_t.c.type, entity_t.c.id).where(entity_t.c.name.in_(part))
            ):
                cache[(row.name, row.type)] = row.id
    return cache
