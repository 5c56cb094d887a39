"""``models.trouble.diagnose``: which drivers' errors are outages of the store, and which are bugs.

The outage tests (tests/server/test_outage_*.py, tests/store/test_sqlite_trouble.py) raise
these errors for real; this file names each rule, so that a driver upgrade that changes one
fails here first.
"""

from __future__ import annotations

import errno
import sqlite3
from pathlib import Path

import asyncpg
import pytest
from sqlalchemy.exc import OperationalError

from models.trouble import BUSY, FULL, INVALID, READ_ONLY, UNAVAILABLE, diagnose


def sqlite_error(code: int) -> sqlite3.Error:
    error = sqlite3.OperationalError("from sqlite")
    error.sqlite_errorcode = code  # type: ignore[attr-defined]
    return error


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        (5, BUSY),  # SQLITE_BUSY
        (6, BUSY),  # SQLITE_LOCKED
        (8, READ_ONLY),  # SQLITE_READONLY
        (13, FULL),  # SQLITE_FULL
        (10 | (4 << 8), FULL),  # SQLITE_IOERR_NOSPC: no space left while writing
        (26, INVALID),  # SQLITE_NOTADB
        (11, INVALID),  # SQLITE_CORRUPT
        (14, UNAVAILABLE),  # SQLITE_CANTOPEN
        (5 | (1 << 8), BUSY),  # an extended code: its low byte decides
    ],
)
def test_sqlite_result_codes(code: int, expected: str) -> None:
    trouble = diagnose(sqlite_error(code))
    assert trouble is not None and trouble.code == expected


def test_a_real_sqlite_error_is_read_by_its_code(tmp_path: Path) -> None:
    not_a_store = tmp_path / "notes.db"
    not_a_store.write_text("these are notes, not a store\n" * 100)
    with pytest.raises(sqlite3.DatabaseError) as raised:
        sqlite3.connect(not_a_store).execute("SELECT 1 FROM sqlite_master")
    trouble = diagnose(raised.value)
    assert trouble is not None and trouble.code == INVALID


def test_sqlite_errors_that_are_bugs_are_not_outages() -> None:
    assert diagnose(sqlite_error(1)) is None  # SQLITE_ERROR: a wrong statement
    assert diagnose(sqlite_error(19)) is None  # SQLITE_CONSTRAINT
    assert diagnose(sqlite3.ProgrammingError("closed cursor")) is None


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (asyncpg.AdminShutdownError("terminating connection due to administrator command"), UNAVAILABLE),
        (asyncpg.CannotConnectNowError("the database system is starting up"), UNAVAILABLE),
        (asyncpg.TooManyConnectionsError("sorry, too many clients already"), BUSY),
        (asyncpg.ConnectionDoesNotExistError("connection was closed in the middle of operation"), UNAVAILABLE),
        (asyncpg.DiskFullError("could not extend file"), FULL),
        (asyncpg.ReadOnlySQLTransactionError("cannot execute UPDATE in a read-only transaction"), READ_ONLY),
        # The two client errors without a class of their own, told by their text:
        (asyncpg.InterfaceError("connection is closed"), UNAVAILABLE),
        (asyncpg.InternalClientError("cannot switch to state 15; another operation (2) is in progress"), UNAVAILABLE),
        (ConnectionRefusedError(errno.ECONNREFUSED, "Connect call failed"), UNAVAILABLE),
        (OSError(errno.ENOSPC, "No space left on device"), FULL),
        (OSError(errno.EROFS, "Read-only file system"), READ_ONLY),
    ],
    ids=lambda value: type(value).__name__ if isinstance(value, BaseException) else str(value),
)
def test_postgresql_and_connection_errors(error: BaseException, expected: str) -> None:
    trouble = diagnose(error)
    assert trouble is not None and trouble.code == expected


def test_postgresql_errors_that_are_bugs_are_not_outages() -> None:
    assert diagnose(asyncpg.UndefinedColumnError("column x does not exist")) is None
    assert diagnose(asyncpg.UniqueViolationError("duplicate key")) is None
    assert diagnose(asyncpg.InterfaceError("cannot perform operation: another operation is in progress")) is None
    assert diagnose(ValueError("not a database error")) is None


def test_an_error_wrapped_by_sqlalchemy_or_raised_from_another_is_found() -> None:
    wrapped = OperationalError("SELECT 1", {}, sqlite_error(13))
    trouble = diagnose(wrapped)
    assert trouble is not None and trouble.code == FULL
    try:
        try:
            raise asyncpg.AdminShutdownError("terminating connection")
        except asyncpg.PostgresError as exc:
            raise RuntimeError("the request failed") from exc
    except RuntimeError as outer:
        trouble = diagnose(outer)
    assert trouble is not None and trouble.code == UNAVAILABLE
    # Messages name the cause, never SQL.
    assert "SELECT" not in (diagnose(wrapped) or trouble).message
