"""The fields of posts that ``posts(where:)`` filters by and ``orderBy`` orders by, each declared once.

Everything else is derived from these entries: the GraphQL ``PostFilter`` input and its range
checks (``graph.filters``), the fields of a ``Selection`` (``loaders.selection``), the SQL
conditions (``loaders.filter_sql``, SQLAlchemy Core over the SQLModel tables), the fact index's
arrays and masks (``loaders.fact_arrays``), the facets (``graph.facets``, ``loaders.posts``) and
the ``PostOrderField`` enum. A new filter of an existing column is one entry in ``FILTERS`` (and
its test); the order of ``FILTERS`` is the order of ``PostFilter``'s fields in the schema.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from enum import Enum
from typing import Any

from sqlalchemy import Table
from sqlmodel import col

from models.tables import Entity, Post, PostEntity, PostStack, PostTool, StackTerm, Tool, table

SCORE_MAX = 100
NO_DATE = "0001-01-01"  # where posts never reviewed sort by last review


class Compare(Enum):
    """How a filter's value selects posts."""

    EQUALS = "equals"  # the column equals the value
    AT_LEAST = "at least"  # the column is at least the value (NULL: left out)
    AT_MOST = "at most"  # the column is at most the value (NULL: left out)
    ANY_OF = "any of"  # linked to any of these terms (a list of names)
    ALL_OF = "all of"  # linked to every one of these terms (a list of names)
    ENTITY = "entity"  # linked to this entity (name, type)


@dataclass(frozen=True, slots=True)
class Bounds:
    """The values a filter accepts: from ``low``, up to ``high`` when given (both inclusive)."""

    low: int = 0
    high: int | None = None

    def error(self, value: int) -> str | None:
        """What is wrong with ``value``, for ``where.<field> ...``; None when it is in range."""
        if self.high is not None:
            if not self.low <= value <= self.high:
                return f"must be between {self.low} and {self.high}, not {value}"
        elif value < self.low:
            floor = "must not be negative" if self.low == 0 else f"must be at least {self.low}"
            return f"{floor}, not {value}"
        return None


NON_NEGATIVE = Bounds(0)
SCORE = Bounds(0, SCORE_MAX)


@dataclass(frozen=True, slots=True)
class Link:
    """Terms linked to posts: a link table (``post_id``, ``key``) and its vocabulary (``id``, ``name``
    and, when ``typed``, ``type``); ``facet`` names it in facets and in the fact index."""

    facet: str
    table: Table
    key: str
    vocabulary: Table
    typed: bool = False


@dataclass(frozen=True, slots=True)
class Facet:
    """A facet: the name of its ``PostFacets`` field and its description."""

    name: str
    description: str


@dataclass(frozen=True, slots=True)
class Filter:
    """One field of ``PostFilter``.

    ``name`` is the ``Selection`` field (``graphql_name`` its camelCase); ``type`` the type of a
    value (of each term, for a list); ``column`` the column of ``post`` it compares, or ``link``
    the terms it looks for. The fact index holds a column as codes (``str``), flags (``bool``)
    or numbers (``int``, and ``dt.date`` as day numbers) named after the column, and a link as
    the link's pairs of post and term ids.
    """

    name: str
    type: type
    compare: Compare
    description: str
    column: Any = None  # a column of Post, as sqlmodel.col gives it
    link: Link | None = None
    bounds: Bounds | None = None
    facet: Facet | None = None

    @property
    def graphql_name(self) -> str:
        first, *rest = self.name.split("_")
        return first + "".join(part.capitalize() for part in rest)

    @property
    def array(self) -> str:
        """The fact index's array for this filter: its column's, or its link's facet."""
        if self.link is not None:
            return self.link.facet
        assert self.column is not None
        return str(self.column.key)


STACK = Link("stack", table(PostStack), "term_id", table(StackTerm))
TOOLS = Link("tools", table(PostTool), "tool_id", table(Tool))
ENTITIES = Link("entities", table(PostEntity), "entity_id", table(Entity), typed=True)

_EQ, _MIN, _MAX = Compare.EQUALS, Compare.AT_LEAST, Compare.AT_MOST
_NEVER = "never-reviewed posts are left out."

FILTERS: tuple[Filter, ...] = (
    Filter("topic", str, _EQ, "Posts with exactly this topic.", col(Post.topic), facet=Facet("topic", "Topics.")),
    Filter(
        "stack_any",
        str,
        Compare.ANY_OF,
        "Posts whose stack has any of these terms.",
        link=STACK,
        facet=Facet("stack", "Stack terms."),
    ),
    Filter(
        "tools_all",
        str,
        Compare.ALL_OF,
        "Posts that use all of these tools.",
        link=TOOLS,
        facet=Facet("tools", "Tools."),
    ),
    Filter(
        "entity",
        str,
        Compare.ENTITY,
        "Posts about this entity.",
        link=ENTITIES,
        facet=Facet("entities", "Entities, with their type."),
    ),
    Filter(
        "code_language",
        str,
        _EQ,
        "Posts whose code is in this language.",
        col(Post.code_language),
        facet=Facet("code_language", "Code languages."),
    ),
    Filter(
        "difficulty",
        str,
        _EQ,
        "Posts of this difficulty.",
        col(Post.difficulty),
        facet=Facet("difficulty", "Difficulties."),
    ),
    Filter(
        "status",
        str,
        _EQ,
        "Posts with this revision status.",
        col(Post.status),
        facet=Facet("status", "Revision statuses."),
    ),
    Filter(
        "ai_generated_style",
        bool,
        _EQ,
        "Posts with (true) or without (false) the ai-generated-style flag.",
        col(Post.ai_generated_style),
    ),
    Filter("has_images", bool, _EQ, "Posts with (true) or without images.", col(Post.has_images)),
    Filter(
        "image_heavy", bool, _EQ, "Posts flagged (true) or not flagged (false) as image heavy.", col(Post.image_heavy)
    ),
    Filter(
        "needs_human_review",
        bool,
        _EQ,
        "Posts that need (true) or do not need (false) human review.",
        col(Post.needs_human_review),
    ),
    Filter("min_quality", int, _MIN, "Quality score at least this, 0..100.", col(Post.quality), bounds=SCORE),
    Filter("min_freshness", int, _MIN, "Freshness score at least this, 0..100.", col(Post.freshness), bounds=SCORE),
    Filter("min_depth", int, _MIN, "Depth score at least this, 0..100.", col(Post.depth), bounds=SCORE),
    Filter("min_clarity", int, _MIN, "Clarity score at least this, 0..100.", col(Post.clarity), bounds=SCORE),
    Filter("view_count_min", int, _MIN, "At least this many views.", col(Post.view_count), bounds=NON_NEGATIVE),
    Filter("view_count_max", int, _MAX, "At most this many views.", col(Post.view_count), bounds=NON_NEGATIVE),
    Filter(
        "reading_time_min",
        int,
        _MIN,
        "Posts read in at least this many minutes (meta.readingTime).",
        col(Post.reading_time),
        bounds=NON_NEGATIVE,
    ),
    Filter(
        "reading_time_max",
        int,
        _MAX,
        "Posts read in at most this many minutes (meta.readingTime).",
        col(Post.reading_time),
        bounds=NON_NEGATIVE,
    ),
    Filter("reviewed_after", dt.date, _MIN, f"Last reviewed on or after this date; {_NEVER}", col(Post.last_reviewed)),
    Filter(
        "reviewed_before", dt.date, _MAX, f"Last reviewed on or before this date; {_NEVER}", col(Post.last_reviewed)
    ),
)
FILTER_BY_NAME = {f.name: f for f in FILTERS}


@dataclass(frozen=True, slots=True)
class Order:
    """An ordering of posts: its key, the SQL of its sort key, the type of that key in a cursor,
    and its ``PostOrderField`` description (None: not one of them, the default order)."""

    key: str
    sql: str
    cursor: type
    description: str | None
    column: Any = None  # a column of Post (sqlmodel.col), when the key is one (the fact index has it)


def _by(column: Any, description: str) -> Order:
    return Order(str(column.key), f"post.{column.key}", int, description, column)


ORDERS: tuple[Order, ...] = (
    Order("newest", "post.id", int, None),
    _by(col(Post.view_count), "Number of views."),
    _by(col(Post.quality), "Quality score."),
    _by(col(Post.freshness), "Freshness score."),
    _by(col(Post.depth), "Depth score."),
    _by(col(Post.clarity), "Clarity score."),
    Order(
        "last_reviewed",
        f"COALESCE(post.last_reviewed, '{NO_DATE}')",
        str,
        "Date of the last review; never-reviewed posts count as oldest.",
    ),
    # By code point on both databases (see loaders.sql).
    Order("title", 'post.title COLLATE "C"', str, "Title, by Unicode code point."),
    Order(
        "relevance",
        "s.relevance",
        float,
        "How well the post matches `search` (bm25 on SQLite, ts_rank on PostgreSQL).",
    ),
)

# The fact index's arrays of post columns, by kind (loaders.fact_arrays): codes of text values,
# flags, and numbers (the integer sort keys first, then the integer filters' columns).
SCALARS = tuple(dict.fromkeys(f.array for f in FILTERS if f.column is not None and f.type is str))
FLAGS = tuple(dict.fromkeys(f.array for f in FILTERS if f.column is not None and f.type is bool))
NUMBERS = tuple(
    dict.fromkeys(
        [str(o.column.key) for o in ORDERS if o.column is not None]
        + [f.array for f in FILTERS if f.column is not None and f.type is int]
    )
)
# Facet or filter -> (link table, its vocabulary column, the vocabulary table).
LINKS = {f.link.facet: (f.link.table.name, f.link.key, f.link.vocabulary.name) for f in FILTERS if f.link is not None}
# A facet's own filter, which its counts leave out (Selection.without).
FACET_FILTER = {f.facet.name: f.name for f in FILTERS if f.facet is not None}
FACETS = tuple(f.facet for f in FILTERS if f.facet is not None)
