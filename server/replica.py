"""Public reads from a PostgreSQL streaming replica, never cached staler than a purge.

With ``ALPHANODE_READ_DATABASE_URL`` the requests without a token (the public's) read
from the replica; requests with a token (editors, who expect to read what they just
wrote) and every write go to the primary (``ALPHANODE_DATABASE_URL``).

A replica replays the primary's write-ahead log some time after the primary wrote
it. The danger is a purge undone: a write purges the pages it changed, the next
reader asks again, and a replica that has not replayed the write yet answers the
old version, which is cached again as if it were new. So every purge raises a
*fence*: the primary's flushed WAL position (``pg_current_wal_flush_lsn()``), read
after the purge-log rows were seen and before any cache is purged. A write's
transaction is visible only once its commit record is flushed (``store/purge.py``
makes sure of it also where ``synchronous_commit`` is off), so the fence is at or
past it; and a replica receives flushed WAL alone, so it can always reach the fence. Public reads go to the
replica only while it has replayed up to the fence (``pg_last_wal_replay_lsn()``);
until then they go to the primary. A page computed after the purge is therefore
computed from data at least as new as the write, wherever it is read.

The monitor asks both servers where they are every ``replica_check_interval``
seconds. The replica's lag is the age of the oldest primary position it has not
replayed (0 once it has replayed everything the primary had written when last
asked). A replica that does not answer, that is no longer in recovery (promoted),
or whose lag passes ``replica_max_lag``, is not read from until it is back and
caught up; ``/healthz`` says which.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable
from typing import Any, Literal

import asyncpg

from loaders import ReadPool
from models.engine import behind_pgbouncer, normalize_url
from models.trouble import diagnose
from store.background import stop_task

log = logging.getLogger("alphanode.replica")

State = Literal["ok", "lagging", "down", "promoted", "starting"]

# Each position is asked for as its distance from 0/0, a number: no LSN parsing here.
PRIMARY_POSITION = "SELECT pg_current_wal_flush_lsn() - '0/0'::pg_lsn"
REPLICA_POSITION = "SELECT pg_is_in_recovery(), pg_last_wal_replay_lsn() - '0/0'::pg_lsn"
CONNECT_TIMEOUT = 2.0  # seconds to reach either server before the check counts it as down
SAMPLES = 2048  # primary positions kept for the lag (at 0.25 s, more than eight minutes)
# The WAL's page headers (PostgreSQL's XLOG_BLCKSZ, SizeOfXLogShortPHD and, at the start of each
# segment of the default 16 MiB, SizeOfXLogLongPHD): see ``record_boundary``.
WAL_PAGE = 8192
WAL_SEGMENT = 16 * 2**20
SHORT_HEADER = 24
LONG_HEADER = 40


def record_boundary(position: int) -> int:
    """A primary's WAL position as a replica's replay position would show it.

    A position just past a page's header (where no record can end: a new segment's first page,
    just after ``pg_basebackup``, for one) is the page boundary a replica that has replayed
    everything before it reports. Both mean "everything so far".
    """
    if position % WAL_SEGMENT == LONG_HEADER:
        return position - LONG_HEADER
    if position % WAL_PAGE == SHORT_HEADER:
        return position - SHORT_HEADER
    return position


def setting_problem(primary_url: str, replica_url: str | None) -> str | None:
    """What is wrong with ``ALPHANODE_READ_DATABASE_URL`` beside ``ALPHANODE_DATABASE_URL``, or None."""
    if not replica_url:
        return None
    if any(normalize_url(url).get_backend_name() == "sqlite" for url in (primary_url, replica_url)):
        return (
            "ALPHANODE_READ_DATABASE_URL is a PostgreSQL streaming replica of a PostgreSQL store; "
            "SQLite has no replicas (leave it unset)"
        )
    return None


class Replica:
    """Where this process's public reads go, and the replica's state as last seen."""

    def __init__(
        self,
        primary_url: str,
        replica_url: str,
        pool: ReadPool,
        primary: ReadPool,
        *,
        max_lag: float,
        interval: float,
        on_state: Callable[[bool, float | None], None] | None = None,
    ) -> None:
        self.primary_url = primary_url
        self.replica_url = replica_url
        self.pool = pool  # the replica's read pool
        self.primary = primary  # the primary's read pool
        self.max_lag = max_lag
        self.interval = interval
        self.on_state = on_state  # told (usable, lag) after each check (metrics)
        self.state: State = "starting"
        self.lag: float | None = None  # seconds behind, as last measured; None while unknown
        self.replayed = -1  # the replica's replay position, as last seen
        self.fence = 0  # the position the replica must have replayed before public reads go to it
        self._samples: deque[tuple[float, int]] = deque(maxlen=SAMPLES)  # (when, primary position)
        self._conns: dict[str, asyncpg.Connection] = {}
        # One connection to each server, asked by the check and by purges in turn.
        self._turns = {"primary": asyncio.Lock(), "replica": asyncio.Lock()}
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        # A request that could not reach the replica marks it down at once (loaders.db).
        pool.fallback = primary
        pool.on_unreachable = self._unreachable
        # One index and one aggregate cache for both: they describe one store, by store version.
        pool.facts = primary.facts
        pool.aggregates = primary.aggregates

    @property
    def usable(self) -> bool:
        """Whether public reads go to the replica now."""
        # (A primary position seen at least once: the fence covers what was written before.)
        return self.state == "ok" and bool(self._samples) and self.replayed >= self.fence

    def read_pool(self) -> ReadPool:
        """The pool for a public request: the replica's when it is usable, else the primary's."""
        return self.pool if self.usable else self.primary

    def describe(self) -> dict[str, Any]:
        """The replica's part of ``/healthz``."""
        return {
            "state": self.state,
            "lag_seconds": None if self.lag is None else round(self.lag, 3),
            "reads": "replica" if self.usable else "primary",
        }

    async def start(self) -> None:
        """Check once (every write committed before now is fenced), then keep checking."""
        with contextlib.suppress(Exception):  # a primary away at start-up: the fence is raised on the next check
            await self.raise_fence()
        await self.check()
        self._task = asyncio.create_task(self._run(), name="replica-check")

    async def stop(self) -> None:
        await stop_task(self._task)
        for conn in self._conns.values():
            with contextlib.suppress(Exception):
                await asyncio.wait_for(conn.close(), 1.0)
        self._conns.clear()

    async def raise_fence(self) -> int:
        """Public reads go to the primary until the replica has replayed what the primary has written now.

        Called for each purge, after its purge-log rows were read and before any cache is purged.
        Raises when the primary cannot be asked: the purge is then tried again with the next poll.
        """
        position = record_boundary(int(await self._position("primary", PRIMARY_POSITION)))
        self.fence = max(self.fence, position)
        self._wake.set()  # the replica may be there already: look now rather than at the next tick
        return self.fence

    async def _run(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.interval)
            self._wake.clear()
            await self.check()

    async def check(self) -> None:
        """Ask both servers where they are, and decide where public reads go."""
        now = time.monotonic()
        try:
            primary = record_boundary(int(await self._position("primary", PRIMARY_POSITION)))
            self._samples.append((now, primary))
        except Exception as exc:
            # The primary away: its readers fail as they would without a replica, and what the
            # replica serves stays as it was last judged. Its lag is measured against older samples.
            self._trouble("the primary", exc)
        try:
            rows = await self._row("replica", REPLICA_POSITION)
        except Exception as exc:
            self._set("down", None)
            self._trouble("the replica", exc)
            return
        in_recovery, replayed = rows
        if not in_recovery or replayed is None:
            self._set("promoted", None)
            return
        was = self.state
        self.replayed = int(replayed)
        lag = self._lag(now)
        if was in ("down", "promoted", "starting") and self._samples:
            # Back (or new): whatever it missed meanwhile, it is read only once it has it all.
            self.fence = max(self.fence, self._samples[-1][1])
        self._set("ok" if lag <= self.max_lag else "lagging", lag)

    def _lag(self, now: float) -> float:
        """Seconds since the primary first wrote a position the replica has not replayed yet (0: none)."""
        while self._samples and self._samples[0][1] <= self.replayed and len(self._samples) > 1:
            # Positions it has replayed say nothing more, but the newest is kept to compare with.
            self._samples.popleft()
        for when, position in self._samples:
            if position > self.replayed:
                return now - when
        return 0.0

    def _set(self, state: State, lag: float | None) -> None:
        if state != self.state and not (self.state == "starting" and state == "ok"):
            log.log(
                logging.INFO if state == "ok" else logging.WARNING,
                "read replica %s%s; public reads go to the %s",
                state,
                "" if lag is None else f" ({lag:.1f}s behind)",
                "replica once it has caught up" if state == "ok" else "primary",
            )
        self.state = state
        self.lag = lag
        if self.on_state is not None:
            self.on_state(self.usable, lag)

    def _unreachable(self, exc: BaseException) -> None:
        """A request could not reach the replica: public reads go to the primary until a check finds it."""
        if self.state != "down":
            self._set("down", None)
            self._trouble("the replica", exc)

    def _trouble(self, which: str, exc: BaseException) -> None:
        trouble = diagnose(exc)
        reason = trouble.message if trouble is not None else exc.__class__.__name__
        log.debug("checking %s failed: %s", which, reason)

    async def _position(self, which: str, query: str) -> Any:
        row = await self._row(which, query)
        return row[0]

    async def _row(self, which: str, query: str) -> Any:
        async with self._turns[which]:
            conn = self._conns.get(which)
            try:
                if conn is None or conn.is_closed():
                    conn = self._conns[which] = await self._connect(which)
                return await asyncio.wait_for(conn.fetchrow(query), CONNECT_TIMEOUT)
            except BaseException:
                failed = self._conns.pop(which, None)
                if failed is not None:
                    failed.terminate()
                raise

    async def _connect(self, which: str) -> asyncpg.Connection:
        url = normalize_url(self.primary_url if which == "primary" else self.replica_url)
        options: dict[str, Any] = {}
        if behind_pgbouncer(url):
            options["statement_cache_size"] = 0
        return await asyncpg.connect(
            host=url.host or None,
            port=url.port or None,
            user=url.username or None,
            password=url.password or None,
            database=url.database or None,
            timeout=CONNECT_TIMEOUT,
            **options,
        )
