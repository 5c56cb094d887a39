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
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson
from graphql import (
    DocumentNode,
    FragmentDefinitionNode,
    GraphQLError,
    GraphQLSyntaxError,
    OperationDefinitionNode,
    ValueNode,
)
from starlette.requests import ClientDisconnect, Request
from starlette.responses import HTMLResponse, Response
from strawberry.exceptions import MissingQueryError
from strawberry.schema.exceptions import CannotGetOperationTypeError, InvalidOperationTypeError
from strawberry.types.execution import ExecutionResult, PreExecutionError
from strawberry.types.graphql import OperationType

from graph import Context
from graph.limits import LIMIT_CODES, check_nodes
from loaders import RequestDb
from models.trouble import CODES as TROUBLE_CODES
from models.trouble import RETRY_AFTER, StoreTrouble, diagnose

from .auth import AuthError, authenticate
from .caching import Entry, cache_key, etag_of
from .observe import RequestStats, log_request
from .persisted import PersistedQueryError
from .responses import JSONResponse, error_body
from .services import Services

log = logging.getLogger("alphanode.http")

GRAPHQL_RESPONSE = "application/graphql-response+json"
JSON = "application/json"
GET_OPERATIONS = frozenset({OperationType.QUERY})
POST_OPERATIONS = frozenset({OperationType.QUERY, OperationType.MUTATION})


class RequestError(Exception):
    """A request that cannot be executed at all; becomes a JSON error response."""

    def __init__(self, status: int, message: str, code: str = "BAD_REQUEST", headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code
        self.headers = headers or {}


@dataclass(frozen=True, slots=True)
class GraphQLParams:
    query: str | None
    variables: dict[str, Any] | None
    operation_name: str | None
    extensions: dict[str, Any] | None


def _media_type_parameters(value: str) -> tuple[str, dict[str, str]]:
    """``type/subtype`` (lower case) and its parameters (names lower case, values unquoted)."""
    media_type, *parameters = value.split(";")
    params: dict[str, str] = {}
    for parameter in parameters:
        name, _, param_value = parameter.partition("=")
        params[name.strip().lower()] = param_value.strip().strip('"')
    return media_type.strip().lower(), params


def _utf8(params: dict[str, str]) -> bool:
    """No charset, or UTF-8: the only encoding this endpoint reads and writes."""
    return params.get("charset", "utf-8").lower() in ("utf-8", "utf8")


def response_media_type(request: Request) -> str | None:
    """The response's media type by the ``Accept`` header; None when it accepts neither (406).

    ``application/graphql-response+json`` when the client names it with a quality at least that of
    ``application/json``; ``application/json`` when the client sends no ``Accept``, only wildcards
    (``*/*``, ``application/*``) or prefers it. Media types are compared without regard to case, the
    most specific range decides a type's quality (``q=0`` refuses it) and a charset other than UTF-8
    matches nothing.
    """
    accept = request.headers.get("accept", "").strip()
    if not accept:
        return JSON
    # For each type we answer in: (specificity of the best matching range, its quality).
    best = {GRAPHQL_RESPONSE: (0, 0.0), JSON: (0, 0.0)}
    for media_range in accept.split(","):
        media_type, params = _media_type_parameters(media_range)
        if not media_type or not _utf8(params):
            continue
        try:
            quality = min(max(float(params.get("q", "1")), 0.0), 1.0)
        except ValueError:
            quality = 1.0
        for candidate, (specificity, _) in best.items():
            match = {candidate: 3, "application/*": 2, "*/*": 1}.get(media_type, 0)
            if match > specificity:
                best[candidate] = (match, quality)
    (graphql_match, graphql_q), (_, json_q) = best[GRAPHQL_RESPONSE], best[JSON]
    if graphql_match == 3 and graphql_q > 0 and graphql_q >= json_q:
        return GRAPHQL_RESPONSE
    if json_q > 0:
        return JSON
    return GRAPHQL_RESPONSE if graphql_q > 0 else None


def http_method(request: Request) -> str:
    """The request's method, HEAD answered as GET (the server leaves out the body)."""
    return "GET" if request.method == "HEAD" else request.method


def wants_graphiql(request: Request) -> bool:
    accept = request.headers.get("accept", "").lower()
    return http_method(request) == "GET" and "text/html" in accept and "query" not in request.query_params


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, refused with 413 once it passes ``limit`` bytes."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise RequestError(413, f"the request body is larger than {limit} bytes", "PAYLOAD_TOO_LARGE")
    chunks: list[bytes] = []
    size = 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise RequestError(413, f"the request body is larger than {limit} bytes", "PAYLOAD_TOO_LARGE")
            chunks.append(chunk)
    except ClientDisconnect:
        raise RequestError(400, "the client went away before sending the whole body") from None
    return b"".join(chunks)


def _params(data: Mapping[str, Any], *, from_query_string: bool) -> GraphQLParams:
    query = data.get("query")
    if query is not None and not isinstance(query, str):
        raise RequestError(400, "query must be a string")
    variables = data.get("variables")
    if from_query_string and isinstance(variables, str):
        try:
            variables = orjson.loads(variables) if variables else None
        except orjson.JSONDecodeError:
            raise RequestError(400, "variables must be a JSON object") from None
    if variables is not None and not isinstance(variables, dict):
        raise RequestError(400, "variables must be a JSON object")
    operation_name = data.get("operationName")
    if operation_name is not None and not isinstance(operation_name, str):
        raise RequestError(400, "operationName must be a string")
    operation_name = operation_name or None  # the empty string is no operation name
    extensions = data.get("extensions")
    if from_query_string and isinstance(extensions, str):
        try:
            extensions = orjson.loads(extensions) if extensions else None
        except orjson.JSONDecodeError:
            raise RequestError(400, "extensions must be a JSON object") from None
    if extensions is not None and not isinstance(extensions, dict):
        raise RequestError(400, "extensions must be a JSON object")
    return GraphQLParams(query, variables, operation_name, extensions)


async def parse_request(request: Request, max_body: int) -> GraphQLParams:
    if http_method(request) == "GET":
        return _params(request.query_params, from_query_string=True)
    content_type, content_params = _media_type_parameters(request.headers.get("content-type", ""))
    if content_type != JSON:
        raise RequestError(
            415, "send the request as application/json (or use GET for queries)", "UNSUPPORTED_MEDIA_TYPE"
        )
    if not _utf8(content_params):
        raise RequestError(415, "send the request body as UTF-8 (charset=utf-8)", "UNSUPPORTED_MEDIA_TYPE")
    body = await read_body(request, max_body)
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        try:
            body.decode("utf-8")
        except UnicodeDecodeError:
            raise RequestError(400, "the request body is not UTF-8 text") from None
        raise RequestError(400, "the request body is not valid JSON") from None
    if not isinstance(data, dict):
        raise RequestError(400, "the request body must be a JSON object with a query")
    return _params(data, from_query_string=False)


def format_error(error: GraphQLError) -> dict[str, Any]:
    """The error as JSON, always with ``extensions.code`` saying what kind of error it is."""
    formatted: dict[str, Any] = dict(error.formatted)
    extensions = dict(formatted.get("extensions") or {})
    if "code" not in extensions:
        if isinstance(error, GraphQLSyntaxError):
            extensions["code"] = "GRAPHQL_PARSE_FAILED"
        elif error.message.startswith("Variable "):
            extensions["code"] = "BAD_USER_INPUT"  # a variable that does not coerce to its type
        elif error.path is not None and error.nodes and all(isinstance(node, ValueNode) for node in error.nodes):
            # An argument value that does not coerce to the argument's type while executing (a null
            # variable for a non-null argument with a default): located at the value the client sent.
            extensions["code"] = "BAD_USER_INPUT"
        elif error.path is None:
            extensions["code"] = "GRAPHQL_VALIDATION_FAILED"
        else:
            extensions["code"] = "INTERNAL_SERVER_ERROR"
        formatted["extensions"] = extensions
    return formatted


def is_request_error(result: ExecutionResult) -> bool:
    """An operation that never started: parse, validation or variable errors (no data, no error with a path)."""
    if isinstance(result, PreExecutionError):
        return True
    return result.data is None and bool(result.errors) and all(e.path is None for e in result.errors or ())


def result_body(result: ExecutionResult) -> dict[str, Any]:
    body: dict[str, Any] = {}
    if result.errors:
        body["errors"] = [format_error(e) for e in result.errors]
    if not is_request_error(result):
        body["data"] = result.data
    if result.extensions:
        body["extensions"] = result.extensions
    return body


def find_operation(document: DocumentNode, name: str | None) -> OperationDefinitionNode:
    """The operation to run: the one named, or the only one; a 400 otherwise.

    Strawberry would run the first of several; the specification asks for an error.
    """
    operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    if not operations:
        raise RequestError(400, "the document has no operation to run")
    if name is None:
        if len(operations) > 1:
            raise RequestError(400, "the document holds several operations: say which to run with operationName")
        return operations[0]
    for operation in operations:
        if operation.name is not None and operation.name.value == name:
            return operation
    raise RequestError(400, f"the document has no operation named {name!r}")


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
            raise RequestError(401, exc.message, "UNAUTHENTICATED", {"WWW-Authenticate": exc.header}) from None
        stats.viewer = viewer.name if viewer is not None else None
        context = Context.create(db, request, viewer, services.writer)
        if params.query is not None:
            prepared = executor.prepare(params.query, params.operation_name)
            if prepared is not None:
                try:
                    data = await executor.execute(prepared, params.variables, context)
                except Exception as exc:  # the regular executor answers, with its error handling
                    if diagnose(exc) is not None:
                        raise  # the store is in trouble: running the operation again would not help
                    log.debug("batched executor handed back %s: %r", params.operation_name, exc)
                    _account(stats, db)
                    await db.close()
                    db = RequestDb(db.pool, include_archived=db.include_archived)
                    context = Context.create(db, request, viewer, services.writer)
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
        raise RequestError(400, "the request has no query") from None
    except CannotGetOperationTypeError as exc:
        raise RequestError(400, f"the document has no operation named {params.operation_name!r}") from exc
    except InvalidOperationTypeError as exc:
        if exc.operation_type is not OperationType.MUTATION:  # a subscription, over GET or POST
            raise RequestError(400, "subscriptions are not served over HTTP") from None
        raise RequestError(
            405, "mutations are only accepted over POST", "METHOD_NOT_ALLOWED", {"Allow": "POST"}
        ) from None
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


def trouble_error(trouble: StoreTrouble) -> RequestError:
    """The 503 for an outage of the store, with the code saying which and when to try again."""
    return RequestError(503, trouble.message, trouble.code, {"Retry-After": str(trouble.retry_after)})


def trouble_response(trouble: StoreTrouble) -> Response:
    """The 503 for an outage of the store outside a GraphQL operation (GraphiQL, any other path)."""
    error = trouble_error(trouble)
    return JSONResponse(
        error_body(error.message, error.code),
        status_code=error.status,
        headers={**error.headers, "Cache-Control": "no-store"},
    )


def _trouble_in(result: ExecutionResult) -> RequestError | None:
    """A result that an outage of the store cut short answers 503 as a whole: a partial page helps nobody."""
    for error in result.errors or ():
        code = (error.extensions or {}).get("code")
        if code in TROUBLE_CODES:
            return RequestError(503, error.message, code, {"Retry-After": str(RETRY_AFTER[code])})
    return None


def _account(stats: RequestStats, db: RequestDb) -> None:
    """Add what a database handle did to the request's figures (before it closes)."""
    stats.statements += db.statements + (1 if db.statements else 0)  # and the ROLLBACK that ends it
    stats.db += db.db_seconds
    stats.post_ids |= db.posts_seen
    stats.lists = stats.lists or db.lists_seen


MAX_SURROGATE_KEYS = 200
NODES_CHECKED_PER_DOCUMENT = 256  # page-size combinations remembered per document as within the node limit
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


def _limit_error(result: ExecutionResult) -> bool:
    return any((e.extensions or {}).get("code") in LIMIT_CODES for e in result.errors or ())


def _cache_control(settings: Any, method: str, credentials: bool, cacheable: bool) -> str:
    if credentials:
        return "private, no-store"
    if method == "GET" and cacheable:
        return (
            f"public, max-age={settings.cache_max_age}, stale-while-revalidate={settings.cache_stale_while_revalidate}"
        )
    return "no-store"


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
        message = f"this endpoint answers {GRAPHQL_RESPONSE} or {JSON}: accept one of them"
        response = JSONResponse(
            error_body(message, "NOT_ACCEPTABLE"),
            status_code=406,
            headers={**headers, "Cache-Control": "no-store"},
            media_type=f"{JSON}; charset=utf-8",
        )
        return _finish(request, response, stats, services)
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
                response = _respond(request, entry.body, content_type, entry.etag, entry.keys, settings, True, headers)
                return _finish(request, response, stats, services)
            # A miss, or the cache not asked because it is away (Redis down): operators tell them apart.
            stats.cache = "miss" if cache.available else "unavailable"
        started_at = cache.generation if cache is not None else 0
        try:
            async with asyncio.timeout(settings.request_timeout):
                result = await execute(services, params, method, request, authorization=authorization, stats=stats)
        except TimeoutError:
            raise RequestError(
                400, f"the operation ran longer than the limit of {settings.request_timeout:g} s", "TIMEOUT"
            ) from None
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
        response = _respond(request, body, content_type, etag, keys, settings, ok and cacheable, headers, credentials)
    except RequestError as exc:
        stats.error_code = exc.code
        response = JSONResponse(
            error_body(exc.message, exc.code),
            status_code=exc.status,
            headers={**headers, **exc.headers, "Cache-Control": "no-store"},
            media_type=content_type,
        )
    except PersistedQueryError as exc:
        stats.error_code = exc.code
        status = 200 if exc.code == "PERSISTED_QUERY_NOT_FOUND" and media_type == JSON else 400
        response = JSONResponse(
            error_body(exc.message, exc.code),
            status_code=status,
            headers={**headers, "Cache-Control": "no-store"},
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


def _operation(services: Services, params: GraphQLParams, stats: RequestStats) -> OperationDefinitionNode | None:
    """The operation about to run (None when the text does not parse); checks its size with the variables."""
    if params.query is None:
        return None
    parsed, fresh = services.executor.parsed(params.query)
    if fresh:  # this request parsed and validated the text; later ones reuse what it did
        stats.parse, stats.validate = parsed.parse_seconds, parsed.validate_seconds
    if parsed.parse_error is not None and "Document contains more than" in parsed.parse_error.message:
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


def _respond(
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
        "Cache-Control": _cache_control(settings, http_method(request), credentials, cacheable),
    }
    if keys:
        headers["Surrogate-Key"] = " ".join(keys)
    if http_method(request) == "GET" and cacheable and _not_modified(request, etag):
        return Response(status_code=304, headers=headers)
    return JSONResponse.raw(body, 200, media_type, headers)


def _if_none_match(request: Request) -> set[str]:
    value = request.headers.get("if-none-match", "")
    return {part.strip().removeprefix("W/") for part in value.split(",") if part.strip()}


def _not_modified(request: Request, etag: str) -> bool:
    """A conditional GET whose If-None-Match names this ETag, or ``*`` (RFC 9110, 13.1.2)."""
    tags = _if_none_match(request)
    return etag in tags or "*" in tags


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
