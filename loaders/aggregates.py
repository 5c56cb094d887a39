"""Aggregates (facet counts, vocabulary counts) cached per process until the store changes.

Counting every post by topic, stack or tool costs a scan of the store; the
answer changes only when something is written. Every write transaction bumps
the store's version (``store_version``, one row); a request reads the version
once, in its own snapshot, and an aggregate computed at that version is reused
until a write bumps it. Each read pool (one store, in one process) keeps its own
cache, bounded in size.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Hashable
from typing import Any, TypeVar

from cachetools import LRUCache

from .db import RequestDb
from .sql import sql

T = TypeVar("T")

_VERSION = sql("SELECT version FROM store_version WHERE id = 1")
MAX_ENTRIES = 2_000


class AggregateCache:
    """Values computed at a store version, most recently used kept."""

    def __init__(self, max_entries: int = MAX_ENTRIES) -> None:
        self.max_entries = max_entries
        self._entries: LRUCache[Hashable, tuple[int, Any]] = LRUCache(max_entries)
        self.hits = 0
        self.misses = 0

    async def get(self, db: RequestDb, key: Hashable, compute: Callable[[], Awaitable[T]]) -> T:
        version = await store_version(db)
        if version is None:  # a store without the version row: nothing can be cached safely
            return await compute()
        found = self._entries.get(key)
        if found is not None and found[0] == version:
            self.hits += 1
            kept: T = found[1]
            return kept
        self.misses += 1
        value = await compute()
        self._entries[key] = (version, value)  # (the least recently used out past max_entries)
        return value

    def clear(self) -> None:
        self._entries.clear()


async def store_version(db: RequestDb) -> int | None:
    """The store's version in this request's snapshot, read once per request; None without a version row."""
    if db.version is None:
        value = await db.scalar(_VERSION)
        db.version = -1 if value is None else int(value)
    return None if db.version < 0 else db.version


async def cached(db: RequestDb, key: Hashable, compute: Callable[[], Awaitable[T]]) -> T:
    """``compute()``, or its value from the store's cache if nothing was written since."""
    cache = db.pool.aggregates
    assert isinstance(cache, AggregateCache)
    return await cache.get(db, key, compute)
