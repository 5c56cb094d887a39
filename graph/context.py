"""The typed GraphQL context, built once per request."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import strawberry
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from loaders import Loaders, ReadPool, RequestDb

from .auth import Viewer

# Called with what a write touched, once it is committed (cache purges, later).
WriteListener = Callable[["WriteReport"], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class WriteReport:
    """What a committed write touched."""

    post_ids: tuple[int, ...]
    lists: bool = True  # lists, search and facets may have changed


class Writer:
    """The write side, for mutations: the store's engine, and reads that see what was just committed."""

    def __init__(
        self,
        engine: AsyncEngine,
        pool: ReadPool,
        listeners: list[WriteListener] | None = None,
        *,
        refresh_inline: bool = True,
    ) -> None:
        self.engine = engine
        self.pool = pool
        self.listeners = listeners or []
        # False when a background refresher (store.refresher) recomputes similar posts after
        # writes: the write answers once committed, and the listeners wake the refresher.
        self.refresh_inline = refresh_inline
        # SQLite takes one writer at a time. Writes of this process wait their turn here, in
        # order, rather than in SQLite's busy handler, which retries after growing sleeps (up
        # to 100 ms each): under a steady stream of edits some waited seconds.
        self._turn = asyncio.Lock() if engine.dialect.name == "sqlite" else None

    @contextlib.asynccontextmanager
    async def turn(self) -> AsyncIterator[None]:
        """Hold this while writing: serializes this process's writes on SQLite, a no-op on PostgreSQL."""
        if self._turn is None:
            yield
            return
        async with self._turn:
            yield

    async def run(self, edit_fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        from store.edit import run_edit

        async with self.turn():
            result = await run_edit(self.engine, edit_fn, *args, refresh=self.refresh_inline, **kwargs)
        await self.notify(WriteReport((result.post_id,)))
        return result

    async def notify(self, report: WriteReport) -> None:
        for listener in self.listeners:
            await listener(report)

    async def post_id(self, source_id: str) -> int | None:
        from models import Post, table

        post = table(Post)
        async with self.engine.connect() as conn:
            return await conn.scalar(select(post.c.id).where(post.c.source_id == source_id))


@dataclass(slots=True)
class Context:
    """What every resolver may use: who is asking, the request's database handle and loaders, the writer."""

    db: RequestDb
    loaders: Loaders
    viewer: Viewer | None = None
    writer: Writer | None = None
    request: Any = None
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def create(
        cls, db: RequestDb, request: Any = None, viewer: Viewer | None = None, writer: Writer | None = None
    ) -> Context:
        return cls(db=db, loaders=Loaders.create(db), viewer=viewer, writer=writer, request=request)


Info = strawberry.Info[Context, None]
