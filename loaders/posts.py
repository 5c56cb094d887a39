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
import hashlib
import html
import re
from dataclasses import asdict, dataclass, replace
from typing import Any, cast

import numpy as np
import orjson

from .aggregates import cached
from .batch import POST_COLUMNS, post_columns
from .db import RequestDb, Row
from .facts import Facts, json_array, json_ints, kept_matches, remember_matches
from .postings import BM25
from .sql import Dialect, keys_param, placeholders

# Private-use characters mark matches in snippets; the text is HTML-escaped and
# they become <mark> tags, so a highlight is safe to put in a page as it is.
_MARK_START, _MARK_END = "\ue000", "\ue001"
# PostgreSQL's ts_headline leaves out what its parser reads as XML tags and entities
# (``<probe>``, ``&amp;``): it gets ``<``, ``>`` and ``&`` as these private-use
# characters, turned back in the highlight (see models.search).
_PG_HIDDEN = {"<": "\ue002", ">": "\ue003", "&": "\ue004"}
_PG_UNHIDE = str.maketrans({v: k for k, v in _PG_HIDDEN.items()})
_WORD = re.compile(r"\w+", re.UNICODE)
_PHRASE_OR_WORD = re.compile(r'"([^"]*)"|([^\s"]+)')
_PG_QUERY_CONFIG = "'english'"
NO_DATE = "0001-01-01"  # where posts never reviewed sort by last review


# PostgreSQL's english stop words (tsearch_data/english.stop). Both databases leave
# them out of a search, so that a query finds the same posts on either; typed
# operators (AND, OR, NOT, NEAR) are words like any other, and mostly stop words.
STOP_WORDS = frozenset(
    """i me my myself we our ours ourselves you your yours yourself yourselves he him his himself she her hers
    herself it its itself they them their theirs themselves what which who whom this that these those am is are
    was were be been being have has had having do does did doing a an the and but if or because as until while of
    at by for with about against between into through during before after above below to from up down in out on
    off over under again further then once here there when where why how all any both each few more most other
    some such no nor not only own same so than too very s t can will just don should now near""".split()  # noqa: SIM905
)


@dataclass(frozen=True, slots=True)
class SearchTerms:
    """What a user typed, as words and quoted phrases; nothing in it is query syntax.

    Words are runs of letters and digits, lowercased; stop words are left out of
    words (a phrase keeps them, in place). Quotes make a phrase; every other
    character only separates words.
    """

    words: tuple[str, ...]
    phrases: tuple[tuple[str, ...], ...]

    @classmethod
    def parse(cls, text: str) -> SearchTerms:
        words: list[str] = []
        phrases: list[tuple[str, ...]] = []
        for phrase, word in _PHRASE_OR_WORD.findall(text):
            tokens = tuple(t.lower() for t in _WORD.findall(phrase if phrase else word))
            if phrase and len([t for t in tokens if t not in STOP_WORDS]) > 1:
                phrases.append(tokens)
            else:
                words += [t for t in tokens if t not in STOP_WORDS]
        return cls(tuple(dict.fromkeys(words)), tuple(dict.fromkeys(phrases)))

    @property
    def empty(self) -> bool:
        return not self.words and not self.phrases

    def fts5(self) -> str:
        """An FTS5 query: every word and phrase quoted, all of them required."""
        parts = [f'"{w}"' for w in self.words] + ['"' + " ".join(p) + '"' for p in self.phrases]
        return " ".join(parts)


@dataclass(frozen=True, slots=True)
class Selection:
    """Which posts: every field that is not None narrows the set."""

    topic: str | None = None
    stack_any: tuple[str, ...] | None = None
    tools_all: tuple[str, ...] | None = None
    entity: tuple[str, str] | None = None
    code_language: str | None = None
    difficulty: str | None = None
    status: str | None = None
    ai_generated_style: bool | None = None
    has_images: bool | None = None
    image_heavy: bool | None = None
    needs_human_review: bool | None = None
    min_quality: int | None = None
    min_freshness: int | None = None
    min_depth: int | None = None
    min_clarity: int | None = None
    view_count_min: int | None = None
    view_count_max: int | None = None
    reviewed_after: dt.date | None = None
    reviewed_before: dt.date | None = None
    search: SearchTerms | None = None
    archived: bool = False  # True: archived posts only (editors); readers always get False

    def without(self, facet: str) -> Selection:
        """The same selection without the facet's own filter (facets count as if it were not chosen)."""
        field = _FACET_FILTER[facet]
        cleared: dict[str, Any] = {field: None}
        return replace(self, **cleared)

    def fingerprint(self) -> str:
        data = asdict(self)
        return hashlib.blake2b(orjson.dumps(data, default=str, option=orjson.OPT_SORT_KEYS), digest_size=6).hexdigest()


_FACET_FILTER = {
    "topic": "topic",
    "stack": "stack_any",
    "tools": "tools_all",
    "entities": "entity",
    "code_language": "code_language",
    "difficulty": "difficulty",
    "status": "status",
}

# Sort keys: SQL expression and the Python type of its value in a cursor.
SORT_KEYS: dict[str, tuple[str, type]] = {
    "newest": ("post.id", int),
    "view_count": ("post.view_count", int),
    "quality": ("post.quality", int),
    "freshness": ("post.freshness", int),
    "depth": ("post.depth", int),
    "clarity": ("post.clarity", int),
    "last_reviewed": (f"COALESCE(post.last_reviewed, '{NO_DATE}')", str),
    "title": ('post.title COLLATE "C"', str),  # by code point on both databases (see loaders.sql)
    "relevance": ("s.relevance", float),
}


@dataclass(frozen=True, slots=True)
class Ordering:
    """An order of posts: a sort key and a direction; the post id breaks ties the same way."""

    key: str = "newest"
    descending: bool = True

    def name(self, selection: Selection) -> str:
        """What a cursor must match: the ordering and the selection it was given out for."""
        return f"{self.key}:{'desc' if self.descending else 'asc'}:{selection.fingerprint()}"

    @property
    def cursor_shape(self) -> tuple[type, ...]:
        if self.key == "relevance":
            # And the statistics the ranking was made with (loaders.postings), ints, maybe none.
            return (float, int, list)
        return (int,) if self.key == "newest" else (SORT_KEYS[self.key][1], int)


class _Query:
    """A statement under construction: text with ``?`` placeholders and their values in order."""

    def __init__(self, dialect: Dialect) -> None:
        self.dialect = dialect
        self.params: list[Any] = []

    def param(self, value: Any) -> str:
        self.params.append(value)
        return "?"

    def values(self, values: tuple[Any, ...]) -> str:
        """``IN (...)`` over a list of values, as one parameter."""
        self.params.append(keys_param(self.dialect, values))
        return "IN (SELECT value FROM json_each(?))" if self.dialect == "sqlite" else "= ANY(?)"

    def date(self, value: dt.date) -> str:
        return self.param(value.isoformat() if self.dialect == "sqlite" else value)

    def text(self, template: str) -> str:
        return placeholders(self.dialect, template)


def _conditions(q: _Query, s: Selection) -> list[str]:
    if s.archived:
        where = ["post.archived_at IS NOT NULL"]
    elif q.dialect == "sqlite":
        # Public posts by id, not by 'archived_at IS NULL': SQLite then needs no post's row to
        # decide, and answers counts and facets from an index alone where one holds the filters
        # (a facet of statuses over 100,000 posts: 13 ms instead of 180).
        where = [f"post.id {NOT_ARCHIVED}"]
    else:
        where = ["post.archived_at IS NULL"]
    for column in ("topic", "code_language", "difficulty", "status"):
        value = getattr(s, column)
        if value is not None:
            where.append(f"post.{column} = {q.param(value)}")
    for column in ("ai_generated_style", "has_images", "image_heavy", "needs_human_review"):
        value = getattr(s, column)
        if value is not None:
            where.append(f"post.{column} = {q.param(value)}")
    for column in ("quality", "freshness", "depth", "clarity"):
        value = getattr(s, f"min_{column}")
        if value is not None:
            where.append(f"post.{column} >= {q.param(value)}")
    if s.view_count_min is not None:
        where.append(f"post.view_count >= {q.param(s.view_count_min)}")
    if s.view_count_max is not None:
        where.append(f"post.view_count <= {q.param(s.view_count_max)}")
    if s.reviewed_after is not None:
        where.append(f"post.last_reviewed >= {q.date(s.reviewed_after)}")
    if s.reviewed_before is not None:
        where.append(f"post.last_reviewed <= {q.date(s.reviewed_before)}")
    if s.stack_any is not None:
        where.append(
            "post.id IN (SELECT ps.post_id FROM post_stack ps JOIN stack_term t ON t.id = ps.term_id "
            f"WHERE t.name {q.values(s.stack_any)})"
        )
    if s.tools_all is not None:
        tools = tuple(dict.fromkeys(s.tools_all))
        where.append(
            "post.id IN (SELECT pt.post_id FROM post_tool pt JOIN tool t ON t.id = pt.tool_id "
            f"WHERE t.name {q.values(tools)} GROUP BY pt.post_id HAVING count(*) = {q.param(len(tools))})"
        )
    if s.entity is not None:
        name, type_ = s.entity
        where.append(
            "post.id IN (SELECT pe.post_id FROM post_entity pe JOIN entity e ON e.id = pe.entity_id "
            f"WHERE e.name = {q.param(name)} AND e.type = {q.param(type_)})"
        )
    if s.search is not None:
        where.append(f"post.id IN ({_search_ids(q, s.search)})")
    return where


# Public posts by id alone: archived posts are few, and only they are in ix_post_archived_at.
NOT_ARCHIVED = "NOT IN (SELECT id FROM post WHERE archived_at IS NOT NULL)"


def _search_only(selection: Selection) -> bool:
    """Whether the selection is a search of public posts and nothing else."""
    return selection.search is not None and replace(selection, search=None) == Selection()


def _search_ids(q: _Query, terms: SearchTerms) -> str:
    if terms.empty:
        return "SELECT 0 AS id WHERE 1 = 0"  # no post (an integer, as post ids are to PostgreSQL)
    if q.dialect == "sqlite":
        return f"SELECT rowid AS id FROM post_fts WHERE post_fts MATCH {q.param(terms.fts5())}"
    # Through the GIN index whatever the share of posts matched (see migrations/versions/0005).
    return f"SELECT id FROM alphanode_search_ids({_tsquery(q, terms)})"


def _tsquery(q: _Query, terms: SearchTerms) -> str:
    parts = [f"plainto_tsquery({_PG_QUERY_CONFIG}, {q.param(w)})" for w in terms.words]
    parts += [f"phraseto_tsquery({_PG_QUERY_CONFIG}, {q.param(' '.join(p))})" for p in terms.phrases]
    return " && ".join(parts)


def _where(conditions: list[str]) -> str:
    return f" WHERE {' AND '.join(conditions)}" if conditions else ""


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
    ranked_only = ordering.key == "relevance" and _search_only(selection)
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
    q = _Query(db.dialect)
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
    q = _Query(db.dialect)
    search = selection.search
    relevance = ordering.key == "relevance"
    size, forward = window.size, window.forward
    key_sql = _sort_key(ordering.key, db.dialect)
    id_sql = "s.id" if ranked_only else "post.id"
    # Parameters are bound in the order they appear in the text: the source comes first.
    if relevance and search:
        source = f"({_ranked(q, search, candidates)}) s" + ("" if ranked_only else " JOIN post ON post.id = s.id")
    else:
        source = "post"
    if ranked_only:
        conditions = [f"s.id {NOT_ARCHIVED}"]
    elif candidates is not None:
        conditions = []  # the candidates are the selected posts
    else:
        conditions = _conditions(q, replace(selection, search=None) if relevance and search else selection)
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
        ids = f"SELECT s.id, s.relevance FROM {source}{_where(conditions)} ORDER BY {order} LIMIT {limit}"
        text = f"SELECT {POST_COLUMNS}{select_key} FROM ({ids}) s JOIN post ON post.id = s.id ORDER BY {order}"
    else:
        text = f"SELECT {POST_COLUMNS}{select_key} FROM {source}{_where(conditions)} ORDER BY {order} LIMIT {limit}"
    if search is not None:
        # The snippet is made for the page's rows only, after the limit.
        text = (
            f"WITH page AS ({text}) SELECT page.*, {_snippet(q, search)} AS highlight FROM page ORDER BY {outer_order}"
        )
    rows = await db.fetch(q.text(text), q.params)
    db.lists_seen = True
    more = len(rows) > size
    rows = rows[:size]  # the one more read only tells whether a next page exists
    db.note_posts(rows)
    if not forward:
        rows.reverse()
    highlights: list[str | None] = [None] * len(rows)
    if search is not None:
        highlights = [_highlight(row["highlight"], db.dialect) for row in rows]
    return Page(rows, [_key(row, ordering) for row in rows], highlights, more)


async def _page_of(
    db: RequestDb,
    q: _Query,
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
    key_sql = _sort_key(ordering.key, db.dialect)
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
        text = f"WITH page AS ({text}) SELECT page.*, {_snippet(q, search)} AS highlight FROM page{outer_order}"
    rows = await db.fetch(q.text(text), q.params)
    if keys is not None:
        place = {post_id: n for n, post_id in enumerate(ids)}
        rows.sort(key=lambda row: place[row["id"]])
    db.lists_seen = True
    db.note_posts(rows)
    highlights: list[str | None] = [None] * len(rows)
    if search is not None:
        highlights = [_highlight(row["highlight"], db.dialect) for row in rows]
    return Page(rows, keys if keys is not None else [_key(row, ordering) for row in rows], highlights, more)


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
        in_memory = _index_terms(facts, terms)
        if terms.empty:
            found = np.zeros(0, dtype=np.int64)
        elif in_memory is not None:
            assert facts.text is not None
            found = await facts.text.matches(db, in_memory)
        else:
            q = _Query(db.dialect)
            ids = _search_ids(q, terms)
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
    in_memory = _index_terms(facts, terms)
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
            q = _Query(db.dialect)
            ranked = _ranked(q, terms)
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


def _index_terms(facts: Facts, terms: SearchTerms) -> list[str] | None:
    """The search's words as search index terms, when it can be ranked in memory (loaders.postings)."""
    if facts.text is None or terms.phrases or not terms.words:
        return None
    return facts.text.terms(terms.words)


def _sort_key(key: str, dialect: Dialect) -> str:
    if key == "last_reviewed" and dialect == "postgresql":
        # asyncpg reads -infinity as date.min (0001-01-01, NO_DATE in a cursor) and binds date.min as
        # -infinity: with DATE '0001-01-01' here, a cursor at a never-reviewed post would find nothing.
        return "COALESCE(post.last_reviewed, DATE '-infinity')"
    return SORT_KEYS[key][0]


def _key(row: Row, ordering: Ordering) -> list[Any]:
    if ordering.key == "newest":
        return [row["id"]]
    value = row["sort_key"]
    if isinstance(value, dt.date):
        value = value.isoformat()
    elif ordering.key == "relevance":
        return [float(value), row["id"], []]  # ranked in SQL: no statistics to carry
    return [value, row["id"]]


def _ranked(q: _Query, terms: SearchTerms, among: list[int] | None = None) -> str:
    """Matching post ids with their relevance, higher is better; only those ``among`` these when given."""
    if q.dialect == "sqlite":
        # bm25 is lower for better matches; relevance is its negation.
        text = f"SELECT rowid AS id, -{BM25} AS relevance FROM post_fts WHERE post_fts MATCH {q.param(terms.fts5())}"
        # +rowid: the candidates filter the matches; offered to FTS5 as a rowid constraint, each
        # candidate would run the whole match again (seconds for a few thousand).
        return text if among is None else f"{text} AND +rowid {q.values(tuple(among))}"
    # Each _tsquery binds its own parameters, in the order they appear in the text.
    rank = f"ts_rank(document, ({_tsquery(q, terms)}))::float8"
    text = f"SELECT post_id AS id, {rank} AS relevance FROM post_search WHERE document @@ ({_tsquery(q, terms)})"
    return text if among is None else f"{text} AND post_id {q.values(tuple(among))}"


def _snippet(q: _Query, terms: SearchTerms) -> str:
    if q.dialect == "sqlite":
        return (
            f"(SELECT snippet(post_fts, -1, '{_MARK_START}', '{_MARK_END}', '…', 24) FROM post_fts "
            f"WHERE post_fts MATCH {q.param(terms.fts5())} AND rowid = page.id)"
        )
    query = _tsquery(q, terms)
    return (
        f"(SELECT ts_headline({_PG_QUERY_CONFIG}, translate(concat_ws(' … ', ps.title, ps.summary, ps.intro, "
        f"ps.body, ps.checklist, ps.topic), '{''.join(_PG_HIDDEN)}', '{''.join(_PG_HIDDEN.values())}'), ({query}), "
        f"'StartSel={_MARK_START}, StopSel={_MARK_END}, MaxWords=24, MinWords=12, MaxFragments=2, "
        f"FragmentDelimiter= … ') FROM post_search ps WHERE ps.post_id = page.id)"
    )


def _highlight(snippet: str | None, dialect: Dialect) -> str | None:
    if snippet is None:
        return None
    if dialect == "postgresql":
        snippet = snippet.translate(_PG_UNHIDE)
    escaped = html.escape(snippet, quote=False)
    return escaped.replace(_MARK_START, "<mark>").replace(_MARK_END, "</mark>")


async def count(db: RequestDb, selection: Selection) -> int:
    """How many posts the selection holds (an aggregate: cached until the store changes)."""
    db.lists_seen = True

    async def compute() -> int:
        q = _Query(db.dialect)
        # Every post: one count in SQL, cached like this one (the listing needs no fact index).
        facts = None if selection == Selection() else await _facts(db, selection)
        search = selection.search
        if facts is not None and search is not None and _search_only(selection):
            # A search alone: counted from what the index keeps of it, else in the search index.
            kept = kept_matches(facts, ("ranked", search)) or (kept_matches(facts, search),)
            if kept[0] is None and _index_terms(facts, search) is not None:
                kept = (await _matches(db, facts, search),)
            if kept[0] is not None:
                return int(np.count_nonzero(facts.mask(Selection(), kept[0])))
        elif facts is not None:
            mask = await _selected(db, facts, selection)
            return int(np.count_nonzero(mask))
        if _search_only(selection) and selection.search is not None:
            # Counted in the search index, without reading the posts (see page()).
            ids = _search_ids(q, selection.search)
            text = f"SELECT count(*) FROM ({ids}) s WHERE s.id {NOT_ARCHIVED}"
        else:
            text = f"SELECT count(*) FROM post{_where(_conditions(q, selection))}"
        return int(await db.scalar(q.text(text), q.params))

    return await cached(db, ("count", selection), compute)


FACET_LIMIT = 100

# Facet: (value, link table, join to the vocabulary, type column); scalars have no link table.
_FACET_SOURCES = {
    "topic": ("post.topic", "", "", ""),
    "code_language": ("post.code_language", "", "", ""),
    "difficulty": ("post.difficulty", "", "", ""),
    "status": ("post.status", "", "", ""),
    "stack": ("t.name", "post_stack", "JOIN stack_term t ON t.id = l.term_id", ""),
    "tools": ("t.name", "post_tool", "JOIN tool t ON t.id = l.tool_id", ""),
    "entities": ("e.name", "post_entity", "JOIN entity e ON e.id = l.entity_id", "e.type"),
}


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
    q = _Query(db.dialect)
    if link and narrowed == Selection():
        # Every public post: counted from the link table, without reading a post (at 100,000
        # posts a facet of tools took 770 ms through the posts, 45 ms this way).
        source = f"{link} l {vocabulary}"
        conditions = [f"l.post_id {NOT_ARCHIVED}"]
    else:
        source = f"post JOIN {link} l ON l.post_id = post.id {vocabulary}" if link else "post"
        conditions = _conditions(q, narrowed)
    # Values order by code point on both databases (see loaders.sql).
    type_select = f', {type_column} COLLATE "C"' if type_column else ", NULL"
    group = f"{value}, {type_column}" if type_column else value
    text = (
        f'SELECT {value} COLLATE "C" AS value{type_select} AS type, count(*) AS n FROM {source}{_where(conditions)} '
        f"GROUP BY {group} ORDER BY n DESC, value{', type' if type_column else ''} LIMIT {q.param(limit)}"
    )
    return [(row[0], row[1], int(row[2])) for row in await db.fetch(q.text(text), q.params)]


__all__ = ["Ordering", "Page", "SearchTerms", "Selection", "count", "facet", "page", "post_columns"]
