"""schema.graphql is generated from the code, and documents every type, field and argument."""

from __future__ import annotations

from graphql import (
    GraphQLEnumType,
    GraphQLInputObjectType,
    GraphQLInterfaceType,
    GraphQLObjectType,
    GraphQLScalarType,
    GraphQLUnionType,
    build_schema,
    parse,
    validate,
)

from graph import schema_sdl
from tests.conftest import OPERATIONS, ROOT

SCHEMA_FILE = ROOT / "schema.graphql"


def test_schema_file_is_up_to_date() -> None:
    assert SCHEMA_FILE.read_text(encoding="utf-8") == schema_sdl(), "run `alphanode export-schema` and commit it"


def test_every_type_field_and_argument_has_a_description() -> None:
    schema = build_schema(SCHEMA_FILE.read_text(encoding="utf-8"))
    missing = []
    for name, type_ in schema.type_map.items():
        if name.startswith("__") or name in ("String", "Int", "Float", "Boolean", "ID"):
            continue
        if not type_.description:
            missing.append(name)
        if isinstance(type_, (GraphQLObjectType, GraphQLInterfaceType, GraphQLInputObjectType)):
            for field_name, field in type_.fields.items():
                if not field.description:
                    missing.append(f"{name}.{field_name}")
                for arg_name, arg in getattr(field, "args", {}).items():
                    if not arg.description:
                        missing.append(f"{name}.{field_name}({arg_name}:)")
        if isinstance(type_, GraphQLEnumType):
            missing += [f"{name}.{v}" for v, value in type_.values.items() if not value.description]
        assert isinstance(
            type_,
            (
                GraphQLObjectType,
                GraphQLInterfaceType,
                GraphQLInputObjectType,
                GraphQLEnumType,
                GraphQLScalarType,
                GraphQLUnionType,
            ),
        )
    assert missing == []


def test_the_frontend_operations_validate_against_the_schema_file() -> None:
    schema = build_schema(SCHEMA_FILE.read_text(encoding="utf-8"))
    for name in ("post-page.graphql", "listing.graphql"):
        errors = validate(schema, parse((OPERATIONS / name).read_text(encoding="utf-8")))
        assert errors == [], (name, errors)
