"""The SQL of finding posts, built as text for the request's dialect with every value a bound
parameter: conditions of a selection, sort keys and cursors, search ranking and snippets."""

from __future__ import annotations

import datetime as dt
import html
from dataclasses import replace
from typing import Any

from .db import Row
from .postings import BM25
from .selection import SORT_KEYS, Ordering, SearchTerms, Selection
from .sql import Dialect, keys_param, placeholders

# Private-use characters mark matches in snippets; the text is HTML-escaped and
# they become <mark> tags, so a highlight is safe to put in a page as it is.
_MARK_START, _MARK_END = "\ue000", "\ue001"
# PostgreSQL's ts_headline leaves out what its parser reads as XML tags and entities
# (``<probe>``, ``&amp;``): it gets ``<``, ``>`` and ``&`` as these private-use
# characters, turned back in the highlight (see models.search).
_PG_HIDDEN = {"<": "\ue002", ">": "\ue003", "&": "\ue004"}
_PG_UNHIDE = str.maketrans({v: k for k, v in _PG_HIDDEN.items()})
_PG_QUERY_CONFIG = "'english'"


class Query:
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


def where_conditions(q: Query, s: Selection) -> list[str]:
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
    if s.reading_time_max is not None:
        where.append(f"post.reading_time <= {q.param(s.reading_time_max)}")
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
        where.append(f"post.id IN ({search_ids(q, s.search)})")
    return where


# Public posts by id alone: archived posts are few, and only they are in ix_post_archived_at.
NOT_ARCHIVED = "NOT IN (SELECT id FROM post WHERE archived_at IS NOT NULL)"


def search_only(selection: Selection) -> bool:
    """Whether the selection is a search of public posts and nothing else."""
    return selection.search is not None and replace(selection, search=None) == Selection()


def search_ids(q: Query, terms: SearchTerms) -> str:
    if terms.empty:
        return "SELECT 0 AS id WHERE 1 = 0"  # no post (an integer, as post ids are to PostgreSQL)
    if q.dialect == "sqlite":
        return f"SELECT rowid AS id FROM post_fts WHERE post_fts MATCH {q.param(terms.fts5())}"
    # Through the GIN index whatever the share of posts matched (see migrations/versions/0005).
    return f"SELECT id FROM alphanode_search_ids({tsquery(q, terms)})"


def tsquery(q: Query, terms: SearchTerms) -> str:
    parts = [f"plainto_tsquery({_PG_QUERY_CONFIG}, {q.param(w)})" for w in terms.words]
    parts += [f"phraseto_tsquery({_PG_QUERY_CONFIG}, {q.param(' '.join(p))})" for p in terms.phrases]
    return " && ".join(parts)


def where_clause(conditions: list[str]) -> str:
    return f" WHERE {' AND '.join(conditions)}" if conditions else ""


def sort_key_sql(key: str, dialect: Dialect) -> str:
    if key == "last_reviewed" and dialect == "postgresql":
        # asyncpg reads -infinity as date.min (0001-01-01, NO_DATE in a cursor) and binds date.min as
        # -infinity: with DATE '0001-01-01' here, a cursor at a never-reviewed post would find nothing.
        return "COALESCE(post.last_reviewed, DATE '-infinity')"
    return SORT_KEYS[key][0]


def cursor_key(row: Row, ordering: Ordering) -> list[Any]:
    if ordering.key == "newest":
        return [row["id"]]
    value = row["sort_key"]
    if isinstance(value, dt.date):
        value = value.isoformat()
    elif ordering.key == "relevance":
        return [float(value), row["id"], []]  # ranked in SQL: no statistics to carry
    return [value, row["id"]]


def ranked_sql(q: Query, terms: SearchTerms, among: list[int] | None = None) -> str:
    """Matching post ids with their relevance, higher is better; only those ``among`` these when given."""
    if q.dialect == "sqlite":
        # bm25 is lower for better matches; relevance is its negation.
        text = f"SELECT rowid AS id, -{BM25} AS relevance FROM post_fts WHERE post_fts MATCH {q.param(terms.fts5())}"
        # +rowid: the candidates filter the matches; offered to FTS5 as a rowid constraint, each
        # candidate would run the whole match again (seconds for a few thousand).
        return text if among is None else f"{text} AND +rowid {q.values(tuple(among))}"
    # Each tsquery binds its own parameters, in the order they appear in the text.
    rank = f"ts_rank(document, ({tsquery(q, terms)}))::float8"
    text = f"SELECT post_id AS id, {rank} AS relevance FROM post_search WHERE document @@ ({tsquery(q, terms)})"
    return text if among is None else f"{text} AND post_id {q.values(tuple(among))}"


def snippet_sql(q: Query, terms: SearchTerms) -> str:
    if q.dialect == "sqlite":
        return (
            f"(SELECT snippet(post_fts, -1, '{_MARK_START}', '{_MARK_END}', '…', 24) FROM post_fts "
            f"WHERE post_fts MATCH {q.param(terms.fts5())} AND rowid = page.id)"
        )
    query = tsquery(q, terms)
    return (
        f"(SELECT ts_headline({_PG_QUERY_CONFIG}, translate(concat_ws(' … ', ps.title, ps.summary, ps.intro, "
        f"ps.body, ps.checklist, ps.topic), '{''.join(_PG_HIDDEN)}', '{''.join(_PG_HIDDEN.values())}'), ({query}), "
        f"'StartSel={_MARK_START}, StopSel={_MARK_END}, MaxWords=24, MinWords=12, MaxFragments=2, "
        f"FragmentDelimiter= … ') FROM post_search ps WHERE ps.post_id = page.id)"
    )


def highlight(snippet: str | None, dialect: Dialect) -> str | None:
    if snippet is None:
        return None
    if dialect == "postgresql":
        snippet = snippet.translate(_PG_UNHIDE)
    escaped = html.escape(snippet, quote=False)
    return escaped.replace(_MARK_START, "<mark>").replace(_MARK_END, "</mark>")
