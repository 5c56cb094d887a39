"""Filter and order inputs for lists of posts, and their translation to the read path's terms."""

from __future__ import annotations

import datetime as dt
from enum import Enum
from typing import Annotated

import strawberry

from loaders.posts import Ordering, SearchTerms, Selection

from .auth import Viewer, require_editor
from .errors import BadUserInput

SCORE_MAX = 100


@strawberry.input(description="An entity, by name and type.")
class EntityRef:
    name: str = strawberry.field(description="The entity's name, such as `python services`.")
    type: str = strawberry.field(description="The entity's type, such as `stack`, `area` or `problem`.")


@strawberry.input(
    description="Which posts to list. Every field that is set narrows the list; unset fields, and empty lists, "
    "do not filter. Bounds are inclusive."
)
class PostFilter:
    topic: str | None = strawberry.field(default=None, description="Posts with exactly this topic.")
    stack_any: list[str] | None = strawberry.field(
        default=None, description="Posts whose stack has any of these terms."
    )
    tools_all: list[str] | None = strawberry.field(default=None, description="Posts that use all of these tools.")
    entity: EntityRef | None = strawberry.field(default=None, description="Posts about this entity.")
    code_language: str | None = strawberry.field(default=None, description="Posts whose code is in this language.")
    difficulty: str | None = strawberry.field(default=None, description="Posts of this difficulty.")
    status: str | None = strawberry.field(default=None, description="Posts with this revision status.")
    ai_generated_style: bool | None = strawberry.field(
        default=None, description="Posts with (true) or without (false) the ai-generated-style flag."
    )
    has_images: bool | None = strawberry.field(default=None, description="Posts with (true) or without images.")
    image_heavy: bool | None = strawberry.field(
        default=None, description="Posts flagged (true) or not flagged (false) as image heavy."
    )
    needs_human_review: bool | None = strawberry.field(
        default=None, description="Posts that need (true) or do not need (false) human review."
    )
    min_quality: int | None = strawberry.field(default=None, description="Quality score at least this, 0..100.")
    min_freshness: int | None = strawberry.field(default=None, description="Freshness score at least this, 0..100.")
    min_depth: int | None = strawberry.field(default=None, description="Depth score at least this, 0..100.")
    min_clarity: int | None = strawberry.field(default=None, description="Clarity score at least this, 0..100.")
    view_count_min: int | None = strawberry.field(default=None, description="At least this many views.")
    view_count_max: int | None = strawberry.field(default=None, description="At most this many views.")
    reading_time_max: int | None = strawberry.field(
        default=None, description="Posts read in at most this many minutes (meta.readingTime)."
    )
    reviewed_after: dt.date | None = strawberry.field(
        default=None, description="Last reviewed on or after this date; never-reviewed posts are left out."
    )
    reviewed_before: dt.date | None = strawberry.field(
        default=None, description="Last reviewed on or before this date; never-reviewed posts are left out."
    )
    archived: bool | None = strawberry.field(
        default=None,
        description="Editors only: true lists archived posts instead of the posts readers see. Readers never see "
        "archived posts.",
    )


@strawberry.enum(description="What to order posts by.")
class PostOrderField(Enum):
    VIEW_COUNT = strawberry.enum_value("view_count", description="Number of views.")
    QUALITY = strawberry.enum_value("quality", description="Quality score.")
    FRESHNESS = strawberry.enum_value("freshness", description="Freshness score.")
    DEPTH = strawberry.enum_value("depth", description="Depth score.")
    CLARITY = strawberry.enum_value("clarity", description="Clarity score.")
    LAST_REVIEWED = strawberry.enum_value(
        "last_reviewed", description="Date of the last review; never-reviewed posts count as oldest."
    )
    TITLE = strawberry.enum_value("title", description="Title, by Unicode code point.")
    RELEVANCE = strawberry.enum_value(
        "relevance", description="How well the post matches `search` (bm25 on SQLite, ts_rank on PostgreSQL)."
    )


@strawberry.enum(description="Ascending or descending.")
class OrderDirection(Enum):
    ASC = strawberry.enum_value("asc", description="Smallest first (A to Z, oldest first).")
    DESC = strawberry.enum_value("desc", description="Largest first (Z to A, newest first, best first).")


@strawberry.input(description="An order of posts. Posts with equal values follow their ids in the same direction.")
class PostOrder:
    field: PostOrderField = strawberry.field(description="What to order by.")
    direction: OrderDirection = strawberry.field(default=OrderDirection.DESC, description="Which way; DESC if unset.")


WhereArg = Annotated[PostFilter | None, strawberry.argument(description="Which posts; all of them if unset.")]
OrderArg = Annotated[
    PostOrder | None,
    strawberry.argument(
        description="The order: newest first (the order posts were first imported, latest first) if unset, "
        "or by relevance when `search` is given."
    ),
]
SearchArg = Annotated[
    str | None,
    strawberry.argument(
        description="Words to find in the title, intro, body, checklist, summary or topic; all must match. "
        '"Quoted words" must appear together. Nothing else in the text is query syntax.'
    ),
]


def to_selection(where: PostFilter | None, search: str | None, viewer: Viewer | None = None) -> Selection:
    """The read path's selection for a filter and a search text; a clear error for values out of range."""
    terms = SearchTerms.parse(search) if search is not None and search.strip() else None
    if where is None:
        return Selection(search=terms)
    if where.archived:
        require_editor(viewer, "where.archived")
    for name in ("min_quality", "min_freshness", "min_depth", "min_clarity"):
        value = getattr(where, name)
        if value is not None and not 0 <= value <= SCORE_MAX:
            camel = "min" + name[4:].capitalize()
            raise BadUserInput(f"where.{camel} must be between 0 and {SCORE_MAX}, not {value}", argument="where")
    for name, camel in (
        ("view_count_min", "viewCountMin"),
        ("view_count_max", "viewCountMax"),
        ("reading_time_max", "readingTimeMax"),
    ):
        value = getattr(where, name)
        if value is not None and value < 0:
            raise BadUserInput(f"where.{camel} must not be negative, not {value}", argument="where")
    return Selection(
        topic=where.topic,
        stack_any=tuple(where.stack_any) if where.stack_any else None,
        tools_all=tuple(where.tools_all) if where.tools_all else None,
        entity=(where.entity.name, where.entity.type) if where.entity is not None else None,
        code_language=where.code_language,
        difficulty=where.difficulty,
        status=where.status,
        ai_generated_style=where.ai_generated_style,
        has_images=where.has_images,
        image_heavy=where.image_heavy,
        needs_human_review=where.needs_human_review,
        min_quality=where.min_quality,
        min_freshness=where.min_freshness,
        min_depth=where.min_depth,
        min_clarity=where.min_clarity,
        view_count_min=where.view_count_min,
        view_count_max=where.view_count_max,
        reading_time_max=where.reading_time_max,
        reviewed_after=where.reviewed_after,
        reviewed_before=where.reviewed_before,
        search=terms,
        archived=bool(where.archived),
    )


def to_ordering(order: PostOrder | None, selection: Selection) -> Ordering:
    if order is None:
        return Ordering("relevance", True) if selection.search is not None else Ordering()
    if order.field is PostOrderField.RELEVANCE and selection.search is None:
        raise BadUserInput("orderBy: RELEVANCE needs a search", argument="orderBy")
    return Ordering(str(order.field.value), order.direction is OrderDirection.DESC)
