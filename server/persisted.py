"""Persisted queries: the automatic protocol, and an allow-list mode.

Automatic persisted queries (Apollo's protocol): a client sends
``extensions.persistedQuery = {version: 1, sha256Hash}`` with no query; if the
server knows the hash it runs that query, otherwise it answers
PERSISTED_QUERY_NOT_FOUND and the client sends the query with its hash once,
which the server checks and keeps. The short requests that follow fit in a GET
URL, so CDNs and browsers can cache them.

With ``ALPHANODE_PERSISTED_ONLY=1`` only registered operations run: the
documents in a folder of ``.graphql`` files (the frontend's operations by
default), by hash or by their exact text; nothing new is registered.

With Redis, the queries clients sent are shared by every process through it;
while Redis is down each process keeps them in its own store (as without Redis),
and writes those it learned meanwhile to Redis when it answers again.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from cachetools import FIFOCache, LRUCache

from .http.errors import HttpError
from .http.negotiation import JSON
from .redis_link import CacheUnavailable, RedisLink

TTL = 30 * 24 * 3600  # seconds a query sent by a client stays in Redis


class PersistedQueryError(HttpError):
    """A persisted-query request that cannot be served: 400, except that a hash not known yet
    answers 200 in ``application/json``, as Apollo's clients expect before they send the query."""

    def __init__(self, message: str, code: str) -> None:
        super().__init__(400, message, code)

    def status_for(self, media_type: str) -> int:
        return 200 if self.code == "PERSISTED_QUERY_NOT_FOUND" and media_type == JSON else self.status


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class PersistedQueries:
    """Known queries by hash: registered ones, and (unless allow-list only) those clients sent."""

    def __init__(
        self,
        folder: Path | None = None,
        *,
        allow_list_only: bool = False,
        redis: RedisLink | None = None,
        prefix: str = "alphanode:",
        max_entries: int = 10_000,
    ) -> None:
        self.allow_list_only = allow_list_only
        self.registered: dict[str, str] = {}
        self.redis = redis
        self.prefix = prefix
        self.max_entries = max_entries
        self._learned: LRUCache[str, str] = LRUCache(max_entries)
        # Learned while Redis could not be written, the oldest let go first past max_entries.
        self._unsynced: FIFOCache[str, None] = FIFOCache(max_entries)
        if redis is not None:
            redis.add_recovery(self)
        if folder is not None:
            for path in sorted(folder.glob("*.graphql")):
                text = path.read_text(encoding="utf-8")
                self.registered[sha256(text)] = text

    async def resolve(self, query: str | None, extensions: dict[str, Any] | None) -> tuple[str | None, bool]:
        """The query to run, and whether it came by hash; PersistedQueryError when it cannot run."""
        persisted = (extensions or {}).get("persistedQuery")
        if persisted is None:
            if self.allow_list_only and query is not None and sha256(query) not in self.registered:
                raise PersistedQueryError(
                    "this server runs registered operations only: send a registered operation, or its sha256Hash "
                    "in extensions.persistedQuery",
                    "PERSISTED_QUERY_REQUIRED",
                )
            return query, False
        if not isinstance(persisted, dict) or persisted.get("version") != 1:
            raise PersistedQueryError("persistedQuery: only version 1 is supported", "PERSISTED_QUERY_VERSION")
        digest = persisted.get("sha256Hash")
        if not isinstance(digest, str) or len(digest) != 64:
            raise PersistedQueryError("persistedQuery.sha256Hash must be 64 hexadecimal digits", "BAD_REQUEST")
        digest = digest.lower()
        if query is not None:
            if sha256(query) != digest:
                raise PersistedQueryError("persistedQuery.sha256Hash is not the sha256 of the query", "BAD_REQUEST")
            if self.allow_list_only and digest not in self.registered:
                raise PersistedQueryError(
                    "this server runs registered operations only; this one is not registered",
                    "PERSISTED_QUERY_REQUIRED",
                )
            await self._learn(digest, query)
            return query, True
        known = await self.lookup(digest)
        if known is None:
            raise PersistedQueryError("PersistedQueryNotFound", "PERSISTED_QUERY_NOT_FOUND")
        return known, True

    async def lookup(self, digest: str) -> str | None:
        """The query of a hash: registered, learned here, or (when it answers) learned by another process."""
        found = self.registered.get(digest)
        if found is not None or self.allow_list_only:
            return found
        found = self._learned.get(digest)
        if found is None and self.redis is not None:
            try:
                value = await self.redis.call("persisted_get", self.redis.client.get, self._name(digest))
            except CacheUnavailable:
                return None  # the client sends the query again, and it is learned here
            found = value.decode("utf-8") if value is not None else None
        return found

    async def _learn(self, digest: str, query: str) -> None:
        if digest in self.registered or self.allow_list_only:
            return
        self._learned[digest] = query
        if self.redis is not None:
            try:
                name = self._name(digest)
                await self.redis.call("persisted_set", self.redis.client.set, name, query.encode(), ex=TTL)
            except CacheUnavailable:
                self._unsynced[digest] = None

    def _name(self, digest: str) -> str:
        return f"{self.prefix}pq:{digest}"

    def pending(self) -> bool:
        """Whether queries learned while Redis was down wait to be written to it."""
        return bool(self._unsynced)

    async def recover(self, restarted: bool) -> None:
        """Write the queries learned while Redis was down (on the raw client: the breaker is still open)."""
        assert self.redis is not None
        while self._unsynced:
            batch = list(self._unsynced)[:100]
            async with self.redis.client.pipeline(transaction=False) as pipe:
                for digest in batch:
                    query = self._learned.get(digest)
                    if query is not None:
                        pipe.set(self._name(digest), query.encode(), ex=TTL)
                await pipe.execute()
            for digest in batch:
                self._unsynced.pop(digest, None)
