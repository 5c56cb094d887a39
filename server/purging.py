"""Purging caches: every server process follows the purge log and drops what writes changed.

Writes (imports from any process, mutations) record the surrogate keys they
changed in ``purge_log`` inside their own transaction (``store/purge.py``). Each
server process polls the log a few times a second, purges its cache (or the
shared Redis cache, idempotently) and, if configured, tells a CDN through the
purge webhook. A purge never fails because Redis is down: the cache remembers
what Redis missed and applies it when Redis answers again, and the log is
followed (and the webhook called) meanwhile. A write through one process is so purged in every other within
one polling interval, and a CLI import purges running servers too.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Callable
from typing import Any

import orjson
from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from models import PurgeLog, table
from models.trouble import diagnose
from store.background import stop_task

from .caching import ResponseCache

log = logging.getLogger("alphanode.purge")

purge_t = table(PurgeLog)
RETENTION = dt.timedelta(hours=1)  # purge-log rows older than this are deleted
PRUNE_EVERY = 600  # polls between prunings


class Purger:
    """Follows the purge log for one process."""

    def __init__(
        self,
        engine: AsyncEngine,
        cache: ResponseCache,
        *,
        interval: float = 0.1,
        webhook: str | None = None,
        on_purged: Callable[[int], None] | None = None,
    ) -> None:
        self.engine = engine
        self.cache = cache
        self.interval = interval
        self.webhook = webhook
        self.on_purged = on_purged  # told how many surrogate keys each purge dropped (metrics)
        self.last = 0
        self.purged_keys = 0
        self._task: asyncio.Task[None] | None = None
        self._client: Any = None

    async def start(self) -> None:
        async with self.engine.connect() as conn:
            self.last = int(await conn.scalar(select(func.coalesce(func.max(purge_t.c.id), 0))) or 0)
        self.cache.generation = max(self.cache.generation, self.last)
        if self.webhook:
            import httpx2

            self._client = httpx2.AsyncClient(timeout=2.0)
        self._task = asyncio.create_task(self._run(), name="purge-log")

    async def stop(self) -> None:
        await stop_task(self._task)
        if self._client is not None:
            await self._client.aclose()

    async def _run(self) -> None:
        polls = 0
        while True:
            try:
                await self.poll()
                polls += 1
                if polls % PRUNE_EVERY == 0:
                    await self.prune()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the database may be away for a moment: keep following
                trouble = diagnose(exc)
                if trouble is None:
                    log.exception("reading the purge log failed; retrying")
                else:  # an outage: one line a second, no traceback
                    log.warning("reading the purge log failed: %s; retrying", trouble.message)
                await asyncio.sleep(1.0)
            await asyncio.sleep(self.interval)

    async def poll(self) -> int:
        """Apply the purges written since the last poll; returns how many log rows."""
        async with self.engine.connect() as conn:
            rows = (
                await conn.execute(
                    select(purge_t.c.id, purge_t.c["keys"])
                    .where(purge_t.c.id > self.last)
                    .order_by(purge_t.c.id)
                    .limit(1000)
                )
            ).all()
        if not rows:
            return 0
        sent: list[str] = []
        for log_id, keys in rows:
            split = keys.split()
            await self.cache.purge(split, log_id)  # never raises for a cache that is down
            self.purged_keys += len(split)
            if self.on_purged is not None:
                self.on_purged(len(split))
            sent += split
            self.last = max(self.last, log_id)  # the write path polls too, concurrently
        if self._client is not None:
            await self._notify(sorted(set(sent)))
        return len(rows)

    async def _notify(self, keys: list[str]) -> None:
        try:
            response = await self._client.post(
                self.webhook, content=orjson.dumps({"keys": keys}), headers={"content-type": "application/json"}
            )
            if response.status_code >= 400:
                log.warning("purge webhook answered %s for %d key(s)", response.status_code, len(keys))
        except Exception as exc:
            log.warning("purge webhook failed for %d key(s): %s", len(keys), exc.__class__.__name__)

    async def prune(self) -> None:
        cutoff = dt.datetime.now(dt.UTC) - RETENTION
        async with self.engine.begin() as conn:
            await conn.execute(delete(purge_t).where(purge_t.c.created_at < cutoff))
