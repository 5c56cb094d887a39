"""Finding posts: filters, orderings with keyset pages, full-text search, counts and facets.

A :class:`Selection` says which posts (filters and a search), an
:class:`Ordering` in which order. The SQL is built here as text for the
request's dialect, with every value a bound parameter.

Pages are keyset pages over (sort key, id): the next page starts strictly after
the last post of this one, so walking every page yields each post once even
while posts are added. Full-text search is SQLite FTS5 ranked with bm25, or a
PostgreSQL tsvector with a GIN index ranked with ts_rank (see ``models.search``).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, replace
from typing import Any, cast

import numpy as np
import orjson

from .aggregates import cached
from .batch import POST_COLUMNS, post_columns
from .db import RequestDb, Row
from .facts import Facts, json_array, json_ints, kept_matches, remember_matches
from .fields import FILTERS, NO_DATE, Filter
from .post_sql import (
    NOT_ARCHIVED,
    Query,
    cursor_key,
    highlight,
    ranked_sql,
    search_ids,
    search_only,
    snippet_sql,
    sort_key_sql,
    where_clause,
    where_conditions,
)
from .selection import STOP_WORDS, Ordering, SearchTerms, Selection


@dataclass(frozen=True, slots=True)
class Page:
    rows: list[Row]
    keys: list[list[Any]]  # each row's cursor key
    highlights: list[str | None]
    more: bool


async def page(
    db: RequestDb,
    selection: Selection,
    ordering: Ordering,
    size: int,
    *,
    forward: bool,
    after: list[Any] | None = None,
    before: list[Any] | None = None,
) -> Page:
    """One page of posts: ``size`` of them after ``after`` (or before ``before``), and whether more follow.

    Reading backwards (``forward=False``, for ``last``) reads the order reversed
    and turns the rows round, so the page is always in the ordering's direction.
    The fact index answers when it can (``_from_index``), SQL otherwise (``_from_sql``).
    """
    if selection.search is not None and selection.search.empty:
        return Page([], [], [], False)  # a search without a word to look for finds nothing
    window = _Window(size, forward, after, before)
    # A search ranked by relevance with no other filter is ranked and cut to the page in the
    # search index alone: only the page's posts are read (a common word matches tens of
    # thousands, and reading each one's row took most of the time).
    ranked_only = ordering.key == "relevance" and search_only(selection)
    # The fact index (loaders.facts) finds the selected posts, and the page's ids for every
    # ordering but relevance. Ranked by relevance, it keeps the ranking of every match once
    # computed, and a search alone is ranked whole from its first page: on SQLite in memory for
    # words (loaders.postings), by FTS5 for phrases (kept across writes for the walk, see
    # _ranking); on PostgreSQL by ts_rank in one statement. Its count, its later pages, the same
    # search by other readers and filters of it then cost no ranking until the next write. (On
    # PostgreSQL the first page used to be ranked and cut in SQL, and counted apart: two scans of
    # every match, each 60-70 ms for a word in half the posts, against 100 ms for the whole
    # ranking once.) Every post newest first (the listing) is an index range in SQL and needs
    # no fact index.
    plain = selection == Selection() and ordering.key == "newest"
    facts = None if plain else await _facts(db, selection)
    candidates: list[int] | None = None
    if facts is not None:
        answer = await _from_index(db, facts, selection, ordering, window, ranked_only)
        if isinstance(answer, Page):
            return answer
        candidates = answer
        if candidates == []:
            return Page([], [], [], False)
    return await _from_sql(db, selection, ordering, window, ranked_only, candidates)


@dataclass(frozen=True, slots=True)
class _Window:
    """Which page: its size, its direction, and the cursor it starts after (or ends before)."""

    size: int
    forward: bool
    after: list[Any] | None
    before: list[Any] | None


async def _from_index(
    db: RequestDb, facts: Facts, selection: Selection, ordering: Ordering, window: _Window, ranked_only: bool
) -> Page | list[int] | None:
    """The page from the fact index; or, ranked by relevance and not ranked yet, the posts the
    filters hold for SQL to rank (``[]``: none); or None for SQL to find it all."""
    q = Query(db.dialect)
    search = selection.search
    after, before = window.after, window.before
    if ordering.key == "relevance" and search is not None:
        cursor = after if after is not None else before
        frozen = cursor[2] if cursor is not None and len(cursor) > 2 and cursor[2] else None
        ranking = await _ranking(db, facts, search, compute=ranked_only, frozen=frozen)
        if ranking is not None:
            matched, relevances, stats = ranking
            mask = facts.mask(replace(selection, search=None), None)
            ranked = facts.ranked_page(
                matched,
                relevances,
                mask,
                ordering,
                window.size,
                forward=window.forward,
                after=after[:2] if after is not None else None,
                before=before[:2] if before is not None else None,
            )
            if ranked is not None:
                page_ids, keys, more = ranked
                # Each cursor carries the statistics the ranking was made with (see loaders.postings).
                keys = [[*k, stats] for k in keys]
                return await _page_of(db, q, search, ordering, page_ids, more, keys)
        if ranked_only:
            return None
        # Not ranked yet: rank only the posts the filters hold.
        mask = await _selected(db, facts, selection)
        return [int(i) for i in np.flatnonzero(mask)]
    mask = await _selected(db, facts, selection)
    found = facts.page(mask, ordering, window.size, forward=window.forward, after=after, before=before)
    if found is not None:
        return await _page_of(db, q, search, ordering, *found)
    return None


async def _from_sql(
    db: RequestDb,
    selection: Selection,
    ordering: Ordering,
    window: _Window,
    ranked_only: bool,
    candidates: list[int] | None,
) -> Page:
    """The page in SQL: one statement, ranked (a search by relevance) or ordered by the sort key."""
    q = Query(db.dialect)
    search = selection.search
    relevance = ordering.key == "relevance"
    size, forward = window.size, window.forward
    key_sql = sort_key_sql(ordering.key, db.dialect)
    id_sql = "s.id" if ranked_only else "post.id"
    # Parameters are bound in the order they appear in the text: the source comes first.
    if relevance and search:
        source = f"({ranked_sql(q, search, candidates)}) s" + ("" if ranked_only else " JOIN post ON post.id = s.id")
    else:
        source = "post"
    if ranked_only:
        conditions = [f"s.id {NOT_ARCHIVED}"]
    elif candidates is not None:
        conditions = []  # the candidates are the selected posts
    else:
        conditions = where_conditions(q, replace(selection, search=None) if relevance and search else selection)
    for cursor, later in ((window.after, True), (window.before, False)):
        if cursor is None:
            continue
        op = "<" if ordering.descending == later else ">"
        if ordering.key == "newest":
            conditions.append(f"post.id {op} {q.param(cursor[0])}")
        else:
            value = cursor[0]
            if ordering.key == "last_reviewed" and db.dialect == "postgresql":
                value = dt.date.fromisoformat(value)
            conditions.append(f"({key_sql}, {id_sql}) {op} ({q.param(value)}, {q.param(cursor[1])})")
    direction = "DESC" if ordering.descending == forward else "ASC"
    if ordering.key == "newest":
        order, select_key, outer_order = f"post.id {direction}", "", f"page.id {direction}"
    else:
        order = f"{key_sql} {direction}, {id_sql} {direction}"
        select_key = f", {key_sql} AS sort_key"
        outer_order = f"page.sort_key {direction}, page.id {direction}"
    limit = q.param(size + 1)
    if ranked_only:
        ids = f"SELECT s.id, s.relevance FROM {source}{where_clause(conditions)} ORDER BY {order} LIMIT {limit}"
        text = f"SELECT {POST_COLUMNS}{select_key} FROM ({ids}) s JOIN post ON post.id = s.id ORDER BY {order}"
    else:
        text = (
            f"SELECT {POST_COLUMNS}{select_key} FROM {source}{where_clause(conditions)} ORDER BY {order} LIMIT {limit}"
        )
    if search is not None:
        # The snippet is made for the page's rows only, after the limit.
        snippet = snippet_sql(q, search)
        text = f"WITH page AS ({text}) SELECT page.*, {snippet} AS highlight FROM page ORDER BY {outer_order}"
    rows = await db.fetch(q.text(text), q.params)
    db.lists_seen = True
    more = len(rows) > size
    rows = rows[:size]  # the one more read only tells whether a next page exists
    db.note_posts(rows)
    if not forward:
        rows.reverse()
    highlights: list[str | None] = [None] * len(rows)
    if search is not None:
        highlights = [highlight(row["highlight"], db.dialect) for row in rows]
    return Page(rows, [cursor_key(row, ordering) for row in rows], highlights, more)


async def _page_of(
    db: RequestDb,
    q: Query,
    search: SearchTerms | None,
    ordering: Ordering,
    ids: list[int],
    more: bool,
    keys: list[list[Any]] | None = None,
) -> Page:
    """The rows of a page whose post ids (in the ordering's direction) the fact index found.

    ``keys``: the page's cursor keys, when the rows cannot give them (relevance).
    """
    if not ids:
        return Page([], [], [], more)
    direction = "DESC" if ordering.descending else "ASC"
    key_sql = sort_key_sql(ordering.key, db.dialect)
    if ordering.key == "relevance":
        select_key, order, outer_order = "", "", ""
    elif ordering.key == "newest":
        select_key, order, outer_order = "", f" ORDER BY post.id {direction}", f" ORDER BY page.id {direction}"
    else:
        select_key = f", {key_sql} AS sort_key"
        order = f" ORDER BY {key_sql} {direction}, post.id {direction}"
        outer_order = f" ORDER BY page.sort_key {direction}, page.id {direction}"
    text = f"SELECT {POST_COLUMNS}{select_key} FROM post WHERE post.id {q.values(tuple(ids))}{order}"
    if search is not None:
        text = f"WITH page AS ({text}) SELECT page.*, {snippet_sql(q, search)} AS highlight FROM page{outer_order}"
    rows = await db.fetch(q.text(text), q.params)
    if keys is not None:
        place = {post_id: n for n, post_id in enumerate(ids)}
        rows.sort(key=lambda row: place[row["id"]])
    db.lists_seen = True
    db.note_posts(rows)
    highlights: list[str | None] = [None] * len(rows)
    if search is not None:
        highlights = [highlight(row["highlight"], db.dialect) for row in rows]
    return Page(rows, keys if keys is not None else [cursor_key(row, ordering) for row in rows], highlights, more)


async def _facts(db: RequestDb, selection: Selection) -> Facts | None:
    """The fact index at the request's snapshot, for a selection of public posts; None: use SQL."""
    if selection.archived or not db.pool.use_facts:
        return None
    return await db.pool.facts.at(db)


async def _selected(db: RequestDb, facts: Facts, selection: Selection) -> np.ndarray:
    """The posts the selection holds, its search included, as the index's mask."""
    return facts.mask(replace(selection, search=None), await _matches(db, facts, selection.search))


async def _matches(db: RequestDb, facts: Facts, terms: SearchTerms | None) -> np.ndarray | None:
    """The ids of the posts a search matches (kept with the index: it is the same until a write)."""
    if terms is None:
        return None
    found: np.ndarray | None = kept_matches(facts, terms)
    if found is None:
        in_memory = index_terms(facts, terms)
        if terms.empty:
            found = np.zeros(0, dtype=np.int64)
        elif in_memory is not None:
            assert facts.text is not None
            found = await facts.text.matches(db, in_memory)
        else:
            q = Query(db.dialect)
            ids = search_ids(q, terms)
            text = await db.scalar(q.text(f"SELECT {json_array(db.dialect, 'm.id')} FROM ({ids}) m"), q.params)
            found = json_ints(text)
        remember_matches(facts, terms, found)
    return found


async def _ranking(
    db: RequestDb, facts: Facts, terms: SearchTerms, *, compute: bool, frozen: list[Any] | None = None
) -> tuple[np.ndarray, np.ndarray, list[int]] | None:
    """Every post the search matches (archived ones too), its relevance and what a cursor needs to
    rank the next pages alike, kept with the index; None when not kept and not ``compute``.

    Writes move every bm25 score, so the pages of a walk are ranked as its first page was.
    Ranked in memory (loaders.postings), the third part is the ranking's statistics, and
    ``frozen`` (a cursor's) ranks by them. Ranked by FTS5 (a quoted phrase, on SQLite) it is
    ``[store version]``, and the ranking is kept across writes (``FactIndex.keep_ranking``)
    for the pages after it. PostgreSQL's ts_rank depends on the post alone: nothing to carry.
    """
    in_memory = index_terms(facts, terms)
    by_fts5 = facts.text is not None and in_memory is None and not terms.empty
    if by_fts5 and frozen is not None and len(frozen) == 1 and frozen[0] != facts.version:
        kept = db.pool.facts.ranking_at(terms, frozen[0])
        if kept is not None:
            return cast(tuple[np.ndarray, np.ndarray, list[int]], kept)
    key = ("ranked", terms)
    found: tuple[np.ndarray, np.ndarray, list[int]] | None = kept_matches(facts, key)
    if found is None and (compute or in_memory is not None or by_fts5):
        if terms.empty:
            found = (np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float64), [])
        elif in_memory is not None:
            # Ranked in memory from the search index's posting lists, FTS5's bm25 exactly.
            assert facts.text is not None
            found = await facts.text.ranking(db, in_memory)
        else:
            q = Query(db.dialect)
            ranked = ranked_sql(q, terms)
            if db.dialect == "sqlite":
                # 17 significant digits: the text reads back as the same double (cursors hold it).
                aggregate = "group_concat(s.id), group_concat(printf('%!.17g', s.relevance))"
            else:
                aggregate = f"{json_array(db.dialect, 's.id')}, {json_array(db.dialect, 's.relevance')}"
            # Materialized: bm25 cannot run inside the aggregate a flattened subquery would make.
            text = f"WITH s AS MATERIALIZED ({ranked}) SELECT {aggregate} FROM s"
            row = (await db.fetch(q.text(text), q.params))[0]
            if db.dialect == "sqlite":
                ids = np.fromstring(row[0], dtype=np.int64, sep=",") if row[0] else np.zeros(0, np.int64)
                relevance = np.fromstring(row[1], dtype=np.float64, sep=",") if row[1] else np.zeros(0)
            else:
                ids, relevance = json_ints(row[0]), np.array(orjson.loads(row[1]), dtype=np.float64)
            found = (ids, relevance, [facts.version] if by_fts5 else [])
            if by_fts5:
                db.pool.facts.keep_ranking(terms, facts.version, found)
        remember_matches(facts, key, found)
    if found is not None and in_memory is not None and frozen and found[2] != frozen:
        # A walk begun before a write: ranked by its first page's statistics.
        assert facts.text is not None
        walked_key = ("ranked", terms, tuple(frozen))
        walked: tuple[np.ndarray, np.ndarray, list[int]] | None = kept_matches(facts, walked_key)
        if walked is None:
            walked = await facts.text.ranking(db, in_memory, frozen)
            if walked[2] != frozen:
                return found  # statistics no ranking could have: ranked by the current ones
            remember_matches(facts, walked_key, walked)
        found = walked
    return found


def index_terms(facts: Facts, terms: SearchTerms) -> list[str] | None:
    """The search's words as search index terms, when it can be ranked in memory (loaders.postings)."""
    if facts.text is None or terms.phrases or not terms.words:
        return None
    return facts.text.terms(terms.words)


async def count(db: RequestDb, selection: Selection) -> int:
    """How many posts the selection holds (an aggregate: cached until the store changes)."""
    db.lists_seen = True

    async def compute() -> int:
        q = Query(db.dialect)
        # Every post: one count in SQL, cached like this one (the listing needs no fact index).
        facts = None if selection == Selection() else await _facts(db, selection)
        search = selection.search
        if facts is not None and search is not None and search_only(selection):
            # A search alone: counted from what the index keeps of it, else in the search index.
            kept = kept_matches(facts, ("ranked", search)) or (kept_matches(facts, search),)
            if kept[0] is None and index_terms(facts, search) is not None:
                kept = (await _matches(db, facts, search),)
            if kept[0] is not None:
                return int(np.count_nonzero(facts.mask(Selection(), kept[0])))
        elif facts is not None:
            mask = await _selected(db, facts, selection)
            return int(np.count_nonzero(mask))
        if search_only(selection) and selection.search is not None:
            # Counted in the search index, without reading the posts (see page()).
            ids = search_ids(q, selection.search)
            text = f"SELECT count(*) FROM ({ids}) s WHERE s.id {NOT_ARCHIVED}"
        else:
            text = f"SELECT count(*) FROM post{where_clause(where_conditions(q, selection))}"
        return int(await db.scalar(q.text(text), q.params))

    return await cached(db, ("count", selection), compute)


FACET_LIMIT = 100


def _facet_source(f: Filter) -> tuple[str, str, str, str]:
    """A facet's value, link table, join to the vocabulary and type column; a column has no link table."""
    if f.link is None:
        return f"post.{f.array}", "", "", ""
    link = f.link
    vocabulary = f"JOIN {link.vocabulary.name} t ON t.id = l.{link.key}"
    return "t.name", link.table.name, vocabulary, "t.type" if link.typed else ""


_FACET_SOURCES = {f.facet.name: _facet_source(f) for f in FILTERS if f.facet is not None}


async def facet(db: RequestDb, selection: Selection, name: str, limit: int) -> list[tuple[str, str | None, int]]:
    """(value, type, count) of one facet, most posts first, counting as if its own filter were not set.

    An aggregate: cached until the store changes.
    """
    db.lists_seen = True
    return await cached(db, ("facet", name, selection, limit), lambda: _facet(db, selection, name, limit))


async def _facet(db: RequestDb, selection: Selection, name: str, limit: int) -> list[tuple[str, str | None, int]]:
    narrowed = selection.without(name)
    facts = await _facts(db, narrowed)
    if facts is not None:
        mask = await _selected(db, facts, narrowed)
        return facts.facet(name, mask, limit)
    value, link, vocabulary, type_column = _FACET_SOURCES[name]
    q = Query(db.dialect)
    if link and narrowed == Selection():
        # Every public post: counted from the link table, without reading a post (at 100,000
        # posts a facet of tools took 770 ms through the posts, 45 ms this way).
        source = f"{link} l {vocabulary}"
        conditions = [f"l.post_id {NOT_ARCHIVED}"]
    else:
        source = f"post JOIN {link} l ON l.post_id = post.id {vocabulary}" if link else "post"
        conditions = where_conditions(q, narrowed)
    # Values order by code point on both databases (see loaders.sql).
    type_select = f', {type_column} COLLATE "C"' if type_column else ", NULL"
    group = f"{value}, {type_column}" if type_column else value
    where = where_clause(conditions)
    text = (
        f'SELECT {value} COLLATE "C" AS value{type_select} AS type, count(*) AS n FROM {source}{where} '
        f"GROUP BY {group} ORDER BY n DESC, value{', type' if type_column else ''} LIMIT {q.param(limit)}"
    )
    return [(row[0], row[1], int(row[2])) for row in await db.fetch(q.text(text), q.params)]


__all__ = [
    "NOT_ARCHIVED",
    "NO_DATE",
    "STOP_WORDS",
    "Ordering",
    "Page",
    "SearchTerms",
    "Selection",
    "count",
    "facet",
    "index_terms",
    "page",
    "post_columns",
]
