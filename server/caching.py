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

Redis is an optimization, never a requirement: every use of it goes through a
circuit breaker (``RedisLink``). The first call that fails (refused, reset, or
slower than ``ALPHANODE_REDIS_TIMEOUT``) marks Redis down; from then on no
request touches it (a look-up is a miss, a store is skipped) while a background
task probes it twice a second. Purges that could not reach Redis are remembered
and applied when it answers again, before anything is read from it; a Redis
that restarted (a new ``run_id``), which may have come back with an older
dataset, has every entry under the prefix invalidated first.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

import orjson
from cachetools import FIFOCache, LRUCache

from .redis_link import CacheUnavailable, RedisLink

log = logging.getLogger("alphanode.cache")

T = TypeVar("T")


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

    @property
    def available(self) -> bool:
        """False while the cache cannot be used (Redis down): look-ups miss without asking it."""
        ...

    async def get(self, key: str) -> Entry | None: ...

    async def put(self, key: str, entry: Entry, started_at: int) -> bool: ...

    async def purge(self, keys: Iterable[str], generation: int) -> int: ...

    async def close(self) -> None: ...


MAX_PURGE_MARKS = 50_000  # surrogate keys whose last purge the in-process cache remembers


class _Bodies(LRUCache[str, Entry]):
    """Responses by cache key, least recently used out first once their bodies pass the bound in bytes."""

    def __init__(self, max_bytes: int, on_evict: Callable[[str, Entry], None]) -> None:
        super().__init__(max(max_bytes, 1), getsizeof=lambda entry: len(entry.body))
        self.on_evict = on_evict

    def popitem(self) -> tuple[str, Entry]:
        key, entry = super().popitem()
        self.on_evict(key, entry)
        return key, entry


class _Marks(FIFOCache[str, int]):
    """Each purged surrogate key's last purge (a generation), the least recently purged out first."""

    def __init__(self, max_marks: int) -> None:
        super().__init__(max(max_marks, 1))
        self.forgotten = 0  # the newest generation among the marks let go

    def popitem(self) -> tuple[str, int]:
        key, mark = super().popitem()
        self.forgotten = max(self.forgotten, mark)
        return key, mark


class MemoryCache:
    """A least-recently-used cache in this process, bounded in bytes.

    A page computed before a purge of one of its surrogate keys must not be stored after
    it: each purged key's generation is remembered for ``put`` to compare. Those marks are
    bounded too (``max_marks``, the oldest forgotten first): a page that began before the
    newest forgotten mark is not stored at all, which costs a miss, never a stale page.
    """

    def __init__(
        self,
        max_bytes: int = 64 * 1024 * 1024,
        max_marks: int = MAX_PURGE_MARKS,
        on_size: Callable[[int, int], None] | None = None,
    ) -> None:
        self.max_bytes = max_bytes
        self.max_marks = max_marks
        self.on_size = on_size  # told the bytes and entries held after each change (metrics)
        self.generation = 0
        self._entries = _Bodies(max_bytes, self._unindex)
        self._by_key: dict[str, set[str]] = {}  # surrogate key -> the cache keys of the entries it tags
        self._purged = _Marks(max_marks)

    @property
    def available(self) -> bool:
        return True

    @property
    def held_bytes(self) -> int:
        """Bytes of the response bodies held (at most ``max_bytes``)."""
        return int(self._entries.currsize)

    async def get(self, key: str) -> Entry | None:
        return self._entries.get(key)

    async def put(self, key: str, entry: Entry, started_at: int) -> bool:
        if started_at < self._purged.forgotten or any(self._purged.get(k, 0) > started_at for k in entry.keys):
            return False  # computed from data a purge has replaced since (or may have)
        await self._drop(key)
        if len(entry.body) > self.max_bytes:
            return False  # larger than the whole cache
        self._entries[key] = entry  # (evicts the least recently used past the bound)
        for surrogate in entry.keys:
            self._by_key.setdefault(surrogate, set()).add(key)
        self._sized()
        return True

    async def purge(self, keys: Iterable[str], generation: int) -> int:
        dropped = 0
        for surrogate in keys:
            self._purged[surrogate] = max(generation, self._purged.get(surrogate, 0))  # the newest last
            for key in self._by_key.pop(surrogate, set()):
                dropped += await self._drop(key)
        self.generation = max(self.generation, generation)
        if dropped:
            self._sized()
        return dropped

    @property
    def purge_marks(self) -> int:
        """Surrogate keys whose last purge is remembered (at most ``max_marks``)."""
        return len(self._purged)

    async def _drop(self, key: str) -> int:
        entry = self._entries.pop(key, None)
        if entry is None:
            return 0
        self._unindex(key, entry)
        return 1

    def _unindex(self, key: str, entry: Entry) -> None:
        for surrogate in entry.keys:
            members = self._by_key.get(surrogate)
            if members is not None:
                members.discard(key)
                if not members:
                    del self._by_key[surrogate]

    async def close(self) -> None:
        self._entries.clear()
        self._by_key.clear()
        self._sized()

    def _sized(self) -> None:
        if self.on_size is not None:
            self.on_size(self.held_bytes, len(self._entries))

    def __len__(self) -> int:
        return len(self._entries)


# KEYS: the entry, the mark of the last purge of everything, then each surrogate key's purge mark,
# then each surrogate key's set.
# ARGV: started_at, ttl, body, etag, keys, media type, the entry's cache key.
_PUT = """
local n = (#KEYS - 2) / 2
local everything = redis.call('GET', KEYS[2])
if everything and tonumber(everything) > tonumber(ARGV[1]) then return 0 end
for i = 3, n + 2 do
  local purged = redis.call('GET', KEYS[i])
  if purged and tonumber(purged) > tonumber(ARGV[1]) then return 0 end
end
redis.call('HSET', KEYS[1], 'body', ARGV[3], 'etag', ARGV[4], 'keys', ARGV[5], 'media_type', ARGV[6])
redis.call('EXPIRE', KEYS[1], ARGV[2])
for i = n + 3, #KEYS do
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
# KEYS: a purge mark. ARGV: generation, ttl. Raises the mark, never lowers it.
_MARK = """
local mark = tonumber(redis.call('GET', KEYS[1]) or '0')
if tonumber(ARGV[1]) > mark then redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2]) end
return 1
"""

MAX_MISSED_KEYS = 10_000  # purges remembered key by key while Redis is down; past this, everything
REPLAY_BATCH = 256  # surrogate keys per purge script on recovery


def _glob_escape(text: str) -> str:
    """``text`` matched literally by a Redis ``MATCH`` pattern."""
    return "".join("\\" + c if c in "*?[]\\" else c for c in text)


class RedisCache:
    """One cache for every process and instance, in Redis.

    ``<prefix>r:<key>`` holds an entry (a hash, with a time to live as a safety net),
    ``<prefix>k:<surrogate>`` the entries that carry a surrogate key, ``<prefix>g:<surrogate>``
    the generation of the key's last purge, ``<prefix>g-all`` that of the last purge of every
    entry. Storing and purging are each one Lua script, so a purge never lands between an
    entry's check and its write. (The scripts touch keys they compute, which a Redis Cluster
    would refuse: use a single Redis, or a replicated one.)

    Redis is used through a ``RedisLink``: while it is down a look-up is a miss, a store is
    skipped, and a purge is remembered (by surrogate key, with its newest generation; past
    ``max_missed`` keys, as a purge of everything) and applied when Redis answers again.
    """

    def __init__(
        self,
        redis: str | RedisLink,
        prefix: str = "alphanode:",
        ttl_seconds: int = 3600,
        *,
        max_missed: int = MAX_MISSED_KEYS,
    ) -> None:
        self._owns_link = not isinstance(redis, RedisLink)
        self.link = redis if isinstance(redis, RedisLink) else RedisLink(redis)
        self.redis: Any = self.link.client
        self.prefix = prefix
        self.ttl = ttl_seconds
        self.generation = 0
        self.max_missed = max_missed
        self._missed: dict[str, int] = {}  # surrogate key -> newest generation of a purge Redis missed
        self._missed_all = False  # Redis missed more purges than are remembered, or restarted
        self._put = self.redis.register_script(_PUT)
        self._purge = self.redis.register_script(_PURGE)
        self._mark = self.redis.register_script(_MARK)
        self.link.add_recovery(self)

    @property
    def available(self) -> bool:
        return self.link.up

    async def get(self, key: str) -> Entry | None:
        """The entry of ``key``; None when there is none, or Redis is down."""
        try:
            found = await self.link.call("get", self.redis.hgetall, self.prefix + "r:" + key)
        except CacheUnavailable:
            return None
        if not found:
            return None
        return Entry(
            body=found[b"body"],
            etag=found[b"etag"].decode(),
            keys=tuple(found[b"keys"].decode().split()),
            media_type=found[b"media_type"].decode(),
        )

    async def put(self, key: str, entry: Entry, started_at: int) -> bool:
        """Store an entry unless a purge since ``started_at`` names one of its keys, or Redis is down."""
        # One script: the check against later purges and the write happen atomically.
        names = [self.prefix + "r:" + key, self.prefix + "g-all"]
        names += [self.prefix + "g:" + k for k in entry.keys]
        names += [self.prefix + "k:" + k for k in entry.keys]
        args = [started_at, self.ttl, entry.body, entry.etag, " ".join(entry.keys), entry.media_type, key]
        try:
            stored = await self.link.call("put", self._put, keys=names, args=args)
        except CacheUnavailable:
            return False
        return bool(stored)

    async def purge(self, keys: Iterable[str], generation: int) -> int:
        """Drop the entries of these surrogate keys; never raises: what Redis misses is applied later."""
        surrogates = list(keys)
        self.generation = max(self.generation, generation)
        if not surrogates:
            return 0
        try:
            return await self.link.call("purge", self._apply, surrogates, generation)
        except CacheUnavailable:
            self._remember(surrogates, generation)
            return 0

    async def _apply(self, surrogates: list[str], generation: int) -> int:
        names = []
        for surrogate in surrogates:
            names += [self.prefix + "k:" + surrogate, self.prefix + "g:" + surrogate]
        return int(await self._purge(keys=names, args=[generation, self.ttl, self.prefix + "r:"]))

    def _remember(self, surrogates: list[str], generation: int) -> None:
        if self._missed_all:
            return  # everything goes at recovery, marked with the newest generation
        for surrogate in surrogates:
            self._missed[surrogate] = max(generation, self._missed.get(surrogate, 0))
        if len(self._missed) > self.max_missed:
            self._missed_all = True
            self._missed.clear()

    def pending(self) -> bool:
        """Whether purges wait for Redis."""
        return self._missed_all or bool(self._missed)

    async def recover(self, restarted: bool) -> None:
        """Apply the purges Redis missed (every entry's, if it restarted), marks included, on the raw client."""
        if restarted:
            self._missed_all = True
            self._missed.clear()
        while self.pending():
            everything, missed = self._missed_all, self._missed
            self._missed_all, self._missed = False, {}
            try:
                if everything:
                    await self._invalidate_all(self.generation)
                else:
                    await self._replay(missed)
            except BaseException:
                if everything:
                    self._missed_all, self._missed = True, {}
                else:
                    for surrogate, generation in missed.items():
                        self._remember([surrogate], generation)
                raise

    async def _replay(self, missed: dict[str, int]) -> None:
        by_generation: dict[int, list[str]] = {}
        for surrogate, generation in missed.items():
            by_generation.setdefault(generation, []).append(surrogate)
        for generation, surrogates in sorted(by_generation.items()):
            for start in range(0, len(surrogates), REPLAY_BATCH):
                await self._apply(surrogates[start : start + REPLAY_BATCH], generation)
        log.info("applied purges of %d surrogate key(s) that Redis had missed", len(missed))

    async def _invalidate_all(self, generation: int) -> None:
        # The mark first: a response computed before it is refused from now on.
        await self._mark(keys=[self.prefix + "g-all"], args=[generation, self.ttl])
        dropped = 0
        for kind in ("r:", "k:"):
            batch: list[bytes] = []
            async for name in self.redis.scan_iter(match=_glob_escape(self.prefix + kind) + "*", count=1000):
                batch.append(name)
                if len(batch) >= 500:
                    dropped += await self.redis.unlink(*batch)
                    batch = []
            if batch:
                dropped += await self.redis.unlink(*batch)
        log.info("invalidated the whole cache in Redis (%d key(s)): it may hold entries older than purges", dropped)

    async def clear(self) -> None:
        """Remove every key under the prefix (tests, and operators resetting a cache)."""
        async for name in self.redis.scan_iter(match=_glob_escape(self.prefix) + "*", count=1000):
            await self.redis.delete(name)

    async def close(self) -> None:
        """Close the connections to Redis, unless they are shared (the service closes them)."""
        if self._owns_link:
            await self.link.stop()
