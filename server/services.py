"""What one running app holds: settings, schema, database pools, caches, metrics."""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

import models
from graph.context import Writer
from graph.executor import BATCH_FORMS, Executor
from graph.limits import Limits
from graph.schema import DOCUMENT_CACHE_SIZE, Schema, build_schema
from loaders import ReadPool
from models.engine import REQUEST_BUSY_TIMEOUT_MS, is_sqlite
from store.refresher import SimilarRefresher
from store.wal import WalKeeper

from . import collector
from .caching import MemoryCache, RedisCache, ResponseCache
from .observe import Metrics
from .persisted import PersistedQueries
from .purging import Purger, varnish_urls
from .redis_link import RedisLink
from .replica import CONNECT_TIMEOUT as REPLICA_CONNECT_TIMEOUT
from .replica import Replica, setting_problem
from .settings import Settings

OPERATIONS_DIR = Path(__file__).parent / "operations"

log = logging.getLogger("alphanode.purge")


@dataclass(slots=True)
class Services:
    settings: Settings
    schema: Schema
    executor: Executor
    limits: Limits
    engine: AsyncEngine
    pool: ReadPool
    writer: Writer
    cache: ResponseCache | None
    purger: Purger | None
    persisted: PersistedQueries
    metrics: Metrics
    redis: RedisLink | None = None  # the Redis behind the cache and persisted queries, when configured
    wal: WalKeeper | None = None  # SQLite: keeps the write-ahead log bounded under steady load
    refresher: SimilarRefresher | None = None  # similar posts after writes, off the request path
    replica: Replica | None = None  # a PostgreSQL read replica for public reads, when configured

    def read_pool(self, authorization: str | None) -> ReadPool:
        """Where a request reads: the replica's pool for the public when it is usable, else the primary's.

        A request with a token reads the primary: an editor reads what was just written.
        """
        if self.replica is None or authorization is not None:
            return self.pool
        pool = self.replica.read_pool()
        self.metrics.public_read(pool is self.replica.pool)
        return pool

    @classmethod
    async def start(cls, settings: Settings) -> Services:
        limits = Limits(
            max_depth=settings.max_depth,
            max_aliases=settings.max_aliases,
            max_tokens=settings.max_tokens,
            max_nodes=settings.max_nodes,
        )
        schema = build_schema(limits)
        # SQLite: a lock another program holds is waited for within half the request time limit at
        # most, so that a request answers DATABASE_BUSY rather than TIMEOUT.
        busy_timeout_ms = min(REQUEST_BUSY_TIMEOUT_MS, int(settings.request_timeout * 500))
        engine = models.create_engine(settings.database_url, busy_timeout_ms=busy_timeout_ms)
        await models.create_all(engine)
        pool = await ReadPool.open(
            settings.database_url,
            settings.read_pool_size,
            busy_timeout_ms=busy_timeout_ms,
            request_timeout=settings.request_timeout,
        )
        # Filters and facets read the fact index (loaders.facts): loaded before serving, so that
        # no request waits for it (about a second at 100,000 posts), and shared with the other
        # workers of this instance where there is a folder for it.
        _share_index(settings, pool, settings.database_url)
        await pool.facts.warm(pool)
        metrics = Metrics()
        replica: Replica | None = None
        if settings.read_database_url:
            replica = await _open_replica(settings, pool, metrics)
        redis = _redis_link(settings, metrics)
        cache = _response_cache(settings, metrics, redis)
        persisted = PersistedQueries(
            Path(settings.persisted_dir) if settings.persisted_dir else OPERATIONS_DIR,
            allow_list_only=settings.persisted_only,
            redis=redis,
            prefix=settings.redis_prefix,
        )
        if redis is not None:
            await redis.start()  # never fails: a Redis that does not answer is down, and watched
        purger = await _start_purger(settings, engine, cache, metrics, replica)
        listeners: list[Any] = [_poll(purger)] if purger is not None else []
        writer = Writer(engine, pool, listeners=listeners, refresh_inline=False)
        refresher = SimilarRefresher(
            settings.database_url, writer.turn if is_sqlite(engine) else None, busy_timeout_ms=busy_timeout_ms
        )
        await refresher.start()
        writer.listeners.append(_wake(refresher))
        wal: WalKeeper | None = None
        if is_sqlite(engine):
            wal = WalKeeper(engine, writer.turn, limit_bytes=settings.wal_max_bytes)
            await wal.start()
        services = cls(
            settings=settings,
            schema=schema,
            executor=Executor(schema, cache_size=DOCUMENT_CACHE_SIZE, limits=limits, batch_forms=BATCH_FORMS),
            limits=limits,
            engine=engine,
            pool=pool,
            writer=writer,
            cache=cache,
            purger=purger,
            persisted=persisted,
            metrics=metrics,
            redis=redis,
            wal=wal,
            refresher=refresher,
            replica=replica,
        )
        collector.settle()  # last: everything start-up built is frozen
        return services

    async def stop(self) -> None:
        if self.replica is not None:
            await self.replica.stop()
            await self.replica.pool.close()
        if self.refresher is not None:
            await self.refresher.stop()
        if self.wal is not None:
            await self.wal.stop()
        if self.purger is not None:
            await self.purger.stop()
        if self.cache is not None:
            await self.cache.close()
        if self.redis is not None:
            await self.redis.stop()
        await self.pool.close()
        await self.engine.dispose()
        self.metrics.retire()
        collector.release()


def _redis_link(settings: Settings, metrics: Metrics) -> RedisLink | None:
    """The Redis behind the shared cache and persisted queries, when configured (not yet started)."""
    if not settings.redis_url:
        return None
    return RedisLink(
        settings.redis_url, timeout=settings.redis_timeout, on_error=metrics.cache_error, on_state=metrics.cache_state
    )


def _response_cache(settings: Settings, metrics: Metrics, redis: RedisLink | None) -> ResponseCache | None:
    """Redis's cache when there is a Redis, else one in this process; None with the cache off."""
    if not settings.cache:
        return None
    if redis is not None:
        return RedisCache(redis, settings.redis_prefix)
    return MemoryCache(settings.cache_max_bytes, on_size=metrics.cache_size)


async def _start_purger(
    settings: Settings, engine: AsyncEngine, cache: ResponseCache | None, metrics: Metrics, replica: Replica | None
) -> Purger | None:
    """The follower of the purge log, when something is there to purge: a cache, a webhook, Varnish."""
    varnish = varnish_urls(settings.varnish_purge_urls)
    if cache is None and not settings.purge_webhook and not varnish:
        return None
    purger = Purger(
        engine,
        cache if cache is not None else MemoryCache(0),
        interval=settings.purge_interval,
        webhook=settings.purge_webhook,
        varnish=varnish,
        repurge_delay=settings.varnish_repurge_delay,
        on_purged=metrics.purged_keys,
        on_varnish=metrics.varnish_purged,
        before_purge=replica.raise_fence if replica is not None else None,
    )
    await purger.start()
    return purger


def _share_index(settings: Settings, pool: ReadPool, url: str) -> None:
    """Share the pool's fact index through ``settings.index_dir``, in a folder of the store's own."""
    if settings.index_dir is not None:
        store = hashlib.sha256(url.encode()).hexdigest()[:16]
        pool.facts.share(Path(settings.index_dir) / store, url)


async def _open_replica(settings: Settings, primary: ReadPool, metrics: Metrics) -> Replica:
    """The read replica's pool and monitor; checked once before the first request."""
    assert settings.read_database_url is not None
    problem = setting_problem(settings.database_url, settings.read_database_url)
    if problem is not None:
        raise ValueError(problem)
    pool = await ReadPool.open(
        settings.read_database_url,
        settings.read_pool_size,
        request_timeout=settings.request_timeout,
        connect_timeout=REPLICA_CONNECT_TIMEOUT,
    )
    _share_index(settings, pool, settings.read_database_url)
    replica = Replica(
        settings.database_url,
        settings.read_database_url,
        pool,
        primary,
        max_lag=settings.replica_max_lag,
        interval=settings.replica_check_interval,
        on_state=metrics.replica_state,
    )
    await replica.start()
    return replica


def _wake(refresher: SimilarRefresher) -> Any:
    """After a write in this process, refresh its similar posts in the background."""

    async def wake(_: Any) -> None:
        refresher.poke()

    return wake


def _poll(purger: Purger | None) -> Any:
    """After a write in this process, purge at once: the writer reads its own write.

    Never raises: the write is committed, and the purge log is followed anyway (a purge
    Redis misses is applied when it answers again).
    """

    async def poll(_: Any) -> None:
        if purger is None:
            return
        try:
            await purger.poll()
        except Exception as exc:
            log.warning("purging after a write failed (%s); the purge log is followed again", exc.__class__.__name__)

    return poll
