"""What posts are filtered, ordered and faceted by, in memory: one array per field, indexed by post id.

Filters that match a large share of the store are slow in SQL however it is
indexed: at 100,000 posts, a filter holding 40% of them made SQLite read 40,000
post rows for the count and again for each of the seven facets (3.3 s for one
facets request, 330 ms for a filtered listing on this project's benchmark
machine). Search engines answer such questions from columns and posting lists
held in memory; this module does the same for the fields ``PostFilter`` and
``PostOrder`` use, with NumPy:

- a filter is a boolean mask over post ids, built from vectorized comparisons
  (``topic``, ``status``, flags, minimum scores, view counts, review dates) and
  from the link tables (``stackAny``, ``toolsAll``, ``entity``), and intersected
  with the posts a search matches;
- a count is the mask's sum; a facet is a ``bincount`` of the facet's codes (or
  of its link table's terms) under the mask without the facet's own filter;
- a page is found by comparing each selected post's (sort key, id), packed into
  one integer, with the cursor's, and taking the nearest ``size + 1``: the ids
  go to one SQL statement that reads those posts' rows.

Everything here costs a few milliseconds at 100,000 posts, whatever share of the
store a filter holds. Results are the SQL path's exactly (the tests compare the
two); the SQL path still answers what the index does not cover: archived posts,
relevance ranking (on SQLite, ``Facts.text`` ranks searches of words in memory: see
``loaders.postings``), and requests whose snapshot the index is not at.

Keeping it current: every write bumps the store's version and logs the ids of
the posts it changed in ``purge_log`` with that version, in its own transaction
(``store/purge.py``). A request whose snapshot is at a later version than the
index applies the logged changes to a copy of it, reading them in the request's
own snapshot: a few rows per edit. When more than ``DELTA_LIMIT`` posts changed,
or the log no longer holds every version since the index's (rows older than an
hour are pruned: ``server.purging.RETENTION``), the index is loaded again whole,
about a second at 100,000 posts. Indexes are immutable once built: requests at
the old version keep using theirs.

The workers of one instance share it (``FactIndex.share``): one of them builds the index
and writes its arrays to files that every worker maps (``loaders.fact_files``), so an
instance holds one copy whatever its number of workers. The arrays and what reads them
are in ``loaders.fact_arrays``.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from collections.abc import Hashable
from pathlib import Path
from typing import Any, TypeGuard

import numpy as np
from cachetools import LRUCache

from .aggregates import store_version
from .db import ReadPool, RequestDb
from .fact_arrays import FLAGS, LINKS, NO_DATE, NUMBERS, SCALARS, Facts, json_ints
from .fact_files import FactFiles
from .memory import release_memory
from .postings import Text
from .sql import Dialect, keys_param, sql

log = logging.getLogger("alphanode.facts")

# Changed posts applied to an index in place; beyond this a full load is cheaper.
DELTA_LIMIT = 5_000
# Bytes of search matches (ids, or ids and relevances: 16 bytes a match, 1 MB for a word in
# 65,000 posts) kept per index, least recently used out first: every search a site repeats
# within a store version is matched and ranked once.
MATCHES_BUDGET = 64 * 2**20
# Rankings made by FTS5 (searches with a quoted phrase, on SQLite) kept across writes for the
# walks through their pages (see loaders.posts._ranking), the most recent first.
RANKINGS_KEPT = 16
# With shared files: an index changed by writes is published for the other workers (and this
# one maps it instead of its own copy) at most this often, seconds; writes in between are
# applied to each worker's own copy.
PUBLISH_INTERVAL = 2.0


def _day_sql(dialect: Dialect) -> str:
    """The last review as a day number (``date.toordinal()``), 1 when never reviewed."""
    if dialect == "sqlite":
        # julianday('0001-01-01') is 1721425.5 and that day's ordinal 1.
        return f"COALESCE(CAST(julianday(last_reviewed) - 1721424.5 AS INTEGER), {NO_DATE})"
    return f"COALESCE(last_reviewed - DATE '0001-01-01' + 1, {NO_DATE})"


def json_array(dialect: Dialect, expression: str) -> str:
    """An aggregate of ``expression`` over the rows as one JSON array (text), ``[]`` for none."""
    return f"json_group_array({expression})" if dialect == "sqlite" else f"coalesce(json_agg({expression}), '[]')::text"


def _posts_sql(dialect: Dialect, by_ids: bool) -> str:
    columns = ["id", *SCALARS, *(f"CASE WHEN {f} THEN 1 ELSE 0 END" for f in FLAGS), *NUMBERS, _day_sql(dialect)]
    where = "archived_at IS NULL" + (" AND id IN :keys" if by_ids else "")
    aggregates = ", ".join(json_array(dialect, c) for c in [*columns, "title"])
    return sql(f"SELECT {aggregates} FROM post WHERE {where}").text(dialect)


def _links_sql(dialect: Dialect, by_ids: bool) -> str:
    """The links of every post (or, by ids, of the posts given once per link table)."""
    where = " WHERE post_id IN :keys" if by_ids else ""
    union = " UNION ALL ".join(
        f"SELECT {n} AS kind, post_id, {column} AS term FROM {link}{where}"
        for n, (link, column, _) in enumerate(LINKS.values())
    )
    aggregates = ", ".join(json_array(dialect, c) for c in ("kind", "post_id", "term"))
    return sql(f"SELECT {aggregates} FROM ({union}) links").text(dialect)


def _vocabulary_sql(dialect: Dialect) -> str:
    union = (
        "SELECT 0 AS kind, id, name, NULL AS type FROM stack_term UNION ALL "
        "SELECT 1, id, name, NULL FROM tool UNION ALL SELECT 2, id, name, type FROM entity"
    )
    aggregates = ", ".join(json_array(dialect, c) for c in ("kind", "id", "name", "type"))
    return f"SELECT {aggregates} FROM ({union}) v"


_LOG = sql("SELECT version, keys FROM purge_log WHERE version > ? ORDER BY id")


class FactIndex:
    """A read pool's index of post facts, kept at the newest store version a request has seen.

    With ``share(folder)`` the workers of an instance share one copy through files
    (``loaders.fact_files``): a worker maps the newest snapshot the others published, builds
    and publishes one only when none is usable, and publishes what writes changed at most
    every ``PUBLISH_INTERVAL`` seconds, applying them to its own copy in between.
    """

    def __init__(self) -> None:
        self.current: Facts | None = None
        self.files: FactFiles | None = None
        self._url: str | None = None  # the store's, for a builder process (see share)
        self.built_apart = 0  # full loads made by a builder process
        self._lock = asyncio.Lock()
        self.loads = 0  # full loads so far (tests, metrics)
        self.deltas = 0  # changes applied in place
        self.maps = 0  # snapshots mapped from the shared files
        self.published = 0  # snapshots this process wrote there
        self._publish_after = 0.0  # time.monotonic() before which nothing more is published
        # (search, store version) -> a ranking FTS5 made at that version, the most recently used
        # kept: see keep_ranking.
        self.rankings: LRUCache[tuple[Hashable, int], Any] = LRUCache(maxsize=RANKINGS_KEPT)

    def share(self, folder: Path, url: str | None = None) -> None:
        """Share the index with the other workers of this instance through files in ``folder``;
        with the store's ``url``, full loads are made by a process of their own
        (``loaders.fact_build``), which leaves nothing of the load in the workers."""
        self.files = FactFiles(folder)
        self._url = url

    def keep_ranking(self, search: Hashable, version: int, ranking: Any) -> None:
        """Keep a ranking made at ``version`` for the pages after it, whatever is written meanwhile."""
        self.rankings[(search, version)] = ranking

    def ranking_at(self, search: Hashable, version: int) -> Any:
        """The ranking of ``search`` kept at ``version``, or None."""
        return self.rankings.get((search, version))  # (cachetools: a hit is now the most recent)

    def _settled(self, facts: Facts | None, version: int) -> bool:
        """Whether ``facts`` is the index at ``version`` with nothing left to publish."""
        if facts is None or facts.version != version:
            return False
        return self.files is None or facts.source is not None or time.monotonic() < self._publish_after

    async def at(self, db: RequestDb) -> Facts | None:
        """The facts at the request's snapshot, brought up to date from it; None where that cannot be."""
        version = await store_version(db)
        if version is None:
            return None
        facts = self.current
        if not self._settled(facts, version):
            async with self._lock:
                facts = self.current
                if facts is not None and facts.version > version:
                    return None  # an older snapshot than the index: this request reads SQL
                if not self._settled(facts, version):
                    facts = self.current = await self._advance(db, facts, version)
        assert facts is not None
        # A full load reads its own snapshot, which may be later than the request's.
        return facts if facts.version == version and facts.usable else None

    async def warm(self, pool: ReadPool) -> bool:
        """Load the index now (a server's start-up), so no request waits for it; False when the
        store cannot be read yet (no tables): the first request that needs it loads it."""
        db = RequestDb(pool)
        try:
            if self.files is not None and self._url is not None:
                return await self._warm_apart(db)
            return await self.at(db) is not None
        except Exception as exc:  # the driver's errors: a new or unreachable store
            log.warning("fact index not loaded at start-up: %s", exc.__class__.__name__)
            return False
        finally:
            await db.close()

    async def _warm_apart(self, db: RequestDb) -> bool:
        """With a builder process: map what the other workers published, or build it apart, without
        holding ``db``'s transaction open meanwhile (a build takes seconds at a million posts, longer
        than PostgreSQL lets a transaction sit idle under a request's time limit)."""
        assert self.files is not None
        version = await store_version(db)
        await db.close()
        if version is None:
            return False
        async with self._lock:
            if self.current is None:
                found = self._mapped(None, version)
                if found is None:
                    async with self.files.building():
                        found = self._mapped(None, version) or await self._build_apart()
                if found is None:  # the builder failed: this process loads and publishes the index
                    facts = await self.load(db.pool)
                    snapshot = await asyncio.to_thread(self.files.write, facts)
                    found = (self.files.read(snapshot) if snapshot is not None else None) or facts
                self.current = found
        return True

    async def _advance(self, db: RequestDb, current: Facts | None, version: int) -> Facts:
        """The index at ``version`` (or later, after a full load) from ``current``."""
        if self.files is None:
            return await self._applied(db, current, version) or await self.load(db.pool)
        current = self._mapped(current, version) or current
        if _published_at(current, version):
            return current
        if time.monotonic() < self._publish_after:
            # Published recently: this change goes to this worker's copy for now.
            facts = await self._applied(db, current, version)
            if facts is not None:
                return facts
        async with self.files.building():
            current = self._mapped(current, version) or current  # published while this one waited
            if _published_at(current, version):
                return current
            self._publish_after = time.monotonic() + PUBLISH_INTERVAL
            facts = await self._applied(db, current, version)
            if facts is None:
                built = await self._build_apart()
                if built is not None:
                    return built
                facts = await self.load(db.pool)
            snapshot = await asyncio.to_thread(self.files.write, facts)
        mapped = self.files.read(snapshot) if snapshot is not None else None
        if mapped is None:
            return facts
        self.published += 1
        mapped.matches, mapped.text = facts.matches, facts.text  # what it has read since, kept
        return mapped

    async def _applied(self, db: RequestDb, current: Facts | None, version: int) -> Facts | None:
        """``current`` at ``version``: itself when it is there, else with the posts changed since
        read again; None when only a full load will do (no index yet, too many changes, a pruned log)."""
        if current is None:
            return None
        if current.version == version:
            return current
        return await self._delta(db, current, version)

    async def _build_apart(self) -> Facts | None:
        """A full load made by a builder process (``loaders.fact_build``), mapped; None without a
        store URL, or when the builder failed (this process loads the index itself then)."""
        if self._url is None or self.files is None:
            return None
        started = time.perf_counter()
        builder = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "loaders.fact_build",
            str(self.files.folder),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )
        try:
            _, errors = await builder.communicate(self._url.encode() + b"\n")
        except BaseException:  # cancelled (a server stopping): the builder goes with the request
            if builder.returncode is None:
                builder.kill()
                await asyncio.shield(builder.wait())
            raise
        snapshot = self.files.newest() if builder.returncode == 0 else None
        mapped = self.files.read(snapshot) if snapshot is not None else None
        if mapped is None:
            told = errors.decode(errors="replace").strip().splitlines()[-1:] or ["nothing"]
            log.warning("fact index builder failed (exit %s: %s): loading here", builder.returncode, told[0])
            return None
        self.loads += 1
        self.published += 1
        self.built_apart += 1
        log.info(
            "fact index built at store version %d by a builder process in %.2fs",
            mapped.version,
            time.perf_counter() - started,
        )
        return mapped

    def _mapped(self, current: Facts | None, version: int) -> Facts | None:
        """The newest snapshot the workers published at ``version`` or before, mapped, when it is
        newer than ``current`` (or as new, and ``current`` this worker's own copy)."""
        assert self.files is not None
        snapshot = self.files.newest(version)
        if snapshot is None:
            return None
        if current is not None:
            older = snapshot.version < current.version
            if older or (snapshot.version == current.version and current.source is not None):
                return None
        mapped = self.files.read(snapshot)
        if mapped is not None:
            self.maps += 1
            log.info("fact index mapped at store version %d from %s", mapped.version, snapshot.path)
        return mapped

    async def load(self, pool: ReadPool) -> Facts:
        """Every public post's facts, read in a snapshot of their own on a connection opened for
        it (``ReadPool.bulk_reader``): at the store's newest version."""
        started = time.perf_counter()
        async with pool.bulk_reader() as db:
            version = await store_version(db) or 0
            dialect = db.dialect
            posts = (await db.fetch(_posts_sql(dialect, False)))[0]
            links = (await db.fetch(_links_sql(dialect, False)))[0]
            vocabulary = (await db.fetch(_vocabulary_sql(dialect)))[0]
            ids, linked = json_ints(posts[0]), json_ints(links[1])
            top = max(int(ids.max(initial=0)), int(linked.max(initial=0)))
            facts = Facts.empty(version).grown(version, top + 1)
            facts.apply(np.zeros(0, dtype=np.int64), posts, links, vocabulary)
            del posts, links, vocabulary
            facts.titles = facts.titles.compacted(facts.present)
            if dialect == "sqlite":
                facts.text = await Text.load(db, version, self.files.postings if self.files else None)
        # What the load read and parsed, given back to the system (loaders.memory).
        release_memory()
        self.loads += 1
        log.info(
            "fact index loaded: %d posts at store version %d in %.2fs",
            int(np.count_nonzero(facts.present)),
            version,
            time.perf_counter() - started,
        )
        return facts

    async def _delta(self, db: RequestDb, current: Facts, version: int) -> Facts | None:
        """``current`` with the posts changed since its version read again, or None for a full load."""
        rows = await db.fetch(_LOG, [current.version])
        versions: set[int] = set()
        changed: set[int] = set()
        for row in rows:
            if row[0] > version:
                continue
            versions.add(row[0])
            changed.update(int(key[1:]) for key in row[1].split() if key.startswith("p") and key[1:].isdigit())
            if len(changed) > DELTA_LIMIT:
                return None
        if versions != set(range(current.version + 1, version + 1)):
            return None  # the log was pruned past the index's version
        ids = sorted(changed)
        param = [keys_param(db.dialect, ids)]
        dialect = db.dialect
        posts = (await db.fetch(_posts_sql(dialect, True), param))[0] if ids else ["[]"] * (len(_COLUMNS) + 1)
        links = (await db.fetch(_links_sql(dialect, True), param * len(LINKS)))[0] if ids else ["[]"] * 3
        vocabulary = (await db.fetch(_vocabulary_sql(dialect)))[0]
        top = max([current.size - 1, *ids, 0])
        facts = current.grown(version, top + 1)
        facts.apply(np.array(ids, dtype=np.int64), posts, links, vocabulary)
        if current.text is not None:
            facts.text = await current.text.delta(db, version, ids)
        self.deltas += 1
        return facts


def _published_at(facts: Facts | None, version: int) -> TypeGuard[Facts]:
    """Whether ``facts`` is the index at ``version`` as mapped from the shared files."""
    return facts is not None and facts.version == version and facts.source is not None


_COLUMNS = ("id", *SCALARS, *FLAGS, *NUMBERS, "last_reviewed")


def kept_matches(facts: Facts, key: Hashable) -> Any:
    """What ``remember_matches`` kept under ``key`` (now the most recently used), or None."""
    found = facts.matches.get(key)
    if found is not None:
        facts.matches.move_to_end(key)
    return found


def remember_matches(facts: Facts, key: Hashable, found: Any) -> None:
    facts.matches[key] = found
    facts.matches.move_to_end(key)
    while len(facts.matches) > 1 and sum(_nbytes(kept) for kept in facts.matches.values()) > MATCHES_BUDGET:
        facts.matches.popitem(last=False)


def _nbytes(kept: Any) -> int:
    """Bytes of a kept search: its arrays (ids; or ids, relevances and statistics)."""
    parts = kept if isinstance(kept, tuple) else (kept,)
    return sum(part.nbytes for part in parts if isinstance(part, np.ndarray))


__all__ = ["DELTA_LIMIT", "FactIndex", "Facts", "json_array", "json_ints", "kept_matches", "remember_matches"]
