"""The GraphQL schema: types, queries, context, errors."""

from .context import Context
from .schema import schema, schema_sdl

__all__ = ["Context", "schema", "schema_sdl"]
