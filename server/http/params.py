"""The parameters of a GraphQL request: from the query string of a GET, or the JSON body of a POST."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson
from starlette.requests import ClientDisconnect, Request

from .errors import HttpError
from .negotiation import JSON, http_method, media_type_parameters, utf8


@dataclass(frozen=True, slots=True)
class GraphQLParams:
    query: str | None
    variables: dict[str, Any] | None
    operation_name: str | None
    extensions: dict[str, Any] | None


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, refused with 413 once it passes ``limit`` bytes."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise HttpError(413, f"the request body is larger than {limit} bytes", "PAYLOAD_TOO_LARGE")
    chunks: list[bytes] = []
    size = 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise HttpError(413, f"the request body is larger than {limit} bytes", "PAYLOAD_TOO_LARGE")
            chunks.append(chunk)
    except ClientDisconnect:
        raise HttpError(400, "the client went away before sending the whole body") from None
    return b"".join(chunks)


def _params(data: Mapping[str, Any], *, from_query_string: bool) -> GraphQLParams:
    query = data.get("query")
    if query is not None and not isinstance(query, str):
        raise HttpError(400, "query must be a string")
    operation_name = data.get("operationName")
    if operation_name is not None and not isinstance(operation_name, str):
        raise HttpError(400, "operationName must be a string")
    operation_name = operation_name or None  # the empty string is no operation name
    variables = _object(data, "variables", from_query_string)
    extensions = _object(data, "extensions", from_query_string)
    return GraphQLParams(query, variables, operation_name, extensions)


def _object(data: Mapping[str, Any], name: str, from_query_string: bool) -> dict[str, Any] | None:
    """A parameter that is a JSON object: in a query string, its text; the empty string is none."""
    value = data.get(name)
    if from_query_string and isinstance(value, str):
        try:
            value = orjson.loads(value) if value else None
        except orjson.JSONDecodeError:
            raise HttpError(400, f"{name} must be a JSON object") from None
    if value is not None and not isinstance(value, dict):
        raise HttpError(400, f"{name} must be a JSON object")
    return value


async def parse_request(request: Request, max_body: int) -> GraphQLParams:
    if http_method(request) == "GET":
        return _params(request.query_params, from_query_string=True)
    content_type, content_params = media_type_parameters(request.headers.get("content-type", ""))
    if content_type != JSON:
        raise HttpError(415, "send the request as application/json (or use GET for queries)", "UNSUPPORTED_MEDIA_TYPE")
    if not utf8(content_params):
        raise HttpError(415, "send the request body as UTF-8 (charset=utf-8)", "UNSUPPORTED_MEDIA_TYPE")
    body = await read_body(request, max_body)
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        try:
            body.decode("utf-8")
        except UnicodeDecodeError:
            raise HttpError(400, "the request body is not UTF-8 text") from None
        raise HttpError(400, "the request body is not valid JSON") from None
    if not isinstance(data, dict):
        raise HttpError(400, "the request body must be a JSON object with a query")
    return _params(data, from_query_string=False)
