"""Engine set-up for SQLite (aiosqlite, the embedded default) and PostgreSQL (asyncpg)."""

from __future__ import annotations

import weakref
from typing import Any

from sqlalchemy import Engine, event
from sqlalchemy import create_engine as create_sync_engine
from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

# SQLite waits this long for another writer before giving up; one writer at a
# time is a property of SQLite, not an error to show users.
SQLITE_BUSY_TIMEOUT_MS = 30_000


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
    return parsed


def is_sqlite(engine: AsyncEngine) -> bool:
    return engine.dialect.name == "sqlite"


def create_engine(url: str | URL, *, foreign_keys: bool = True, **kwargs: Any) -> AsyncEngine:
    """An async engine; SQLite runs in WAL mode with foreign keys on (unless told) and a busy timeout."""
    parsed = normalize_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database in (None, "", ":memory:"):
            raise ValueError("use a SQLite file: an in-memory database is not shared between connections")
        engine = create_async_engine(parsed, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000}, **kwargs)
        event.listen(engine.sync_engine, "connect", _sqlite_on_connect if foreign_keys else _sqlite_without_keys)
        # pysqlite's own transaction handling is replaced by explicit BEGIN so that
        # SAVEPOINTs and "BEGIN IMMEDIATE" behave (SQLAlchemy docs, "Serializable isolation").
        event.listen(engine.sync_engine, "begin", _sqlite_on_begin)
        return engine
    kwargs.setdefault("pool_size", 10)
    # A server that restarted has ended every session the pool holds: each is tried (a round trip)
    # when taken from the pool and replaced when dead, so that no write or health check after the
    # restart meets one (without it, the first use of each fails and only then is the pool renewed).
    kwargs.setdefault("pool_pre_ping", True)
    return create_async_engine(parsed, **kwargs)


_SYNC_TWINS: weakref.WeakKeyDictionary[AsyncEngine, Engine] = weakref.WeakKeyDictionary()


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
        twin = create_sync_engine(
            url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000, "check_same_thread": False}
        )
        foreign_keys = event.contains(engine.sync_engine, "connect", _sqlite_on_connect)
        event.listen(twin, "connect", _sqlite_on_connect if foreign_keys else _sqlite_without_keys)
        event.listen(twin, "begin", _sqlite_on_begin)
        event.listen(engine.sync_engine, "engine_disposed", lambda _: twin.dispose())
        _SYNC_TWINS[engine] = twin
    return twin


def _sqlite_on_connect(dbapi_connection: Any, _record: Any, foreign_keys: bool = True) -> None:
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute(f"PRAGMA foreign_keys={'ON' if foreign_keys else 'OFF'}")
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def _sqlite_without_keys(dbapi_connection: Any, record: Any) -> None:
    _sqlite_on_connect(dbapi_connection, record, foreign_keys=False)


def _sqlite_on_begin(conn: Any) -> None:
    # Writers take the write lock up front: a deferred transaction that reads and
    # then writes can fail with SQLITE_BUSY_SNAPSHOT when another writer got in between.
    immediate = conn.get_execution_options().get("sqlite_immediate", False)
    conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


async def create_all(engine: AsyncEngine) -> None:
    """Bring the engine's store to the newest schema with the migrations (creating it if empty)."""
    from .migrate import upgrade

    await upgrade(engine.url.render_as_string(hide_password=False))
