"""The response cache: whole responses of public queries, purged by surrogate key.

An entry is keyed by the operation, its variables and the role (only public
requests are cached: a request with credentials is never served from nor stored
into the cache). Each entry carries the surrogate keys of what it holds
(``p<id>`` per post, ``lists`` for anything listing, counting or searching); a
write purges exactly its keys, read from the purge log (``server/purging.py``).

Two backends: in the process (default), or Redis when ``ALPHANODE_REDIS_URL`` is
set, so that every worker and instance shares one cache. A purge that lands
while a response is being computed from an older snapshot must not let that
response into the cache afterwards: each purge is numbered (its purge-log id),
a request notes the number it started at, and an entry is only stored if none
of its keys was purged since.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Protocol

import orjson


@dataclass(frozen=True, slots=True)
class Entry:
    """A cached response."""

    body: bytes
    etag: str
    keys: tuple[str, ...]
    media_type: str


def cache_key(query: str, operation_name: str | None, variables: dict[str, Any] | None, role: str = "public") -> str:
    """The cache key of an operation with its variables, for one role."""
    raw = orjson.dumps([query, operation_name, variables or {}, role], option=orjson.OPT_SORT_KEYS)
    return hashlib.sha256(raw).hexdigest()


def etag_of(body: bytes) -> str:
    return '"' + hashlib.blake2b(body, digest_size=12).hexdigest() + '"'


class ResponseCache(Protocol):
    """What the HTTP layer needs of a cache."""

    generation: int  # the newest purge applied here (a purge-log id)

    async def get(self, key: str) -> Entry | None: ...

    async def put(self, key: str, entry: Entry, started_at: int) -> bool: ...

    async def purge(self, keys: Iterable[str], generation: int) -> int: ...

    async def close(self) -> None: ...


class MemoryCache:
    """A least-recently-used cache in this process, bounded in bytes."""

    def __init__(self, max_bytes: int = 64 * 1024 * 1024) -> None:
        self.max_bytes = max_bytes
        self.generation = 0
        self._entries: OrderedDict[str, Entry] = OrderedDict()
        self._by_key: dict[str, set[str]] = {}
        self._purged: dict[str, int] = {}  # surrogate key -> generation of its last purge
        self._bytes = 0

    async def get(self, key: str) -> Entry | None:
        entry = self._entries.get(key)
        if entry is not None:
            self._entries.move_to_end(key)
        return entry

    async def put(self, key: str, entry: Entry, started_at: int) -> bool:
        if any(self._purged.get(k, 0) > started_at for k in entry.keys):
            return False  # computed from data a purge has replaced since
        await self._drop(key)
        self._entries[key] = entry
        self._bytes += len(entry.body)
        for surrogate in entry.keys:
            self._by_key.setdefault(surrogate, set()).add(key)
        while self._bytes > self.max_bytes and self._entries:
            await self._drop(next(iter(self._entries)))
        return True

    async def purge(self, keys: Iterable[str], generation: int) -> int:
        dropped = 0
        for surrogate in keys:
            self._purged[surrogate] = max(generation, self._purged.get(surrogate, 0))
            for key in self._by_key.pop(surrogate, set()):
                dropped += await self._drop(key)
        self.generation = max(self.generation, generation)
        return dropped

    async def _drop(self, key: str) -> int:
        entry = self._entries.pop(key, None)
        if entry is None:
            return 0
        self._bytes -= len(entry.body)
        for surrogate in entry.keys:
            members = self._by_key.get(surrogate)
            if members is not None:
                members.discard(key)
                if not members:
                    del self._by_key[surrogate]
        return 1

    async def close(self) -> None:
        self._entries.clear()
        self._by_key.clear()

    def __len__(self) -> int:
        return len(self._entries)


# KEYS: the entry, then each surrogate key's purge mark, then each surrogate key's set.
# ARGV: started_at, ttl, body, etag, keys, media type, the entry's cache key.
_PUT = """
local n = (#KEYS - 1) / 2
for i = 2, n + 1 do
  local purged = redis.call('GET', KEYS[i])
  if purged and tonumber(purged) > tonumber(ARGV[1]) then return 0 end
end
redis.call('HSET', KEYS[1], 'body', ARGV[3], 'etag', ARGV[4], 'keys', ARGV[5], 'media_type', ARGV[6])
redis.call('EXPIRE', KEYS[1], ARGV[2])
for i = n + 2, #KEYS do
  redis.call('SADD', KEYS[i], ARGV[7])
  redis.call('EXPIRE', KEYS[i], ARGV[2])
end
return 1
"""
# KEYS: pairs of (a surrogate key's set, its purge mark). ARGV: generation, ttl, the entries' prefix.
_PURGE = """
local dropped = 0
for i = 1, #KEYS, 2 do
  for _, member in ipairs(redis.call('SMEMBERS', KEYS[i])) do
    dropped = dropped + redis.call('DEL', ARGV[3] .. member)
  end
  redis.call('DEL', KEYS[i])
  local mark = tonumber(redis.call('GET', KEYS[i + 1]) or '0')
  if tonumber(ARGV[1]) > mark then redis.call('SET', KEYS[i + 1], ARGV[1], 'EX', ARGV[2]) end
end
return dropped
"""


class RedisCache:
    """One cache for every process and instance, in Redis.

    ``<prefix>r:<key>`` holds an entry (a hash, with a time to live as a safety net),
    ``<prefix>k:<surrogate>`` the entries that carry a surrogate key, ``<prefix>g:<surrogate>``
    the generation of the key's last purge. Storing and purging are each one Lua script, so
    a purge never lands between an entry's check and its write. (The scripts touch keys they
    compute, which a Redis Cluster would refuse: use a single Redis, or a replicated one.)
    """

    def __init__(self, url: str, prefix: str = "alphanode:", ttl_seconds: int = 3600) -> None:
        from redis import asyncio as redis

        self.redis: Any = redis.from_url(url)
        self.prefix = prefix
        self.ttl = ttl_seconds
        self.generation = 0
        self._put = self.redis.register_script(_PUT)
        self._purge = self.redis.register_script(_PURGE)

    async def get(self, key: str) -> Entry | None:
        found = await self.redis.hgetall(self.prefix + "r:" + key)
        if not found:
            return None
        return Entry(
            body=found[b"body"],
            etag=found[b"etag"].decode(),
            keys=tuple(found[b"keys"].decode().split()),
            media_type=found[b"media_type"].decode(),
        )

    async def put(self, key: str, entry: Entry, started_at: int) -> bool:
        # One script: the check against later purges and the write happen atomically.
        names = [self.prefix + "r:" + key]
        names += [self.prefix + "g:" + k for k in entry.keys]
        names += [self.prefix + "k:" + k for k in entry.keys]
        stored = await self._put(
            keys=names,
            args=[started_at, self.ttl, entry.body, entry.etag, " ".join(entry.keys), entry.media_type, key],
        )
        return bool(stored)

    async def purge(self, keys: Iterable[str], generation: int) -> int:
        names = []
        for surrogate in keys:
            names += [self.prefix + "k:" + surrogate, self.prefix + "g:" + surrogate]
        if not names:
            return 0
        dropped = int(await self._purge(keys=names, args=[generation, self.ttl, self.prefix + "r:"]))
        self.generation = max(self.generation, generation)
        return dropped

    async def clear(self) -> None:
        """Remove every key under the prefix (tests, and operators resetting a cache)."""
        async for name in self.redis.scan_iter(match=self.prefix + "*", count=1000):
            await self.redis.delete(name)

    async def close(self) -> None:
        await self.redis.aclose()
