"""The read path's connections: a pool per process, one connection per request.

One connection and one read transaction per request, opened on the first
statement and ended when the request ends: every statement of a request sees
the same snapshot, so a post page never mixes two versions of a post being
edited. Batches of different loaders may run concurrently on the event loop and
one connection is not safe across concurrent tasks, so statements take turns
behind a lock. A connection per batch was the alternative; it loses the
snapshot and, with aiosqlite, starts a thread whenever the pool runs dry.

SQLite connections are aiosqlite's (a thread each, one hop per statement with
``execute_fetchall``), opened read-only (``query_only``). PostgreSQL connections
come from an asyncpg pool, in REPEATABLE READ, READ ONLY transactions. Nothing of
a read outlives its transaction on the server (no session setting, lock or
cursor), so that it works through a pooler in transaction mode, where each
transaction of a connection may run on another server session; with the URL's
``pgbouncer=true`` asyncpg keeps no prepared statement either (``models.engine``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy.engine import URL

from models.engine import REQUEST_BUSY_TIMEOUT_MS, normalize_url
from models.trouble import UNAVAILABLE, diagnose

from .sql import Dialect, Sql

log = logging.getLogger("alphanode.db")

Row = Any  # sqlite3.Row or asyncpg.Record: both index by position and by column name
StatementHook = Callable[[str], None]


class ReadPool:
    """Connections for reads, shared by the requests of one process."""

    dialect: Dialect
    size: int  # connections at most

    def __init__(self) -> None:
        from .aggregates import AggregateCache
        from .facts import FactIndex

        self.hooks: list[StatementHook] = []  # called with each statement's text (tests, metrics)
        self.aggregates = AggregateCache()  # aggregates of this pool's store, by store version
        self.facts = FactIndex()  # what posts are filtered and ordered by, in memory (loaders.facts)
        self.use_facts = True  # False: every filter in SQL (tests compare the two)
        # A replica's pool: where a request goes when this one cannot be reached, and who is told.
        self.fallback: ReadPool | None = None
        self.on_unreachable: Callable[[BaseException], None] | None = None

    @staticmethod
    async def open(
        url: str | URL,
        size: int | None = None,
        *,
        busy_timeout_ms: int = REQUEST_BUSY_TIMEOUT_MS,
        request_timeout: float | None = None,
        connect_timeout: float | None = None,
    ) -> ReadPool:
        """A pool of ``size`` connections at most (default: ``default_size(url)``).

        On SQLite a read waits ``busy_timeout_ms`` at most for a lock another program holds
        (below the request time limit), then fails with ``SQLITE_BUSY``: DATABASE_BUSY.

        On PostgreSQL the server ends a read statement that runs ``STATEMENT_TIMEOUT_MARGIN``
        longer than ``request_timeout`` (seconds), so that a request given up on never leaves a
        query running there, and a connection is given up on after ``connect_timeout`` seconds
        (default: asyncpg's, 60).
        """
        parsed = normalize_url(url)
        size = size or ReadPool.default_size(parsed)
        if parsed.get_backend_name() == "sqlite":
            from .sqlite_pool import SqliteReadPool

            return await SqliteReadPool.create(parsed.database or "", size, busy_timeout_ms)
        from .postgres_pool import PostgresReadPool

        return await PostgresReadPool.create(parsed, size, request_timeout, connect_timeout)

    @staticmethod
    def default_size(url: str | URL) -> int:
        """Connections a pool opens at most unless told: ``SQLITE_READ_POOL`` or ``POSTGRES_READ_POOL``."""
        return SQLITE_READ_POOL if normalize_url(url).get_backend_name() == "sqlite" else POSTGRES_READ_POOL

    def statement(self, text: str) -> None:
        for hook in self.hooks:
            hook(text)

    async def acquire(self) -> ReadConnection:
        raise NotImplementedError

    @contextlib.asynccontextmanager
    async def bulk_reader(self) -> AsyncIterator[RequestDb]:
        """A handle for reading much of the store once (the fact index's full load), in a snapshot
        of its own, on a connection whose memory of the read is not kept after it (SQLite: one
        opened for it and closed after, see ``SqliteReadPool``)."""
        db = RequestDb(self)
        try:
            yield db
        finally:
            await db.close()

    async def trace(self, callback: StatementHook) -> None:
        """Call ``callback`` with the text of every statement the driver runs (tests, debugging)."""
        raise NotImplementedError

    async def release(self, conn: ReadConnection) -> None:
        raise NotImplementedError

    def usage(self) -> PoolUsage:
        """How many connections are open and idle now (metrics, health, tests)."""
        raise NotImplementedError

    async def discard(self, conn: ReadConnection) -> None:
        """Close a connection whose state is unknown (its transaction could not be ended) instead of reusing it."""
        raise NotImplementedError

    async def close(self) -> None:
        raise NotImplementedError


@dataclass(frozen=True, slots=True)
class PoolUsage:
    """A read pool's connections at one moment."""

    size: int  # at most this many
    open: int  # open now
    idle: int  # open and waiting for a request
    idle_in_transaction: int  # idle yet inside a transaction: a connection given back too early (never, by design)


class RequestEnded(RuntimeError):
    """A statement asked for after its request's handle was closed (a sibling of a failed field)."""


class ReadConnection:
    """One connection's read transaction."""

    async def begin(self) -> None:
        raise NotImplementedError

    async def fetch(self, text: str, params: Sequence[Any]) -> list[Row]:
        raise NotImplementedError

    async def end(self) -> None:
        raise NotImplementedError


# Read connections per process, by default. A SQLite connection is a thread (aiosqlite), and
# Python runs one thread at a time: its reads take a millisecond or less, so more threads only
# contend for the interpreter. With 8 of them under 8 concurrent requests the API answered half
# as many listings as with 2 (267 against 580 req/s, p99 52 against 22 ms; bench/README.md), and
# with 1 a slow read would hold up every other. asyncpg's connections are not threads: their
# statements run in PostgreSQL's own processes.
SQLITE_READ_POOL = 2
POSTGRES_READ_POOL = 8
# A PostgreSQL read statement may run this much longer than its request's time limit before the
# server ends it (statement_timeout), and a read connection may sit that long inside a transaction
# (idle_in_transaction_session_timeout). A request past its limit is cancelled by asyncpg, which
# asks the server to cancel its statement; these are the server's own backstop for when that
# cancel request does not arrive (a client gone, a network cut).
STATEMENT_TIMEOUT_MARGIN = 1.0


class RequestDb:
    """The request's database handle: lazily opened, serialized, one snapshot."""

    __slots__ = (
        "_closed",
        "_conn",
        "_lock",
        "db_seconds",
        "dialect",
        "include_archived",
        "lists_seen",
        "pool",
        "posts_seen",
        "statements",
        "version",
    )

    def __init__(self, pool: ReadPool, *, include_archived: bool = False) -> None:
        self.pool = pool
        self.dialect: Dialect = pool.dialect
        # Archived posts are for editors: readers never see them, anywhere.
        self.include_archived = include_archived
        self.version: int | None = None  # the store's version, once read (see aggregates.py)
        self.db_seconds = 0.0  # time spent waiting on the database
        # What the response holds, for its cache keys: the posts whose rows were read, and
        # whether anything listed, counted or searched posts.
        self.posts_seen: set[int] = set()
        self.lists_seen = False
        self._conn: ReadConnection | None = None
        self._lock = asyncio.Lock()
        self._closed = False
        self.statements = 0

    async def _connection(self) -> ReadConnection:
        if self._conn is None:
            try:
                self._conn = await self._begin()
            except Exception as exc:
                # A replica that cannot be reached: nothing of the request has run yet, so it
                # starts again on the primary (and the replica is not read until it answers).
                fallback = self.pool.fallback
                if fallback is None or not _unreachable(exc):
                    raise
                if self.pool.on_unreachable is not None:
                    self.pool.on_unreachable(exc)
                self.pool = fallback
                self._conn = await self._begin()
        return self._conn

    async def _begin(self) -> ReadConnection:
        conn = await self.pool.acquire()
        try:
            self._count("BEGIN")
            await conn.begin()
        except BaseException:
            # Cancelled or failed on the way: the BEGIN may still run. The connection goes back
            # once it is settled, out of any transaction (shielded: the caller is leaving).
            await asyncio.shield(self._give_back(conn))
            raise
        return conn

    def _count(self, text: str) -> None:
        self.statements += 1
        if self.pool.hooks:
            self.pool.statement(text)

    async def fetch(self, statement: Sql | str, params: Sequence[Any] = ()) -> list[Row]:
        """Run a SELECT and return its rows."""
        text = statement if isinstance(statement, str) else statement.text(self.dialect)
        async with self._lock:
            if self._closed:
                raise RequestEnded("the request's database handle is closed")
            started = time.perf_counter()
            try:
                conn = await self._connection()
                self._count(text)
                return await conn.fetch(text, params)
            finally:
                self.db_seconds += time.perf_counter() - started

    def note_posts(self, rows: Sequence[Row]) -> None:
        """These post rows (with an ``id`` column) are part of the response."""
        self.posts_seen.update(row["id"] for row in rows)

    async def scalar(self, statement: Sql | str, params: Sequence[Any] = ()) -> Any:
        rows = await self.fetch(statement, params)
        return rows[0][0] if rows else None

    async def close(self) -> None:
        """End the read transaction and give the connection back, once nothing is running on it.

        A field's statement may still be queued when its request ends (an error that nulled the
        whole response leaves sibling fields running): closing waits for it under the lock, and
        statements asked for afterwards are refused (``RequestEnded``) instead of opening another
        connection. Shielded from cancellation: a request that timed out still gives its
        connection back whole, and never one left inside a transaction.
        """
        await asyncio.shield(self._close())

    async def _close(self) -> None:
        async with self._lock:
            self._closed = True
            if self._conn is None:
                return
            conn, self._conn = self._conn, None
            self._count("ROLLBACK")
            await self._give_back(conn)

    async def _give_back(self, conn: ReadConnection) -> None:
        """End the connection's transaction, then return it to the pool; a broken one is closed instead."""
        try:
            await conn.end()
        except Exception as exc:
            # The database went away, say. What the request read stands: its outcome is told by
            # what it ran, not by its ending.
            log.warning("a read connection could not end its transaction (%s): closed", exc.__class__.__name__)
            await self.pool.discard(conn)
            return
        await self.pool.release(conn)


def _unreachable(exc: BaseException) -> bool:
    """Whether ``exc`` says the database could not be reached (down, restarting, no free connection)."""
    trouble = diagnose(exc)
    return trouble is not None and trouble.code == UNAVAILABLE
