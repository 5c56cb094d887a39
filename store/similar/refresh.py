"""Refreshing similar posts after writes: what to recompute, one refresh at a time, in worker
processes for many posts, and the stored rows."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import itertools
import logging
import math
import multiprocessing
import os
import pickle
import uuid
from collections.abc import AsyncIterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

import asyncpg
import numpy as np
from sqlalchemy import Connection, delete, exists, func, insert, literal, select, update
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from .. import pending, purge
from ..bulk import chunks, insert_many, tune_for_bulk
from ..pending import pending_t
from ..prepare import start_worker, workers_can_start
from .ranking import TopLists, top_lists
from .terms import MAX_SIMILAR, TermIndex, load_index, post_t, similar_t

log = logging.getLogger("alphanode.similar")

# Above this share of the store marked, recompute everything.
FULL_REFRESH_SHARE = 0.25
# Up to this share of the store to recompute, read only the posts involved rather than every post's terms.
PARTIAL_READ_SHARE = 0.02
WRITE_CHUNK = 10_000  # posts whose similar posts are written in one transaction
COMPUTE_PART = 10_000  # posts computed at a time
BULK = 5_000  # posts: from here on, SQLite is tuned for bulk writes (see write.tune_for_bulk)
# From this many posts on, worker processes compute while this process writes.
PARALLEL_FROM = 20_000
WORKERS = 2  # at most


# -- refreshing ---------------------------------------------------------------


def _mark_neighbours(conn: Connection, index: TermIndex, changed: list[int]) -> None:
    """Mark the posts that a changed post may leave or enter (a ``similar_pending`` row of state 1).

    It may leave the lists that hold it now; it may enter the list of a candidate
    whose K-th score it now reaches, or whose list is not full.
    """
    marked: set[int] = set()
    for part in chunks(changed):
        marked.update(conn.execute(select(similar_t.c.post_id).where(similar_t.c.similar_id.in_(part))).scalars())
    scored: list[tuple[np.ndarray, np.ndarray]] = []
    for post_id in changed:
        i = index.index_of.get(post_id)
        if i is None:
            continue
        others = index.candidates(i)[0]
        if len(others) == 0:
            continue
        scored.append((index.post_ids[others], index.score_against(i, others)))
    ids = sorted(set(itertools.chain.from_iterable(o.tolist() for o, _ in scored)))
    kth: dict[int, float] = {}
    for part in chunks(ids):
        kth.update(
            conn.execute(
                select(similar_t.c.post_id, similar_t.c.score).where(
                    similar_t.c.rank == MAX_SIMILAR, similar_t.c.post_id.in_(part)
                )
            ).all()
        )
    for others, scores in scored:
        for other, score in zip(others.tolist(), scores.tolist(), strict=True):
            if score > 0 and score >= kth.get(other, 0.0):
                marked.add(other)
    marked.difference_update(changed)
    pending.mark(conn, sorted(marked), pending.NEIGHBOUR)


def _index_for(conn: Connection, post_ids: list[int], posts: int) -> TermIndex:
    """A partial index around a few posts, a full one when they are many."""
    return load_index(conn, around=post_ids) if len(post_ids) <= PARTIAL_READ_SHARE * posts else load_index(conn)


def _plan(conn: Connection) -> tuple[TermIndex, list[int], bool]:
    """Mark neighbours of changed posts and return the posts to recompute, by id, with an index for
    them, and whether everything is recomputed."""
    posts = conn.execute(select(func.count()).select_from(post_t)).scalar_one()
    changed = pending.ids(conn, pending_t.c.state == pending.CHANGED)
    index = None
    everything = len(changed) > FULL_REFRESH_SHARE * max(posts, 1)
    if everything:
        # Everything is recomputed: every post is marked, so that an interrupted refresh is
        # finished by the next one.
        unmarked = select(post_t.c.id, literal(pending.NEIGHBOUR)).where(
            ~exists().where(pending_t.c.post_id == post_t.c.id)
        )
        conn.execute(insert(pending_t).from_select(["post_id", "state"], unmarked))
    elif changed:
        index = _index_for(conn, changed, posts)
        _mark_neighbours(conn, index, changed)
    # The marks this plan takes on: a post a write changes from now on is marked 2 again, for
    # that write's refresh, and keeps its mark when this one clears its own.
    conn.execute(update(pending_t).where(pending_t.c.state == pending.CHANGED).values(state=pending.NEIGHBOUR))
    todo = pending.ids(conn)
    if index is None or not index.full:
        index = _index_for(conn, todo, posts)
    return index, todo, everything


def lists_for(index: TermIndex, post_ids: Sequence[int]) -> TopLists:
    """The similar posts of these posts (ascending ids), as :func:`top_lists` gives them."""
    queries = np.array([i for i in map(index.index_of.get, post_ids) if i is not None], dtype=np.int64)
    return top_lists(index, queries)


def rows_for(index: TermIndex, lists: TopLists, first: int, last: int) -> list[tuple[int, int, int, float, str]]:
    """(post_id, rank, similar_id, score, reasons) of the similar posts of posts ``first..last`` (ids)."""
    posts = index.post_ids[lists.query]
    part = slice(int(np.searchsorted(posts, first, side="left")), int(np.searchsorted(posts, last, side="right")))
    return list(
        zip(
            posts[part].tolist(),
            lists.rank[part].tolist(),
            index.post_ids[lists.similar[part]].tolist(),
            lists.score[part].tolist(),
            lists.reasons[part],
            strict=True,
        )
    )


_COLUMNS = ("post_id", "rank", "similar_id", "score", "reasons")  # in table order, for insert_many


# Refreshes of several processes (server workers and instances, imports, concurrent edits) take
# turns on PostgreSQL: two that planned the same posts would each delete and insert their rows (a
# duplicate key), two that update overlapping post rows in different orders deadlock, and a plan
# read while another refresh writes sees half of it. SQLite's write lock already makes them take
# turns. The key is arbitrary and fixed ("an_sim").
SIMILAR_LOCK_KEY = 0x616E5F73696D
LOCK_RETRY = 0.05  # seconds between tries for the refresh lock while another refresh holds it
PLAN_ATTEMPTS = 5  # a plan whose marks meet a concurrent write's (PostgreSQL) is made again


@contextlib.asynccontextmanager
async def _one_refresh_at_a_time(engine: AsyncEngine) -> AsyncIterator[None]:
    """Hold the refresh lock for the whole refresh (PostgreSQL): a transaction of its own holds it.

    A transaction-scoped lock, not a session one, so that it works through a pooler in
    transaction mode; the transaction writes nothing. The lock is tried, and tried again a
    moment later in a new transaction, never waited for inside one: a transaction waiting on
    the server holds a server session, and behind a pooler with few of them the refresh that
    holds the lock could wait for a session that the refreshes waiting for it hold.
    """
    if engine.dialect.name != "postgresql":
        yield
        return
    async with engine.connect() as conn:
        while True:
            async with conn.begin():
                if await conn.scalar(select(func.pg_try_advisory_xact_lock(SIMILAR_LOCK_KEY))):
                    yield
                    return
            await asyncio.sleep(LOCK_RETRY)


def _serialization_failure(exc: BaseException) -> bool:
    """PostgreSQL's "could not serialize access" (SQLSTATE 40001), raised through SQLAlchemy."""
    seen: BaseException | None = exc
    while seen is not None:
        if getattr(seen, "sqlstate", None) == "40001" or isinstance(seen, asyncpg.SerializationError):
            return True
        seen = getattr(seen, "orig", None) or seen.__cause__
    return False


def _store(conn: Connection, post_ids: Sequence[int], rows: list[tuple[int, int, int, float, str]]) -> None:
    """Write these posts' similar posts and clear their marks.

    Only the marks the plan took on (1) are cleared: a post a write changed since (2) keeps its
    mark for that write's refresh.
    """
    for part in chunks(list(post_ids)):
        conn.execute(delete(similar_t).where(similar_t.c.post_id.in_(part)))
    pending.clear(conn, post_ids, pending_t.c.state == pending.NEIGHBOUR)
    insert_many(conn, similar_t, _COLUMNS, rows)
    # These posts' pages show new similar posts: cached copies must go.
    purge.record(conn, post_ids, lists=False)


async def refresh_similar(engine: AsyncEngine) -> int:
    """Recompute similar posts for every post an import or edit touched; returns how many."""
    pools: list[ProcessPoolExecutor] = []
    try:
        async with _one_refresh_at_a_time(engine):
            for attempt in range(1, PLAN_ATTEMPTS + 1):
                try:
                    planned = await _plan_in_one_snapshot(engine, pools)
                    break
                except DBAPIError as exc:
                    if not _serialization_failure(exc) or attempt == PLAN_ATTEMPTS:
                        raise
                    log.info("similar posts: a write met the plan; planning again")
            if planned is None:
                return 0
            index, todo, _ = planned
            pool = pools[0] if pools and len(todo) >= PARALLEL_FROM else None
            await _recompute(engine, index, todo, pool)
    finally:
        for started in pools:
            started.shutdown(wait=True, cancel_futures=True)
    if index.computed:
        log.info(
            "similar posts: recomputed %d post(s); top %d provably exact for %.1f%%",
            len(todo),
            MAX_SIMILAR,
            100.0 * index.certified / index.computed,
        )
    return len(todo)


async def _plan_in_one_snapshot(
    engine: AsyncEngine, pools: list[ProcessPoolExecutor]
) -> tuple[TermIndex, list[int], bool] | None:
    """The plan, read from one snapshot (SQLite's write transaction; PostgreSQL's REPEATABLE READ,
    where posts written meanwhile would otherwise show up between two of its statements); None
    when nothing waits. A large plan starts the worker processes into ``pools`` meanwhile."""
    async with engine.connect() as conn:
        if engine.dialect.name == "sqlite":
            conn = await conn.execution_options(sqlite_immediate=True)
        else:
            conn = await conn.execution_options(isolation_level="REPEATABLE READ")
        async with conn.begin():
            waiting = await conn.scalar(pending.COUNT)
            if not waiting:
                return None
            if not pools and waiting >= PARALLEL_FROM and workers_can_start():
                pools.append(_start_pool())  # its processes start while the plan is made
            return await conn.run_sync(_plan)


async def _recompute(engine: AsyncEngine, index: TermIndex, todo: list[int], pool: ProcessPoolExecutor | None) -> None:
    """Compute and store the similar posts of ``todo``, a part at a time.

    With a pool, the parts are computed in its processes while this one writes them.
    """
    parts = [todo[start : start + COMPUTE_PART] for start in range(0, len(todo), COMPUTE_PART)]
    computing: collections.deque[asyncio.Future[TopLists]] = collections.deque()
    if pool is not None:
        shared = pickle.dumps(index, protocol=pickle.HIGHEST_PROTOCOL)
        token = uuid.uuid4().hex
        computing.extend(asyncio.wrap_future(pool.submit(_lists_elsewhere, token, shared, part)) for part in parts)
    bulk = len(todo) >= BULK
    try:
        for part in parts:
            lists = None
            if computing:
                try:
                    lists = await computing.popleft()
                except BrokenProcessPool:
                    log.warning("the worker processes stopped: computing in this process")
                    for future in computing:
                        future.cancel()
                    computing.clear()
            if lists is None:
                lists = lists_for(index, part)
            index.computed += lists.computed
            index.certified += lists.certified
            for start in range(0, len(part), WRITE_CHUNK):
                chunk = part[start : start + WRITE_CHUNK]
                rows = rows_for(index, lists, chunk[0], chunk[-1])
                async with engine.connect() as conn:
                    conn = await conn.execution_options(sqlite_immediate=True)
                    async with conn.begin():
                        if bulk:
                            await conn.run_sync(tune_for_bulk)
                        await conn.run_sync(_store, chunk, rows)
    finally:
        for future in computing:
            future.cancel()


def _start_pool() -> ProcessPoolExecutor:
    workers = min(os.cpu_count() or 1, WORKERS)
    pool = ProcessPoolExecutor(
        max_workers=workers,
        mp_context=multiprocessing.get_context("spawn"),
        initializer=start_worker,
        initargs=(frozenset(),),
    )
    for _ in range(workers):  # start them now, and have them read this module
        pool.submit(_ready)
    return pool


def _ready() -> None:
    pass


# In a worker process: the index of the refresh at hand, read once.
_index_here: dict[str, TermIndex] = {}


def _lists_elsewhere(token: str, shared: bytes, post_ids: list[int]) -> TopLists:
    """:func:`lists_for` in a worker process, given the index pickled."""
    index = _index_here.get(token)
    if index is None:
        _index_here.clear()
        index = _index_here[token] = pickle.loads(shared)  # noqa: S301 - our own parent's index
    return lists_for(index, post_ids)


def expected_weight(n: int, df: int) -> float:
    """The weight of a term held by ``df`` of ``n`` posts (for tests and docs)."""
    return math.log((n + 1) / df)


async def rebuild_similar(engine: AsyncEngine) -> int:
    """Recompute every post's similar posts with the current weights."""
    async with engine.begin() as conn:
        await conn.execute(
            insert(pending_t).from_select(["post_id", "state"], select(post_t.c.id, literal(pending.NEIGHBOUR)))
        )
    return await refresh_similar(engine)
