"""The Starlette application: ``create_app(settings)``."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import text
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from graph.schema import schema
from models.trouble import diagnose, sqlite_write_trouble

from .graphiql import STATIC_DIR, graphiql_html, load_examples
from .graphql_http import graphql_endpoint, trouble_response
from .responses import JSONResponse, error_body
from .services import Services
from .settings import Settings

log = logging.getLogger("alphanode.server")

# /healthz and /metrics describe this instance now: no cache in front may keep them.
NO_STORE = {"Cache-Control": "no-store"}

OPERATIONS_DIR = Path(__file__).parent / "operations"


async def healthz(request: Request) -> Response:
    """200 when the database answers, 503 when it does not; never the reason in the body.

    With Redis configured, ``cache`` says whether it answers: ``down`` is still 200, as the
    instance serves (uncached) without it. With a read replica, ``replica`` gives its state
    (ok, lagging, down, promoted), its lag in seconds and where public reads go now: a replica
    away is still 200, as the primary serves them meanwhile.
    """
    services: Services = request.app.state.services
    cache: dict[str, Any] = {}
    if services.redis is not None:
        cache["cache"] = "ok" if services.redis.up else "down"
    if services.replica is not None:
        cache["replica"] = services.replica.describe()
    engine = request.app.state.engine
    sqlite = engine.dialect.name == "sqlite"
    try:
        async with engine.connect() as conn:
            # On SQLite, "SELECT 1" would not read the file: the schema's page is read instead.
            await conn.execute(text("SELECT count(*) FROM sqlite_master" if sqlite else "SELECT 1"))
    except Exception as exc:
        trouble = diagnose(exc)
        if trouble is None:
            log.exception("health check: the database does not answer")
        else:
            log.warning("health check: %s (%s)", trouble.message, exc.__class__.__name__)
        return JSONResponse({"status": "error", "database": "unavailable", **cache}, status_code=503, headers=NO_STORE)
    writes = sqlite_write_trouble(engine.url.database or "") if sqlite else None
    if writes is not None:  # readers are served; writes answer 503 with this code
        return JSONResponse({"status": "degraded", "database": "ok", "writes": writes.code, **cache}, headers=NO_STORE)
    return JSONResponse({"status": "ok", "database": "ok", **cache}, headers=NO_STORE)


async def metrics(request: Request) -> Response:
    """Prometheus metrics of this process, or of every worker of the instance (``server.observe``)."""
    services: Services = request.app.state.services
    return Response(services.metrics.render(), media_type="text/plain; version=0.0.4; charset=utf-8", headers=NO_STORE)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    code = {404: "NOT_FOUND", 405: "METHOD_NOT_ALLOWED"}.get(exc.status_code, "BAD_REQUEST")
    return JSONResponse(error_body(exc.detail, code), status_code=exc.status_code, headers=exc.headers)


async def _server_error(request: Request, exc: Exception) -> Response:
    trouble = diagnose(exc)
    if trouble is not None:  # an outage of the store, wherever it was met: a 503, not a bug
        log.warning("store trouble on %s %s: %s", request.method, request.url.path, trouble.message)
        return trouble_response(trouble)
    log.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return JSONResponse(error_body("Internal server error.", "INTERNAL_SERVER_ERROR"), status_code=500)


# What a page of an allowed origin may send and read beyond CORS's safelisted headers: a token, a JSON
# body, content negotiation and revalidation; the ETag back for the revalidation.
CORS_REQUEST_HEADERS = ("Authorization", "Content-Type", "Accept", "If-None-Match")
CORS_RESPONSE_HEADERS = ("ETag",)


def cors_middleware(settings: Settings) -> list[Middleware]:
    """Starlette's CORS middleware for the listed origins, none when no origin is listed.

    It answers preflights itself (with ``Access-Control-Max-Age``), adds
    ``Access-Control-Allow-Origin`` to the answers of listed origins only, and appends
    ``Origin`` to ``Vary`` on every answer it touches, so that a shared cache (the CDN) keeps
    one copy per origin. The response cache and ETags are unaffected: the body is the same
    for every origin, and the headers are added after the cache answers."""
    origins = settings.cors_origin_list
    if not origins:
        return []
    return [
        Middleware(
            CORSMiddleware,
            allow_origins=origins,
            allow_methods=["GET", "POST"],
            allow_headers=list(CORS_REQUEST_HEADERS),
            expose_headers=list(CORS_RESPONSE_HEADERS),
            max_age=settings.cors_max_age,
        )
    ]


def create_app(settings: Settings | None = None) -> Starlette:
    """The application for these settings; the engine lives as long as the app's lifespan."""
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        services = await Services.start(settings)
        app.state.services = services
        app.state.engine = services.engine
        app.state.read_pool = services.pool
        app.state.writer = services.writer
        try:
            yield
        finally:
            await services.stop()

    app = Starlette(
        middleware=cors_middleware(settings),
        routes=[
            Route("/graphql", graphql_endpoint, methods=["GET", "POST"]),
            Route("/healthz", healthz, methods=["GET"]),
            Route("/metrics", metrics, methods=["GET"]),
            Mount("/static/graphiql", StaticFiles(directory=STATIC_DIR), name="graphiql-static"),
        ],
        exception_handlers={HTTPException: _http_error, Exception: _server_error},
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.schema = schema
    app.state.graphiql_html = graphiql_html(examples=load_examples(OPERATIONS_DIR))
    return app
