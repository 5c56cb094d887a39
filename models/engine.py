"""Engine set-up for SQLite (aiosqlite, the embedded default) and PostgreSQL (asyncpg)."""

from __future__ import annotations

import asyncio
import functools
import weakref
from collections.abc import Awaitable
from typing import Any

import aiosqlite
from sqlalchemy import Engine, event
from sqlalchemy import create_engine as create_sync_engine
from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

# SQLite waits this long for another writer before giving up; one writer at a
# time is a property of SQLite, not an error to show users.
SQLITE_BUSY_TIMEOUT_MS = 30_000
# What the server's connections wait for a lock another program holds, at most: well below the request
# time limit (10 s), so that a request gets DATABASE_BUSY in time rather than TIMEOUT; a writer of this
# process waits for the others of this process in order (graph.context.Writer), not here.
REQUEST_BUSY_TIMEOUT_MS = 5_000
# The PostgreSQL URL's option for a pooler in transaction mode between the API and the server
# (PgBouncer's pool_mode = transaction): ``postgresql://user@pooler:6432/db?pgbouncer=true``.
PGBOUNCER = "pgbouncer"


def normalize_url(url: str | URL) -> URL:
    """Pick the async driver for a database URL: ``sqlite://`` and ``postgresql://`` work as given."""
    parsed = make_url(url) if isinstance(url, str) else url
    backend = parsed.get_backend_name()
    if backend == "sqlite" and parsed.drivername != "sqlite+aiosqlite":
        parsed = parsed.set(drivername="sqlite+aiosqlite")
    elif backend == "postgresql" and parsed.drivername != "postgresql+asyncpg":
        parsed = parsed.set(drivername="postgresql+asyncpg")
    elif backend not in ("sqlite", "postgresql"):
        raise ValueError(f"unsupported database {backend!r}: use a sqlite:// or postgresql:// URL")
    if PGBOUNCER in parsed.query and backend != "postgresql":
        raise ValueError(f"{PGBOUNCER}= is an option of postgresql:// URLs")
    behind_pgbouncer(parsed)  # a value other than true or false is refused here, whoever opens the store
    return parsed


def behind_pgbouncer(url: URL) -> bool:
    """Whether the URL says ``pgbouncer=true``: a pooler in transaction mode stands between the API and
    PostgreSQL, so that one client connection's transactions may each run on another server session.

    Then nothing may outlive a transaction on the server: the drivers keep no prepared statement (each
    statement is parsed in its own transaction, unnamed), and nothing else the API does needs a session
    of its own (read limits are ``SET LOCAL`` in each read transaction, see ``loaders.db``; the
    refresh lock of ``store.similar`` is transaction-scoped).
    """
    value = url.query.get(PGBOUNCER, "false")
    if value not in ("true", "false"):
        raise ValueError(f"{PGBOUNCER}={value!r} in the database URL: use {PGBOUNCER}=true or leave it out")
    return value == "true"


def is_sqlite(engine: AsyncEngine) -> bool:
    return engine.dialect.name == "sqlite"


def create_engine(
    url: str | URL, *, foreign_keys: bool = True, busy_timeout_ms: int = SQLITE_BUSY_TIMEOUT_MS, **kwargs: Any
) -> AsyncEngine:
    """An async engine; SQLite runs in WAL mode with foreign keys on (unless told) and a busy timeout."""
    parsed = normalize_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database in (None, "", ":memory:"):
            raise ValueError("use a SQLite file: an in-memory database is not shared between connections")
        engine = create_async_engine(
            parsed,
            connect_args={"timeout": busy_timeout_ms / 1000, "async_creator_fn": _aiosqlite_connect},
            **kwargs,
        )
        on_connect = functools.partial(_sqlite_on_connect, foreign_keys=foreign_keys, busy_timeout_ms=busy_timeout_ms)
        _ON_CONNECT[engine.sync_engine] = on_connect
        event.listen(engine.sync_engine, "connect", on_connect)
        # pysqlite's own transaction handling is replaced by explicit BEGIN so that
        # SAVEPOINTs and "BEGIN IMMEDIATE" behave (SQLAlchemy docs, "Serializable isolation").
        event.listen(engine.sync_engine, "begin", _sqlite_on_begin)
        return engine
    kwargs.setdefault("pool_size", 10)
    # A server that restarted has ended every session the pool holds: each is tried (a round trip)
    # when taken from the pool and replaced when dead, so that no write or health check after the
    # restart meets one (without it, the first use of each fails and only then is the pool renewed).
    # SQLAlchemy tries it inside a transaction of its own, which a pooler in transaction mode needs.
    kwargs.setdefault("pool_pre_ping", True)
    engine = create_async_engine(parsed, **kwargs)
    if PGBOUNCER in parsed.query:
        # The engine keeps the URL as given (migrations and the refresher open theirs from it);
        # the option is the API's, not asyncpg's, and is taken out of what asyncpg is given.
        event.listen(engine.sync_engine, "do_connect", _connect_through_pgbouncer)
    return engine


def _connect_through_pgbouncer(_dialect: Any, _record: Any, _args: Any, params: dict[str, Any]) -> None:
    """asyncpg's connection arguments for the URL's ``pgbouncer=`` option.

    With ``pgbouncer=true``, neither asyncpg nor SQLAlchemy's asyncpg dialect keeps prepared
    statements: each statement is prepared unnamed in the transaction that runs it. A kept one would
    live on whichever server session prepared it, and the next transaction of this connection may
    run on another ("prepared statement __asyncpg_stmt_… does not exist"), or on a session where
    another client's statement holds that name ("already exists"). Unnamed statements need nothing
    of PgBouncer (1.18 has no prepared-statement support) and leave nothing behind; SQLAlchemy's
    suggestion for PgBouncer, names of one's own (``prepared_statement_name_func``), leaves
    statements prepared on server sessions until those end.
    """
    if params.pop(PGBOUNCER) == "true":
        # asyncpg's own cache (executemany, COPY, type look-ups); without it asyncpg (0.32) names no
        # statement, not even those the dialect prepares.
        params["statement_cache_size"] = 0
        params["prepared_statement_cache_size"] = 0  # the dialect's


_SYNC_TWINS: weakref.WeakKeyDictionary[AsyncEngine, Engine] = weakref.WeakKeyDictionary()
# Each SQLite engine's connect listener (its foreign keys and busy timeout), for its twin.
_ON_CONNECT: weakref.WeakKeyDictionary[Engine, functools.partial[None]] = weakref.WeakKeyDictionary()


def sync_twin(engine: AsyncEngine) -> Engine:
    """A synchronous engine on the same SQLite file, with the same settings, for a worker thread.

    Editors' writes run their statements in a thread on this engine: through
    aiosqlite each of an edit's ~48 statements is a hop to its thread and back,
    which cost more than SQLite's own work (35 ms an edit at 100,000 posts,
    against 12 to 15 ms this way). One twin per async engine, disposed with it.
    """
    twin = _SYNC_TWINS.get(engine)
    if twin is None:
        if not is_sqlite(engine):
            raise ValueError("only SQLite stores have a synchronous twin")
        url = engine.url.set(drivername="sqlite+pysqlite")
        on_connect = _ON_CONNECT[engine.sync_engine]
        busy_timeout_ms = on_connect.keywords["busy_timeout_ms"]
        twin = create_sync_engine(url, connect_args={"timeout": busy_timeout_ms / 1000, "check_same_thread": False})
        event.listen(twin, "connect", on_connect)
        event.listen(twin, "begin", _sqlite_on_begin)
        event.listen(engine.sync_engine, "engine_disposed", lambda _: twin.dispose())
        _SYNC_TWINS[engine] = twin
    return twin


def _aiosqlite_connect(*args: Any, **kwargs: Any) -> Awaitable[aiosqlite.Connection]:
    connection = aiosqlite.connect(*args, **kwargs)
    connection._thread.daemon = True  # as SQLAlchemy's dialect does: a thread left running never holds up exit
    return _connected(connection)


async def _connected(connection: aiosqlite.Connection) -> aiosqlite.Connection:
    try:
        return await connection
    except BaseException:
        # A file that cannot be opened: aiosqlite stops its thread without waiting, and the thread then
        # reports to the event loop. Wait for it while the loop runs (a command's loop ends right after,
        # and a report to a closed loop prints a traceback).
        await asyncio.to_thread(connection._thread.join, 5)
        raise


def _sqlite_on_connect(
    dbapi_connection: Any, _record: Any, foreign_keys: bool = True, busy_timeout_ms: int = SQLITE_BUSY_TIMEOUT_MS
) -> None:
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute(f"PRAGMA foreign_keys={'ON' if foreign_keys else 'OFF'}")
    cursor.execute(f"PRAGMA busy_timeout={busy_timeout_ms}")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def _sqlite_on_begin(conn: Any) -> None:
    # Writers take the write lock up front: a deferred transaction that reads and
    # then writes can fail with SQLITE_BUSY_SNAPSHOT when another writer got in between.
    immediate = conn.get_execution_options().get("sqlite_immediate", False)
    conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


async def create_all(engine: AsyncEngine) -> None:
    """Bring the engine's store to the newest schema with the migrations (creating it if empty)."""
    from .migrate import upgrade

    await upgrade(engine.url.render_as_string(hide_password=False))
