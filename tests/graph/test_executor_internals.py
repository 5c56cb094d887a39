"""Each non-public Strawberry and graphql-core API the batched executor and the HTTP endpoint use, and its shape.

graph/executor/internals.py holds every such use. One test per internal: when
Strawberry or graphql-core changes one, the test names it.
"""

from __future__ import annotations

import asyncio
import inspect
from typing import Annotated

import pytest
import strawberry
from graphql import GraphQLSchema, parse, specified_rules
from strawberry.schema.schema import validate_document
from strawberry.schema.schema_converter import get_arguments
from strawberry.types.base import StrawberryObjectDefinition
from strawberry.types.execution import PreExecutionError
from strawberry.types.field import StrawberryField
from strawberry.types.scalar import ScalarDefinition

from graph.executor import internals
from graph.executor.run import FastInfo
from graph.post import Post
from graph.scalars import SCALAR_MAP, Date
from graph.schema import schema


@strawberry.type
class Thing:
    name: str

    @strawberry.field
    def plain(self) -> str:
        return self.name

    @strawberry.field
    async def later(self, info: strawberry.Info, times: Annotated[int, strawberry.argument()] = 1) -> str:
        return self.name * times


@strawberry.type
class Query:
    @strawberry.field
    def thing(self) -> Thing:
        return Thing(name="a")


thing_schema = strawberry.Schema(query=Query)


def thing_field(name: str) -> StrawberryField:
    definition = thing_schema.get_type_by_name("Thing")
    assert isinstance(definition, StrawberryObjectDefinition)
    (found,) = [f for f in definition.fields if f.python_name == name]
    return found


def test_schema_private_graphql_schema() -> None:
    """``Schema._schema``: the graphql-core schema."""
    assert isinstance(thing_schema._schema, GraphQLSchema)
    assert internals.graphql_schema(thing_schema) is thing_schema._schema


def test_schema_get_type_by_name_gives_an_object_definition_with_fields() -> None:
    """``Schema.get_type_by_name`` and ``StrawberryObjectDefinition.fields``."""
    definition = thing_schema.get_type_by_name("Thing")
    assert isinstance(definition, StrawberryObjectDefinition)
    assert all(isinstance(f, StrawberryField) for f in definition.fields)
    assert internals.object_fields(thing_schema, "String") is None


def test_config_name_converter_get_graphql_name() -> None:
    """``StrawberryConfig.name_converter.get_graphql_name(field)``."""
    field = thing_field("later")
    assert thing_schema.config.name_converter.get_graphql_name(field) == "later"
    definition = schema.get_type_by_name("Post")
    assert isinstance(definition, StrawberryObjectDefinition)
    (similar,) = [f for f in definition.fields if f.python_name == "similar_posts"]
    assert internals.graphql_name(schema, similar) == "similarPosts"


def test_strawberry_definition_attribute() -> None:
    """``cls.__strawberry_definition__.name``."""
    assert Thing.__strawberry_definition__.name == "Thing"  # type: ignore[attr-defined]
    assert internals.definition_name(Thing) == "Thing"
    assert internals.definition_name(int) is None


def test_field_is_basic_field_and_python_name() -> None:
    """``StrawberryField.is_basic_field`` and ``.python_name``."""
    assert thing_field("name").is_basic_field is True
    assert thing_field("plain").is_basic_field is False
    assert internals.field_attribute(thing_field("name")) == "name"
    assert internals.field_attribute(thing_field("plain")) is None


def test_field_base_resolver_and_extensions() -> None:
    """``StrawberryField.base_resolver`` and ``.extensions``."""
    assert thing_field("name").base_resolver is None
    assert thing_field("plain").base_resolver is not None
    assert thing_field("plain").extensions == []
    assert internals.runs_as_is(thing_field("plain")) is True
    assert internals.runs_as_is(thing_field("name")) is False


def test_resolver_wrapped_func() -> None:
    """``StrawberryResolver.wrapped_func``: the function as written, what ``Post.body`` is."""
    definition = schema.get_type_by_name("Post")
    assert isinstance(definition, StrawberryObjectDefinition)
    (body,) = [f for f in definition.fields if f.python_name == "body"]
    assert body.base_resolver is not None
    assert body.base_resolver.wrapped_func is Post.body
    assert internals.resolver_function(body) is Post.body


def test_resolver_is_async() -> None:
    """``StrawberryResolver.is_async``."""
    assert internals.resolver_is_async(thing_field("later")) is True
    assert internals.resolver_is_async(thing_field("plain")) is False


def test_resolver_self_parameter_signature_for_plain_methods() -> None:
    """``StrawberryResolver.self_parameter`` and ``.signature``."""
    resolver = thing_field("plain").base_resolver
    assert resolver is not None
    assert resolver.self_parameter is not None
    assert isinstance(resolver.signature, inspect.Signature)
    assert internals.plain_method(thing_field("plain")) is Thing.plain
    assert internals.plain_method(thing_field("later")) is None


def test_resolver_info_parameter() -> None:
    """``StrawberryResolver.info_parameter``: an ``inspect.Parameter`` or None."""
    resolver = thing_field("later").base_resolver
    assert resolver is not None
    assert isinstance(resolver.info_parameter, inspect.Parameter)
    assert internals.info_name(thing_field("later")) == "info"
    assert internals.info_name(thing_field("plain")) == "info"


def test_get_arguments_and_scalar_registry() -> None:
    """``schema_converter.get_arguments(...)`` and ``Schema.schema_converter.scalar_registry``."""
    assert set(inspect.signature(get_arguments).parameters) >= {
        "field",
        "source",
        "info",
        "kwargs",
        "config",
        "scalar_registry",
    }
    assert isinstance(thing_schema.schema_converter.scalar_registry, dict)
    info = FastInfo(None)
    _, kwargs = internals.convert_arguments(thing_schema, thing_field("later"), "source", info, {"times": 2})
    assert kwargs["times"] == 2
    assert kwargs["info"] is info


def test_resolver_call() -> None:
    """``StrawberryResolver.__call__``: calls the function as written."""
    field = thing_field("plain")
    assert internals.call_resolver(field, [Thing(name="b")], {}) == "b"


def test_validate_document() -> None:
    """``strawberry.schema.schema.validate_document(schema, document, rules)``: a list of errors."""
    assert validate_document(thing_schema._schema, parse("{ thing { name } }"), tuple(specified_rules)) == []
    errors = internals.validate_document(thing_schema._schema, parse("{ nope }"), tuple(specified_rules))
    assert errors and "nope" in errors[0].message


def test_strawberry_refuses_an_operation_type_with_invalid_operation_type_error() -> None:
    """``strawberry.schema.exceptions.InvalidOperationTypeError.operation_type`` and ``OperationType``:
    what ``Schema.execute`` raises for an operation not in ``allowed_operation_types``."""
    allowed = frozenset({internals.OperationType.QUERY})
    try:
        asyncio.run(thing_schema.execute("mutation { nope }", allowed_operation_types=allowed))
    except internals.InvalidOperationTypeError as exc:
        assert internals.refused_operation(exc) is internals.OperationType.MUTATION
    else:
        raise AssertionError("a mutation was not refused")


def test_strawberry_raises_cannot_get_operation_type_error_for_an_unknown_operation_name() -> None:
    """``strawberry.schema.exceptions.CannotGetOperationTypeError``: what ``Schema.execute`` raises
    when the document has no operation of the name asked for."""
    allowed = frozenset({internals.OperationType.QUERY})
    with pytest.raises(internals.CannotGetOperationTypeError):
        asyncio.run(
            thing_schema.execute("query A { thing { name } }", operation_name="B", allowed_operation_types=allowed)
        )


def test_pre_execution_error_is_what_a_document_that_does_not_validate_gives() -> None:
    """``strawberry.types.execution.PreExecutionError``: the result of an operation that never started."""
    refused = asyncio.run(thing_schema.execute("{ nope }"))
    assert isinstance(refused, PreExecutionError)
    assert internals.pre_execution_error(refused) is True
    answered = asyncio.run(thing_schema.execute("{ thing { name } }"))
    assert internals.pre_execution_error(answered) is False


def test_scalar_definition_is_what_strawberry_scalar_makes() -> None:
    """``strawberry.types.scalar.ScalarDefinition``: the type of ``strawberry.scalar(...)``, the values
    of the schema's scalar map."""
    assert isinstance(Date, internals.ScalarDefinition)
    assert all(isinstance(value, ScalarDefinition) for value in SCALAR_MAP.values())
