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
"""

from __future__ import annotations

import asyncio
import bisect
import datetime as dt
import logging
import time
from collections import OrderedDict
from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import orjson

from .aggregates import store_version
from .db import ReadPool, RequestDb
from .memory import release_memory
from .postings import Text, json_numbers
from .sql import Dialect, keys_param, sql

if TYPE_CHECKING:
    from .selection import Ordering, Selection

log = logging.getLogger("alphanode.facts")

SCALARS = ("topic", "code_language", "difficulty", "status")
FLAGS = ("ai_generated_style", "has_images", "image_heavy", "needs_human_review")
NUMBERS = ("view_count", "quality", "freshness", "depth", "clarity", "reading_time")
# Facet or filter -> (link table, its vocabulary column, the vocabulary table).
LINKS = {
    "stack": ("post_stack", "term_id", "stack_term"),
    "tools": ("post_tool", "tool_id", "tool"),
    "entities": ("post_entity", "entity_id", "entity"),
}
# Changed posts applied to an index in place; beyond this a full load is cheaper.
DELTA_LIMIT = 5_000
# Bytes of search matches (ids, or ids and relevances: 16 bytes a match, 1 MB for a word in
# 65,000 posts) kept per index, least recently used out first: every search a site repeats
# within a store version is matched and ranked once.
MATCHES_BUDGET = 64 * 2**20
# Rankings made by FTS5 (searches with a quoted phrase, on SQLite) kept across writes for the
# walks through their pages (see loaders.posts._ranking), the most recent first.
RANKINGS_KEPT = 16
# (sort key, post id) packed into one int64: key * ID_SPACE + id. Keys (scores, view counts
# within GraphQL's Int, day numbers, title ranks) and post ids below ID_SPACE - 1 fit.
ID_SPACE = 2**31
_NO_DATE = dt.date(1, 1, 1).toordinal()  # posts never reviewed sort first (loaders.selection.NO_DATE)
_EMPTY = np.zeros(0, dtype=np.int64)


def _day_sql(dialect: Dialect) -> str:
    """The last review as a day number (``date.toordinal()``), 1 when never reviewed."""
    if dialect == "sqlite":
        # julianday('0001-01-01') is 1721425.5 and that day's ordinal 1.
        return f"COALESCE(CAST(julianday(last_reviewed) - 1721424.5 AS INTEGER), {_NO_DATE})"
    return f"COALESCE(last_reviewed - DATE '0001-01-01' + 1, {_NO_DATE})"


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


def json_ints(text: str) -> np.ndarray:
    """A JSON array of integers, parsed by NumPy without a Python object per number."""
    return json_numbers(text)


@dataclass(slots=True)
class _Title:
    """Public posts in title order (by code point, then id): for TITLE pages."""

    pairs: list[tuple[str, int]]
    rank: np.ndarray | None = None  # by post id: the post's place in ``pairs``, made when first needed


@dataclass(slots=True)
class Facts:
    """The facts of every public post at one store version. Never changed once built."""

    version: int
    present: np.ndarray  # bool by post id: a public post has this id
    codes: dict[str, np.ndarray]  # scalar field -> int32 code by post id (-1: no post)
    values: dict[str, list[str]]  # scalar field -> its values, by code
    flags: dict[str, np.ndarray]  # flag -> bool by post id
    numbers: dict[str, np.ndarray]  # score, view count, last review's day number -> int64 by post id
    titles: list[str | None]  # by post id
    links: dict[str, tuple[np.ndarray, np.ndarray]]  # facet -> (post ids, term ids), one pair per link
    names: dict[str, dict[Any, int]]  # facet -> term (name, or (name, type) for entities) -> term id
    terms: dict[str, dict[int, Any]]  # facet -> term id -> term
    matches: OrderedDict[Hashable, Any] = field(default_factory=OrderedDict)
    text: Text | None = None  # what bm25 needs of the search index (SQLite), see loaders.postings
    _title: _Title | None = None

    @property
    def size(self) -> int:
        return len(self.present)

    @property
    def usable(self) -> bool:
        """Whether every post id packs with a sort key (see ID_SPACE)."""
        return self.size < ID_SPACE - 1

    # -- building -------------------------------------------------------------------------

    @classmethod
    def empty(cls, version: int) -> Facts:
        return cls(
            version,
            np.zeros(0, dtype=bool),
            {f: np.zeros(0, dtype=np.int32) for f in SCALARS},
            {f: [] for f in SCALARS},
            {f: np.zeros(0, dtype=bool) for f in FLAGS},
            {f: np.zeros(0, dtype=np.int64) for f in (*NUMBERS, "last_reviewed")},
            [],
            {f: (_EMPTY, _EMPTY) for f in LINKS},
            {f: {} for f in LINKS},
            {f: {} for f in LINKS},
        )

    def _copy(self, version: int, size: int) -> Facts:
        """A copy at ``version``, grown to hold post ids below ``size``."""

        def grown(array: np.ndarray, fill: Any) -> np.ndarray:
            out = np.full(size, fill, dtype=array.dtype)
            out[: len(array)] = array[:size]
            return out

        return Facts(
            version,
            grown(self.present, False),
            {f: grown(a, -1) for f, a in self.codes.items()},
            {f: list(v) for f, v in self.values.items()},
            {f: grown(a, False) for f, a in self.flags.items()},
            {f: grown(a, 0) for f, a in self.numbers.items()},
            self.titles + [None] * (size - len(self.titles)),
            dict(self.links),
            {f: dict(v) for f, v in self.names.items()},
            {f: dict(v) for f, v in self.terms.items()},
            _title=_Title(list(self._title.pairs)) if self._title is not None else None,
        )

    def _apply(
        self, changed: np.ndarray, posts: Sequence[Any], links: Sequence[Any], vocabulary: Sequence[Any]
    ) -> None:
        """Replace the facts of the ``changed`` post ids (already grown to fit) with what was read."""
        self._set_vocabulary(vocabulary)
        gone = np.zeros(self.size, dtype=bool)
        gone[changed[changed < self.size]] = True
        self.present[gone] = False
        for codes in self.codes.values():
            codes[gone] = -1
        # The title order, when one was made, follows the change rather than being sorted again
        # (a sort of 100,000 titles takes a quarter of a second).
        pairs = self._title.pairs if self._title is not None else None
        for title_id in np.flatnonzero(gone).tolist():
            title = self.titles[title_id]
            if pairs is not None and title is not None:
                del pairs[bisect.bisect_left(pairs, (title, title_id))]
            self.titles[title_id] = None
        self._set_posts(posts)
        if pairs is not None:
            for title_id in np.flatnonzero(gone & self.present).tolist():
                new_title = self.titles[title_id]
                assert new_title is not None  # a public post has a title
                bisect.insort(pairs, (new_title, title_id))
        kinds, post_ids, term_ids = (json_ints(text) for text in links)
        for n, facet in enumerate(LINKS):
            old_posts, old_terms = self.links[facet]
            keep = ~gone[old_posts]
            mine = kinds == n
            self.links[facet] = (
                np.concatenate([old_posts[keep], post_ids[mine]]),
                np.concatenate([old_terms[keep], term_ids[mine]]),
            )

    def _set_vocabulary(self, vocabulary: Sequence[Any]) -> None:
        kinds, ids, names, types = (orjson.loads(text) for text in vocabulary)
        for facet in LINKS:
            self.names[facet].clear()
            self.terms[facet].clear()
        facets = list(LINKS)
        for kind, term_id, name, type_ in zip(kinds, ids, names, types, strict=True):
            facet = facets[kind]
            term = (name, type_) if facet == "entities" else name
            self.names[facet][term] = term_id
            self.terms[facet][term_id] = term

    def _set_posts(self, posts: Sequence[Any]) -> None:
        ids = json_ints(posts[0])
        if not len(ids):
            return
        self.present[ids] = True
        at = 1
        for f in SCALARS:
            known = {value: code for code, value in enumerate(self.values[f])}
            codes = np.empty(len(ids), dtype=np.int32)
            for n, value in enumerate(orjson.loads(posts[at])):
                code = known.get(value)
                if code is None:
                    code = known[value] = len(self.values[f])
                    self.values[f].append(value)
                codes[n] = code
            self.codes[f][ids] = codes
            at += 1
        for f in FLAGS:
            self.flags[f][ids] = json_ints(posts[at]).astype(bool)
            at += 1
        for f in (*NUMBERS, "last_reviewed"):
            self.numbers[f][ids] = json_ints(posts[at])
            at += 1
        for post_id, title in zip(ids.tolist(), orjson.loads(posts[at]), strict=True):
            self.titles[post_id] = title

    # -- reading ----------------------------------------------------------------------------

    def mask(self, selection: Selection, matches: np.ndarray | None) -> np.ndarray:
        """The public posts the selection holds, as a boolean array by post id."""
        s = selection
        mask = self.present.copy()
        for f in SCALARS:
            value = getattr(s, f)
            if value is not None:
                try:
                    code = self.values[f].index(value)
                except ValueError:
                    return np.zeros(self.size, dtype=bool)
                mask &= self.codes[f] == code
        for f in FLAGS:
            value = getattr(s, f)
            if value is not None:
                mask &= self.flags[f] == value
        for f in ("quality", "freshness", "depth", "clarity"):
            value = getattr(s, f"min_{f}")
            if value is not None:
                mask &= self.numbers[f] >= value
        if s.view_count_min is not None:
            mask &= self.numbers["view_count"] >= s.view_count_min
        if s.view_count_max is not None:
            mask &= self.numbers["view_count"] <= s.view_count_max
        if s.reading_time_max is not None:
            mask &= self.numbers["reading_time"] <= s.reading_time_max
        # Posts never reviewed match no review-date filter (NULL in SQL).
        reviewed = self.numbers["last_reviewed"]
        if s.reviewed_after is not None:
            mask &= (reviewed >= s.reviewed_after.toordinal()) & (reviewed != _NO_DATE)
        if s.reviewed_before is not None:
            mask &= (reviewed <= s.reviewed_before.toordinal()) & (reviewed != _NO_DATE)
        if s.stack_any is not None:
            mask &= self._linked("stack", s.stack_any, every=False)
        if s.tools_all is not None:
            mask &= self._linked("tools", tuple(dict.fromkeys(s.tools_all)), every=True)
        if s.entity is not None:
            mask &= self._linked("entities", (s.entity,), every=False)
        if matches is not None:
            matched = np.zeros(self.size, dtype=bool)
            matched[matches[matches < self.size]] = True
            mask &= matched
        return mask

    def _linked(self, facet: str, terms: Sequence[Any], *, every: bool) -> np.ndarray:
        """Posts linked to any (or every) of these terms."""
        names = self.names[facet]
        ids = [names[t] for t in terms if t in names]
        if (every and len(ids) < len(terms)) or not ids:
            return np.zeros(self.size, dtype=bool)
        post_ids, term_ids = self.links[facet]
        hits = post_ids[np.isin(term_ids, ids)]
        if every:
            every_term: np.ndarray = np.bincount(hits, minlength=self.size)[: self.size] == len(ids)
            return every_term
        out = np.zeros(self.size, dtype=bool)
        out[hits] = True
        return out

    def facet(self, name: str, mask: np.ndarray, limit: int) -> list[tuple[str, str | None, int]]:
        """(value, type, count) of a facet under ``mask``: most posts first, then by value and type."""
        if name in LINKS:
            post_ids, term_ids = self.links[name]
            counts = np.bincount(term_ids[mask[post_ids]])
            terms = self.terms[name]
            found = []
            for term_id in np.flatnonzero(counts):
                term = terms[int(term_id)]
                value, type_ = term if name == "entities" else (term, None)
                found.append((value, type_, int(counts[term_id])))
        else:
            counts = np.bincount(self.codes[name][mask], minlength=len(self.values[name]))
            values = self.values[name]
            found = [(values[code], None, int(counts[code])) for code in np.flatnonzero(counts)]
        found.sort(key=lambda f: (-f[2], f[0], f[1] or ""))
        return found[:limit]

    def title_order(self) -> _Title:
        if self._title is None:
            self._title = _Title(sorted((t, post_id) for post_id, t in enumerate(self.titles) if t is not None))
        if self._title.rank is None:
            rank = np.zeros(self.size, dtype=np.int64)
            rank[[post_id for _, post_id in self._title.pairs]] = np.arange(len(self._title.pairs), dtype=np.int64)
            self._title.rank = rank
        return self._title

    def page(
        self,
        mask: np.ndarray,
        ordering: Ordering,
        size: int,
        *,
        forward: bool,
        after: list[Any] | None,
        before: list[Any] | None,
    ) -> tuple[list[int], bool] | None:
        """The ids of a page (in the ordering's direction) and whether more follow; None for a
        cursor this index cannot place (the caller reads the page in SQL)."""
        ids = np.flatnonzero(mask)
        key = ordering.key
        if key == "newest":
            packed = ids
        elif key == "title":
            rank = self.title_order().rank
            assert rank is not None
            packed = rank[ids] * ID_SPACE + ids
        else:
            packed = self.numbers[key][ids] * ID_SPACE + ids
        keep = np.ones(len(ids), dtype=bool)
        for cursor, later in ((after, True), (before, False)):
            if cursor is None:
                continue
            bound = self._bound(key, cursor)
            if bound is None:
                return None
            # Strictly after (or before) the cursor in the ordering's direction.
            keep &= packed > bound if ordering.descending != later else packed < bound
        packed = packed[keep]
        # The size + 1 nearest: to the start when reading forward, to the end when backwards.
        smallest = ordering.descending != forward
        take = min(size + 1, len(packed))
        if take < len(packed):
            part = np.argpartition(packed, take - 1)[:take] if smallest else np.argpartition(packed, -take)[-take:]
            packed = packed[part]
        packed = np.sort(packed)
        if not smallest:
            packed = packed[::-1]
        more = len(packed) > size
        chosen = packed[:size] % ID_SPACE
        if not forward:
            chosen = chosen[::-1]
        return [int(i) for i in chosen], more

    def ranked_page(
        self,
        ids: np.ndarray,
        relevance: np.ndarray,
        mask: np.ndarray,
        ordering: Ordering,
        size: int,
        *,
        forward: bool,
        after: list[Any] | None,
        before: list[Any] | None,
    ) -> tuple[list[int], list[list[Any]], bool] | None:
        """A page of a search ranked by relevance: ids, cursor keys and whether more follow;
        ``ids`` and ``relevance`` are every match's, ``mask`` the posts the filters hold."""
        inside = ids < self.size
        keep = np.zeros(len(ids), dtype=bool)
        keep[inside] = mask[ids[inside]]
        ids, relevance = ids[keep], relevance[keep]
        for cursor, later in ((after, True), (before, False)):
            if cursor is None:
                continue
            value, post_id = cursor
            if not isinstance(value, int | float) or not isinstance(post_id, int):
                return None
            greater = (relevance > value) | ((relevance == value) & (ids > post_id))
            less = (relevance < value) | ((relevance == value) & (ids < post_id))
            chosen = less if ordering.descending == later else greater
            ids, relevance = ids[chosen], relevance[chosen]
        top = ordering.descending == forward  # the page holds the highest relevances
        if len(ids) > 4 * (size + 1):
            # Only those at least as relevant as the (size + 1)-th can be on the page (ties kept):
            # sorting those alone is what makes a page of a common word's 60,000 matches cheap.
            k = size + 1
            if top:
                bound = np.partition(relevance, len(relevance) - k)[len(relevance) - k]
                near = relevance >= bound
            else:
                bound = np.partition(relevance, k - 1)[k - 1]
                near = relevance <= bound
            ids, relevance = ids[near], relevance[near]
        order = np.lexsort((ids, relevance))  # ascending by relevance, then id
        if top:
            order = order[::-1]
        order = order[: size + 1]
        more = len(order) > size
        order = order[:size]
        if not forward:
            order = order[::-1]
        return (
            [int(i) for i in ids[order]],
            [[float(r), int(i)] for r, i in zip(relevance[order], ids[order], strict=True)],
            more,
        )

    def _bound(self, key: str, cursor: list[Any]) -> int | None:
        """The cursor's place among packed keys: its post's packed key, or where no post has the
        cursor's title and id, one less than the packed key of the first title after it (no post
        has that: ids stay below ID_SPACE - 1)."""
        value: Any
        if key == "newest":
            value, post_id = 0, cursor[0]
        else:
            value, post_id = cursor
        if not isinstance(post_id, int) or not 0 <= post_id < ID_SPACE - 1:
            return None
        if key == "newest":
            return int(post_id)
        if key == "title":
            if not isinstance(value, str):
                return None
            pairs = self.title_order().pairs
            # Posts strictly before the cursor in title order rank below this position.
            at = bisect.bisect_left(pairs, (value, post_id))
            if at < len(pairs) and pairs[at] == (value, post_id):
                return at * ID_SPACE + post_id
            return at * ID_SPACE - 1
        if key == "last_reviewed":
            try:
                value = dt.date.fromisoformat(value).toordinal()
            except (TypeError, ValueError):
                return None
        if not isinstance(value, int) or not 0 <= value < 2**31:
            return None
        return int(value * ID_SPACE + post_id)


class FactIndex:
    """A read pool's index of post facts, kept at the newest store version a request has seen."""

    def __init__(self) -> None:
        self.current: Facts | None = None
        self._lock = asyncio.Lock()
        self.loads = 0  # full loads so far (tests, metrics)
        self.deltas = 0  # changes applied in place
        # (search, store version) -> a ranking FTS5 made at that version: see keep_ranking.
        self.rankings: OrderedDict[tuple[Hashable, int], Any] = OrderedDict()

    def keep_ranking(self, search: Hashable, version: int, ranking: Any) -> None:
        """Keep a ranking made at ``version`` for the pages after it, whatever is written meanwhile."""
        self.rankings[(search, version)] = ranking
        self.rankings.move_to_end((search, version))
        while len(self.rankings) > RANKINGS_KEPT:
            self.rankings.popitem(last=False)

    def ranking_at(self, search: Hashable, version: int) -> Any:
        """The ranking of ``search`` kept at ``version``, or None."""
        found = self.rankings.get((search, version))
        if found is not None:
            self.rankings.move_to_end((search, version))
        return found

    async def at(self, db: RequestDb) -> Facts | None:
        """The facts at the request's snapshot, brought up to date from it; None where that cannot be."""
        version = await store_version(db)
        if version is None:
            return None
        current = self.current
        if current is not None and current.version == version:
            return current if current.usable else None
        async with self._lock:
            current = self.current
            if current is not None and current.version == version:
                return current if current.usable else None
            if current is not None and current.version > version:
                return None  # an older snapshot than the index: this request reads SQL
            facts = await self._delta(db, current, version) if current is not None else None
            if facts is None:
                facts = await self._load(db, version)
            self.current = facts
        return facts if facts.usable else None

    async def warm(self, pool: ReadPool) -> bool:
        """Load the index now (a server's start-up), so no request waits for it; False when the
        store cannot be read yet (no tables): the first request that needs it loads it."""
        db = RequestDb(pool)
        try:
            return await self.at(db) is not None
        except Exception as exc:  # the driver's errors: a new or unreachable store
            log.warning("fact index not loaded at start-up: %s", exc.__class__.__name__)
            return False
        finally:
            await db.close()

    async def _load(self, db: RequestDb, version: int) -> Facts:
        started = time.perf_counter()
        dialect = db.dialect
        posts = (await db.fetch(_posts_sql(dialect, False)))[0]
        links = (await db.fetch(_links_sql(dialect, False)))[0]
        vocabulary = (await db.fetch(_vocabulary_sql(dialect)))[0]
        ids, linked = json_ints(posts[0]), json_ints(links[1])
        top = max(int(ids.max(initial=0)), int(linked.max(initial=0)))
        facts = Facts.empty(version)._copy(version, top + 1)
        facts._apply(np.zeros(0, dtype=np.int64), posts, links, vocabulary)
        if dialect == "sqlite":
            facts.text = await Text.load(db, version)
        await _give_back_memory(db)
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
        facts = current._copy(version, top + 1)
        facts._apply(np.array(ids, dtype=np.int64), posts, links, vocabulary)
        if current.text is not None:
            facts.text = await current.text.delta(db, version, ids)
        self.deltas += 1
        return facts


_COLUMNS = ("id", *SCALARS, *FLAGS, *NUMBERS, "last_reviewed")


async def _give_back_memory(db: RequestDb) -> None:
    """After a full load: SQLite's page cache lets go of the pages the load scanned, and the C heap
    returns what the load freed (``loaders.memory``); the index itself is a fraction of both."""
    if db.dialect == "sqlite":
        await db.fetch("PRAGMA shrink_memory")
    release_memory()


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
