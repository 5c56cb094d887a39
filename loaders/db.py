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
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiosqlite
import asyncpg
from sqlalchemy.engine import URL

from models.engine import REQUEST_BUSY_TIMEOUT_MS, behind_pgbouncer, normalize_url
from models.search import SQLITE_INSTANCES_DDL
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
            return await SqliteReadPool.create(parsed.database or "", size, busy_timeout_ms)
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


class SqliteReadPool(ReadPool):
    dialect: Dialect = "sqlite"

    def __init__(self, path: str, size: int, busy_timeout_ms: int = REQUEST_BUSY_TIMEOUT_MS) -> None:
        super().__init__()
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
            "PRAGMA cache_size=-65536",  # 64 MiB of page cache per connection
            "PRAGMA mmap_size=268435456",
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


class _PostgresConnection(ReadConnection):
    __slots__ = ("begin_sql", "conn", "open")

    def __init__(self, conn: asyncpg.Connection, begin_sql: str) -> None:
        self.conn = conn
        self.begin_sql = begin_sql
        self.open = False

    async def begin(self) -> None:
        # From here on ``end`` rolls back, whatever part of the BEGIN ran before a failure or a
        # cancellation (asyncpg waits for a cancelled statement to be settled before the next).
        self.open = True
        await self.conn.execute(self.begin_sql)

    async def fetch(self, text: str, params: Sequence[Any]) -> list[Row]:
        return list(await self.conn.fetch(text, *params))

    async def end(self) -> None:
        if self.open:
            self.open = False
            await self.conn.execute("ROLLBACK")


def begin_statement(request_timeout: float | None) -> str:
    """What starts a read transaction: BEGIN and, with a request time limit, the server's limits for it.

    One simple query of three statements, a single round trip. The limits are ``SET LOCAL``, for
    this transaction alone: settings of the session (the start-up packet's, or a SET) would not
    reach the server session that runs it behind a pooler in transaction mode (PgBouncer refuses
    a start-up parameter it does not know of, or with ``ignore_startup_parameters`` drops it), and
    a SET would stay on a server session that other clients' transactions use next.
    """
    begin = "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY"
    if request_timeout is None:
        return begin
    limit = round((request_timeout + STATEMENT_TIMEOUT_MARGIN) * 1000)  # milliseconds
    return f"{begin}; SET LOCAL statement_timeout = {limit}; SET LOCAL idle_in_transaction_session_timeout = {limit}"


async def _learn_array_types(conn: asyncpg.Connection) -> None:
    """Learn the codecs of the arrays ``IN :keys`` binds, once per new connection.

    asyncpg asks the server about an array type the first time a connection binds
    one (three statements: jit off, the type query, jit back); doing it here keeps
    it out of the first requests on each connection. In a transaction, so that the
    three run on one server session behind a pooler in transaction mode: jit is
    turned back on where it was turned off.
    """
    async with conn.transaction():
        await conn.prepare("SELECT $1::int4[], $2::varchar[], $3::text[]")


async def _keep_session(conn: asyncpg.Connection) -> None:
    """Give a connection back as it is, without asyncpg's reset query (one more statement per request).

    A read connection changes no session state (no SET, LISTEN, advisory lock or
    cursor: its limits are SET LOCAL), and its transaction has ended; asyncpg still
    rolls back one left open.
    """


class PostgresReadPool(ReadPool):
    dialect: Dialect = "postgresql"

    def __init__(self, pool: asyncpg.Pool, size: int, begin_sql: str) -> None:
        super().__init__()
        self.pool = pool
        self.size = size
        self.begin_sql = begin_sql
        self._trace: StatementHook | None = None
        self._traced: weakref.WeakSet[Any] = weakref.WeakSet()

    @classmethod
    async def create(
        cls, url: URL, size: int, request_timeout: float | None = None, connect_timeout: float | None = None
    ) -> PostgresReadPool:
        options: dict[str, Any] = {}
        if connect_timeout is not None:
            options["timeout"] = connect_timeout
        if behind_pgbouncer(url):
            # A kept statement lives on the server session that prepared it, which the next
            # transaction may not run on: each is prepared unnamed instead (one round trip more).
            options["statement_cache_size"] = 0
        pool = await asyncpg.create_pool(
            host=url.host or None,
            port=url.port or None,
            user=url.username or None,
            password=url.password or None,
            database=url.database or None,
            # No floor of connections kept open: asyncpg would reconnect to it in the background
            # while the server is away, logging a traceback each time; requests connect anyway.
            min_size=0,
            max_size=size,
            init=_learn_array_types,
            reset=_keep_session,
            **options,
        )
        return cls(pool, size, begin_statement(request_timeout))

    async def acquire(self) -> ReadConnection:
        conn = await self.pool.acquire()
        if self._trace is not None:
            raw = getattr(conn, "_con", conn)  # the pool hands out proxies of long-lived connections
            if raw not in self._traced:
                self._traced.add(raw)
                conn.add_query_logger(self._log_query)
        return _PostgresConnection(conn, self.begin_sql)

    def _log_query(self, record: Any) -> None:
        if self._trace is not None:
            self._trace(record.query)

    async def trace(self, callback: StatementHook) -> None:
        """asyncpg's query logger on every connection: what the driver really runs."""
        self._trace = callback

    async def release(self, conn: ReadConnection) -> None:
        assert isinstance(conn, _PostgresConnection)
        await self.pool.release(conn.conn)

    def usage(self) -> PoolUsage:
        # asyncpg ends a transaction left open when a connection comes back; none is idle inside one.
        return PoolUsage(self.size, self.pool.get_size(), self.pool.get_idle_size(), 0)

    async def discard(self, conn: ReadConnection) -> None:
        assert isinstance(conn, _PostgresConnection)
        # The pool replaces a terminated connection on its next acquire. One that asyncpg saw closed
        # (the server went away) it has taken back already, and its proxy refuses every call.
        with contextlib.suppress(asyncpg.InterfaceError):
            conn.conn.terminate()
        await self.pool.release(conn.conn)  # a no-op for a connection taken back

    async def close(self) -> None:
        await self.pool.close()


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
