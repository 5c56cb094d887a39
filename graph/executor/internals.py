"""Every use the API makes of Strawberry's and graphql-core's non-public API, in one place.

The executor reads the GraphQL schema Strawberry builds, converts arguments the way
Strawberry's own resolvers get them, and calls plain resolver functions directly.
The HTTP endpoint (``server.graphql_http``, ``server.http.results``) tells apart the
errors Strawberry's executor raises or returns for a request it refuses, and the
schema's scalar map (``graph.scalars``) names the type of Strawberry's scalars.
None of this is public API, so each use is a small function or a name here, and
``tests/graph/test_executor_internals.py`` checks each one's shape: upgrading
Strawberry is a run of that test.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from graphql import ASTValidationRule, DocumentNode, GraphQLError, GraphQLSchema
from strawberry.schema.exceptions import CannotGetOperationTypeError, InvalidOperationTypeError
from strawberry.schema.schema import validate_document as strawberry_validate_document
from strawberry.schema.schema_converter import get_arguments
from strawberry.types.base import StrawberryObjectDefinition
from strawberry.types.execution import PreExecutionError
from strawberry.types.field import StrawberryField
from strawberry.types.graphql import OperationType
from strawberry.types.scalar import ScalarDefinition

__all__ = [
    "CannotGetOperationTypeError",
    "InvalidOperationTypeError",
    "OperationType",
    "ScalarDefinition",
    "StrawberryField",
    "call_resolver",
    "convert_arguments",
    "definition_name",
    "field_attribute",
    "graphql_name",
    "graphql_schema",
    "info_name",
    "object_fields",
    "plain_method",
    "pre_execution_error",
    "refused_operation",
    "resolver_function",
    "resolver_is_async",
    "runs_as_is",
    "validate_document",
]


def graphql_schema(strawberry_schema: Any) -> GraphQLSchema:
    """The graphql-core schema Strawberry built (``Schema._schema``)."""
    schema = strawberry_schema._schema
    assert isinstance(schema, GraphQLSchema)
    return schema


def object_fields(strawberry_schema: Any, type_name: str) -> list[StrawberryField] | None:
    """The Strawberry fields of an object type, by its GraphQL name; None for any other type."""
    definition = strawberry_schema.get_type_by_name(type_name)
    if not isinstance(definition, StrawberryObjectDefinition):
        return None
    return list(definition.fields)


def graphql_name(strawberry_schema: Any, field: StrawberryField) -> str:
    """A field's name in the GraphQL schema (the configured name converter)."""
    return str(strawberry_schema.config.name_converter.get_graphql_name(field))


def definition_name(cls: type) -> str | None:
    """The GraphQL name of the object type a Python class defines, or None."""
    definition = getattr(cls, "__strawberry_definition__", None)
    return definition.name if definition is not None else None


def field_attribute(field: StrawberryField | None) -> str | None:
    """The attribute a field without a resolver reads, or None."""
    return field.python_name if field is not None and field.is_basic_field else None


def runs_as_is(field: StrawberryField | None) -> bool:
    """The field has a resolver and no field extensions: the executor may call the resolver itself."""
    return field is not None and field.base_resolver is not None and not field.extensions


def resolver_function(field: StrawberryField) -> Callable[..., Any] | None:
    """The function a field's resolver wraps (``StrawberryResolver.wrapped_func``), or None."""
    resolver = field.base_resolver
    func = resolver.wrapped_func if resolver is not None else None
    return func if callable(func) else None


def resolver_is_async(field: StrawberryField) -> bool:
    resolver = field.base_resolver
    return resolver is not None and bool(resolver.is_async)


def plain_method(field: StrawberryField | None) -> Callable[[Any], Any] | None:
    """The resolver's function when it needs the object and nothing else, or None."""
    if field is None or field.extensions:
        return None
    resolver = field.base_resolver
    # Its one parameter is ``self``: no info, no root, no arguments.
    if resolver is None or resolver.is_async or resolver.self_parameter is None:
        return None
    if len(resolver.signature.parameters) != 1:
        return None
    func = resolver.wrapped_func
    return func if callable(func) and not isinstance(func, (staticmethod, classmethod)) else None


def info_name(field: StrawberryField) -> str:
    """The name of the resolver's ``info`` parameter (``info`` when it has none)."""
    resolver = field.base_resolver
    parameter = resolver.info_parameter if resolver is not None else None
    return parameter.name if parameter is not None else "info"


def convert_arguments(
    strawberry_schema: Any, field: StrawberryField, source: Any, info: Any, raw: dict[str, Any]
) -> tuple[list[Any], dict[str, Any]]:
    """The positional and keyword arguments Strawberry would call the resolver with."""
    args, kwargs = get_arguments(
        field=field,
        source=source,
        info=info,
        kwargs=raw,
        config=strawberry_schema.config,
        scalar_registry=strawberry_schema.schema_converter.scalar_registry,
    )
    return list(args), dict(kwargs)


def validate_document(
    schema: GraphQLSchema, document: DocumentNode, rules: tuple[type[ASTValidationRule], ...]
) -> list[GraphQLError]:
    """The validation errors Strawberry's executor finds with these rules (it adds rules of its own)."""
    return list(strawberry_validate_document(schema, document, rules))


def call_resolver(field: StrawberryField, args: list[Any], kwargs: dict[str, Any]) -> Any:
    """Call a field's resolver as Strawberry does (``StrawberryResolver.__call__``)."""
    resolver = field.base_resolver
    assert resolver is not None
    return resolver(*args, **kwargs)


def refused_operation(exc: InvalidOperationTypeError) -> OperationType:
    """The kind of operation Strawberry's executor refused (not in ``allowed_operation_types``)."""
    operation: OperationType = exc.operation_type
    return operation


def pre_execution_error(result: object) -> bool:
    """The result Strawberry's executor returns for an operation that never started (``PreExecutionError``)."""
    return isinstance(result, PreExecutionError)
