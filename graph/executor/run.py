"""One execution of a prepared query: fields collected, resolved for whole levels, completed."""

from __future__ import annotations

import builtins
import math
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

from graphql import (
    FieldNode,
    FragmentSpreadNode,
    GraphQLAbstractType,
    GraphQLBoolean,
    GraphQLEnumType,
    GraphQLFloat,
    GraphQLID,
    GraphQLInt,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLOutputType,
    GraphQLScalarType,
    GraphQLString,
    InlineFragmentNode,
    SelectionSetNode,
)
from graphql.execution import get_argument_values, get_directive_values
from graphql.type import GraphQLIncludeDirective, GraphQLSkipDirective

from .documents import Prepared
from .internals import (
    StrawberryField,
    call_resolver,
    convert_arguments,
    definition_name,
    info_name,
    resolver_is_async,
    runs_as_is,
)

if TYPE_CHECKING:
    from . import Executor

_INT_MIN, _INT_MAX = -(2**31), 2**31 - 1


class Unsupported(Exception):
    """What this executor does not run: the operation goes to Strawberry's executor instead."""


class FastInfo:
    """What resolvers get as ``info`` here: the context, and nothing else."""

    __slots__ = ("context",)

    def __init__(self, context: Any) -> None:
        self.context = context


@dataclass(slots=True)
class FieldPlan:
    """How to resolve one field of one object type."""

    name: str
    type: GraphQLOutputType
    definition: Any  # GraphQLField
    strawberry: StrawberryField | None
    attribute: str | None  # a plain attribute read
    batch: Callable[..., Awaitable[Sequence[Any]]] | None
    # A resolver that takes the object alone (a plain method: no info, no arguments, not async):
    # called with each object as it is, without Strawberry's argument handling.
    method: Callable[[Any], Any] | None = None
    # A non-null String, ID, Int or Boolean read from an attribute: the Python type its values
    # have when they need no serializing (completed in one pass, see Run.complete_objects;
    # an int also within GraphQL's 32 bits).
    leaf: builtins.type | None = None


class Run:
    """One execution: the variables and the info object shared by every resolver."""

    __slots__ = ("executor", "info", "prepared", "variables")

    def __init__(self, executor: Executor, prepared: Prepared, variables: Any, info: FastInfo) -> None:
        self.executor = executor
        self.prepared = prepared
        self.variables = variables
        self.info = info

    # -- field collection (GraphQL spec, CollectFields) -------------------

    def collect(
        self, type_: GraphQLObjectType, selection_sets: Sequence[SelectionSetNode]
    ) -> dict[str, list[FieldNode]]:
        prepared = self.prepared
        key: tuple[Any, ...] = (type_.name, *map(id, selection_sets))
        if not prepared.variable_directives:
            cached = prepared.collected.get(key)
            if cached is not None:
                return cached
        fields: dict[str, list[FieldNode]] = {}
        visited: set[str] = set()
        for selection_set in selection_sets:
            self._collect(type_, selection_set, fields, visited)
        if not prepared.variable_directives:
            prepared.collected[key] = fields
        return fields

    def _collect(
        self,
        type_: GraphQLObjectType,
        selection_set: SelectionSetNode,
        fields: dict[str, list[FieldNode]],
        visited: set[str],
    ) -> None:
        for selection in selection_set.selections:
            if not self._included(selection):
                continue
            if isinstance(selection, FieldNode):
                name = selection.alias.value if selection.alias else selection.name.value
                fields.setdefault(name, []).append(selection)
            elif isinstance(selection, InlineFragmentNode):
                if selection.type_condition is None or self._applies(selection.type_condition.name.value, type_):
                    self._collect(type_, selection.selection_set, fields, visited)
            elif isinstance(selection, FragmentSpreadNode):
                name = selection.name.value
                if name in visited:
                    continue
                visited.add(name)
                fragment = self.prepared.fragments[name]
                if self._applies(fragment.type_condition.name.value, type_):
                    self._collect(type_, fragment.selection_set, fields, visited)

    def _included(self, node: Any) -> bool:
        if not node.directives:
            return True
        skip = get_directive_values(GraphQLSkipDirective, node, self.variables)
        if skip and skip.get("if") is True:
            return False
        include = get_directive_values(GraphQLIncludeDirective, node, self.variables)
        return not (include and include.get("if") is False)

    def _applies(self, condition: str, type_: GraphQLObjectType) -> bool:
        if condition == type_.name:
            return True
        conditional = self.executor.schema.get_type(condition)
        return isinstance(conditional, GraphQLAbstractType) and self.executor.schema.is_sub_type(conditional, type_)

    # -- resolution and completion -----------------------------------------

    async def complete_objects(
        self, type_: GraphQLObjectType, objects: list[Any], fields: dict[str, list[FieldNode]]
    ) -> list[dict[str, Any]]:
        results: list[dict[str, Any]] = [{} for _ in objects]
        for response_key, nodes in fields.items():
            name = nodes[0].name.value
            if name == "__typename":
                for result in results:
                    result[response_key] = type_.name
                continue
            if name.startswith("__"):
                raise Unsupported("introspection")
            spec = self.executor.field_plan(type_, name)
            leaf, attribute = spec.leaf, spec.attribute
            if leaf is not None and attribute is not None:
                # A scalar attribute (most fields of a page): read, checked and stored in one
                # pass; another Python type, or an int past 32 bits, goes the general way below.
                for result, source in zip(results, objects):  # noqa: B905 (the same length)
                    value = getattr(source, attribute)
                    if type(value) is not leaf or (leaf is int and not _INT_MIN <= cast(int, value) <= _INT_MAX):
                        break
                    result[response_key] = value
                else:
                    continue
            values = await self._resolve(spec, type_, objects, nodes[0])
            completed = await self.complete(spec.type, values, nodes)
            for result, value in zip(results, completed, strict=True):
                result[response_key] = value
        return results

    async def _resolve(
        self, spec: FieldPlan, type_: GraphQLObjectType, objects: list[Any], node: FieldNode
    ) -> list[Any]:
        if spec.attribute is not None:
            attribute = spec.attribute
            return [getattr(o, attribute) for o in objects]
        strawberry_field = spec.strawberry
        if strawberry_field is None or not runs_as_is(strawberry_field):
            raise Unsupported(f"no resolver for {type_.name}.{spec.name}")
        method = spec.method
        if method is not None and spec.batch is None:
            return [method(o) for o in objects]
        if spec.batch is not None and not spec.definition.args:
            return list(await spec.batch(objects, self.info))
        raw = get_argument_values(spec.definition, node, self.variables)
        strawberry_schema = self.executor.strawberry_schema
        if spec.batch is not None:
            _, kwargs = convert_arguments(strawberry_schema, strawberry_field, None, self.info, raw)
            kwargs.pop(info_name(strawberry_field), None)
            return list(await spec.batch(objects, self.info, **kwargs))
        is_async = resolver_is_async(strawberry_field)
        values = []
        for source in objects:
            args, kwargs = convert_arguments(strawberry_schema, strawberry_field, source, self.info, raw)
            value = call_resolver(strawberry_field, args, kwargs)
            if is_async:
                value = await value
            values.append(value)
        return values

    async def complete(self, type_: GraphQLOutputType, values: list[Any], nodes: list[FieldNode]) -> list[Any]:
        if isinstance(type_, GraphQLNonNull):
            if any(v is None for v in values):
                raise Unsupported("null in a non-null position")
            return await self._complete_nullable(type_.of_type, values, nodes)
        present = [i for i, v in enumerate(values) if v is not None]
        if len(present) == len(values):
            return await self._complete_nullable(type_, values, nodes)
        out: list[Any] = [None] * len(values)
        if present:
            done = await self._complete_nullable(type_, [values[i] for i in present], nodes)
            for i, value in zip(present, done, strict=True):
                out[i] = value
        return out

    async def _complete_nullable(self, type_: Any, values: list[Any], nodes: list[FieldNode]) -> list[Any]:
        if isinstance(type_, GraphQLList):
            lengths = []
            flat: list[Any] = []
            for value in values:
                if type(value) is not list:
                    if isinstance(value, (str, bytes, dict)) or not hasattr(value, "__iter__"):
                        raise Unsupported("a list field returned something else")
                    value = list(value)
                lengths.append(len(value))
                flat += value
            done = await self.complete(type_.of_type, flat, nodes)
            out, start = [], 0
            for length in lengths:
                out.append(done[start : start + length])
                start += length
            return out
        if isinstance(type_, GraphQLScalarType):
            return [_serialize(type_, v) for v in values]
        if isinstance(type_, GraphQLEnumType):
            return [type_.serialize(v) for v in values]
        if isinstance(type_, GraphQLObjectType):
            if not values:
                return []
            return await self.complete_objects(type_, values, self._subfields(type_, nodes))
        if isinstance(type_, GraphQLAbstractType):
            return await self._complete_abstract(values, nodes)
        raise Unsupported(f"cannot complete {type_}")

    def _subfields(self, type_: GraphQLObjectType, nodes: list[FieldNode]) -> dict[str, list[FieldNode]]:
        return self.collect(type_, [n.selection_set for n in nodes if n.selection_set is not None])

    async def _complete_abstract(self, values: list[Any], nodes: list[FieldNode]) -> list[Any]:
        groups: dict[str, tuple[GraphQLObjectType, list[int]]] = {}
        for i, value in enumerate(values):
            runtime = self._runtime_type(value)
            groups.setdefault(runtime.name, (runtime, []))[1].append(i)
        out: list[Any] = [None] * len(values)
        for runtime, indexes in groups.values():
            done = await self.complete_objects(runtime, [values[i] for i in indexes], self._subfields(runtime, nodes))
            for i, value in zip(indexes, done, strict=True):
                out[i] = value
        return out

    def _runtime_type(self, value: Any) -> GraphQLObjectType:
        cache = self.executor.types_by_class
        cls = type(value)
        found = cache.get(cls)
        if found is None:
            name = definition_name(cls)
            named = self.executor.schema.get_type(name) if name is not None else None
            if not isinstance(named, GraphQLObjectType):
                raise Unsupported(f"no object type for {cls.__name__}")
            found = cache[cls] = named
        return found


# Scalars whose values are returned as they are when they have this Python type (see _serialize).
LEAF_TYPES: dict[Any, type] = {GraphQLString: str, GraphQLID: str, GraphQLBoolean: bool, GraphQLInt: int}


def _serialize(type_: GraphQLScalarType, value: Any) -> Any:
    kind = type(value)
    if type_ is GraphQLString or type_ is GraphQLID:
        if kind is str:
            return value
    elif type_ is GraphQLInt:
        if kind is int and _INT_MIN <= value <= _INT_MAX:
            return value
    elif type_ is GraphQLBoolean:
        if kind is bool:
            return value
    elif type_ is GraphQLFloat and kind is float and math.isfinite(value):
        return value
    try:
        return type_.serialize(value)
    except Exception as exc:
        raise Unsupported(f"cannot serialize {value!r} as {type_.name}") from exc
