"""Stack terms, tools and entities with the number of posts that use each, a page at a time."""

from __future__ import annotations

from .db import RequestDb, Row
from .sql import sql

_TERMS = {
    kind: (
        sql(
            f"SELECT v.name, count(*) AS posts FROM {vocabulary} v JOIN {link} l ON l.{key} = v.id "
            'WHERE v.name COLLATE "C" > ? GROUP BY v.id, v.name ORDER BY v.name COLLATE "C" LIMIT ?'
        ),
        sql(f"SELECT count(DISTINCT l.{key}) FROM {link} l"),
    )
    for kind, vocabulary, link, key in (
        ("stack", "stack_term", "post_stack", "term_id"),
        ("tools", "tool", "post_tool", "tool_id"),
    )
}

_ENTITIES = sql(
    "SELECT e.name, e.type, count(*) AS posts FROM entity e JOIN post_entity l ON l.entity_id = e.id "
    'WHERE (CAST(? AS TEXT) IS NULL OR e.type = ?) AND (e.name COLLATE "C", e.type COLLATE "C") > (?, ?) '
    'GROUP BY e.id, e.name, e.type ORDER BY e.name COLLATE "C", e.type COLLATE "C" LIMIT ?'
)
_ENTITY_COUNT = sql(
    "SELECT count(DISTINCT l.entity_id) FROM post_entity l JOIN entity e ON e.id = l.entity_id "
    "WHERE (CAST(? AS TEXT) IS NULL OR e.type = ?)"
)
_ENTITY = sql(
    "SELECT e.name, e.type, count(*) AS posts FROM entity e JOIN post_entity l ON l.entity_id = e.id "
    "WHERE e.name = ? AND e.type = ? GROUP BY e.id, e.name, e.type"
)


async def terms(db: RequestDb, kind: str, after: str, limit: int) -> list[Row]:
    """(name, posts) of stack terms or tools used by at least one post, by name, after ``after``."""
    statement, _ = _TERMS[kind]
    return await db.fetch(statement, (after, limit))


async def term_count(db: RequestDb, kind: str) -> int:
    return int(await db.scalar(_TERMS[kind][1]))


async def entities(db: RequestDb, type_: str | None, after: tuple[str, str], limit: int) -> list[Row]:
    """(name, type, posts) of entities mentioned by at least one post, by name then type."""
    return await db.fetch(_ENTITIES, (type_, type_, after[0], after[1], limit))


async def entity_count(db: RequestDb, type_: str | None) -> int:
    return int(await db.scalar(_ENTITY_COUNT, (type_, type_)))


async def entity(db: RequestDb, name: str, type_: str) -> Row | None:
    rows = await db.fetch(_ENTITY, (name, type_))
    return rows[0] if rows else None
