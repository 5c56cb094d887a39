"""HTTP caching of GraphQL responses: Cache-Control, ETag and 304, and the Surrogate-Key a CDN purges by."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from server.observe import RequestStats
from server.responses import JSONResponse

from .negotiation import http_method

MAX_SURROGATE_KEYS = 200
ALL_LISTS = "lists"


def surrogate_keys(stats: RequestStats) -> tuple[str, ...]:
    """What a response depends on: one key per post, and ``lists`` for lists, counts and searches.

    Past ``MAX_SURROGATE_KEYS`` keys the posts are named by ``lists`` alone: every write
    purges ``lists``, so the response is still purged whenever one of its posts changes.
    """
    if len(stats.post_ids) >= MAX_SURROGATE_KEYS:
        return (ALL_LISTS,)
    keys = tuple(f"p{post_id}" for post_id in sorted(stats.post_ids))
    return (*keys, ALL_LISTS) if stats.lists else keys


def cache_control(settings: Any, method: str, credentials: bool, cacheable: bool) -> str:
    if credentials:
        return "private, no-store"
    if method == "GET" and cacheable:
        return (
            f"public, max-age={settings.cache_max_age}, stale-while-revalidate={settings.cache_stale_while_revalidate}"
        )
    return "no-store"


def respond(
    request: Request,
    body: bytes,
    media_type: str,
    etag: str,
    keys: tuple[str, ...],
    settings: Any,
    cacheable: bool,
    headers: dict[str, str],
    credentials: bool = False,
) -> Response:
    headers = {
        **headers,
        "ETag": etag,
        "Cache-Control": cache_control(settings, http_method(request), credentials, cacheable),
    }
    if keys:
        headers["Surrogate-Key"] = " ".join(keys)
    if http_method(request) == "GET" and cacheable and not_modified(request, etag):
        return Response(status_code=304, headers=headers)
    return JSONResponse.raw(body, 200, media_type, headers)


def if_none_match(request: Request) -> set[str]:
    value = request.headers.get("if-none-match", "")
    return {part.strip().removeprefix("W/") for part in value.split(",") if part.strip()}


def not_modified(request: Request, etag: str) -> bool:
    """A conditional GET whose If-None-Match names this ETag, or ``*`` (RFC 9110, 13.1.2)."""
    tags = if_none_match(request)
    return etag in tags or "*" in tags
