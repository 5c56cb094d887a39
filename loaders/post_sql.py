"""The SQL of finding posts, built as text for the request's dialect with every value a bound
parameter: conditions of a selection, sort keys and cursors, search ranking and snippets."""

from __future__ import annotations

import datetime as dt
import html
from dataclasses import replace
from typing import Any

from .db import Row
from .filter_sql import conditions
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
    """The conditions of a selection, its values added to ``q`` (see ``loaders.filter_sql``)."""
    where, values = conditions(q.dialect, s.archived, s.set_filters())
    q.params += values
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
