"""GraphQL over HTTP: the ``/graphql`` endpoint.

Follows the GraphQL-over-HTTP specification: GET for queries (never a
mutation: 405), POST with a JSON body for everything, JSON bodies for every
error, ``application/graphql-response+json`` when the client accepts it. A
browser opening the URL gets GraphiQL.

Every request gets its own database handle and loaders, closed when the
request ends, whatever happens.
"""

from __future__ import annotations

import asyncio
import logging
import time

import orjson
from graphql import FieldNode, FragmentDefinitionNode, GraphQLError, OperationDefinitionNode
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from strawberry.exceptions import MissingQueryError
from strawberry.types import ExecutionResult

from graph import Context
from graph.executor import Prepared, Unsupported
from graph.executor.internals import (
    CannotGetOperationTypeError,
    InvalidOperationTypeError,
    OperationType,
    refused_operation,
)
from graph.limits import LIMIT_CODES, check_nodes, exceeds_tokens
from graph.schema import INTERNAL_ERROR
from loaders import RequestDb
from models.trouble import CODES as TROUBLE_CODES
from models.trouble import RETRY_AFTER, StoreTrouble, diagnose

from .auth import AuthError, authenticate
from .caching import Entry, cache_key, etag_of
from .http.cache_headers import respond, surrogate_keys
from .http.errors import HttpError
from .http.negotiation import GRAPHQL_RESPONSE, JSON, http_method, response_media_type, wants_graphiql
from .http.params import GraphQLParams, parse_request
from .http.results import find_operation, format_error, is_request_error, result_body
from .observe import RequestStats, log_request
from .responses import JSONResponse, error_body
from .services import Services

log = logging.getLogger("alphanode.http")

GET_OPERATIONS = frozenset({OperationType.QUERY})
POST_OPERATIONS = frozenset({OperationType.QUERY, OperationType.MUTATION})


async def execute(
    services: Services,
    params: GraphQLParams,
    method: str,
    request: Request | None = None,
    *,
    authorization: str | None = None,
    stats: RequestStats | None = None,
) -> ExecutionResult:
    """Execute one operation with a fresh database handle and loaders.

    Valid queries run on the batched executor; everything else, and any query it
    hands back, on Strawberry's, in a new read transaction (on PostgreSQL a
    failed statement aborts the one it ran in).
    """
    stats = stats or RequestStats()
    executor = services.executor
    db = RequestDb(services.read_pool(authorization))
    context: Context | None = None
    started = time.perf_counter()
    try:
        try:
            viewer = await authenticate(authorization, db)
        except AuthError as exc:
            raise HttpError(401, exc.message, "UNAUTHENTICATED", {"WWW-Authenticate": exc.header}) from None
        stats.viewer = viewer.name if viewer is not None else None
        context = Context.create(db, request, viewer, services.writer)
        if params.query is not None:
            prepared = executor.prepare(params.query, params.operation_name)
            if prepared is not None:
                try:
                    data = await executor.execute(prepared, params.variables, context)
                except Unsupported as exc:  # the regular executor answers, with its error handling
                    log.debug("batched executor handed back %s: %r", params.operation_name, exc)
                    _account(stats, db)
                    await db.close()
                    db = RequestDb(db.pool, include_archived=db.include_archived)
                    context = Context.create(db, request, viewer, services.writer)
                except Exception as exc:
                    if diagnose(exc) is not None:
                        raise  # the store is in trouble: answered 503 below
                    return executor_fault(services, params, prepared, exc)
                else:
                    return ExecutionResult(data=data, errors=None)
        return await services.schema.execute(
            params.query,
            variable_values=params.variables,
            context_value=context,
            operation_name=params.operation_name,
            allowed_operation_types=GET_OPERATIONS if method == "GET" else POST_OPERATIONS,
        )
    except MissingQueryError:
        raise HttpError(400, "the request has no query") from None
    except CannotGetOperationTypeError as exc:
        raise HttpError(400, f"the document has no operation named {params.operation_name!r}") from exc
    except InvalidOperationTypeError as exc:
        if refused_operation(exc) is not OperationType.MUTATION:  # a subscription, over GET or POST
            raise HttpError(400, "subscriptions are not served over HTTP") from None
        raise HttpError(405, "mutations are only accepted over POST", "METHOD_NOT_ALLOWED", {"Allow": "POST"}) from None
    except Exception as exc:
        trouble = diagnose(exc)
        if trouble is None:
            raise
        log.warning("store trouble: %s (%s)", trouble.message, exc.__class__.__name__)
        raise trouble_error(trouble) from None
    finally:
        stats.execute += time.perf_counter() - started
        _account(stats, db)
        await db.close()
        if context is not None and context.db is not db:  # a mutation read its result afresh
            _account(stats, context.db)
            await context.db.close()


def executor_fault(services: Services, params: GraphQLParams, prepared: Prepared, exc: Exception) -> ExecutionResult:
    """The answer to an unexpected exception in the batched executor: logged, counted, masked.

    Not run again on the regular executor: a fault is a bug to see, not to hide. Answered as
    a field error would be, with no data: the error is placed at the operation's first field.
    """
    log.error("batched executor failed on %s", params.operation_name or "an anonymous operation", exc_info=exc)
    services.metrics.executor_error()
    first = next((s for s in prepared.operation.selection_set.selections if isinstance(s, FieldNode)), None)
    path = [(first.alias or first.name).value] if first is not None else []
    error = GraphQLError(
        INTERNAL_ERROR,
        nodes=first,
        path=path,
        original_error=exc,
        extensions={"code": "INTERNAL_SERVER_ERROR"},
    )
    return ExecutionResult(data=None, errors=[error])


def trouble_error(trouble: StoreTrouble) -> HttpError:
    """The 503 for an outage of the store, with the code saying which and when to try again."""
    return HttpError(503, trouble.message, trouble.code, {"Retry-After": str(trouble.retry_after)})


def trouble_response(trouble: StoreTrouble) -> Response:
    """The 503 for an outage of the store outside a GraphQL operation (GraphiQL, any other path)."""
    error = trouble_error(trouble)
    return JSONResponse(
        error_body(error.message, error.code),
        status_code=error.status,
        headers={**error.headers, "Cache-Control": "no-store"},
    )


def _trouble_in(result: ExecutionResult) -> HttpError | None:
    """A result that an outage of the store cut short answers 503 as a whole: a partial page helps nobody."""
    for error in result.errors or ():
        code = (error.extensions or {}).get("code")
        if code in TROUBLE_CODES:
            return HttpError(503, error.message, code, {"Retry-After": str(RETRY_AFTER[code])})
    return None


def _account(stats: RequestStats, db: RequestDb) -> None:
    """Add what a database handle did to the request's figures (before it closes)."""
    stats.statements += db.statements + (1 if db.statements else 0)  # and the ROLLBACK that ends it
    stats.db += db.db_seconds
    stats.post_ids |= db.posts_seen
    stats.lists = stats.lists or db.lists_seen


NODES_CHECKED_PER_DOCUMENT = 256  # page-size combinations remembered per document as within the node limit


def _limit_error(result: ExecutionResult) -> bool:
    return any((e.extensions or {}).get("code") in LIMIT_CODES for e in result.errors or ())


async def graphql_endpoint(request: Request) -> Response:
    services: Services = request.app.state.services
    settings = services.settings
    stats = RequestStats()
    if wants_graphiql(request):
        return await graphiql_page(request, services)
    method = http_method(request)
    headers: dict[str, str] = {"Vary": "Accept, Authorization"} if method == "GET" else {}
    response: Response
    negotiated = response_media_type(request)
    if negotiated is None:
        stats.error_code = "NOT_ACCEPTABLE"
        return _finish(request, _not_acceptable(headers), stats, services)
    media_type = negotiated
    content_type = f"{media_type}; charset=utf-8"  # the spec: SHOULD name the encoding
    authorization = request.headers.get("authorization")
    credentials = authorization is not None
    try:
        params = await parse_request(request, settings.max_body_bytes)
        query, by_hash = await services.persisted.resolve(params.query, params.extensions)
        stats.persisted = by_hash
        params = GraphQLParams(query, params.variables, params.operation_name, params.extensions)
        operation = _operation(services, params, stats)
        cache = services.cache
        cacheable = cache is not None and not credentials and stats.kind == "query" and operation is not None
        key = cache_key(query or "", params.operation_name, params.variables) if cacheable else ""
        if cacheable and cache is not None:
            entry = await cache.get(key)
            if entry is not None:
                stats.cache = "hit"
                response = respond(request, entry.body, content_type, entry.etag, entry.keys, settings, True, headers)
                return _finish(request, response, stats, services)
            # A miss, or the cache not asked because it is away (Redis down): operators tell them apart.
            stats.cache = "miss" if cache.available else "unavailable"
        started_at = cache.generation if cache is not None else 0
        result = await _execute_in_time(services, params, method, request, authorization, stats)
        if stats.kind == "mutation":
            stats.cache = "bypass"
        trouble = _trouble_in(result)
        if trouble is not None:
            raise trouble
        body = orjson.dumps(result_body(result))
        request_error = is_request_error(result)
        if request_error:
            status = 400 if media_type == GRAPHQL_RESPONSE or _limit_error(result) else 200
            response = JSONResponse.raw(body, status, content_type, {**headers, "Cache-Control": "no-store"})
            stats.error_code = _first_code(result)
            return _finish(request, response, stats, services)
        ok = not result.errors
        keys = surrogate_keys(stats) if cacheable else ()
        etag = etag_of(body)
        if cacheable and ok and cache is not None:
            await cache.put(key, Entry(body, etag, keys, media_type), started_at)
        if not ok:
            stats.error_code = _first_code(result)
        response = respond(request, body, content_type, etag, keys, settings, ok and cacheable, headers, credentials)
    except HttpError as exc:  # (a persisted query's too: its status may depend on the media type)
        stats.error_code = exc.code
        response = JSONResponse(
            error_body(exc.message, exc.code),
            status_code=exc.status_for(media_type),
            headers={**headers, **exc.headers, "Cache-Control": "no-store"},
            media_type=content_type,
        )
    except GraphQLError as exc:  # a limit checked with the variables
        stats.error_code = (exc.extensions or {}).get("code")
        response = JSONResponse(
            {"errors": [format_error(exc)]},
            status_code=400,
            headers={**headers, "Cache-Control": "no-store"},
            media_type=content_type,
        )
    return _finish(request, response, stats, services)


def _not_acceptable(headers: dict[str, str]) -> Response:
    message = f"this endpoint answers {GRAPHQL_RESPONSE} or {JSON}: accept one of them"
    return JSONResponse(
        error_body(message, "NOT_ACCEPTABLE"),
        status_code=406,
        headers={**headers, "Cache-Control": "no-store"},
        media_type=f"{JSON}; charset=utf-8",
    )


async def _execute_in_time(
    services: Services,
    params: GraphQLParams,
    method: str,
    request: Request,
    authorization: str | None,
    stats: RequestStats,
) -> ExecutionResult:
    """``execute`` within the request time limit; past it, a TIMEOUT error (the database's work is cancelled)."""
    limit = services.settings.request_timeout
    try:
        async with asyncio.timeout(limit):
            return await execute(services, params, method, request, authorization=authorization, stats=stats)
    except TimeoutError:
        raise HttpError(400, f"the operation ran longer than the limit of {limit:g} s", "TIMEOUT") from None


def _operation(services: Services, params: GraphQLParams, stats: RequestStats) -> OperationDefinitionNode | None:
    """The operation about to run (None when the text does not parse); checks its size with the variables."""
    if params.query is None:
        return None
    parsed, fresh = services.executor.parsed(params.query)
    if fresh:  # this request parsed and validated the text; later ones reuse what it did
        stats.parse, stats.validate = parsed.parse_seconds, parsed.validate_seconds
    if parsed.parse_error is not None and exceeds_tokens(params.query, services.limits.max_tokens):
        raise GraphQLError(
            f"the document has more than {services.limits.max_tokens:,} tokens",
            extensions={"code": "TOO_MANY_TOKENS", "limit": services.limits.max_tokens},
        )
    if parsed.document is None:
        return None
    operation = find_operation(parsed.document, params.operation_name)
    stats.kind = operation.operation.value
    stats.operation = operation.name.value if operation.name else None
    variables = params.variables or {}
    # The node count depends on the page sizes alone, integer variables or literals: an operation
    # checked with the same integers is within the limit again.
    key = (params.operation_name, tuple(sorted((k, v) for k, v in variables.items() if type(v) is int)))
    if key not in parsed.nodes_checked:
        fragments = {d.name.value: d for d in parsed.document.definitions if isinstance(d, FragmentDefinitionNode)}
        check_nodes(services.executor.schema, operation, fragments, variables, services.limits)
        if len(parsed.nodes_checked) >= NODES_CHECKED_PER_DOCUMENT:
            parsed.nodes_checked.clear()
        parsed.nodes_checked.add(key)
    return operation


def _first_code(result: ExecutionResult) -> str | None:
    for error in result.errors or ():
        code = (error.extensions or {}).get("code")
        if code:
            return str(code)
    return "GRAPHQL_ERROR" if result.errors else None


def _finish(request: Request, response: Response, stats: RequestStats, services: Services) -> Response:
    stats.status = response.status_code
    response.headers["Server-Timing"] = stats.server_timing()
    services.metrics.observe(stats)
    log_request(stats, request.method, request.url.path)
    return response


async def graphiql_page(request: Request, services: Services) -> Response:
    """GraphiQL; in production only for a request with an editor's token."""
    if services.settings.env == "production":
        db = RequestDb(services.pool)
        try:
            viewer = await authenticate(request.headers.get("authorization"), db)
        except AuthError:
            viewer = None
        except Exception as exc:
            trouble = diagnose(exc)
            if trouble is None:
                raise
            log.warning("store trouble: %s (%s)", trouble.message, exc.__class__.__name__)
            return trouble_response(trouble)
        finally:
            await db.close()
        if viewer is None or not viewer.is_editor:
            return JSONResponse(
                error_body("GraphiQL is only served to editors in production: send an editor token", "FORBIDDEN"),
                status_code=403,
                headers={"Cache-Control": "no-store"},
            )
    return HTMLResponse(request.app.state.graphiql_html, headers={"Cache-Control": "no-store"})
