"""Keeping a served SQLite store's write-ahead log bounded.

SQLite checkpoints its WAL into the database by itself (every 1,000 pages), but it can only
start the log over from its beginning at a moment no reader is using it. A server under
steady load always has a read transaction open somewhere, so that moment never comes: the log
grows by every write, without bound (4.4 GB beside a 390 MB store after 30 minutes of the
soak's 95/5 traffic, 7 writes a second), and reads slow down as it grows, since each page
they read is looked up in the log's index first. SQLite's documentation calls this
checkpoint starvation.

``WalKeeper`` watches the log's size from a server process and, once it passes a limit, runs
a ``TRUNCATE`` checkpoint: it takes the write lock, copies the log into the database, waits
(within the busy timeout) for the readers still on the log's older frames to finish, which
takes milliseconds here since every read transaction is one request, and empties the file.
New readers meanwhile read the database file itself. A checkpoint that could not finish (a
reader past the busy timeout) is tried again at the next look.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass

from sqlalchemy import Engine, text
from sqlalchemy.ext.asyncio import AsyncEngine

from models.engine import is_sqlite, sync_twin

from .background import stop_task

log = logging.getLogger("alphanode.wal")

DEFAULT_LIMIT_BYTES = 64 * 1024 * 1024
DEFAULT_INTERVAL = 1.0  # seconds between looks at the log's size


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """What one checkpoint did."""

    done: bool  # the log was copied whole and emptied
    log_frames: int  # frames in the log when it started
    copied_frames: int  # frames copied into the database
    bytes_before: int
    bytes_after: int
    seconds: float


# How long a checkpoint waits for readers still on the log's older frames before it gives up
# until the next look. While it waits, SQLite keeps new readers off the log too (they wait in
# their busy handler): with the store's 5 s busy timeout the soak's p99 rose to 5 s.
CHECKPOINT_BUSY_MS = 50


def checkpoint(engine: Engine, wal_path: str) -> Checkpoint:
    """Copy the log into the database and empty it (``PRAGMA wal_checkpoint(TRUNCATE)``), waiting
    ``CHECKPOINT_BUSY_MS`` at most for readers; ``done`` is False when one held it up."""
    before = _size(wal_path)
    started = time.perf_counter()
    with engine.connect() as conn:
        (restore,) = conn.execute(text("PRAGMA busy_timeout")).one()
        conn.execute(text(f"PRAGMA busy_timeout={CHECKPOINT_BUSY_MS}"))
        try:
            busy, frames, copied = conn.execute(text("PRAGMA wal_checkpoint(TRUNCATE)")).one()
        finally:
            conn.execute(text(f"PRAGMA busy_timeout={int(restore)}"))
    return Checkpoint(busy == 0, frames, copied, before, _size(wal_path), time.perf_counter() - started)


def _size(path: str) -> int:
    try:
        return os.path.getsize(path)
    except OSError:
        return 0


class WalKeeper:
    """Checkpoints the store's log whenever it passes ``limit_bytes``; one per server process.

    ``turn`` is the process's write turn (``graph.context.Writer.turn``): the checkpoint waits
    for this process's writes rather than making them wait in SQLite's busy handler.
    """

    def __init__(
        self,
        engine: AsyncEngine,
        turn: Callable[[], AbstractAsyncContextManager[None]],
        *,
        limit_bytes: int = DEFAULT_LIMIT_BYTES,
        interval: float = DEFAULT_INTERVAL,
    ) -> None:
        if not is_sqlite(engine):
            raise ValueError("only SQLite stores have a write-ahead log to keep")
        self.engine = engine
        self.turn = turn
        self.limit_bytes = limit_bytes
        self.interval = interval
        self.wal_path = f"{engine.url.database}-wal"
        self.checkpoints = 0  # completed
        self.last: Checkpoint | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="wal-keeper")

    async def stop(self) -> None:
        await stop_task(self._task)

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                await self.keep()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the store in trouble, say: look again later
                log.warning("checkpointing the write-ahead log failed: %s", exc.__class__.__name__)

    async def keep(self) -> Checkpoint | None:
        """Checkpoint now if the log has passed the limit; what it did, or None."""
        if _size(self.wal_path) <= self.limit_bytes:
            return None
        async with self.turn():
            done = await asyncio.to_thread(checkpoint, sync_twin(self.engine), self.wal_path)
        self.last = done
        if done.done:
            self.checkpoints += 1
            log.info(
                "write-ahead log checkpointed: %d frames, %.1f MB to %.1f MB in %.0f ms",
                done.log_frames,
                done.bytes_before / 1e6,
                done.bytes_after / 1e6,
                done.seconds * 1000,
            )
        else:
            log.info("write-ahead log checkpoint held up by a reader: tried again shortly")
        return done
