"""Stack terms, tools and entities with the number of readable posts that use each, a page at a time.

Counts come from the link tables alone, archived posts left out by id (no post is
read: at 100,000 posts that is 45 ms a list instead of 800). They are aggregates
over the whole store: each kind's full list is computed once per store version
(see ``aggregates.py``) and pages are cut from it.
"""

from __future__ import annotations

import bisect

from .aggregates import cached
from .db import RequestDb
from .post_sql import NOT_ARCHIVED
from .sql import sql

_TERMS = {
    kind: sql(
        f"SELECT v.name, count(*) AS posts FROM {vocabulary} v JOIN {link} l ON l.{key} = v.id "
        f"WHERE l.post_id {NOT_ARCHIVED} "
        'GROUP BY v.id, v.name ORDER BY v.name COLLATE "C"'
    )
    for kind, vocabulary, link, key in (
        ("stack", "stack_term", "post_stack", "term_id"),
        ("tools", "tool", "post_tool", "tool_id"),
    )
}
_ENTITIES = sql(
    "SELECT e.name, e.type, count(*) AS posts FROM entity e JOIN post_entity l ON l.entity_id = e.id "
    f"WHERE l.post_id {NOT_ARCHIVED} "
    'GROUP BY e.id, e.name, e.type ORDER BY e.name COLLATE "C", e.type COLLATE "C"'
)

Term = tuple[str, int]
EntityCount = tuple[str, str, int]


async def all_terms(db: RequestDb, kind: str) -> list[Term]:
    """Every stack term (``kind`` "stack") or tool ("tools") used by a readable post, with its count, by name."""

    db.lists_seen = True

    async def compute() -> list[Term]:
        return [(row[0], int(row[1])) for row in await db.fetch(_TERMS[kind])]

    return await cached(db, ("terms", kind), compute)


async def all_entities(db: RequestDb) -> list[EntityCount]:
    """Every entity mentioned by a readable post, with its count, by name then type."""

    db.lists_seen = True

    async def compute() -> list[EntityCount]:
        return [(row[0], row[1], int(row[2])) for row in await db.fetch(_ENTITIES)]

    return await cached(db, ("entities",), compute)


async def terms(db: RequestDb, kind: str, after: str, limit: int) -> list[Term]:
    """A page of terms after ``after`` (by code point)."""
    every = await all_terms(db, kind)
    start = bisect.bisect_right([name.encode() for name, _ in every], after.encode())
    return every[start : start + limit]


async def term_count(db: RequestDb, kind: str) -> int:
    return len(await all_terms(db, kind))


async def entities(db: RequestDb, type_: str | None, after: tuple[str, str], limit: int) -> list[EntityCount]:
    """A page of entities (of one type, if given) after ``after`` (name, type)."""
    every = [e for e in await all_entities(db) if type_ is None or e[1] == type_]
    keys = [(name.encode(), kind.encode()) for name, kind, _ in every]
    start = bisect.bisect_right(keys, (after[0].encode(), after[1].encode()))
    return every[start : start + limit]


async def entity_count(db: RequestDb, type_: str | None) -> int:
    return sum(1 for e in await all_entities(db) if type_ is None or e[1] == type_)


async def entity(db: RequestDb, name: str, type_: str) -> EntityCount | None:
    for found in await all_entities(db):
        if found[0] == name and found[1] == type_:
            return found
    return None
