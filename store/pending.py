"""Posts whose similar posts wait to be computed again (``similar_pending``): marked by writes,
cleared by the refresh (``store.similar``).

State 2: the post changed, so it and the posts whose lists it may enter or leave are
recomputed; state 1: only the post itself. A post without a row is fresh.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import ColumnElement, Connection, delete, func, select
from sqlalchemy.dialects import postgresql, sqlite

from models import SimilarPending, table

from .bulk import chunks, insert_many

pending_t = table(SimilarPending)
CHANGED, NEIGHBOUR = 2, 1


def mark_new(conn: Connection, post_ids: Sequence[int]) -> None:
    """Mark posts just inserted (none of them can have a mark yet) as changed."""
    insert_many(conn, pending_t, ("post_id", "state"), [(post_id, CHANGED) for post_id in post_ids])


def mark(conn: Connection, post_ids: Sequence[int], state: int) -> None:
    """Mark posts: as changed (a mark of 1 becomes 2), or as neighbours (a post already marked keeps
    its mark)."""
    if not post_ids:
        return
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    statement = dialect.insert(pending_t)
    if state == CHANGED:
        statement = statement.on_conflict_do_update(
            index_elements=["post_id"], set_={"state": CHANGED}, where=pending_t.c.state != CHANGED
        )
    else:
        statement = statement.on_conflict_do_nothing(index_elements=["post_id"])
    for part in chunks(list(post_ids)):
        conn.execute(statement, [{"post_id": post_id, "state": state} for post_id in part])


def ids(conn: Connection, where: ColumnElement[bool] | None = None) -> list[int]:
    """The marked posts (those ``where`` holds for), by id."""
    query = select(pending_t.c.post_id).order_by(pending_t.c.post_id)
    return list(conn.execute(query if where is None else query.where(where)).scalars())


def clear(conn: Connection, post_ids: Sequence[int], where: ColumnElement[bool] | None = None) -> None:
    """Clear the marks of these posts (those ``where`` holds for)."""
    for part in chunks(list(post_ids)):
        statement = delete(pending_t).where(pending_t.c.post_id.in_(part))
        conn.execute(statement if where is None else statement.where(where))


COUNT = select(func.count()).select_from(pending_t)

__all__ = ["CHANGED", "COUNT", "NEIGHBOUR", "clear", "ids", "mark", "mark_new", "pending_t"]
