"""Refreshing similar posts off the request path, for a serving process.

An edit or an import marks the posts it touched (``similar_pending``, see ``store.pending``);
recomputing their similar posts reads thousands of candidates' terms and scores them, 100 to
300 ms at 20,000 posts. Run inside the request, on the event loop, that blocked every other
request of the process for as long: under the soak's 95/5 traffic the reads' p99 was the
refreshes'. So a serving process answers the write once it is committed and leaves the
refresh to ``SimilarRefresher``:

- ``poke()`` after each committed write wakes it; writes that arrive while it runs are
  gathered into the next run (one refresh covers every marked post).
- Each run executes ``refresh_similar`` in a thread of its own, on that thread's event loop
  and its own engine (one connection), so its Python and NumPy work never holds up this
  process's event loop for longer than the interpreter's switch interval.
- On SQLite it holds the process's write turn (``graph.context.Writer.turn``) for the run,
  as the edit did before: this process's writes wait their turn in order rather than in
  SQLite's busy handler.
- Every ``sweep`` seconds it looks for marks left by others (a refresh the database
  interrupted, an import that stopped before its refresh) and completes them.
- A run the store's trouble interrupts is tried again a second later; its marks stay until
  it completes. The refresh writes purge-log entries for the pages whose similar posts
  changed, which every server process follows (``server.purging``).

How long until it shows: the refresh of one write starts as soon as the write is committed
and takes about 0.1 to 0.3 s at 20,000 posts; under a stream of writes, one run plus the
next. ``settled()`` waits for it (tests, and callers that must read the result).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Callable, Coroutine
from contextlib import AbstractAsyncContextManager
from typing import Any, TypeVar

from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncEngine

import models
from models.engine import normalize_url
from models.trouble import diagnose

from . import pending
from .background import stop_task
from .similar import PARALLEL_FROM, refresh_similar

log = logging.getLogger("alphanode.similar")

T = TypeVar("T")

DEFAULT_SWEEP = 30.0  # seconds between looks for marks nobody announced
RETRY_AFTER = 1.0  # seconds before a run the store's trouble stopped is tried again


class SimilarRefresher:
    """Refreshes similar posts in the background after writes; one per server process."""

    def __init__(
        self,
        url: str | URL,
        turn: Callable[[], AbstractAsyncContextManager[None]] | None = None,
        *,
        sweep: float = DEFAULT_SWEEP,
        busy_timeout_ms: int | None = None,
    ) -> None:
        self.url = url
        self.turn = turn
        self.sweep = sweep
        self.busy_timeout_ms = busy_timeout_ms
        self.runs = 0  # completed runs
        self.refreshed = 0  # posts refreshed, over every run
        self.failures = 0  # runs the store's trouble (or a bug) stopped
        self.last_seconds = 0.0
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._task: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._engine: AsyncEngine | None = None

    # -- life cycle ------------------------------------------------------------

    async def start(self) -> None:
        """Start the refresh thread and its engine, then the task that drives them."""
        loop = asyncio.new_event_loop()
        thread = threading.Thread(target=loop.run_forever, name="similar-refresher", daemon=True)
        thread.start()
        self._loop, self._thread = loop, thread
        self._engine = await self._in_thread(self._open_engine())
        self._task = asyncio.create_task(self._run(), name="similar-refresher")
        self.poke()  # marks left from before this process started

    async def _open_engine(self) -> AsyncEngine:
        options: dict[str, Any] = {}
        if normalize_url(self.url).get_backend_name() == "sqlite":
            if self.busy_timeout_ms is not None:
                options["busy_timeout_ms"] = self.busy_timeout_ms
        else:
            options.update(pool_size=2, max_overflow=0)  # the refresh lock's session and the refresh's
        return models.create_engine(self.url, **options)

    async def stop(self) -> None:
        """Stop after the run in progress, if any; close the engine and the thread."""
        await stop_task(self._task)
        self._task = None
        if self._loop is not None:
            await self._in_thread(_drain())  # a cancelled refresh ends (rolls back) before the engine closes
        if self._engine is not None:
            with contextlib.suppress(Exception):
                await self._in_thread(self._engine.dispose())
            self._engine = None
        if self._loop is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            await asyncio.to_thread(self._thread.join, 5.0)
            self._loop.close()
            self._loop = self._thread = None
        self._idle.set()

    # -- use -------------------------------------------------------------------

    def poke(self) -> None:
        """A write was committed: refresh what it marked (now, or right after the run in progress)."""
        self._idle.clear()
        self._wake.set()

    async def settled(self) -> None:
        """Wait until every poke so far is refreshed (or its run has failed)."""
        await self._idle.wait()

    async def pending(self) -> int:
        """How many posts wait for their similar posts (marked, not yet refreshed)."""
        assert self._engine is not None

        async def count() -> int:
            assert self._engine is not None
            async with self._engine.connect() as conn:
                return int(await conn.scalar(pending.COUNT) or 0)

        return await self._in_thread(count())

    # -- the work --------------------------------------------------------------

    async def _run(self) -> None:
        while True:
            # asyncio.timeout, not wait_for: on Python 3.11 wait_for loses a cancellation that
            # arrives as the event is set, and the task would outlive stop().
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.sweep):
                    await self._wake.wait()
            self._wake.clear()
            ok = await self._refresh_once()
            if not ok:
                await asyncio.sleep(RETRY_AFTER)
                self._wake.set()  # marks stay until a run completes: try again
            elif not self._wake.is_set():
                self._idle.set()

    async def _refresh_once(self) -> bool:
        started = time.perf_counter()
        try:
            pending = await self.pending()
            if not pending:  # nothing marked: no write lock taken, no statement more
                return True
            if self.turn is None or pending >= PARALLEL_FROM:
                # A whole-store refresh (marks an interrupted import left) takes seconds: this
                # process's writes meanwhile wait in SQLite's busy handler rather than behind it.
                count = await self._in_thread(self._refresh())
            else:
                async with self.turn():
                    count = await self._in_thread(self._refresh())
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self.failures += 1
            self._idle.set()  # settled() waits for refreshes, not for the store's return
            trouble = diagnose(exc)
            if trouble is None:
                log.exception("similar posts: refresh failed; trying again")
            else:
                log.warning("similar posts: refresh stopped (%s); trying again", trouble.message)
            return False
        self.last_seconds = time.perf_counter() - started
        if count:
            self.runs += 1
            self.refreshed += count
            log.debug("similar posts: %d refreshed in the background in %.0f ms", count, self.last_seconds * 1000)
        return True

    async def _refresh(self) -> int:
        assert self._engine is not None
        return await refresh_similar(self._engine)

    async def _in_thread(self, work: Coroutine[Any, Any, T]) -> T:
        """Run ``work`` on the refresh thread's event loop and wait for it here.

        Cancelled here (the server stopping), it is cancelled there too.
        """
        assert self._loop is not None
        future = asyncio.run_coroutine_threadsafe(work, self._loop)
        try:
            return await asyncio.wrap_future(future)
        except asyncio.CancelledError:
            future.cancel()
            raise


async def _drain() -> None:
    """Wait for every other task of the running loop to end (they were cancelled)."""
    others = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
    await asyncio.gather(*others, return_exceptions=True)
