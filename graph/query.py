"""Root query fields: posts, facets, the vocabulary, and any node."""

from __future__ import annotations

from typing import Annotated

import strawberry

from .context import Info
from .errors import BadUserInput
from .facets import FacetFirstArg, PostFacets, facet_size
from .filters import OrderArg, SearchArg, WhereArg, to_ordering, to_selection
from .node import Node, decode_id
from .pagination import AfterArg, BeforeArg, FirstArg, LastArg, PostConnection, post_connection
from .post import Post
from .receipts import MAX_RECEIPTS, ImportReceiptEntry, import_receipts
from .vocabulary import (
    EntityDetail,
    EntityTermConnection,
    TermConnection,
    VocabularyAfter,
    VocabularyFirst,
    entity_connection,
    entity_detail,
    term_connection,
)


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

    @strawberry.field(
        description="Posts, a page at a time: filtered by `where`, found by `search`, in the order of `orderBy`."
    )
    async def posts(
        self,
        info: Info,
        first: FirstArg = None,
        after: AfterArg = None,
        last: LastArg = None,
        before: BeforeArg = None,
        where: WhereArg = None,
        order_by: OrderArg = None,
        search: SearchArg = None,
    ) -> PostConnection:
        selection = to_selection(where, search, info.context.viewer)
        ordering = to_ordering(order_by, selection)
        return await post_connection(info.context.db, selection, ordering, first, after, last, before)

    @strawberry.field(description="Counts of posts by topic, stack, tools, entities and more, for filter boxes.")
    async def facets(
        self, info: Info, where: WhereArg = None, search: SearchArg = None, first: FacetFirstArg = 20
    ) -> PostFacets:
        return PostFacets(selection=to_selection(where, search, info.context.viewer), first=facet_size(first))

    @strawberry.field(description="Stack terms used by at least one post, alphabetically, with their post counts.")
    async def stacks(self, info: Info, first: VocabularyFirst = 20, after: VocabularyAfter = None) -> TermConnection:
        return await term_connection(info, "stack", first, after)

    @strawberry.field(description="Tools used by at least one post, alphabetically, with their post counts.")
    async def tools(self, info: Info, first: VocabularyFirst = 20, after: VocabularyAfter = None) -> TermConnection:
        return await term_connection(info, "tools", first, after)

    @strawberry.field(description="Entities mentioned by at least one post, by name then type, with post counts.")
    async def entities(
        self,
        info: Info,
        type: Annotated[
            str | None, strawberry.argument(description="Only entities of this type, such as `stack`.")
        ] = None,
        first: VocabularyFirst = 20,
        after: VocabularyAfter = None,
    ) -> EntityTermConnection:
        return await entity_connection(info, type, first, after)

    @strawberry.field(description="An entity and the posts that mention it; null if no post mentions it.")
    async def entity(
        self,
        info: Info,
        name: Annotated[str, strawberry.argument(description="The entity's name.")],
        type: Annotated[str, strawberry.argument(description="The entity's type.")],
    ) -> EntityDetail | None:
        return await entity_detail(info, name, type)

    @strawberry.field(description="What the latest imports did, newest first. Editors only.")
    async def import_receipts(
        self,
        info: Info,
        first: Annotated[int, strawberry.argument(description=f"How many receipts, 1..{MAX_RECEIPTS}.")] = 20,
    ) -> list[ImportReceiptEntry]:
        return await import_receipts(info, first)

    @strawberry.field(description="Any object by its global ID; null if it does not exist.")
    async def node(
        self, info: Info, id: Annotated[strawberry.ID, strawberry.argument(description="A global ID.")]
    ) -> Node | None:
        type_name, key = decode_id(id)
        if type_name != "Post":
            return None
        row = await info.context.loaders.post_by_source_id.load(key)
        return Post.from_row(row) if row is not None else None
