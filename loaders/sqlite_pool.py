"""SQLite's read connections: aiosqlite's, a thread each, opened read-only (see ``loaders.db``)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import aiosqlite

from models.engine import REQUEST_BUSY_TIMEOUT_MS
from models.search import SQLITE_INSTANCES_DDL

from .db import PoolUsage, ReadConnection, ReadPool, RequestDb, Row, StatementHook
from .sql import Dialect

log = logging.getLogger("alphanode.db")


class _SqliteConnection(ReadConnection):
    """An aiosqlite connection: statements run in order in its thread, whatever happens to their callers."""

    __slots__ = ("conn", "unsettled")

    def __init__(self, conn: aiosqlite.Connection) -> None:
        self.conn = conn
        # A caller stopped waiting (cancelled, timed out) for a statement that aiosqlite's thread
        # may still run: its transaction state is known only once the thread is done with it.
        self.unsettled = False

    async def begin(self) -> None:
        await self._settle()
        await self._run("BEGIN")

    async def fetch(self, text: str, params: Sequence[Any]) -> list[Row]:
        return await self._run(text, params)

    async def _run(self, text: str, params: Sequence[Any] = ()) -> list[Row]:
        try:
            return list(await self.conn.execute_fetchall(text, params))
        except asyncio.CancelledError:
            self.unsettled = True
            raise

    async def _settle(self) -> None:
        """Wait for what aiosqlite's thread still has queued, then end any transaction it left open."""
        if self.unsettled:
            # aiosqlite runs a connection's statements one after another: once this one is
            # answered, everything queued before it has run, and ``in_transaction`` is true.
            await self.conn.execute_fetchall("SELECT 1")
            self.unsettled = False
        if self.conn.in_transaction:
            await self.conn.execute_fetchall("ROLLBACK")

    async def end(self) -> None:
        await self._settle()


class SqliteReadPool(ReadPool):
    dialect: Dialect = "sqlite"

    def __init__(
        self, path: str, size: int, busy_timeout_ms: int = REQUEST_BUSY_TIMEOUT_MS, *, bulk: bool = False
    ) -> None:
        super().__init__()
        self.bulk = bulk  # one read of much of the store: no memory map, a small page cache
        self.path = path
        self.size = size
        self.busy_timeout_ms = busy_timeout_ms
        self._idle: asyncio.LifoQueue[_SqliteConnection] = asyncio.LifoQueue()
        self._waiting: set[_SqliteConnection] = set()  # what _idle holds, to look at
        self._all: list[_SqliteConnection] = []
        self._opening = asyncio.Lock()
        self._trace: StatementHook | None = None

    @classmethod
    async def create(cls, path: str, size: int, busy_timeout_ms: int = REQUEST_BUSY_TIMEOUT_MS) -> SqliteReadPool:
        if not path or path == ":memory:":
            raise ValueError("use a SQLite file: an in-memory database is not shared between connections")
        return cls(str(Path(path)), size, busy_timeout_ms)

    async def _connect(self) -> _SqliteConnection:
        conn = await aiosqlite.connect(self.path, isolation_level=None, check_same_thread=False)
        conn.row_factory = aiosqlite.Row
        for pragma in (
            f"PRAGMA busy_timeout={self.busy_timeout_ms}",
            # 64 MiB of page cache per connection, and the store's file mapped; a bulk read
            # reads through 2 MiB instead, so that the pages it passes are not kept.
            "PRAGMA cache_size=-2048" if self.bulk else "PRAGMA cache_size=-65536",
            "PRAGMA mmap_size=0" if self.bulk else "PRAGMA mmap_size=268435456",
            "PRAGMA temp_store=MEMORY",  # (changing it drops temp tables: before the one below)
            # The search index's vocabulary, for ranking in memory (loaders.postings): a temp
            # table, made before the connection turns read-only.
            SQLITE_INSTANCES_DDL,
            "PRAGMA query_only=1",
        ):
            await conn.execute_fetchall(pragma)
        if self._trace is not None:
            await conn.set_trace_callback(self._trace)
        wrapped = _SqliteConnection(conn)
        self._all.append(wrapped)
        return wrapped

    @contextlib.asynccontextmanager
    async def bulk_reader(self) -> AsyncIterator[RequestDb]:
        """A connection of its own, closed after: what a scan of the whole store passed through
        SQLite's page cache and memory map is given back with it. Measured at 100,000 posts, the
        fact index's load through a pooled connection left its worker 55 MiB of mapped store
        pages and 64 MiB of page cache (bench/README.md, "Memory after start-up")."""
        pool = SqliteReadPool(self.path, 1, self.busy_timeout_ms, bulk=True)
        pool.hooks = self.hooks
        pool._trace = self._trace
        db = RequestDb(pool)
        try:
            yield db
        finally:
            await db.close()
            await pool.close()

    async def trace(self, callback: StatementHook) -> None:
        """SQLite's own trace callback, on every connection: what the driver really runs."""
        self._trace = callback
        for conn in self._all:
            await conn.conn.set_trace_callback(callback)

    async def acquire(self) -> ReadConnection:
        try:
            conn = self._idle.get_nowait()
        except asyncio.QueueEmpty:
            async with self._opening:
                if len(self._all) < self.size:
                    return await self._connect()
            conn = await self._idle.get()
        self._waiting.discard(conn)
        return conn

    async def release(self, conn: ReadConnection) -> None:
        assert isinstance(conn, _SqliteConnection)
        self._waiting.add(conn)
        self._idle.put_nowait(conn)

    def usage(self) -> PoolUsage:
        stuck = sum(1 for conn in self._waiting if conn.conn.in_transaction)
        return PoolUsage(self.size, len(self._all), len(self._waiting), stuck)

    async def discard(self, conn: ReadConnection) -> None:
        assert isinstance(conn, _SqliteConnection)
        with contextlib.suppress(Exception):
            await conn.conn.close()
        if conn in self._all:
            self._all.remove(conn)
        # A request may be waiting for a connection: open one in its place (when the store
        # cannot be opened now, the next acquire tries again).
        with contextlib.suppress(Exception):
            await self.release(await self._connect())

    async def close(self) -> None:
        for conn in self._all:
            await conn.conn.close()
        self._all.clear()
