"""Parsed and validated documents, cached once for both executors, and query operations prepared.

:class:`DocumentCache` parses and validates each distinct query text once. The
batched executor reads it, and :class:`SharedDocuments`, an extension of the
Strawberry schema, hands Strawberry's executor the same document and the same
validation errors, so a text is never parsed or validated twice.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from cachetools import LRUCache
from graphql import (
    ASTValidationRule,
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    GraphQLError,
    GraphQLSchema,
    OperationDefinitionNode,
    OperationType,
    VariableNode,
    parse,
    specified_rules,
    visit,
)
from graphql.language import Visitor
from strawberry.extensions import SchemaExtension

from .internals import validate_document


@dataclass(slots=True)
class Prepared:
    """A parsed, validated query operation, with caches of what does not depend on variables."""

    document: DocumentNode
    operation: OperationDefinitionNode
    fragments: dict[str, FragmentDefinitionNode]
    variable_directives: bool  # @skip/@include with variables: field sets depend on variables
    collected: dict[tuple[Any, ...], dict[str, list[FieldNode]]] = field(default_factory=dict)


class Document:
    """One query text parsed and validated, with what it cost."""

    __slots__ = (
        "document",
        "nodes_checked",
        "parse_error",
        "parse_seconds",
        "validate_seconds",
        "validation_errors",
    )

    def __init__(
        self,
        document: DocumentNode | None,
        validation_errors: list[GraphQLError],
        parse_error: GraphQLError | None = None,
    ) -> None:
        self.document = document
        self.validation_errors = validation_errors
        self.parse_error = parse_error
        self.parse_seconds = 0.0
        self.validate_seconds = 0.0
        # (operation name, the integer variables) found within the node limit: the count depends
        # on nothing else (graph.limits.count_nodes reads page sizes only), so it is made once.
        self.nodes_checked: set[tuple[Any, ...]] = set()

    @property
    def errors(self) -> bool:
        """The text does not parse or does not validate."""
        return self.document is None or bool(self.validation_errors)


class DocumentCache:
    """The parse and validation of the most recent distinct query texts against one schema."""

    def __init__(self, maxsize: int, rules: Sequence[type[ASTValidationRule]] = (), max_tokens: int | None = None):
        self.maxsize = maxsize
        # The rules Strawberry's executor validates with: the specified ones, then ours.
        self.rules: tuple[type[ASTValidationRule], ...] = (*specified_rules, *rules)
        self.max_tokens = max_tokens
        self.schema: GraphQLSchema | None = None  # set by bind
        self._entries: LRUCache[str, Document] = LRUCache(maxsize=maxsize)

    def __contains__(self, query: str) -> bool:
        return query in self._entries

    def bind(self, schema: GraphQLSchema) -> None:
        """Validate against this schema from now on (a cache serves one schema)."""
        if self.schema is not None and self.schema is not schema:
            raise ValueError("a document cache serves one schema")
        self.schema = schema

    def get(self, query: str) -> Document:
        """The parse and validation of a query text, made on the first call."""
        entry = self._entries.get(query)  # (cachetools: a hit is now the most recently used)
        if entry is None:
            schema = self.schema
            if schema is None:
                raise RuntimeError("the document cache is not bound to a schema")
            started = time.perf_counter()
            parse_error = None
            try:
                document: DocumentNode | None = parse(query, max_tokens=self.max_tokens)
            except GraphQLError as exc:
                document, parse_error = None, exc
            parsed = time.perf_counter()
            errors = validate_document(schema, document, self.rules) if document is not None else []
            entry = self._entries[query] = Document(document, errors, parse_error)
            entry.parse_seconds = parsed - started
            entry.validate_seconds = time.perf_counter() - parsed
        return entry


class SharedDocuments(SchemaExtension):
    """Strawberry's parse and validation steps answered from a :class:`DocumentCache`.

    A text that does not parse is left to Strawberry, which raises its own error; a
    validation with other rules than the cache's runs as usual.
    """

    def __init__(self, cache: DocumentCache) -> None:
        super().__init__()
        self.cache = cache

    def _entry(self) -> Document | None:
        query = self.execution_context.query
        if self.cache.schema is None or not query:
            return None
        return self.cache.get(query)

    def on_parse(self) -> Iterator[None]:
        entry = self._entry()
        if entry is not None and entry.document is not None:
            self.execution_context.graphql_document = entry.document
        yield

    def on_validate(self) -> Iterator[None]:
        context = self.execution_context
        entry = self._entry()
        if (
            entry is not None
            and entry.document is not None
            and context.graphql_document is entry.document
            and tuple(context.validation_rules) == self.cache.rules
        ):
            context.pre_execution_errors = list(entry.validation_errors)
        yield


def prepare_operation(document: DocumentNode, operation_name: str | None) -> Prepared | None:
    """The query operation to run, or None when there is none to run or it is not a query."""
    operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    if operation_name is None:
        if len(operations) != 1:
            return None
        operation = operations[0]
    else:
        matching = [o for o in operations if o.name and o.name.value == operation_name]
        if len(matching) != 1:
            return None
        operation = matching[0]
    if operation.operation != OperationType.QUERY:
        return None
    fragments = {d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)}
    return Prepared(document, operation, fragments, _has_variable_directives(document))


def _has_variable_directives(document: DocumentNode) -> bool:
    found = False

    class _Finder(Visitor):
        def enter_directive(self, node: Any, *_: Any) -> Any:
            nonlocal found
            if node.name.value in ("skip", "include") and any(
                isinstance(arg.value, VariableNode) for arg in node.arguments or ()
            ):
                found = True

    visit(document, _Finder())
    return found
