"""Limits on what one operation may ask for, checked when it is validated, before it runs.

Defaults, and why:

- depth 12: the deepest frontend operation (the post page, through similar posts)
  is 5 deep; 12 leaves room for editors' own queries and stops recursive ones
  (similarPosts inside similarPosts inside ...).
- aliases 30: aliases let one request repeat a field many times; the frontend
  uses none, and 30 is more than any page needs.
- tokens 5,000: the longest frontend operation is about 300 tokens; a document
  of 5,000 parses in well under a millisecond, while millions would not.
- nodes 5,000, counted the way GitHub does: each list field multiplies what is
  under it by its ``first`` or ``last`` (or its default), so
  ``posts(first: 100) { similarPosts(first: 10) }`` counts 100 + 100 * 10 =
  1,100. The largest frontend page (a listing of 100 with similar posts)
  counts 600; the limit stops a query from asking the store for tens of
  thousands of rows at once.

Depth and aliases are validation rules (they do not depend on variables); the
node count is checked for each request with its variables (``check_nodes``).
Each refusal is a GraphQL error with a code naming the limit, and the HTTP layer
answers it with 400.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from graphql import (
    ASTValidationRule,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    GraphQLNamedType,
    GraphQLSchema,
    GraphQLSyntaxError,
    InlineFragmentNode,
    IntValueNode,
    OperationDefinitionNode,
    SelectionSetNode,
    ValidationContext,
    VariableNode,
    get_named_type,
    value_from_ast_untyped,
)
from graphql.language import Lexer, Source, TokenKind

LIMIT_CODES = frozenset({"QUERY_TOO_DEEP", "TOO_MANY_ALIASES", "QUERY_TOO_COMPLEX", "TOO_MANY_TOKENS"})

# List fields that take first/last, by (type, field), with the size they return when neither is given.
PAGED_FIELDS = {
    ("Query", "posts"): 20,
    ("EntityDetail", "posts"): 20,
    ("Post", "similarPosts"): 5,
    ("Query", "stacks"): 20,
    ("Query", "tools"): 20,
    ("Query", "entities"): 20,
}
# facets lists seven value lists of at most `first` each.
FACETS_DEFAULT, FACET_LISTS = 20, 7


@dataclass(frozen=True, slots=True)
class Limits:
    max_depth: int = 12
    max_aliases: int = 30
    max_tokens: int = 5_000
    max_nodes: int = 5_000


def exceeds_tokens(text: str, max_tokens: int) -> bool:
    """Whether ``text`` holds more than ``max_tokens`` tokens before any syntax error: the parser's
    own limit, told by counting with graphql-core's lexer rather than by its error's wording."""
    lexer = Lexer(Source(text))
    count = 0
    try:
        while lexer.advance().kind is not TokenKind.EOF:
            count += 1
            if count > max_tokens:
                return True
    except GraphQLSyntaxError:
        return False
    return False


def limit_rules(limits: Limits) -> list[type[ASTValidationRule]]:
    """Validation rules for these limits."""

    class Depth(ASTValidationRule):
        def enter_operation_definition(self, node: OperationDefinitionNode, *_: Any) -> None:
            fragments = {
                d.name.value: d for d in self.context.document.definitions if isinstance(d, FragmentDefinitionNode)
            }
            depth = _depth(node.selection_set, fragments, 0, set())
            if depth > limits.max_depth:
                self.report_error(
                    GraphQLError(
                        f"the operation is {depth} levels deep; the limit is {limits.max_depth}",
                        node,
                        extensions={"code": "QUERY_TOO_DEEP", "depth": depth, "limit": limits.max_depth},
                    )
                )

    class Aliases(ASTValidationRule):
        def __init__(self, context: ValidationContext) -> None:
            super().__init__(context)
            self.count = 0

        def enter_field(self, node: FieldNode, *_: Any) -> None:
            if node.alias is not None:
                self.count += 1
                if self.count == limits.max_aliases + 1:
                    self.report_error(
                        GraphQLError(
                            f"the document uses more than {limits.max_aliases} aliases",
                            node,
                            extensions={"code": "TOO_MANY_ALIASES", "limit": limits.max_aliases},
                        )
                    )

    return [Depth, Aliases]


def _depth(selection_set: SelectionSetNode | None, fragments: dict[str, Any], level: int, seen: set[str]) -> int:
    if selection_set is None:
        return level
    deepest = level
    for selection in selection_set.selections:
        if isinstance(selection, FieldNode):
            # ``__Type.ofType`` unwraps a list or non-null type: one object, never a list, so it adds
            # no level (GraphiQL's introspection query nests it 7 deep to reach a named type).
            step = 0 if selection.name.value == "ofType" else 1
            deepest = max(deepest, _depth(selection.selection_set, fragments, level + step, seen))
        elif isinstance(selection, InlineFragmentNode):
            deepest = max(deepest, _depth(selection.selection_set, fragments, level, seen))
        elif isinstance(selection, FragmentSpreadNode) and selection.name.value not in seen:
            fragment = fragments.get(selection.name.value)
            if fragment is not None:
                deepest = max(deepest, _depth(fragment.selection_set, fragments, level, seen | {fragment.name.value}))
    return deepest


def _nodes(
    schema: GraphQLSchema,
    parent: GraphQLNamedType | None,
    selection_set: SelectionSetNode | None,
    fragments: dict[str, Any],
    variables: dict[str, Any],
    seen: frozenset[str],
) -> int:
    """How many nodes the selection may return, GitHub's way: list sizes multiply."""
    if selection_set is None or parent is None:
        return 0
    total = 0
    for selection in selection_set.selections:
        if isinstance(selection, FieldNode):
            fields = getattr(parent, "fields", {})
            field = fields.get(selection.name.value)
            child = get_named_type(field.type) if field is not None else None
            size = _page_size(parent.name, selection, variables)
            below = _nodes(schema, child, selection.selection_set, fragments, variables, seen)
            total += size + size * below if size else below
        elif isinstance(selection, InlineFragmentNode):
            condition = schema.get_type(selection.type_condition.name.value) if selection.type_condition else parent
            total += _nodes(schema, condition, selection.selection_set, fragments, variables, seen)
        elif isinstance(selection, FragmentSpreadNode) and selection.name.value not in seen:
            fragment = fragments.get(selection.name.value)
            if fragment is not None:
                condition = schema.get_type(fragment.type_condition.name.value)
                total += _nodes(
                    schema, condition, fragment.selection_set, fragments, variables, seen | {fragment.name.value}
                )
    return total


def _page_size(parent: str, node: FieldNode, variables: dict[str, Any]) -> int:
    """The number of items a paged field returns at most; 0 for fields that are not paged."""
    name = node.name.value
    if (parent, name) == ("Query", "facets"):
        return int(_argument(node, "first", variables, FACETS_DEFAULT)) * FACET_LISTS
    default = PAGED_FIELDS.get((parent, name))
    if default is None:
        return 0
    first = _argument(node, "first", variables, None)
    last = _argument(node, "last", variables, None)
    return max(first or 0, last or 0) or default


def _argument(node: FieldNode, name: str, variables: dict[str, Any], default: int | None) -> Any:
    for argument in node.arguments or ():
        if argument.name.value != name:
            continue
        value = argument.value
        if isinstance(value, IntValueNode):
            return int(value.value)
        if isinstance(value, VariableNode):
            found = variables.get(value.name.value)
            return found if isinstance(found, int) and not isinstance(found, bool) else default
    return default


def count_nodes(
    schema: GraphQLSchema, operation: OperationDefinitionNode, fragments: dict[str, Any], variables: dict[str, Any]
) -> int:
    """How many nodes an operation may return with these variables (and the defaults of those not given)."""
    given = dict(variables)
    for definition in operation.variable_definitions or ():
        name = definition.variable.name.value
        if name not in given and definition.default_value is not None:
            given[name] = value_from_ast_untyped(definition.default_value)
    root = schema.get_root_type(operation.operation)
    return _nodes(schema, root, operation.selection_set, fragments, given, frozenset())


def check_nodes(
    schema: GraphQLSchema,
    operation: OperationDefinitionNode,
    fragments: dict[str, Any],
    variables: dict[str, Any],
    limits: Limits,
) -> None:
    """Refuse an operation that may return more nodes than the limit, with these variables."""
    nodes = count_nodes(schema, operation, fragments, variables)
    if nodes > limits.max_nodes:
        raise GraphQLError(
            f"the operation may return {nodes:,} nodes; the limit is {limits.max_nodes:,}: ask for smaller pages "
            "(first/last) or fewer nested lists",
            operation,
            extensions={"code": "QUERY_TOO_COMPLEX", "nodes": nodes, "limit": limits.max_nodes},
        )
