"""Write a batch of documents in one transaction: insert, update or skip each.

Functions here take a synchronous SQLAlchemy ``Connection`` inside a
transaction the caller owns; async callers use ``AsyncConnection.run_sync``.
Bulk statements are ``executemany`` over plain dicts: the ORM's unit of work is
an order of magnitude slower for imports and buys nothing here.
"""

from __future__ import annotations

import datetime as dt
import operator
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from sqlalchemy import Connection, bindparam, delete, func, insert, select, update
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
    StoreVersion,
    Tool,
    table,
)

from . import pending, purge, revisions
from .bulk import chunks, insert_many, write_search
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
version_t = table(StoreVersion)

CHILD_TABLES = (block_t, image_t, checklist_t, note_t, post_stack_t, post_tool_t, post_entity_t)

# Documents whose new stack terms, tools and entities are numbered together (the batch size
# imports had): vocabulary ids do not depend on the size of batches.
VOCABULARY_SLICE = 500

Status = Literal["created", "updated", "unchanged", "rejected"]


@dataclass(slots=True)
class Incoming:
    """A parsed document on its way into the store."""

    name: str  # where it came from: a file name, "-" or "mutation"
    text: str
    document: Document
    author: str = "import"  # who writes it, for the revision history
    reason: str | None = None  # why; "imported from <name>" if not given

    @property
    def source_id(self) -> str:
        return self.document.source_id

    def rows(self, now: dt.datetime) -> PostRows:
        return to_rows(self.document, self.text, now)


@dataclass(slots=True)
class Prepared:
    """A document already split into rows (by an import worker); its timestamps are set when it is written."""

    name: str
    post_rows: PostRows
    author: str = "import"
    reason: str | None = None

    @property
    def source_id(self) -> str:
        return str(self.post_rows.post["source_id"])

    def rows(self, now: dt.datetime) -> PostRows:
        self.post_rows.post["created_at"] = self.post_rows.post["updated_at"] = now
        return self.post_rows


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


def write_batch(
    conn: Connection,
    batch: Sequence[Incoming | Prepared],
    vocabulary: VocabularyCache | None = None,
    now: dt.datetime | None = None,
) -> list[Outcome]:
    """Insert, update or skip each document of ``batch``; the caller commits.

    A document whose reference or slug belongs to another post is rejected and
    not written; the others are. Source ids must be unique within a batch.
    """
    vocabulary = vocabulary or VocabularyCache()
    now = now or dt.datetime.now(dt.UTC)
    source_ids = [item.source_id for item in batch]
    if len(set(source_ids)) != len(source_ids):
        raise ValueError("a batch holds each source id once")

    existing: dict[str, tuple[int, str]] = {}
    for part in chunks(source_ids):
        for row in conn.execute(
            select(post_t.c.source_id, post_t.c.id, post_t.c.content_hash).where(post_t.c.source_id.in_(part))
        ):
            existing[row.source_id] = (row.id, row.content_hash)

    outcomes: list[Outcome] = []
    to_write: list[tuple[Incoming | Prepared, PostRows, int | None]] = []
    for item in batch:
        source_id = item.source_id
        rows = item.rows(now)
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
    ids = _insert_posts(conn, created, outcomes)
    ids.update(_update_posts(conn, updated, outcomes))
    _write_rest(conn, batch, to_write, ids, vocabulary, now)
    return outcomes


def _insert_posts(
    conn: Connection, created: list[tuple[Incoming | Prepared, PostRows]], outcomes: list[Outcome]
) -> dict[str, int]:
    """Insert the new posts' rows; their ids by source id."""
    ids: dict[str, int] = {}
    if created and conn.dialect.name == "sqlite":
        ids.update(_insert_numbered(conn, [rows for _, rows in created]))
        outcomes += [Outcome(item.name, item.source_id, "created", ids[item.source_id]) for item, _ in created]
    elif created:
        values = [rows.post for _, rows in created]
        result = conn.execute(
            insert(post_t).returning(post_t.c.id, post_t.c.source_id, sort_by_parameter_order=True),
            values,
        )
        for row in result:
            ids[row.source_id] = row.id
        outcomes += [Outcome(item.name, item.source_id, "created", ids[item.source_id]) for item, _ in created]
    pending.mark_new(conn, list(ids.values()))
    return ids


def _update_posts(
    conn: Connection, updated: list[tuple[Incoming | Prepared, PostRows, int]], outcomes: list[Outcome]
) -> dict[str, int]:
    """Update the changed posts' rows and drop their child rows (written again); their ids by source id."""
    ids: dict[str, int] = {}
    if updated:
        values = []
        changed_terms = []
        old_terms = _terms_of(conn, [post_id for _, _, post_id in updated])
        for item, rows, post_id in updated:
            changes = {k: v for k, v in rows.post.items() if k != "created_at"}
            # Similar posts depend on terms only: an edit that keeps them (a status, a title, a
            # score) leaves every similar-posts list as it is, and needs no refresh.
            if old_terms.get(post_id) != _new_terms(rows):
                changed_terms.append(post_id)
            values.append(dict(changes, _id=post_id))
            ids[item.source_id] = post_id
        conn.execute(update(post_t).where(post_t.c.id == bindparam("_id")), values)
        pending.mark(conn, changed_terms, pending.CHANGED)
        updated_ids = [post_id for _, _, post_id in updated]
        for child in CHILD_TABLES:
            for part in chunks(updated_ids):
                conn.execute(delete(child).where(child.c.post_id.in_(part)))
        outcomes += [Outcome(item.name, item.source_id, "updated", post_id) for item, _, post_id in updated]
    return ids


def _write_rest(
    conn: Connection,
    batch: Sequence[Incoming | Prepared],
    to_write: list[tuple[Incoming | Prepared, PostRows, int | None]],
    ids: dict[str, int],
    vocabulary: VocabularyCache,
    now: dt.datetime,
) -> None:
    """Everything of the written posts but their rows: vocabulary, child rows, search, revisions,
    the store's version and the purge log."""
    # New vocabulary gets its ids a slice of the batch at a time, as it did when batches were that
    # size: the ids order equally rare terms in similar posts, so a larger batch changes nothing there.
    position = {id(item): n for n, item in enumerate(batch)}
    for start in range(0, len(batch), VOCABULARY_SLICE):
        _ensure_vocabulary(
            conn,
            [rows for item, rows, _ in to_write if start <= position[id(item)] < start + VOCABULARY_SLICE],
            vocabulary,
        )
    all_rows = [(ids[item.source_id], rows) for item, rows, _ in to_write]
    _write_children(conn, all_rows, vocabulary)
    write_search(conn, [(post_id, rows.search) for post_id, rows in all_rows])
    revisions.record(
        conn,
        [
            revisions.NewRevision(
                ids[item.source_id],
                rows.text,
                rows.post["content_hash"],
                item.author,
                item.reason or f"imported from {item.name}",
            )
            for item, rows, _ in to_write
        ],
        now,
    )
    version = bump_store_version(conn)
    purge.record(conn, [ids[item.source_id] for item, _, _ in to_write], lists=True, version=version)


def bump_store_version(conn: Connection) -> int:
    """Tell readers that aggregates (facets, counts, the vocabulary) computed before are stale; the
    store's new version."""
    stmt = (sqlite.insert(version_t) if conn.dialect.name == "sqlite" else postgresql.insert(version_t)).values(
        id=1, version=1
    )
    stmt = stmt.on_conflict_do_update(index_elements=["id"], set_={"version": version_t.c.version + 1})
    return int(conn.execute(stmt.returning(version_t.c.version)).scalar_one())


Terms = tuple[str, frozenset[str], frozenset[str], frozenset[tuple[str, str]]]


def _terms_of(conn: Connection, post_ids: list[int]) -> dict[int, Terms]:
    """Each post's terms as stored: topic, stack, tools, entities."""
    found: dict[int, tuple[str, set[str], set[str], set[tuple[str, str]]]] = {}
    for part in chunks(post_ids):
        for post_id, topic in conn.execute(select(post_t.c.id, post_t.c.topic).where(post_t.c.id.in_(part))):
            found[post_id] = (topic, set(), set(), set())
        for post_id, name in conn.execute(
            select(post_stack_t.c.post_id, stack_t.c.name)
            .join(stack_t, stack_t.c.id == post_stack_t.c.term_id)
            .where(post_stack_t.c.post_id.in_(part))
        ):
            found[post_id][1].add(name)
        for post_id, name in conn.execute(
            select(post_tool_t.c.post_id, tool_t.c.name)
            .join(tool_t, tool_t.c.id == post_tool_t.c.tool_id)
            .where(post_tool_t.c.post_id.in_(part))
        ):
            found[post_id][2].add(name)
        for post_id, name, type_ in conn.execute(
            select(post_entity_t.c.post_id, entity_t.c.name, entity_t.c.type)
            .join(entity_t, entity_t.c.id == post_entity_t.c.entity_id)
            .where(post_entity_t.c.post_id.in_(part))
        ):
            found[post_id][3].add((name, type_))
    return {
        post_id: (topic, frozenset(stack), frozenset(tools), frozenset(entities))
        for post_id, (topic, stack, tools, entities) in found.items()
    }


def _new_terms(rows: PostRows) -> Terms:
    """The terms a document brings, shaped like ``_terms_of``'s."""
    return (rows.post["topic"], frozenset(rows.stack), frozenset(rows.tools), frozenset(rows.entities))


def _insert_numbered(conn: Connection, posts: list[PostRows]) -> dict[str, int]:
    """Insert new posts on SQLite with the ids SQLite would give them (one more than the largest).

    Given ids let the rows go in one ``executemany``: to return generated ids in order,
    SQLAlchemy inserts the rows one statement each. The caller holds the write lock.
    """
    first = (conn.execute(select(func.max(post_t.c.id))).scalar() or 0) + 1
    given = posts[0].post
    columns = tuple(c.name for c in post_t.columns if c.name == "id" or c.name in given)
    values = operator.itemgetter(*columns)
    insert_many(
        conn,
        post_t,
        columns,
        [values({**rows.post, "id": first + n}) for n, rows in enumerate(posts)],
    )
    return {rows.post["source_id"]: first + n for n, rows in enumerate(posts)}


def _reject_taken_keys(
    conn: Connection,
    to_write: list[tuple[Incoming | Prepared, PostRows, int | None]],
    outcomes: list[Outcome],
) -> list[tuple[Incoming | Prepared, PostRows, int | None]]:
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
        source_id = item.source_id
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


def _ensure_vocabulary(conn: Connection, posts: list[PostRows], vocabulary: VocabularyCache) -> None:
    ensure_names(conn, stack_t, {n for r in posts for n in r.stack}, vocabulary.stack)
    ensure_names(conn, tool_t, {n for r in posts for n in r.tools}, vocabulary.tools)
    ensure_entities(conn, {e for r in posts for e in r.entities}, vocabulary.entities)


def _write_children(conn: Connection, posts: list[tuple[int, PostRows]], vocabulary: VocabularyCache) -> None:
    stack_ids = ensure_names(conn, stack_t, {n for _, r in posts for n in r.stack}, vocabulary.stack)
    tool_ids = ensure_names(conn, tool_t, {n for _, r in posts for n in r.tools}, vocabulary.tools)
    entity_ids = ensure_entities(conn, {e for _, r in posts for e in r.entities}, vocabulary.entities)
    blocks: list[tuple[Any, ...]] = []
    images: list[tuple[Any, ...]] = []
    checklist: list[tuple[Any, ...]] = []
    notes: list[tuple[Any, ...]] = []
    stack: list[tuple[Any, ...]] = []
    tools: list[tuple[Any, ...]] = []
    entities: list[tuple[Any, ...]] = []
    for post_id, rows in posts:
        blocks += [(post_id, r["position"], r["kind"], r["text"], r["image"], r["gap"]) for r in rows.blocks]
        images += [(post_id, r["position"], r["caption"], r["source"], r["url"]) for r in rows.images]
        checklist += [(post_id, r["position"], r["text"]) for r in rows.checklist]
        notes += [(post_id, r["position"], r["text"]) for r in rows.notes]
        stack += [(post_id, stack_ids[n], i) for i, n in enumerate(rows.stack, 1)]
        tools += [(post_id, tool_ids[n], i) for i, n in enumerate(rows.tools, 1)]
        entities += [(post_id, entity_ids[e], i) for i, e in enumerate(rows.entities, 1)]
    insert_many(conn, block_t, ("post_id", "position", "kind", "text", "image", "gap"), blocks)
    insert_many(conn, image_t, ("post_id", "position", "caption", "source", "url"), images)
    insert_many(conn, checklist_t, ("post_id", "position", "text"), checklist)
    insert_many(conn, note_t, ("post_id", "position", "text"), notes)
    insert_many(conn, post_stack_t, ("post_id", "term_id", "position"), stack)
    insert_many(conn, post_tool_t, ("post_id", "tool_id", "position"), tools)
    insert_many(conn, post_entity_t, ("post_id", "entity_id", "position"), entities)


def _insert_ignoring_conflicts(conn: Connection, target: Any, values: list[dict[str, Any]]) -> None:
    dialect = conn.dialect.name
    stmt = (sqlite.insert(target) if dialect == "sqlite" else postgresql.insert(target)).on_conflict_do_nothing()
    conn.execute(stmt, values)


def ensure_names(conn: Connection, table: Any, names: set[str], cache: dict[str, int]) -> dict[str, int]:
    missing = sorted(names - cache.keys())
    if missing:
        _insert_ignoring_conflicts(conn, table, [{"name": n} for n in missing])
        for part in chunks(missing):
            for row in conn.execute(select(table.c.name, table.c.id).where(table.c.name.in_(part))):
                cache[row.name] = row.id
    return cache


def ensure_entities(
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
