"""Filter and order inputs for lists of posts, and their translation to the read path's terms."""

from __future__ import annotations

from enum import Enum
from typing import TYPE_CHECKING, Annotated, Any

import strawberry

from loaders.fields import FILTERS, ORDERS, Compare, Filter
from loaders.posts import Ordering, SearchTerms, Selection

from .auth import Viewer, require_editor
from .errors import BadUserInput


@strawberry.input(description="An entity, by name and type.")
class EntityRef:
    name: str = strawberry.field(description="The entity's name, such as `python services`.")
    type: str = strawberry.field(description="The entity's type, such as `stack`, `area` or `problem`.")


def _input_type(f: Filter) -> Any:
    """The GraphQL input type of a filter: its value's, a list of terms, or an entity."""
    if f.compare is Compare.ENTITY:
        return EntityRef | None
    if f.compare in (Compare.ANY_OF, Compare.ALL_OF):
        return list[f.type] | None  # type: ignore[name-defined]
    return f.type | None


def _with_filters(cls: type) -> type:
    """The fields of ``loaders.fields.FILTERS``, in their order, before the class's own."""
    annotations: dict[str, Any] = {f.name: _input_type(f) for f in FILTERS}
    for f in FILTERS:
        setattr(cls, f.name, strawberry.field(default=None, description=f.description))
    annotations.update(cls.__annotations__)
    cls.__annotations__ = annotations
    return cls


@strawberry.input(
    description="Which posts to list. Every field that is set narrows the list; unset fields, and empty lists, "
    "do not filter. Bounds are inclusive."
)
@_with_filters
class PostFilter:
    """The filters of ``loaders.fields`` (read with ``getattr``), then ``archived``."""

    archived: bool | None = strawberry.field(
        default=None,
        description="Editors only: true lists archived posts instead of the posts readers see. Readers never see "
        "archived posts.",
    )


_ORDER_FIELDS = Enum(  # type: ignore[misc]
    "PostOrderField",
    {o.key.upper(): strawberry.enum_value(o.key, description=o.description) for o in ORDERS if o.description},
)
if TYPE_CHECKING:
    PostOrderField = Enum
else:
    PostOrderField = strawberry.enum(_ORDER_FIELDS, description="What to order posts by.")


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
    values: dict[str, Any] = {}
    for f in FILTERS:
        value = getattr(where, f.name)
        if value is None:
            continue
        problem = f.bounds.error(value) if f.bounds is not None else None
        if problem is not None:
            raise BadUserInput(f"where.{f.graphql_name} {problem}", argument="where")
        values[f.name] = _selected(f, value)
    return Selection(search=terms, archived=bool(where.archived), **values)


def _selected(f: Filter, value: Any) -> Any:
    """A filter's input value as the selection holds it (None: it does not filter)."""
    if f.compare is Compare.ENTITY:
        return (value.name, value.type)
    if f.compare in (Compare.ANY_OF, Compare.ALL_OF):
        return tuple(value) if value else None
    return value


def to_ordering(order: PostOrder | None, selection: Selection) -> Ordering:
    if order is None:
        return Ordering("relevance", True) if selection.search is not None else Ordering()
    if order.field.value == "relevance" and selection.search is None:
        raise BadUserInput("orderBy: RELEVANCE needs a search", argument="orderBy")
    return Ordering(str(order.field.value), order.direction is OrderDirection.DESC)
