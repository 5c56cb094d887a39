"""What went wrong with the store, when it is not the request's fault.

A database that is down, restarting, locked by another program, out of disk,
read-only or not a store at all is an outage, not a bug: clients get a 503
with a code saying which and a ``Retry-After``, operators a log line naming the
cause, and nobody a traceback or SQL text. ``diagnose`` reads the exception a
driver raised (asyncpg, sqlite3/aiosqlite, or SQLAlchemy wrapping either, at
any depth of ``__cause__``/``__context__``) and says which trouble it is, or
None for anything else (a bug, to be logged as one).

SQLite errors are told apart by their result code (``sqlite3.Error.sqlite_errorcode``),
PostgreSQL errors by asyncpg's exception classes and SQLSTATE. Two of asyncpg's client-side
errors have no class or code of their own (a connection it saw closed, and a session the
server ended unasked); those alone are told by their text, each with a test.
"""

from __future__ import annotations

import errno
import os
import sqlite3
from dataclasses import dataclass

import asyncpg

# Codes clients see in ``errors[].extensions.code``.
UNAVAILABLE = "DATABASE_UNAVAILABLE"
BUSY = "DATABASE_BUSY"
FULL = "DATABASE_FULL"
READ_ONLY = "DATABASE_READ_ONLY"
INVALID = "DATABASE_INVALID"
CODES = frozenset({UNAVAILABLE, BUSY, FULL, READ_ONLY, INVALID})

# Seconds a client should wait before asking again, by code.
RETRY_AFTER = {UNAVAILABLE: 5, BUSY: 1, FULL: 30, READ_ONLY: 30, INVALID: 30}


@dataclass(frozen=True, slots=True)
class StoreTrouble:
    """An outage of the store: a code for clients and a message naming the cause."""

    code: str
    message: str

    @property
    def retry_after(self) -> int:
        return RETRY_AFTER[self.code]


class StoreTroubleError(Exception):
    """Raised where the store's trouble is known already (at start-up, in a command)."""

    def __init__(self, trouble: StoreTrouble) -> None:
        super().__init__(trouble.message)
        self.trouble = trouble


_UNREACHABLE = StoreTrouble(UNAVAILABLE, "the database is not reachable; try again shortly")
_RESTARTING = StoreTrouble(UNAVAILABLE, "the database is starting up or shutting down; try again shortly")
_TOO_MANY = StoreTrouble(BUSY, "the database has no free connection; try again shortly")
_LOCKED = StoreTrouble(BUSY, "the store is locked by another program past the busy timeout; try again shortly")
_FULL = StoreTrouble(FULL, "the store's disk is full: nothing was written")
_READ_ONLY = StoreTrouble(
    READ_ONLY, "the store is read-only (its file or folder cannot be written): nothing was written"
)
_MOUNTED_READ_ONLY = StoreTrouble(READ_ONLY, "the store is read-only (its file system is mounted read-only)")
_NOT_A_STORE = StoreTrouble(INVALID, "the store's file is not a SQLite database")
_CANT_OPEN = StoreTrouble(UNAVAILABLE, "the store's file cannot be opened (missing folder or no permission)")
_IO = StoreTrouble(UNAVAILABLE, "the store's disk failed to read or write (I/O error)")
_CORRUPT = StoreTrouble(INVALID, "the store's file is damaged (SQLite reports it malformed)")

# SQLite primary result codes (https://sqlite.org/rescode.html): the low byte of an extended code.
_SQLITE = {
    5: _LOCKED,  # SQLITE_BUSY
    6: _LOCKED,  # SQLITE_LOCKED
    8: _READ_ONLY,  # SQLITE_READONLY
    10: _IO,  # SQLITE_IOERR
    11: _CORRUPT,  # SQLITE_CORRUPT
    13: _FULL,  # SQLITE_FULL
    14: _CANT_OPEN,  # SQLITE_CANTOPEN
    26: _NOT_A_STORE,  # SQLITE_NOTADB
}
_SQLITE_IOERR_NOSPC = 10 | (4 << 8)  # no space left while writing: a full disk, not a failing one

# PostgreSQL SQLSTATE classes and codes that mean the server, not the request.
_POSTGRES_STATES = {
    "57P01": _RESTARTING,  # admin_shutdown
    "57P02": _RESTARTING,  # crash_shutdown
    "57P03": _RESTARTING,  # cannot_connect_now
    "53300": _TOO_MANY,  # too_many_connections
    "53100": StoreTrouble(FULL, "the database's disk is full: nothing was written"),  # disk_full
    "25006": StoreTrouble(READ_ONLY, "the database only accepts reads (a standby or read-only mode)"),
}


def _chain(exc: BaseException) -> list[BaseException]:
    """The exception, what it wraps (SQLAlchemy's ``orig``) and what caused it, each once."""
    seen: list[BaseException] = []
    todo: list[BaseException | None] = [exc]
    while todo:
        current = todo.pop()
        if current is None or any(current is s for s in seen) or len(seen) > 16:
            continue
        seen.append(current)
        todo += [getattr(current, "orig", None), current.__cause__, current.__context__]
    return seen


def _one(exc: BaseException) -> StoreTrouble | None:
    if isinstance(exc, StoreTroubleError):
        return exc.trouble
    if isinstance(exc, sqlite3.Error):
        code = getattr(exc, "sqlite_errorcode", None)
        if code == _SQLITE_IOERR_NOSPC:
            return _FULL
        return _SQLITE.get(code & 0xFF) if isinstance(code, int) else None
    if isinstance(exc, asyncpg.PostgresError):
        state = getattr(exc, "sqlstate", None) or ""
        if state in _POSTGRES_STATES:
            return _POSTGRES_STATES[state]
        if state.startswith("08"):  # connection exception
            return _UNREACHABLE
        return None
    if isinstance(exc, asyncpg.InterfaceError):
        # asyncpg has no subclass for a connection it has seen closed (a server that went away):
        # "connection is closed". Its other interface errors are misuse, that is bugs.
        return _UNREACHABLE if "is closed" in str(exc) else None
    if isinstance(exc, asyncpg.InternalClientError):
        # A server shutting down sends each idle session a FATAL error unasked, then closes it:
        # until the close arrives, asyncpg refuses to start a statement on it ("cannot switch to
        # state ..."). Using a connection from two tasks is an InterfaceError, not this.
        return _RESTARTING if "cannot switch to state" in str(exc) else None
    if isinstance(exc, OSError):
        if exc.errno == errno.ENOSPC:
            return _FULL
        if exc.errno == errno.EROFS:
            return _READ_ONLY
        if isinstance(exc, (ConnectionError, TimeoutError)) or exc.errno is not None:
            return _UNREACHABLE  # refused, reset, no route, a connect that timed out
    return None


# Free space under which a SQLite store's disk counts as full: an edit writes tens of kilobytes to
# the WAL, an import batch megabytes.
LOW_DISK_BYTES = 1 << 20


def sqlite_write_trouble(path: str) -> StoreTrouble | None:
    """Why writes to the SQLite store at ``path`` would fail now, by its file system: read-only, full, or None."""
    folder = os.path.dirname(os.path.abspath(path))
    try:
        disk = os.statvfs(folder)
    except OSError:
        return None
    if disk.f_flag & os.ST_RDONLY:
        return _MOUNTED_READ_ONLY
    if not (os.access(folder, os.W_OK) and (not os.path.exists(path) or os.access(path, os.W_OK))):
        return _READ_ONLY
    if disk.f_bavail * disk.f_frsize < LOW_DISK_BYTES:
        return _FULL
    return None


def diagnose(exc: BaseException) -> StoreTrouble | None:
    """The store's trouble behind ``exc``, or None when it is something else (a bug)."""
    for current in _chain(exc):
        trouble = _one(current)
        if trouble is not None:
            return trouble
    return None
