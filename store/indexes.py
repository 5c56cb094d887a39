"""The secondary indexes a large import into an empty SQLite store builds at its end (``store.importer``)."""

from __future__ import annotations

from sqlalchemy.dialects import sqlite
from sqlalchemy.schema import CreateIndex

from models import Post, PostEntity, PostStack, PostTool, SimilarPost, table

# Secondary indexes that a large import into an empty SQLite store builds once, after the
# last document and the similar posts, instead of row by row: at 100,000 posts, 7 s of a 42 s
# write, against about 1.5 s to build them at the end. Each as the migrations make it (tests/store compares them
# with a new store's). Every import first makes any of them that is missing, so an import
# stopped before the end leaves them to the next one.
# The indexes of these tables' models (``Field(index=True)`` and ``__table_args__``), but for
# partial ones (few rows: nothing to gain), as SQLite's dialect writes them, and the expression
# indexes of two orderings, which the migrations write per dialect (see migrations/versions/0001).
_DEFERRED_TABLES = (Post, PostEntity, PostStack, PostTool, SimilarPost)
_ORDER_INDEXES = (
    "CREATE INDEX ix_post_reviewed_order ON post (COALESCE(last_reviewed, '0001-01-01'), id)",
    "CREATE INDEX ix_post_title_order ON post (title, id)",
)


def _deferred_indexes() -> tuple[str, ...]:
    dialect = sqlite.dialect()
    made = [
        str(CreateIndex(index).compile(dialect=dialect)).strip()
        for model in _DEFERRED_TABLES
        for index in table(model).indexes
        if index.dialect_options["sqlite"]["where"] is None
    ]
    return tuple(sorted([*made, *_ORDER_INDEXES], key=lambda statement: statement.split()[2]))


DEFERRED_INDEXES = _deferred_indexes()
