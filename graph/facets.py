"""Facets: the values of a field across a selection of posts, with how many posts have each."""

from __future__ import annotations

from typing import Annotated, Any

import strawberry

from loaders import posts
from loaders.fields import FACETS
from loaders.posts import Selection

from .context import Info
from .errors import BadUserInput

FACET_MAX = 100


@strawberry.type(description="One value of a facet and how many of the selected posts have it.")
class FacetValue:
    value: str = strawberry.field(description="The value, such as `python` for the stack facet.")
    count: int = strawberry.field(description="How many posts have it.")
    type: str | None = strawberry.field(description="For the entities facet, the entity's type; null otherwise.")


async def _facet(info: Info, selection: Selection, name: str, first: int) -> list[FacetValue]:
    rows = await posts.facet(info.context.db, selection, name, first)
    return [FacetValue(value=value, count=count, type=type_) for value, type_, count in rows]


def _facet_field(name: str, description: str) -> Any:
    async def resolve(self: PostFacets, info: Info) -> list[FacetValue]:
        return await _facet(info, self.selection, name, self.first)

    return strawberry.field(resolver=resolve, description=description)


def _with_facets(cls: type) -> type:
    """A field for each facet of ``loaders.fields``, in their order."""
    for facet in FACETS:
        setattr(cls, facet.name, _facet_field(facet.name, facet.description))
    return cls


@strawberry.type(
    description="The filter boxes beside a list of posts. Each facet counts as if its own filter were not set, "
    "so that choosing `python` in the stack box still shows how many posts each other stack has. Values come "
    "most posts first, then by value."
)
@_with_facets
class PostFacets:
    selection: strawberry.Private[Selection]
    first: strawberry.Private[int]


FacetFirstArg = Annotated[
    int, strawberry.argument(description=f"How many values each facet lists at most, 1..{FACET_MAX}.")
]


def facet_size(first: int) -> int:
    if not 1 <= first <= FACET_MAX:
        raise BadUserInput(f"first must be between 1 and {FACET_MAX}, not {first}", argument="first")
    return first
