"""Alembic environment: runs on the connection ``models.migrate`` hands over, or on its own engine."""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy import Connection
from sqlmodel import SQLModel

import models  # noqa: F401  (registers every table on SQLModel.metadata)
from models.search import SEARCH_TABLES

DIALECT_INDEXES = frozenset({"ix_post_search_document", "ix_post_title_order", "ix_post_reviewed_order"})

config = context.config
target_metadata = SQLModel.metadata


def include_object(obj: object, name: str | None, type_: str, reflected: bool, compare_to: object) -> bool:
    """Leave what migrations write per dialect out of comparisons: SQLModel does not describe it.

    That is the search index (see models/search.py) and the expression indexes of two orderings.
    """
    if type_ == "table" and name is not None and (name in SEARCH_TABLES or name.startswith("post_fts")):
        return False
    return not (type_ == "index" and name in DIALECT_INDEXES)


def run_on(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        include_object=include_object,
        render_as_batch=connection.dialect.name == "sqlite",  # SQLite alters tables by copying them
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        run_on(connection)
        return
    from models.migrate import migration_engine

    async def run() -> None:
        engine = migration_engine(config.get_main_option("sqlalchemy.url") or "")
        try:
            async with engine.connect() as conn:
                await conn.run_sync(run_on)
                await conn.commit()
        finally:
            await engine.dispose()

    asyncio.run(run())


if context.is_offline_mode():
    raise SystemExit("offline (SQL script) migrations are not supported: run `alphanode db upgrade`")
run_online()
