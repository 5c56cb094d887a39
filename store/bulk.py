"""Many rows in few statements: the driver's ``executemany`` on SQLite, ``COPY`` on PostgreSQL
through asyncpg, and the search index's rows.

Functions here take a synchronous SQLAlchemy ``Connection`` inside a transaction the caller
owns (``store.write``, ``store.similar.refresh``).
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import Connection, Dialect, Table, bindparam, insert, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.util import await_only

from models.search import SEARCH_COLUMNS

# SQLite allows 32,766 bound parameters per statement; PostgreSQL 65,535.
IN_CHUNK = 5_000
# SQLite, when writing in bulk: page cache (KiB) and WAL pages between checkpoints.
BULK_CACHE_KIB = 131_072
BULK_CHECKPOINT_PAGES = 50_000


def tune_for_bulk(conn: Connection) -> None:
    """SQLite settings for a connection that writes many rows (imports, similar posts of everything).

    A larger page cache (the store's indexes outgrow the default 2 MB), and the WAL
    checkpointed every 200 MB rather than every 4 MB. Durability is unchanged.
    """
    if conn.dialect.name == "sqlite":
        conn.exec_driver_sql(f"PRAGMA cache_size=-{BULK_CACHE_KIB}")
        conn.exec_driver_sql(f"PRAGMA wal_autocheckpoint={BULK_CHECKPOINT_PAGES}")


def chunks(values: Sequence[Any], size: int = IN_CHUNK) -> Iterable[Sequence[Any]]:
    for start in range(0, len(values), size):
        yield values[start : start + size]


def insert_many(conn: Connection, target: Table, columns: tuple[str, ...], rows: list[tuple[Any, ...]]) -> None:
    """Insert rows given as tuples of values in the order of ``columns``.

    On SQLite, with ``columns`` in table order, they go straight to the driver's
    ``executemany`` (through the columns' type conversions, if any): SQLAlchemy's
    handling of each row's parameters costs more than SQLite's own work.
    """
    if not rows:
        return
    if conn.dialect.driver == "asyncpg":
        copy_rows(conn, target.name, columns, rows)
        return
    fast = _driver_insert(conn.dialect, target, columns) if conn.dialect.name == "sqlite" else None
    if fast is None:
        conn.execute(insert(target), [dict(zip(columns, row, strict=True)) for row in rows])
        return
    statement, conversions = fast
    parameters: list[Any] = rows
    if conversions:
        parameters = []
        # Rows of a batch often share a value (its timestamp): converted once.
        last: list[tuple[Any, Any]] = [(None, None)] * len(conversions)
        for row in rows:
            values = list(row)
            for n, (i, convert) in enumerate(conversions):
                value = values[i]
                if value is None:
                    continue
                if value is not last[n][0]:
                    last[n] = (value, convert(value))
                values[i] = last[n][1]
            parameters.append(tuple(values))
    conn.exec_driver_sql(statement, parameters)


def copy_rows(conn: Connection, table_name: str, columns: tuple[str, ...], rows: list[tuple[Any, ...]]) -> None:
    """PostgreSQL through asyncpg: COPY rows in, in the connection's transaction (much faster than INSERTs).

    Values must be of the columns' Python types (int, float, str, bool, None...): no conversion here.
    """
    driver = conn.connection.driver_connection
    assert driver is not None
    try:
        await_only(driver.copy_records_to_table(table_name, records=rows, columns=list(columns)))
    except Exception as exc:  # the driver's own errors, as SQLAlchemy's (callers handle those)
        raise DBAPIError.instance(f"COPY {table_name}", None, exc, Exception) from exc


@functools.cache
def _driver_insert(
    dialect: Dialect, target: Table, columns: tuple[str, ...]
) -> tuple[str, list[tuple[int, Any]]] | None:
    """The INSERT statement for the driver and the type conversions of its columns, when it takes
    exactly these columns in this order (else None: SQLAlchemy adds defaults or orders otherwise)."""
    compiled = insert(target).compile(dialect=dialect, column_keys=list(columns))
    if list(compiled.positiontup or ()) != list(columns):
        return None
    conversions = [
        (i, convert)
        for i, c in enumerate(columns)
        if (convert := target.c[c].type.dialect_impl(dialect).bind_processor(dialect))
    ]
    return str(compiled), conversions


_SEARCH_DELETE = {
    "sqlite": text("DELETE FROM post_fts WHERE rowid IN :ids").bindparams(bindparam("ids", expanding=True)),
    "postgresql": text("DELETE FROM post_search WHERE post_id IN :ids").bindparams(bindparam("ids", expanding=True)),
}
# The same statement for the driver: parameters in the order of SEARCH_COLUMNS.
_SQLITE_SEARCH_INSERT = (
    "INSERT INTO post_fts (rowid, title, intro, body, checklist, summary, topic) VALUES (?, ?, ?, ?, ?, ?, ?)"
)
_SEARCH_INSERT = {
    "sqlite": text(
        "INSERT INTO post_fts (rowid, title, intro, body, checklist, summary, topic) "
        "VALUES (:post_id, :title, :intro, :body, :checklist, :summary, :topic)"
    ),
    "postgresql": text(
        "INSERT INTO post_search (post_id, title, intro, body, checklist, summary, topic) "
        "VALUES (:post_id, :title, :intro, :body, :checklist, :summary, :topic)"
    ),
}


def write_search(conn: Connection, posts: list[tuple[int, dict[str, str]]]) -> None:
    """Replace the search index rows of these posts."""
    if not posts:
        return
    dialect = conn.dialect.name
    delete_posts_from_search(conn, [post_id for post_id, _ in posts])
    if dialect == "sqlite" or conn.dialect.driver == "asyncpg":
        rows = [(post_id, *(fields[column] for column in SEARCH_COLUMNS)) for post_id, fields in posts]
        if dialect == "sqlite":
            conn.exec_driver_sql(_SQLITE_SEARCH_INSERT, rows)
        else:
            copy_rows(conn, "post_search", ("post_id", *SEARCH_COLUMNS), rows)
    else:
        conn.execute(_SEARCH_INSERT[dialect], [dict(fields, post_id=post_id) for post_id, fields in posts])


_SEARCH_UPSERT = text(
    "INSERT INTO post_search (post_id, title, intro, body, checklist, summary, topic) "
    "VALUES (:post_id, :title, :intro, :body, :checklist, :summary, :topic) ON CONFLICT (post_id) DO UPDATE SET "
    + ", ".join(f"{c} = excluded.{c}" for c in SEARCH_COLUMNS)
)


def replace_search(conn: Connection, post_id: int, fields: dict[str, str]) -> None:
    """Replace one post's search row, as an edit does: one statement on PostgreSQL, two on SQLite
    (FTS5 tables take no upsert)."""
    if conn.dialect.name == "postgresql":
        conn.execute(_SEARCH_UPSERT, dict(fields, post_id=post_id))
        return
    delete_posts_from_search(conn, [post_id])
    conn.execute(_SEARCH_INSERT["sqlite"], dict(fields, post_id=post_id))


def delete_posts_from_search(conn: Connection, post_ids: list[int]) -> None:
    for part in chunks(post_ids):
        conn.execute(_SEARCH_DELETE[conn.dialect.name], {"ids": list(part)})


__all__ = [
    "chunks",
    "copy_rows",
    "delete_posts_from_search",
    "insert_many",
    "replace_search",
    "tune_for_bulk",
    "write_search",
]
