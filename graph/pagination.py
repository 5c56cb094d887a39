"""Relay-style cursor pagination: connection types and opaque keyset cursors.

A cursor holds the ordering it belongs to and the sort key of its post, so a
page starts right after (or before) that post however many posts are added or
removed meanwhile, and a cursor from another ordering is refused.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Awaitable, Callable
from typing import Annotated, Any

import orjson
import strawberry

from loaders import RequestDb, posts
from loaders.posts import Ordering, Selection

from .errors import BadUserInput
from .post import Post

MAX_PAGE = 100
DEFAULT_PAGE = 20

FirstArg = Annotated[
    int | None,
    strawberry.argument(description=f"Return the first n posts after `after`, 1..{MAX_PAGE}."),
]
AfterArg = Annotated[
    str | None, strawberry.argument(description="Return posts after this cursor (an edge's `cursor`).")
]
LastArg = Annotated[
    int | None,
    strawberry.argument(description=f"Return the last n posts before `before`, 1..{MAX_PAGE}."),
]
BeforeArg = Annotated[
    str | None, strawberry.argument(description="Return posts before this cursor (an edge's `cursor`).")
]


@strawberry.type(description="Where a page sits in the whole list.")
class PageInfo:
    has_next_page: bool = strawberry.field(description="More posts follow the last edge of this page.")
    has_previous_page: bool = strawberry.field(description="More posts precede the first edge of this page.")
    start_cursor: str | None = strawberry.field(description="Cursor of the first edge; null for an empty page.")
    end_cursor: str | None = strawberry.field(description="Cursor of the last edge; null for an empty page.")


@strawberry.type(description="A post in a page of posts, with its cursor.")
class PostEdge:
    cursor: str = strawberry.field(description="Opaque cursor: pass it as `after` or `before` to page on.")
    node: Post = strawberry.field(description="The post.")
    highlight: str | None = strawberry.field(
        default=None,
        description="With `search`: a snippet of the post with the matched words in `<mark>` tags; the rest of "
        "the text is HTML-escaped, so the snippet is safe to put in a page. Null without a search.",
    )


@strawberry.type(description="A page of posts with the cursors to fetch the next and previous pages.")
class PostConnection:
    count: strawberry.Private[Callable[[], Awaitable[int]]]
    edges: list[PostEdge] = strawberry.field(description="The posts of this page, in order.")
    page_info: PageInfo = strawberry.field(description="Whether more pages exist, and their cursors.")

    @strawberry.field(description="How many posts the whole list holds, across all pages.")
    async def total_count(self) -> int:
        return await self.count()


def encode_cursor(ordering: str, key: list[Any]) -> str:
    raw = orjson.dumps([ordering, key])
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str, ordering: str, argument: str, shape: tuple[type, ...]) -> list[Any]:
    """The sort key in a cursor, checked against ``shape`` (the type of each part).

    A clear error for a cursor of another ordering, a forged one, or none at all.
    """
    not_ours = BadUserInput(f"{argument}: {cursor!r} is not a cursor given out by this API", argument=argument)
    try:
        raw = base64.urlsafe_b64decode((cursor + "=" * (-len(cursor) % 4)).encode("ascii"))
        kind, key = orjson.loads(raw)
    except (binascii.Error, UnicodeError, ValueError, TypeError):
        raise not_ours from None
    if kind != ordering:
        raise BadUserInput(
            f"{argument}: this cursor belongs to another ordering or filter; "
            "start again from the first page with the new one",
            argument=argument,
        )
    if isinstance(key, list) and shape[-1:] == (list,) and len(key) == len(shape) - 1:
        key = [*key, []]  # a relevance cursor given out before they carried ranking statistics
    if not isinstance(key, list) or len(key) != len(shape):
        raise not_ours
    for part, expected in zip(key, shape, strict=True):
        # bool is an int to Python, not to a cursor.
        if not isinstance(part, expected) or (expected is int and isinstance(part, bool)):
            raise not_ours
        if isinstance(part, list) and not all(isinstance(n, int) and not isinstance(n, bool) for n in part):
            raise not_ours
    return key


def page_size(first: int | None, last: int | None) -> tuple[int, bool]:
    """(how many, forward?) from first/last; a clear error outside 1..MAX_PAGE or for both."""
    if first is not None and last is not None:
        raise BadUserInput("give either first or last, not both", argument="first")
    if last is not None:
        if not 1 <= last <= MAX_PAGE:
            raise BadUserInput(f"last must be between 1 and {MAX_PAGE}, not {last}", argument="last")
        return last, False
    if first is None:
        return DEFAULT_PAGE, True
    if not 1 <= first <= MAX_PAGE:
        raise BadUserInput(f"first must be between 1 and {MAX_PAGE}, not {first}", argument="first")
    return first, True


async def post_connection(
    db: RequestDb,
    selection: Selection,
    ordering: Ordering,
    first: int | None,
    after: str | None,
    last: int | None,
    before: str | None,
) -> PostConnection:
    """A page of the selected posts in the given order, as a connection."""
    size, forward = page_size(first, last)
    name = ordering.name(selection)
    shape = ordering.cursor_shape
    after_key = decode_cursor(after, name, "after", shape) if after is not None else None
    before_key = decode_cursor(before, name, "before", shape) if before is not None else None
    found = await posts.page(db, selection, ordering, size, forward=forward, after=after_key, before=before_key)
    edges = [
        PostEdge(cursor=encode_cursor(name, key), node=Post.from_row(row), highlight=highlight)
        for row, key, highlight in zip(found.rows, found.keys, found.highlights, strict=True)
    ]

    async def count() -> int:
        return await posts.count(db, selection)

    return PostConnection(
        count=count,
        edges=edges,
        page_info=PageInfo(
            has_next_page=found.more if forward else before is not None,
            has_previous_page=after is not None if forward else found.more,
            start_cursor=edges[0].cursor if edges else None,
            end_cursor=edges[-1].cursor if edges else None,
        ),
    )
