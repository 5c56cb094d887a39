"""PostgreSQL's read connections: an asyncpg pool, each read a REPEATABLE READ, READ ONLY transaction
whose limits are SET LOCAL, so that it works through a pooler in transaction mode (see ``loaders.db``)."""

from __future__ import annotations

import contextlib
import logging
import weakref
from collections.abc import Sequence
from typing import Any

import asyncpg
from sqlalchemy.engine import URL

from models.engine import behind_pgbouncer

from .db import STATEMENT_TIMEOUT_MARGIN, PoolUsage, ReadConnection, ReadPool, Row, StatementHook
from .sql import Dialect

log = logging.getLogger("alphanode.db")


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
