"""The per-request database handle that loaders share.

One connection and one read transaction per request, opened on the first
statement and closed when the request ends: every statement of a request sees
the same snapshot, so a post page never mixes two versions of a post being
edited. Batches of different loaders run concurrently on the event loop, and one
connection is not safe across concurrent tasks, so statements take turns behind
a lock. A connection per batch was the alternative; it loses the snapshot and,
with aiosqlite, costs a thread start whenever the pool runs dry.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Executable, Row
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine


class RequestDb:
    """Lazily opened, serialized access to one connection for the life of a request."""

    __slots__ = ("_conn", "_engine", "_lock", "statements")

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._conn: AsyncConnection | None = None
        self._lock = asyncio.Lock()
        self.statements = 0

    @property
    def dialect(self) -> str:
        return self._engine.dialect.name

    async def _connection(self) -> AsyncConnection:
        if self._conn is None:
            conn = await self._engine.connect()
            if self._engine.dialect.name == "postgresql":
                conn = await conn.execution_options(isolation_level="REPEATABLE READ", postgresql_readonly=True)
            await conn.begin()
            self._conn = conn
        return self._conn

    async def all(self, statement: Executable, params: dict[str, Any] | None = None) -> Sequence[Row[Any]]:
        """Run a SELECT and return its rows."""
        async with self._lock:
            conn = await self._connection()
            self.statements += 1
            result = await conn.execute(statement, params or {})
            return result.all()

    async def scalar(self, statement: Executable, params: dict[str, Any] | None = None) -> Any:
        rows = await self.all(statement, params)
        return rows[0][0] if rows else None

    async def close(self) -> None:
        """End the read transaction and give the connection back to the pool."""
        if self._conn is not None:
            conn, self._conn = self._conn, None
            try:
                await conn.rollback()
            finally:
                await conn.close()
