"""Revisions: every write of a post keeps its page text, numbered per post, with who, when and why."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import Connection, func, insert, select

from models.revisions import PostRevision
from models.tables import table

revision_t = table(PostRevision)


@dataclass(frozen=True, slots=True)
class NewRevision:
    post_id: int
    text: str
    content_hash: str
    author: str
    reason: str


def record(conn: Connection, revisions: Sequence[NewRevision], now: dt.datetime) -> dict[int, int]:
    """Append one revision per post; returns each post's new revision number."""
    if not revisions:
        return {}
    ids = [r.post_id for r in revisions]
    latest: dict[int, int] = {}
    for start in range(0, len(ids), 5_000):
        part = ids[start : start + 5_000]
        latest.update(
            conn.execute(
                select(revision_t.c.post_id, func.max(revision_t.c.number))
                .where(revision_t.c.post_id.in_(part))
                .group_by(revision_t.c.post_id)
            ).all()
        )
    numbers = {r.post_id: latest.get(r.post_id, 0) + 1 for r in revisions}
    insert_numbered(
        conn, [(r.post_id, numbers[r.post_id], r.text, r.content_hash, r.author, r.reason) for r in revisions], now
    )
    return numbers


def insert_numbered(conn: Connection, rows: Sequence[tuple[int, int, str, str, str, str]], now: dt.datetime) -> None:
    """Append revisions whose numbers are known: (post id, number, text, content hash, author, reason)."""
    columns = ("post_id", "number", "text", "content_hash", "author", "reason")
    conn.execute(insert(revision_t), [{**dict(zip(columns, row, strict=True)), "created_at": now} for row in rows])


def text_of(conn: Connection, post_id: int, number: int) -> str | None:
    """The page text of one revision, or None if the post has no such revision."""
    row = conn.execute(
        select(revision_t.c.text).where(revision_t.c.post_id == post_id, revision_t.c.number == number)
    ).first()
    return None if row is None else str(row[0])


def latest_number(conn: Connection, post_id: int) -> int:
    return int(
        conn.execute(
            select(func.coalesce(func.max(revision_t.c.number), 0)).where(revision_t.c.post_id == post_id)
        ).scalar_one()
    )
