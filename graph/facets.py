"""Facets: the values of a field across a selection of posts, with how many posts have each."""

from __future__ import annotations

from typing import Annotated

import strawberry

from loaders import posts
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


@strawberry.type(
    description="The filter boxes beside a list of posts. Each facet counts as if its own filter were not set, "
    "so that choosing `python` in the stack box still shows how many posts each other stack has. Values come "
    "most posts first, then by value."
)
class PostFacets:
    selection: strawberry.Private[Selection]
    first: strawberry.Private[int]

    @strawberry.field(description="Topics.")
    async def topic(self, info: Info) -> list[FacetValue]:
        return await _facet(info, self.selection, "topic", self.first)

    @strawberry.field(description="Stack terms.")
    async def stack(self, info: Info) -> list[FacetValue]:
        return await _facet(info, self.selection, "stack", self.first)

    @strawberry.field(description="Tools.")
    async def tools(self, info: Info) -> list[FacetValue]:
        return await _facet(info, self.selection, "tools", self.first)

    @strawberry.field(description="Entities, with their type.")
    async def entities(self, info: Info) -> list[FacetValue]:
        return await _facet(info, self.selection, "entities", self.first)

    @strawberry.field(description="Code languages.")
    async def code_language(self, info: Info) -> list[FacetValue]:
        return await _facet(info, self.selection, "code_language", self.first)

    @strawberry.field(description="Difficulties.")
    async def difficulty(self, info: Info) -> list[FacetValue]:
        return await _facet(info, self.selection, "difficulty", self.first)

    @strawberry.field(description="Revision statuses.")
    async def status(self, info: Info) -> list[FacetValue]:
        return await _facet(info, self.selection, "status", self.first)


FacetFirstArg = Annotated[
    int, strawberry.argument(description=f"How many values each facet lists at most, 1..{FACET_MAX}.")
]


def facet_size(first: int) -> int:
    if not 1 <= first <= FACET_MAX:
        raise BadUserInput(f"first must be between 1 and {FACET_MAX}, not {first}", argument="first")
    return first
