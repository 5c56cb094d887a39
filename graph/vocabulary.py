"""The vocabulary: stack terms, tools and entities, each with its number of posts."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated

import strawberry

from loaders import vocabulary

from .context import Info
from .errors import BadUserInput
from .filters import OrderArg, WhereArg, to_ordering, to_selection
from .pagination import (
    AfterArg,
    BeforeArg,
    FirstArg,
    LastArg,
    PageInfo,
    PostConnection,
    decode_cursor,
    encode_cursor,
    post_connection,
)

VOCABULARY_PAGE = 100


@strawberry.type(description="A stack term or a tool, with how many posts use it.")
class Term:
    name: str = strawberry.field(description="The term, such as `python` or `pytest`.")
    post_count: int = strawberry.field(description="How many posts list it.")


@strawberry.type(description="A term in a page of terms, with its cursor.")
class TermEdge:
    cursor: str = strawberry.field(description="Opaque cursor: pass it as `after` to page on.")
    node: Term = strawberry.field(description="The term.")


@strawberry.type(description="A page of terms in alphabetical order.")
class TermConnection:
    count: strawberry.Private[Callable[[], Awaitable[int]]]
    edges: list[TermEdge] = strawberry.field(description="The terms of this page.")
    page_info: PageInfo = strawberry.field(description="Whether more pages follow, and their cursors.")

    @strawberry.field(description="How many terms are used by at least one post.")
    async def total_count(self) -> int:
        return await self.count()


@strawberry.type(description="An entity with how many posts mention it.")
class EntityTerm:
    name: str = strawberry.field(description="The entity's name.")
    type: str = strawberry.field(description="The entity's type.")
    post_count: int = strawberry.field(description="How many posts mention it.")


@strawberry.type(description="An entity in a page of entities, with its cursor.")
class EntityTermEdge:
    cursor: str = strawberry.field(description="Opaque cursor: pass it as `after` to page on.")
    node: EntityTerm = strawberry.field(description="The entity.")


@strawberry.type(description="A page of entities by name, then type.")
class EntityTermConnection:
    count: strawberry.Private[Callable[[], Awaitable[int]]]
    edges: list[EntityTermEdge] = strawberry.field(description="The entities of this page.")
    page_info: PageInfo = strawberry.field(description="Whether more pages follow, and their cursors.")

    @strawberry.field(description="How many entities (of the type asked for) are mentioned by at least one post.")
    async def total_count(self) -> int:
        return await self.count()


@strawberry.type(description="An entity and the posts that mention it.")
class EntityDetail:
    name: str = strawberry.field(description="The entity's name.")
    type: str = strawberry.field(description="The entity's type.")
    post_count: int = strawberry.field(description="How many posts mention it.")

    @strawberry.field(description="The posts that mention the entity, a page at a time.")
    async def posts(
        self,
        info: Info,
        first: FirstArg = None,
        after: AfterArg = None,
        last: LastArg = None,
        before: BeforeArg = None,
        where: WhereArg = None,
        order_by: OrderArg = None,
    ) -> PostConnection:
        selection = to_selection(where, None, info.context.viewer).with_filters(entity=(self.name, self.type))
        return await post_connection(
            info.context.db, selection, to_ordering(order_by, selection), first, after, last, before
        )


VocabularyFirst = Annotated[int, strawberry.argument(description=f"How many to return, 1..{VOCABULARY_PAGE}.")]
VocabularyAfter = Annotated[str | None, strawberry.argument(description="Return those after this cursor.")]


def _size(first: int) -> int:
    if not 1 <= first <= VOCABULARY_PAGE:
        raise BadUserInput(f"first must be between 1 and {VOCABULARY_PAGE}, not {first}", argument="first")
    return first


async def term_connection(info: Info, kind: str, first: int, after: str | None) -> TermConnection:
    size = _size(first)
    ordering = f"terms:{kind}"
    start = decode_cursor(after, ordering, "after", (str,))[0] if after is not None else ""
    db = info.context.db
    rows = await vocabulary.terms(db, kind, start, size + 1)
    edges = [
        TermEdge(cursor=encode_cursor(ordering, [row[0]]), node=Term(name=row[0], post_count=int(row[1])))
        for row in rows[:size]
    ]

    async def count() -> int:
        return await vocabulary.term_count(db, kind)

    return TermConnection(count=count, edges=edges, page_info=_page_info(edges, len(rows) > size, after))


async def entity_connection(info: Info, type_: str | None, first: int, after: str | None) -> EntityTermConnection:
    size = _size(first)
    ordering = f"entities:{type_ or ''}"
    start = tuple(decode_cursor(after, ordering, "after", (str, str))) if after is not None else ("", "")
    db = info.context.db
    rows = await vocabulary.entities(db, type_, (str(start[0]), str(start[1])), size + 1)
    edges = [
        EntityTermEdge(
            cursor=encode_cursor(ordering, [row[0], row[1]]),
            node=EntityTerm(name=row[0], type=row[1], post_count=int(row[2])),
        )
        for row in rows[:size]
    ]

    async def count() -> int:
        return await vocabulary.entity_count(db, type_)

    return EntityTermConnection(count=count, edges=edges, page_info=_page_info(edges, len(rows) > size, after))


def _page_info(edges: list[TermEdge] | list[EntityTermEdge], more: bool, after: str | None) -> PageInfo:
    return PageInfo(
        has_next_page=more,
        has_previous_page=after is not None,
        start_cursor=edges[0].cursor if edges else None,
        end_cursor=edges[-1].cursor if edges else None,
    )


async def entity_detail(info: Info, name: str, type_: str) -> EntityDetail | None:
    row = await vocabulary.entity(info.context.db, name, type_)
    if row is None:
        return None
    return EntityDetail(name=row[0], type=row[1], post_count=int(row[2]))
