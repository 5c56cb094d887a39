"""Cache keys of what a write changed, recorded in the write's own transaction.

Keys name what a cached response depends on: ``p<id>`` for each post whose data
it holds (its page, or its card in a list, or its place in another post's
similar posts) and ``lists`` for anything that lists, counts or searches posts.
A write records the keys of the posts it changed and ``lists``; a refresh of
similar posts records the keys of the posts whose lists it rewrote. Server
processes read the log to purge their caches; see ``server/purging.py``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

from sqlalchemy import Connection, insert, select, text

from models import PurgeLog, StoreVersion, table

LISTS = "lists"

# On PostgreSQL a write that purges is committed only once its WAL is flushed, also on a server
# with ``synchronous_commit = off`` (for this transaction alone: a stronger setting stays): when
# another process sees its purge-log row, the primary's flush position is past its commit, which
# a read replica's fence relies on (``server/replica.py``).
FLUSHED_COMMIT = text(
    "SELECT set_config('synchronous_commit', 'local', true) WHERE current_setting('synchronous_commit') = 'off'"
)

purge_t = table(PurgeLog)
version_t = table(StoreVersion)


def post_key(post_id: int) -> str:
    return f"p{post_id}"


def keys_for(post_ids: Iterable[int], lists: bool) -> list[str]:
    keys = [post_key(post_id) for post_id in sorted(set(post_ids))]
    return [*keys, LISTS] if lists else keys


def record(conn: Connection, post_ids: Iterable[int], *, lists: bool, version: int | None = None) -> list[str]:
    """Log the keys a write changed, in its transaction, at the store's ``version`` (read when not
    given); returns them."""
    keys = keys_for(post_ids, lists)
    if not keys:
        return keys
    if version is None:
        version = conn.execute(select(version_t.c.version).where(version_t.c.id == 1)).scalar_one_or_none() or 0
    if conn.dialect.name == "postgresql":
        conn.execute(FLUSHED_COMMIT)
    conn.execute(insert(purge_t).values(version=version, keys=" ".join(keys), created_at=dt.datetime.now(dt.UTC)))
    return keys
