"""GraphQL over HTTP: the ``/graphql`` endpoint.

Follows the GraphQL-over-HTTP specification: GET for queries (never a
mutation: 405), POST with a JSON body for everything, JSON bodies for every
error, ``application/graphql-response+json`` when the client accepts it. A
browser opening the URL gets GraphiQL.

Every request gets its own database handle and loaders, closed when the
request ends, whatever happens.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson
from graphql import GraphQLError, OperationDefinitionNode
from starlette.requests import ClientDisconnect, Request
from starlette.responses import HTMLResponse, Response
from strawberry.exceptions import MissingQueryError
from strawberry.schema.exceptions import CannotGetOperationTypeError, InvalidOperationTypeError
from strawberry.types.execution import ExecutionResult, PreExecutionError
from strawberry.types.graphql import OperationType

from graph import Context
from graph.context import Writer
from graph.schema import Schema, executor
from loaders import ReadPool, RequestDb

from .auth import AuthError, authenticate
from .responses import JSONResponse, error_body

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


def response_media_type(request: Request) -> str:
    """``application/graphql-response+json`` if the client accepts it, else ``application/json``."""
    accept = request.headers.get("accept", "")
    if GRAPHQL_RESPONSE in accept:
        return GRAPHQL_RESPONSE
    return JSON


def wants_graphiql(request: Request) -> bool:
    accept = request.headers.get("accept", "")
    return request.method == "GET" and "text/html" in accept and "query" not in request.query_params


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
    operation_name = data.get("operationName") or None
    if operation_name is not None and not isinstance(operation_name, str):
        raise RequestError(400, "operationName must be a string")
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
    if request.method == "GET":
        return _params(request.query_params, from_query_string=True)
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != JSON:
        raise RequestError(
            415, "send the request as application/json (or use GET for queries)", "UNSUPPORTED_MEDIA_TYPE"
        )
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
    formatted: dict[str, Any] = error.formatted  # type: ignore[assignment]
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


async def execute(
    schema: Schema,
    pool: ReadPool,
    params: GraphQLParams,
    method: str,
    request: Request | None = None,
    *,
    authorization: str | None = None,
    writer: Writer | None = None,
) -> ExecutionResult:
    """Execute one operation with a fresh database handle and loaders.

    Valid queries run on the batched executor; everything else, and any query it
    hands back, on Strawberry's, in a new read transaction (on PostgreSQL a
    failed statement aborts the one it ran in).
    """
    if params.query is not None:
        _check_operations(params)
    db = RequestDb(pool)
    try:
        try:
            viewer = await authenticate(authorization, db)
        except AuthError as exc:
            raise RequestError(401, exc.message, "UNAUTHENTICATED", {"WWW-Authenticate": exc.header}) from None
        context = Context.create(db, request, viewer, writer)
        if params.query is not None:
            prepared = executor.prepare(params.query, params.operation_name)
            if prepared is not None:
                try:
                    data = await executor.execute(prepared, params.variables, context)
                except Exception as exc:  # the regular executor answers, with its error handling
                    log.debug("batched executor handed back %s: %r", params.operation_name, exc)
                    await db.close()
                    db = RequestDb(pool, include_archived=db.include_archived)
                    context = Context.create(db, request, viewer, writer)
                else:
                    return ExecutionResult(data=data, errors=None)
        return await schema.execute(
            params.query,
            variable_values=params.variables,
            context_value=context,
            operation_name=params.operation_name,
            allowed_operation_types=GET_OPERATIONS if method == "GET" else POST_OPERATIONS,
        )
    except MissingQueryError:
        raise RequestError(400, "the request has no query") from None
    except CannotGetOperationTypeError as exc:
        raise RequestError(400, _operation_message(params)) from exc
    except InvalidOperationTypeError:
        raise RequestError(
            405, "mutations are only accepted over POST", "METHOD_NOT_ALLOWED", {"Allow": "POST"}
        ) from None
    finally:
        await db.close()


def _check_operations(params: GraphQLParams) -> None:
    """A 400 for a document with no operation, or several and no operationName.

    Strawberry would run the first of several; the specification asks for an error.
    """
    assert params.query is not None
    document = executor.document(params.query)
    if document is None:
        return  # a syntax error: the regular executor reports where
    operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    if not operations:
        raise RequestError(400, "the document has no operation to run")
    if params.operation_name is None and len(operations) > 1:
        raise RequestError(400, "the document holds several operations: say which to run with operationName")


def _operation_message(params: GraphQLParams) -> str:
    if params.operation_name:
        return f"the document has no operation named {params.operation_name!r}"
    return "the document holds several operations: say which to run with operationName"


async def graphql_endpoint(request: Request) -> Response:
    app_state = request.app.state
    if wants_graphiql(request):
        return HTMLResponse(app_state.graphiql_html)
    media_type = response_media_type(request)
    try:
        params = await parse_request(request, app_state.settings.max_body_bytes)
        result = await execute(
            app_state.schema,
            app_state.read_pool,
            params,
            request.method,
            request,
            authorization=request.headers.get("authorization"),
            writer=app_state.writer,
        )
    except RequestError as exc:
        return JSONResponse(
            error_body(exc.message, exc.code), status_code=exc.status, headers=exc.headers, media_type=media_type
        )
    status = 200
    if is_request_error(result) and media_type == GRAPHQL_RESPONSE:
        status = 400
    return JSONResponse(result_body(result), status_code=status, media_type=media_type)
