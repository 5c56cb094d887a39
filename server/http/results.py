"""GraphQL results as JSON: errors always carry ``extensions.code``, and request errors have no data."""

from __future__ import annotations

from typing import Any

from graphql import (
    DocumentNode,
    GraphQLError,
    GraphQLSyntaxError,
    OperationDefinitionNode,
    ValueNode,
    VariableDefinitionNode,
)
from strawberry.types import ExecutionResult

from graph.executor.internals import pre_execution_error

from .errors import HttpError


def format_error(error: GraphQLError) -> dict[str, Any]:
    """The error as JSON, always with ``extensions.code`` saying what kind of error it is."""
    formatted: dict[str, Any] = dict(error.formatted)
    extensions = dict(formatted.get("extensions") or {})
    if "code" not in extensions:
        if isinstance(error, GraphQLSyntaxError):
            extensions["code"] = "GRAPHQL_PARSE_FAILED"
        elif error.nodes and all(isinstance(node, VariableDefinitionNode) for node in error.nodes):
            # A variable that does not coerce to its type: graphql-core locates it at its definition.
            extensions["code"] = "BAD_USER_INPUT"
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
    if pre_execution_error(result):
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
        raise HttpError(400, "the document has no operation to run")
    if name is None:
        if len(operations) > 1:
            raise HttpError(400, "the document holds several operations: say which to run with operationName")
        return operations[0]
    for operation in operations:
        if operation.name is not None and operation.name.value == name:
            return operation
    raise HttpError(400, f"the document has no operation named {name!r}")
