"""Import page-text documents: idempotent, all or nothing per document, with a receipt.

Documents are parsed first; a rejected document never reaches a transaction.
The good ones are written in batches, one transaction each. When a batch fails
in the database (a unique key taken by a concurrent writer, say), it is rolled
back and its documents are written one by one, so that one bad document never
stops the good ones and never leaves a partial post. Similar posts of what
changed are refreshed at the end; posts waiting for that refresh are marked in
the same transaction that wrote them, so an interrupted import is finished by
the next one.

Large imports read and parse in worker processes (:mod:`store.prepare`) while
this process writes, and skip documents whose bytes hash to the content hash of
a stored post: those are unchanged, whatever their name, without being parsed.
"""

from __future__ import annotations

import asyncio
import collections
import datetime as dt
import gc
import logging
import multiprocessing
import os
import time
from collections.abc import AsyncIterator, Callable, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from typing import Any

import orjson
from sqlalchemy import func, insert, select
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from models import ImportReceiptRecord, Post, table
from models.trouble import StoreTrouble, StoreTroubleError, diagnose

from .bulk import tune_for_bulk
from .indexes import DEFERRED_INDEXES
from .prepare import Result, Task, prepare, prepare_many, start_worker, workers_can_start
from .rows import PostRows
from .similar import refresh_similar
from .sources import Source
from .write import Incoming, Outcome, Prepared, VocabularyCache, write_batch

log = logging.getLogger("alphanode.import")

BATCH_SIZE = 2_000
# Rejections a kept receipt lists; the count is always exact.
KEPT_REJECTIONS = 200
# Files a folder contributes: the synthesizer writes *.txt.
# From this many documents on, workers read and parse, and unchanged documents are found by hash.
PARALLEL_FROM = 500
WORKERS = 4  # at most
TASK_SIZE = 32  # documents a worker is handed at a time
READ_AHEAD = 2_048  # documents read and parsed ahead of the writer, at most: bounds memory
# An import that creates or updates this share of the store's posts or more refreshes the
# query planner's statistics (ANALYZE) at the end. Without them SQLite guesses selectivity
# and at 100,000 posts picks indexes that turn 1 ms reads into 100 ms ones. PostgreSQL's
# autovacuum uses the same 10% (autovacuum_analyze_scale_factor), but only some time later.
ANALYZE_SHARE = 0.1


@dataclass(slots=True)
class Receipt:
    """What an import did: counts, every rejected document with its error, and what changed."""

    outcomes: list[Outcome] = field(default_factory=list)
    similar_refreshed: int = 0
    analyzed: bool = False  # the planner's statistics were refreshed
    seconds: float = 0.0

    def count(self, status: str) -> int:
        return sum(1 for o in self.outcomes if o.status == status)

    @property
    def created(self) -> int:
        return self.count("created")

    @property
    def updated(self) -> int:
        return self.count("updated")

    @property
    def unchanged(self) -> int:
        return self.count("unchanged")

    @property
    def rejected(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.status == "rejected"]

    @property
    def changed_post_ids(self) -> list[int]:
        return [o.post_id for o in self.outcomes if o.status in ("created", "updated") and o.post_id is not None]

    @property
    def ok(self) -> bool:
        return not self.rejected

    def summary(self) -> str:
        total = len(self.outcomes)
        rate = f", {total / self.seconds:,.0f} documents/s" if self.seconds > 0 and total else ""
        line = (
            f"{total} document(s): {self.created} created, {self.updated} updated, "
            f"{self.unchanged} unchanged, {len(self.rejected)} rejected"
            f" in {self.seconds:.2f}s{rate}; similar posts refreshed for {self.similar_refreshed} post(s)"
        )
        if total and self.created == self.updated == 0 and not self.rejected:
            line += "; nothing changed"
        return line

    def as_dict(self) -> dict[str, Any]:
        return {
            "created": self.created,
            "updated": self.updated,
            "unchanged": self.unchanged,
            "rejected": [{"document": o.name, "error": o.error} for o in self.rejected],
            "similarRefreshed": self.similar_refreshed,
            "seconds": round(self.seconds, 3),
        }


class ImportStopped(StoreTroubleError):
    """The store failed under an import (its disk full, read-only, locked past the busy timeout, gone).

    Each document of ``receipt`` was written (or found unchanged, or rejected) whole; the other
    ``not_written`` were not written at all: the transaction that held them was rolled back. Their
    posts' similar posts are marked for refreshing, so running the import again completes it.
    """

    def __init__(self, trouble: StoreTrouble, receipt: Receipt, total: int) -> None:
        super().__init__(trouble)
        self.receipt = receipt
        self.not_written = total - len(receipt.outcomes)


Progress = Callable[[int], None]


async def import_sources(
    engine: AsyncEngine,
    sources: Sequence[Source],
    *,
    batch_size: int = BATCH_SIZE,
    advance: Progress | None = None,
    refresh: bool = True,
    workers: int | None = None,
    author: str = "import",
) -> Receipt:
    """Import documents and refresh similar posts; returns the receipt, which is also kept in the store.

    ``author`` is recorded in each written post's revision history.

    ``workers``: processes that read and parse (default: one a CPU, up to ``WORKERS``,
    for ``PARALLEL_FROM`` documents or more); 0 or 1 parses in this process.
    """
    started = time.perf_counter()
    receipt = Receipt()
    vocabulary = VocabularyCache()
    large = len(sources) >= PARALLEL_FROM
    await _build_indexes(engine)  # those an import stopped before its end left unmade
    deferred = large and await _defer_indexes(engine)
    if workers is None:
        workers = min(os.cpu_count() or 1, WORKERS) if large else 0
    stored = await _stored_hashes(engine) if large else {}
    pool = _start_workers(workers, stored) if workers > 1 and workers_can_start() else None
    # A large import makes millions of short-lived objects, none in reference cycles: the
    # cyclic garbage collector, run every few hundred of them, would take a tenth of the time.
    collecting = gc.isenabled() and large
    if collecting:
        gc.disable()
    try:
        items = _prepare_all(sources, stored, receipt, advance, pool)
        async for batch in _batches(items, batch_size, author):
            await _write_batch(engine, batch, vocabulary, receipt, advance, large)
        if pool is not None:
            pool.shutdown(wait=True)
        log.info("import: documents read and written in %.2fs", time.perf_counter() - started)
        if refresh:
            # Before the deferred indexes: a first import's refresh reads whole tables, and its
            # million similar-post rows go in without the index on similar_id (8 s of a 15 s
            # refresh at 100,000 posts, against about 1 s to build it afterwards).
            receipt.similar_refreshed = await refresh_similar(engine)
        if deferred:
            deferred = False
            await _build_indexes(engine, log_time=True)
        receipt.analyzed = await _refresh_statistics(engine, receipt.created + receipt.updated)
    except Exception as exc:
        trouble = diagnose(exc)
        if trouble is None:
            raise
        receipt.seconds = time.perf_counter() - started
        log.info("import stopped: %s (%s)", trouble.message, exc.__class__.__name__)  # the caller says so
        raise ImportStopped(trouble, receipt, len(sources)) from exc
    finally:
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
        if collecting:
            gc.enable()
        if deferred:  # stopped by an error: what was written keeps its indexes
            await _build_indexes_after_a_stop(engine)
    receipt.seconds = time.perf_counter() - started
    log.info("import: %s", receipt.summary())
    await _keep_receipt(engine, receipt, author)
    return receipt


async def _batches(
    items: AsyncIterator[Incoming | Prepared], batch_size: int, author: str
) -> AsyncIterator[list[Incoming | Prepared]]:
    """The documents in batches of ``batch_size``, each holding a source id at most once (a repeat
    starts a new batch), each document's revision credited to ``author``."""
    batch: list[Incoming | Prepared] = []
    in_batch: set[str] = set()
    async for item in items:
        item.author = author
        if len(batch) >= batch_size or item.source_id in in_batch:
            yield batch
            batch, in_batch = [], set()
        batch.append(item)
        in_batch.add(item.source_id)
    if batch:
        yield batch


async def _build_indexes_after_a_stop(engine: AsyncEngine) -> None:
    """Build the indexes an import deferred and stopped before; left to the next import if the store says no."""
    try:
        await _build_indexes(engine)
    except Exception as exc:
        left = diagnose(exc)
        if left is None:
            raise
        log.warning("import: the deferred indexes are left to the next import: %s", left.message)


async def _defer_indexes(engine: AsyncEngine) -> bool:
    """Drop ``DEFERRED_INDEXES`` when the store is SQLite and has no post; True when dropped."""
    if engine.dialect.name != "sqlite":
        return False
    async with engine.begin() as conn:
        if (await conn.execute(select(func.count()).select_from(table(Post)))).scalar_one():
            return False
        for statement in DEFERRED_INDEXES:
            await conn.exec_driver_sql(f"DROP INDEX IF EXISTS {statement.split()[2]}")
    log.info("import: into an empty store: %d indexes are built after the last document", len(DEFERRED_INDEXES))
    return True


async def _build_indexes(engine: AsyncEngine, *, log_time: bool = False) -> None:
    """Make those of ``DEFERRED_INDEXES`` that do not exist (SQLite)."""
    if engine.dialect.name != "sqlite":
        return
    started = time.perf_counter()
    async with engine.connect() as conn:
        made = {row[0] for row in await conn.exec_driver_sql("SELECT name FROM sqlite_master WHERE type = 'index'")}
    missing = [statement for statement in DEFERRED_INDEXES if statement.split()[2] not in made]
    if not missing:
        return
    async with engine.begin() as conn:
        for statement in missing:
            await conn.exec_driver_sql(statement.replace("CREATE INDEX", "CREATE INDEX IF NOT EXISTS", 1))
    if log_time:
        log.info("import: indexes built in %.2fs", time.perf_counter() - started)
    else:
        log.warning("import: %d indexes an earlier import left unmade were built", len(missing))


async def _refresh_statistics(engine: AsyncEngine, changed: int) -> bool:
    """ANALYZE when ``changed`` posts are at least ``ANALYZE_SHARE`` of the store; True when it ran."""
    if not changed:
        return False
    started = time.perf_counter()
    async with engine.begin() as conn:
        total = (await conn.execute(select(func.count()).select_from(table(Post)))).scalar_one()
        if changed < ANALYZE_SHARE * total:
            return False
        await conn.exec_driver_sql("ANALYZE")
    if engine.dialect.name == "postgresql":
        # The marks of the posts the refresh cleared are dead rows until a vacuum: a large import
        # removes them now (a narrow table; VACUUM runs outside a transaction).
        async with engine.connect() as conn:
            conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
            await conn.exec_driver_sql("VACUUM (ANALYZE) similar_pending")
    log.info("import: planner statistics refreshed in %.2fs", time.perf_counter() - started)
    return True


async def _keep_receipt(engine: AsyncEngine, receipt: Receipt, author: str) -> None:
    """Keep the receipt for editors (Query.importReceipts), up to ``KEPT_REJECTIONS`` rejections of it."""
    rejected = receipt.rejected
    async with engine.begin() as conn:
        await conn.execute(
            insert(table(ImportReceiptRecord)).values(
                author=author,
                finished_at=dt.datetime.now(dt.UTC),
                seconds=receipt.seconds,
                created=receipt.created,
                updated=receipt.updated,
                unchanged=receipt.unchanged,
                rejected=len(rejected),
                rejections=orjson.dumps(
                    [{"document": o.name, "error": o.error} for o in rejected[:KEPT_REJECTIONS]]
                ).decode(),
            )
        )


async def _write_batch(
    engine: AsyncEngine,
    batch: list[Incoming | Prepared],
    vocabulary: VocabularyCache,
    receipt: Receipt,
    advance: Progress | None,
    bulk: bool,
) -> None:
    receipt.outcomes += await _write(engine, batch, vocabulary, bulk)
    if advance:
        advance(len(batch))


async def _stored_hashes(engine: AsyncEngine) -> dict[bytes, tuple[int, str]]:
    """The content hash (sha256 digest) of every stored post, with its id and source id."""
    post = table(Post)
    async with engine.connect() as conn:
        rows = await conn.execute(select(post.c.content_hash, post.c.id, post.c.source_id))
        return {bytes.fromhex(content_hash): (post_id, source_id) for content_hash, post_id, source_id in rows}


def _start_workers(workers: int, stored: dict[bytes, tuple[int, str]]) -> ProcessPoolExecutor:
    # spawn, not fork: the parent has threads (the database driver's, a server's), and a
    # forked child could inherit a lock one of them held.
    return ProcessPoolExecutor(
        max_workers=workers,
        mp_context=multiprocessing.get_context("spawn"),
        initializer=start_worker,
        initargs=(frozenset(stored),),
    )


async def _prepare_all(
    sources: Sequence[Source],
    stored: dict[bytes, tuple[int, str]],
    receipt: Receipt,
    advance: Progress | None,
    pool: ProcessPoolExecutor | None,
) -> AsyncIterator[Incoming | Prepared]:
    """The documents to write, in order; unchanged and rejected ones go straight to the receipt."""
    written: set[str] = set()  # source ids handed to the writer so far
    async for source, result in _results(sources, stored, pool):
        if result[0] == "unchanged":
            post_id, source_id = stored[result[2]]
            if source_id not in written:
                receipt.outcomes.append(Outcome(source.name, source_id, "unchanged", post_id))
                if advance:
                    advance(1)
                continue
            # Its post was written earlier in this run: compare it with what is stored now.
            result = _prepare_here(source, frozenset())
        if result[0] == "rejected":
            log.info("rejected %s", result[2])
            receipt.outcomes.append(Outcome(source.name, "", "rejected", error=result[2]))
            if advance:
                advance(1)
            continue
        rows = result[2]
        assert isinstance(rows, PostRows)
        item = Prepared(source.name, rows, reason=f"imported from {source.shown}")
        written.add(item.source_id)
        yield item


def _task(source: Source) -> Task:
    return (source.name, source.path, None if source.path is not None else source.read())


def _prepare_here(source: Source, known: frozenset[bytes]) -> Result:
    try:
        task = _task(source)
    except OSError as exc:
        return ("rejected", source.name, f"{source.name}: cannot be read ({exc.strerror or exc.__class__.__name__})")
    return prepare(*task, known)


async def _results(
    sources: Sequence[Source],
    stored: dict[bytes, tuple[int, str]],
    pool: ProcessPoolExecutor | None,
) -> AsyncIterator[tuple[Source, Result]]:
    """Each source with its result, in order: prepared by the workers with bounded read-ahead, or here.

    When the workers stop (a main module that cannot be run again in them, say), the rest
    is prepared here.
    """
    known = frozenset(stored)
    pending: collections.deque[tuple[list[Source], Future[list[Result]] | None]] = collections.deque()
    next_source = 0

    def submit() -> None:
        nonlocal next_source, pool
        while pool is not None and next_source < len(sources) and len(pending) * TASK_SIZE < READ_AHEAD:
            chunk = list(sources[next_source : next_source + TASK_SIZE])
            next_source += len(chunk)
            try:
                pending.append((chunk, pool.submit(prepare_many, [_task(source) for source in chunk])))
            except OSError:  # a source that cannot be read: reported below, in order
                pending.append((chunk, None))
            except BrokenProcessPool:
                pool = None
                pending.append((chunk, None))

    submit()
    while pending:
        chunk, work = pending.popleft()
        results = None
        if work is not None:
            try:
                results = await asyncio.wrap_future(work)
            except BrokenProcessPool:
                if pool is not None:
                    log.warning("the worker processes stopped: reading and parsing in this process")
                pool = None
        if results is None:
            results = [_prepare_here(source, known) for source in chunk]
        submit()
        for source, result in zip(chunk, results, strict=True):
            yield source, result
    for source in sources[next_source:]:
        yield source, _prepare_here(source, known)


async def _write(
    engine: AsyncEngine, batch: list[Incoming | Prepared], vocabulary: VocabularyCache, bulk: bool = False
) -> list[Outcome]:
    try:
        return await _write_in_transaction(engine, batch, vocabulary, bulk)
    except DBAPIError as exc:
        if diagnose(exc) is not None:
            raise  # the store is in trouble (full, read-only, locked, gone): no document would fare better
        if len(batch) == 1:
            item = batch[0]
            log.exception("could not store %s", item.name)
            return [
                Outcome(
                    item.name,
                    item.source_id,
                    "rejected",
                    error=f"{item.name}: could not be stored: it conflicts with a post written at the same time",
                )
            ]
        log.warning("a batch of %d failed in the database; writing its documents one by one", len(batch))
        outcomes = []
        for item in batch:
            outcomes += await _write(engine, [item], vocabulary, bulk)
        return outcomes


async def _write_in_transaction(
    engine: AsyncEngine, batch: list[Incoming | Prepared], vocabulary: VocabularyCache, bulk: bool
) -> list[Outcome]:
    pending = vocabulary.copy()
    async with engine.connect() as conn:
        conn = await conn.execution_options(sqlite_immediate=True)
        async with conn.begin():
            if bulk:
                await conn.run_sync(tune_for_bulk)
            outcomes = await conn.run_sync(write_batch, batch, pending)
    vocabulary.merge(pending)
    for outcome in outcomes:
        if outcome.status == "rejected":
            log.info("rejected %s", outcome.error)
    return outcomes
