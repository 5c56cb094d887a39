"""The schema: root types composed, error masking and caches configured."""

from __future__ import annotations

import logging
from typing import Any

import strawberry
from graphql import GraphQLError
from strawberry.extensions import AddValidationRules, MaskErrors, MaxTokensLimiter
from strawberry.schema.config import StrawberryConfig
from strawberry.types import ExecutionContext

from models.trouble import diagnose

from .errors import ApiError
from .executor import BATCH_FORMS, DocumentCache, Executor, SharedDocuments
from .executor.internals import graphql_schema
from .limits import Limits, limit_rules
from .mutations.posts import Mutation
from .query import Query
from .scalars import SCALAR_MAP

log = logging.getLogger("alphanode.graphql")

INTERNAL_ERROR = "Internal server error."
# Distinct operation texts kept parsed and validated; the frontend sends a handful.
DOCUMENT_CACHE_SIZE = 1_000


def is_unexpected(error: GraphQLError) -> bool:
    """An error from a bug or an outage rather than from the request: masked for clients."""
    original = error.original_error
    return original is not None and not isinstance(original, (ApiError, GraphQLError))


class _MaskUnexpected(MaskErrors):
    """Replace unexpected errors by a fixed message; request errors pass through as they are."""

    def __init__(self) -> None:
        super().__init__(should_mask_error=is_unexpected, error_message=INTERNAL_ERROR)

    def anonymise_error(self, error: GraphQLError) -> GraphQLError:
        # An outage of the store says which (the HTTP layer answers 503 for it); anything else is a bug.
        trouble = diagnose(error.original_error) if error.original_error is not None else None
        return GraphQLError(
            trouble.message if trouble is not None else INTERNAL_ERROR,
            nodes=error.nodes,
            source=error.source,
            positions=error.positions,
            path=error.path,
            extensions={"code": trouble.code if trouble is not None else "INTERNAL_SERVER_ERROR"},
        )


class Schema(strawberry.Schema):
    """Logs unexpected errors with their traceback for operators; request errors are not logged as errors.

    ``documents`` is the parse and validation cache it shares with the batched executor.
    """

    documents: DocumentCache | None = None

    def process_errors(self, errors: list[GraphQLError], execution_context: ExecutionContext | None = None) -> None:
        for error in errors:
            if not is_unexpected(error):
                continue
            trouble = diagnose(error.original_error) if error.original_error is not None else None
            if trouble is not None:  # an outage, not a bug: one line, no traceback
                log.warning(
                    "store trouble at %s: %s (%s)", error.path, trouble.message, error.original_error.__class__.__name__
                )
            else:
                log.error("unexpected error at %s", error.path, exc_info=error.original_error)


def build_schema(limits: Limits | None = None, **kwargs: Any) -> Schema:
    limits = limits or Limits()
    rules = limit_rules(limits)
    documents = DocumentCache(DOCUMENT_CACHE_SIZE, rules, limits.max_tokens)
    built = Schema(
        query=Query,
        mutation=Mutation,
        extensions=[
            # Factories: a fresh extension per request; the cache itself is shared, with the
            # batched executor too.
            lambda: SharedDocuments(documents),
            _MaskUnexpected,
            lambda: AddValidationRules(rules),
            lambda: MaxTokensLimiter(max_token_count=limits.max_tokens),
        ],
        config=StrawberryConfig(scalar_map=SCALAR_MAP),
        **kwargs,
    )
    documents.bind(graphql_schema(built))
    built.documents = documents
    return built


schema = build_schema()
executor = Executor(schema, cache_size=DOCUMENT_CACHE_SIZE, batch_forms=BATCH_FORMS)


def schema_sdl() -> str:
    """The schema in SDL, as checked in at ``schema.graphql``."""
    return schema.as_str() + "\n"
