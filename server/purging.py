"""Purging caches: every server process follows the purge log and drops what writes changed.

Writes (imports from any process, mutations) record the surrogate keys they
changed in ``purge_log`` inside their own transaction (``store/purge.py``). Each
server process polls the log a few times a second, purges its cache (or the
shared Redis cache, idempotently) and, if configured, tells a CDN through the
purge webhook. A purge never fails because Redis is down: the cache remembers
what Redis missed and applies it when Redis answers again, and the log is
followed (and the webhook called) meanwhile. A write through one process is so purged in every other within
one polling interval, and a CLI import purges running servers too.

With ``ALPHANODE_VARNISH_PURGE_URLS``, each process then sends every Varnish a ``PURGE`` naming
the keys in its ``Surrogate-Key`` header (``deploy/varnish/alphanode.vcl`` drops the responses
tagged with any of them). Each process purges its own cache first and Varnish after it, so
the last purge Varnish receives for a write comes after every process's cache is clean: a
miss Varnish sends to any instance then gets the new data. One race remains: a response an
instance computed from a snapshot taken before the write, still on its way to Varnish when
the last purge lands, is stored afterwards and would be served until its max-age. Each purge
is therefore sent again ``varnish_repurge_delay`` seconds later (2 s by default), which drops
any such response that took less than that to arrive.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
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
# Bytes of keys in one PURGE's Surrogate-Key header: Varnish refuses a header past 8 KiB
# (http_req_hdr_len) by default; longer lists go in several requests.
MAX_PURGE_HEADER = 4000
VARNISH_TIMEOUT = 2.0  # seconds for a Varnish to answer a purge (1 s to connect)


def varnish_urls(setting: str | None) -> list[str]:
    """The Varnish addresses of ``ALPHANODE_VARNISH_PURGE_URLS`` (comma-separated; ``http://`` if none said)."""
    urls = [part.strip() for part in (setting or "").split(",") if part.strip()]
    return [url if "://" in url else f"http://{url}" for url in urls]


def key_batches(keys: Sequence[str], limit: int = MAX_PURGE_HEADER) -> list[str]:
    """The keys as space-separated runs of at most ``limit`` characters (a longer key goes alone)."""
    batches: list[str] = []
    run: list[str] = []
    size = 0
    for key in keys:
        if run and size + 1 + len(key) > limit:
            batches.append(" ".join(run))
            run, size = [], 0
        size += len(key) + (1 if run else 0)
        run.append(key)
    if run:
        batches.append(" ".join(run))
    return batches


class Purger:
    """Follows the purge log for one process."""

    def __init__(
        self,
        engine: AsyncEngine,
        cache: ResponseCache,
        *,
        interval: float = 0.1,
        webhook: str | None = None,
        varnish: Sequence[str] = (),
        repurge_delay: float = 2.0,
        on_purged: Callable[[int], None] | None = None,
        on_varnish: Callable[[bool], None] | None = None,
        before_purge: Callable[[], Awaitable[Any]] | None = None,
    ) -> None:
        self.engine = engine
        self.cache = cache
        self.interval = interval
        self.webhook = webhook
        self.varnish = list(varnish)  # Varnish addresses to send PURGE to
        self.repurge_delay = repurge_delay  # seconds before each Varnish purge is sent again; 0: once
        self.on_purged = on_purged  # told how many surrogate keys each purge dropped (metrics)
        self.on_varnish = on_varnish  # told whether each PURGE sent to a Varnish succeeded (metrics)
        # Awaited once new purges are read and before any is applied (a read replica's fence:
        # server/replica.py); when it raises, they are applied with the next poll instead.
        self.before_purge = before_purge
        self.last = 0
        self.purged_keys = 0
        self._task: asyncio.Task[None] | None = None
        self._again_task: asyncio.Task[None] | None = None
        self._again: deque[tuple[float, list[str]]] = deque()  # (when, keys) of purges to send Varnish again
        self._again_added = asyncio.Event()
        self._failing: set[str] = set()  # Varnish addresses whose last purge failed
        self._client: Any = None

    async def start(self) -> None:
        async with self.engine.connect() as conn:
            self.last = int(await conn.scalar(select(func.coalesce(func.max(purge_t.c.id), 0))) or 0)
        self.cache.generation = max(self.cache.generation, self.last)
        if self.webhook or self.varnish:
            import httpx2

            self._client = httpx2.AsyncClient(timeout=httpx2.Timeout(VARNISH_TIMEOUT, connect=1.0))
        if self.varnish and self.repurge_delay > 0:
            self._again_task = asyncio.create_task(self._purge_again(), name="varnish-repurge")
        self._task = asyncio.create_task(self._run(), name="purge-log")

    async def stop(self) -> None:
        await stop_task(self._task)
        await stop_task(self._again_task)
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
        if self.before_purge is not None:
            await self.before_purge()
        sent: list[str] = []
        for log_id, keys in rows:
            split = keys.split()
            await self.cache.purge(split, log_id)  # never raises for a cache that is down
            self.purged_keys += len(split)
            if self.on_purged is not None:
                self.on_purged(len(split))
            sent += split
            self.last = max(self.last, log_id)  # the write path polls too, concurrently
        keys = sorted(set(sent))
        if self.webhook:
            await self._notify(keys)
        if self.varnish and keys:  # after this process's cache: see the module's docstring
            await self.purge_varnish(keys)
            if self.repurge_delay > 0:
                self._again.append((asyncio.get_running_loop().time() + self.repurge_delay, keys))
                self._again_added.set()
        return len(rows)

    async def purge_varnish(self, keys: Sequence[str]) -> None:
        """Send every Varnish a PURGE for these keys (several, past ``MAX_PURGE_HEADER``); never raises."""
        batches = key_batches(keys)
        await asyncio.gather(*(self._purge_one(url, batches) for url in self.varnish))

    async def _purge_one(self, url: str, batches: list[str]) -> None:
        for n, batch in enumerate(batches):
            try:
                response = await self._client.request("PURGE", url, headers={"Surrogate-Key": batch})
                failure = None if response.status_code == 200 else f"it answered {response.status_code}"
            except Exception as exc:
                failure = exc.__class__.__name__
            if self.on_varnish is not None:
                self.on_varnish(failure is None)
            if failure is None:
                if url in self._failing:
                    self._failing.discard(url)
                    log.warning("Varnish at %s takes purges again", url)
                continue
            # The next would fail alike. Said once until it works again (the metrics count each).
            left = sum(len(b.split()) for b in batches[n:])
            if url not in self._failing:
                self._failing.add(url)
                log.warning("purging %d key(s) from Varnish at %s failed: %s", left, url, failure)
            else:
                log.debug("purging %d key(s) from Varnish at %s failed again: %s", left, url, failure)
            return

    async def _purge_again(self) -> None:
        """Send each Varnish purge again ``repurge_delay`` seconds after the first (those due together at once)."""
        loop = asyncio.get_running_loop()
        while True:
            if not self._again:
                self._again_added.clear()
                await self._again_added.wait()
                continue
            wait = self._again[0][0] - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            due: set[str] = set()
            while self._again and self._again[0][0] <= loop.time():
                due.update(self._again.popleft()[1])
            if due:
                await self.purge_varnish(sorted(due))

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
