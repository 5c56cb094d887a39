"""Root query fields: one post, a page of posts, any node."""

from __future__ import annotations

from typing import Annotated

import strawberry
from sqlalchemy import func, select

from loaders.batch import POST_COLUMNS, post_t

from .context import Info
from .errors import BadUserInput
from .node import Node, decode_id
from .pagination import (
    AfterArg,
    BeforeArg,
    FirstArg,
    LastArg,
    PageInfo,
    PostConnection,
    PostEdge,
    decode_cursor,
    encode_cursor,
    page_size,
)
from .post import Post

# Without another ordering, posts come newest first: the order they were first imported, latest first.
NEWEST = "newest"

_COUNT = select(func.count()).select_from(post_t)


@strawberry.type(description="Reading posts.")
class Query:
    @strawberry.field(
        description="One post, by exactly one of `slug`, `id` or `reference`; null if there is no such post."
    )
    async def post(
        self,
        info: Info,
        slug: Annotated[str | None, strawberry.argument(description="The post's URL slug.")] = None,
        id: Annotated[strawberry.ID | None, strawberry.argument(description="The post's global ID.")] = None,
        reference: Annotated[
            str | None,
            strawberry.argument(description="The post's editorial reference, such as `anp-ref-001632-5801`."),
        ] = None,
    ) -> Post | None:
        given = [name for name, value in (("slug", slug), ("id", id), ("reference", reference)) if value is not None]
        if len(given) != 1:
            raise BadUserInput(
                "post: give exactly one of slug, id or reference", argument=given[-1] if given else "slug"
            )
        loaders = info.context.loaders
        if slug is not None:
            row = await loaders.post_by_slug.load(slug)
        elif reference is not None:
            row = await loaders.post_by_reference.load(reference)
        else:
            assert id is not None
            type_name, key = decode_id(id)
            row = await loaders.post_by_source_id.load(key) if type_name == "Post" else None
        return Post.from_row(row) if row is not None else None

    @strawberry.field(description="Posts, a page at a time, newest first (the order they were first imported).")
    async def posts(
        self,
        info: Info,
        first: FirstArg = None,
        after: AfterArg = None,
        last: LastArg = None,
        before: BeforeArg = None,
    ) -> PostConnection:
        size, forward = page_size(first, last)
        db = info.context.db
        statement = select(*POST_COLUMNS)
        if after is not None:
            statement = statement.where(post_t.c.id < decode_cursor(after, NEWEST, "after", (int,))[0])
        if before is not None:
            statement = statement.where(post_t.c.id > decode_cursor(before, NEWEST, "before", (int,))[0])
        key = post_t.c.id.desc() if forward else post_t.c.id.asc()
        rows = list(await db.all(statement.order_by(key).limit(size + 1)))
        more = len(rows) > size
        rows = rows[:size]
        if not forward:
            rows.reverse()
        edges = [PostEdge(cursor=encode_cursor(NEWEST, [row.id]), node=Post.from_row(row)) for row in rows]

        async def count() -> int:
            return int(await db.scalar(_COUNT))

        return PostConnection(
            count=count,
            edges=edges,
            page_info=PageInfo(
                has_next_page=more if forward else before is not None,
                has_previous_page=after is not None if forward else more,
                start_cursor=edges[0].cursor if edges else None,
                end_cursor=edges[-1].cursor if edges else None,
            ),
        )

    @strawberry.field(description="Any object by its global ID; null if it does not exist.")
    async def node(
        self, info: Info, id: Annotated[strawberry.ID, strawberry.argument(description="A global ID.")]
    ) -> Node | None:
        type_name, key = decode_id(id)
        if type_name != "Post":
            return None
        row = await info.context.loaders.post_by_source_id.load(key)
        return Post.from_row(row) if row is not None else None
