"""The hand-written baseline: the post page and the listing without GraphQL.

A minimal Starlette application that answers the frontend's ``PostPage`` and
``Listing`` requests the way a hand-written REST endpoint would: it reads the
same JSON request body as ``/graphql`` (so the load generator sends the very
same bytes to both servers), picks the handler by ``operationName``, runs the
read path's own functions and returns the same JSON the GraphQL API returns,
built from plain dicts in the same key order and encoded with ``orjson``.

What it shares with the GraphQL API, so that the ratio of the two measures
GraphQL and nothing else:

- the HTTP server (uvicorn, one worker, no access log) and the framework (Starlette);
- the read path: a :class:`loaders.db.ReadPool` per process, a
  :class:`loaders.db.RequestDb` per request (one connection, one read
  transaction, statements serialized), the SQL of :mod:`loaders.batch` and
  :func:`loaders.posts.page` / :func:`loaders.posts.count`: the same
  statements, the same number of them (the benchmark run checks both);
- the response: ``{"data": ...}``, encoded with orjson, ``application/json``;
- the garbage collector's settings (:mod:`server.collector`).

What it does not do: parse, validate or even look at the query text (the
operation is chosen by ``operationName`` alone and its selection set is
hard-coded here), coerce variables beyond what the two handlers read, batch
through DataLoaders (it calls the batch functions directly, one after the
other), or report errors the GraphQL way (a request it does not understand
gets a 400). It is a baseline for speed, not a second API.

It also answers ``ListingWithoutTotal`` (the listing without ``totalCount``, which runs no
count), for the side-by-side run with PostGraphile (``bench/peers.py``).

The global id and cursor formats are written out here (a few lines each)
rather than imported from ``graph``: importing ``graph`` builds the schema.
``loaders/__init__`` still imports Strawberry's DataLoader, so the hand-written
server's memory includes Strawberry's modules too.

Run it like the API: ``ALPHANODE_DATABASE_URL=... uvicorn --factory bench.handwritten:create_app``.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from loaders import ReadPool, RequestDb, Row, batch, posts
from loaders.posts import Ordering, Selection
from server import collector
from server.settings import Settings

MAX_PAGE = 100
SIMILAR_ON_POST_PAGE = 5  # post-page.graphql asks for similarPosts(first: 5)

Data = dict[str, Any]
Handler = Callable[[RequestDb, dict[str, Any]], Awaitable[Data]]


class BadRequest(Exception):
    """A request the hand-written endpoint does not answer."""


# -- formats shared with the GraphQL API (graph.node, graph.pagination) ----------


def global_id(type_name: str, key: str) -> str:
    return base64.urlsafe_b64encode(f"{type_name}:{key}".encode()).decode().rstrip("=")


def encode_cursor(ordering: str, key: list[Any]) -> str:
    return base64.urlsafe_b64encode(orjson.dumps([ordering, key])).decode().rstrip("=")


def decode_cursor(cursor: str, ordering: str) -> list[Any]:
    try:
        kind, key = orjson.loads(base64.urlsafe_b64decode((cursor + "=" * (-len(cursor) % 4)).encode("ascii")))
    except (binascii.Error, UnicodeError, ValueError, TypeError):
        raise BadRequest(f"after: {cursor!r} is not a cursor") from None
    if kind != ordering or not isinstance(key, list):
        raise BadRequest("after: this cursor belongs to another ordering")
    return key


def _date(value: Any) -> str | None:
    """A date column: ISO text from SQLite, a ``date`` from PostgreSQL."""
    return value.isoformat() if isinstance(value, dt.date) else value


# -- the post page (post-page.graphql, PostPage) -----------------------------------


def _image(row: Row) -> Data:
    return {"url": row["url"], "caption": row["caption"], "source": row["source"], "position": row["position"]}


def _body(block_rows: list[Row], images: dict[int, Data]) -> list[Data]:
    """Blocks in page order; consecutive list items without a blank line between them form one list."""
    body: list[Data] = []
    items: list[str] | None = None
    for row in block_rows:
        kind = row["kind"]
        if kind == "item":
            if items is not None and row["gap"] == 0:
                items.append(row["text"])
                continue
            items = [row["text"]]
            body.append({"__typename": "ListBlock", "items": items})
            continue
        items = None
        if kind == "heading":
            body.append({"__typename": "HeadingBlock", "text": row["text"]})
        elif kind == "paragraph":
            body.append({"__typename": "ParagraphBlock", "text": row["text"]})
        elif kind == "image":
            body.append({"__typename": "ImageBlock", "image": images[row["image"]]})
    return body


def _meta(post: Row, stack: list[str], tools: list[str], checklist: list[str], notes: list[str]) -> Data:
    """PostPage's ``meta`` of a post row."""
    return {
        "topic": post["topic"],
        "summary": post["summary"],
        "aiOutline": {
            "context": post["outline_context"],
            "problem": post["outline_problem"],
            "stack": post["outline_stack"],
            "recommendedAction": post["outline_action"],
        },
        "aiBrief": post["ai_brief"],
        "stack": stack,
        "tools": tools,
        "codeLanguage": post["code_language"],
        "difficulty": post["difficulty"],
        "readingTime": post["reading_time"],
        "viewCount": post["view_count"],
        "revision": {
            "status": post["status"],
            "version": post["version"],
            "lastReviewed": _date(post["last_reviewed"]),
        },
        "reference": post["reference"],
        "hash": post["meta_hash"],
        "flags": {
            "aiGeneratedStyle": bool(post["ai_generated_style"]),
            "hasImages": bool(post["has_images"]),
            "imageHeavy": bool(post["image_heavy"]),
            "needsHumanReview": bool(post["needs_human_review"]),
        },
        "checklist": checklist,
        "payload": {
            "sourceId": post["source_id"],
            "generator": post["generator"],
            "paragraphs": post["paragraphs"],
            "scenario": post["scenario"],
            "seed": post["seed"],
        },
        "notes": notes,
    }


async def post_page(db: RequestDb, variables: dict[str, Any]) -> Data:
    """``{"post": ...}`` as PostPage returns it: the post by slug with everything the page shows."""
    slug = variables.get("slug")
    if not isinstance(slug, str):
        raise BadRequest("PostPage needs a slug")
    (post,) = await batch.posts_by_slug(db, [slug])
    if post is None:
        return {"post": None}
    keys = [post["id"]]
    # One statement per relation, as the GraphQL API's loaders run them.
    (block_rows,) = await batch.blocks_by_post_id(db, keys)
    (image_rows,) = await batch.images_by_post_id(db, keys)
    (stack,) = await batch.stack_by_post_id(db, keys)
    (tools,) = await batch.tools_by_post_id(db, keys)
    (checklist,) = await batch.checklist_by_post_id(db, keys)
    (notes,) = await batch.notes_by_post_id(db, keys)
    (entity_rows,) = await batch.entities_by_post_id(db, keys)
    (similar_rows,) = await batch.similar_by_post_id(db, keys)
    images = {row["position"]: _image(row) for row in image_rows}
    return {
        "post": {
            "id": global_id("Post", post["source_id"]),
            "slug": post["slug"],
            "title": post["title"],
            "intro": post["intro"],
            "body": _body(block_rows, images),
            "images": [_image(row) for row in image_rows],
            "meta": _meta(post, stack, tools, checklist, notes),
            "scores": {
                "quality": post["quality"],
                "freshness": post["freshness"],
                "depth": post["depth"],
                "clarity": post["clarity"],
            },
            "entities": [{"name": row["name"], "type": row["type"]} for row in entity_rows],
            "similarPosts": [
                {
                    "score": float(row["similar_score"]),
                    "reasons": orjson.loads(row["similar_reasons"]),
                    "post": {"slug": row["slug"], "title": row["title"], "scores": {"quality": row["quality"]}},
                }
                for row in similar_rows[:SIMILAR_ON_POST_PAGE]
            ],
        }
    }


# -- the listing (listing.graphql, Listing) ---------------------------------------


async def listing(db: RequestDb, variables: dict[str, Any], *, total: bool = True) -> Data:
    """``{"posts": ...}`` as Listing returns it: a page of cards, newest first, and the total
    (unless ``total`` is false: the listing without ``totalCount``, which counts nothing)."""
    first = variables.get("first")
    after = variables.get("after")
    if not isinstance(first, int) or isinstance(first, bool) or not 1 <= first <= MAX_PAGE:
        raise BadRequest(f"first must be between 1 and {MAX_PAGE}")
    if after is not None and not isinstance(after, str):
        raise BadRequest("after must be a cursor")
    selection, ordering = Selection(), Ordering()
    name = ordering.name(selection)
    after_key = decode_cursor(after, name) if after is not None else None
    found = await posts.page(db, selection, ordering, first, forward=True, after=after_key)
    total_count = await posts.count(db, selection) if total else None
    keys = [row["id"] for row in found.rows]
    stacks = await batch.stack_by_post_id(db, keys)
    tools = await batch.tools_by_post_id(db, keys)
    entities = await batch.entities_by_post_id(db, keys)
    images = await batch.images_by_post_id(db, keys)
    edges = [
        {
            "cursor": encode_cursor(name, key),
            "node": {
                "id": global_id("Post", row["source_id"]),
                "slug": row["slug"],
                "title": row["title"],
                "meta": {
                    "topic": row["topic"],
                    "readingTime": row["reading_time"],
                    "viewCount": row["view_count"],
                    "stack": stack,
                    "tools": tool_names,
                    "difficulty": row["difficulty"],
                },
                "scores": {"quality": row["quality"], "freshness": row["freshness"]},
                "entities": [{"name": e["name"], "type": e["type"]} for e in entity_rows],
                "images": [{"url": i["url"], "caption": i["caption"]} for i in image_rows],
            },
        }
        for row, key, stack, tool_names, entity_rows, image_rows in zip(
            found.rows, found.keys, stacks, tools, entities, images, strict=True
        )
    ]
    connection: Data = {"totalCount": total_count} if total else {}
    connection["pageInfo"] = {"hasNextPage": found.more, "endCursor": edges[-1]["cursor"] if edges else None}
    connection["edges"] = edges
    return {"posts": connection}


async def listing_without_total(db: RequestDb, variables: dict[str, Any]) -> Data:
    """The listing without ``totalCount`` (``bench.peer.API_LISTING_WITHOUT_TOTAL``): no count is run."""
    return await listing(db, variables, total=False)


HANDLERS: dict[str, Handler] = {"PostPage": post_page, "Listing": listing}
# Also answered, for the side-by-side run with PostGraphile (bench/peers.py), which measures the
# listing with and without its total; the headline suite (bench/run.py) measures HANDLERS only.
MORE_HANDLERS: dict[str, Handler] = {"ListingWithoutTotal": listing_without_total}


async def answer(pool: ReadPool, operation: str, variables: dict[str, Any]) -> Data:
    """The ``data`` of one request, on its own database handle, closed whatever happens."""
    handler = HANDLERS.get(operation) or MORE_HANDLERS.get(operation)
    if handler is None:
        names = ", ".join([*HANDLERS, *MORE_HANDLERS])
        raise BadRequest(f"the hand-written endpoint answers {names}, not {operation!r}")
    db = RequestDb(pool)
    try:
        return await handler(db, variables)
    finally:
        await db.close()


# -- the application ---------------------------------------------------------------


def _json(content: Any, status_code: int = 200) -> Response:
    return Response(orjson.dumps(content), status_code=status_code, media_type="application/json")


async def endpoint(request: Request) -> Response:
    try:
        body = orjson.loads(await request.body())
        if not isinstance(body, dict):
            raise BadRequest("the body must be a JSON object")
        variables = body.get("variables") or {}
        if not isinstance(variables, dict):
            raise BadRequest("variables must be a JSON object")
        data = await answer(request.app.state.read_pool, str(body.get("operationName")), variables)
    except (BadRequest, orjson.JSONDecodeError) as exc:
        return _json({"errors": [{"message": str(exc), "extensions": {"code": "BAD_REQUEST"}}]}, 400)
    return _json({"data": data})


async def healthz(request: Request) -> Response:
    db = RequestDb(request.app.state.read_pool)
    try:
        await db.scalar("SELECT 1")
    finally:
        await db.close()
    return _json({"status": "ok", "database": "ok"})


def create_app(settings: Settings | None = None) -> Starlette:
    """The hand-written application; the read pool lives as long as its lifespan."""
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        app.state.read_pool = await ReadPool.open(settings.database_url, settings.read_pool_size)
        collector.settle()  # as the API does: the ratio measures GraphQL, not the collector
        try:
            yield
        finally:
            await app.state.read_pool.close()
            collector.release()

    return Starlette(
        routes=[Route("/graphql", endpoint, methods=["POST"]), Route("/healthz", healthz, methods=["GET"])],
        lifespan=lifespan,
    )
