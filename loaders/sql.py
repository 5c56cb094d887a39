"""SQL text for the read path, in the two dialects it runs on.

Reads go straight to the driver (aiosqlite or asyncpg) with SQL written here,
not through SQLAlchemy: per statement that saves the compilation and result
processing layers and, with aiosqlite, three of the four thread hops
SQLAlchemy's adapter makes (measured: 440 µs -> 70 µs for a one-row SELECT).

A statement is written once with ``?`` placeholders and ``IN :keys`` for a list
of keys; :func:`sql` renders it for SQLite (``IN (SELECT value FROM
json_each(?))``, the list passed as JSON text, so the text is the same whatever
the list's length) and for PostgreSQL (``= ANY($n)``, ``$n`` placeholders).

Text is ordered and compared by code point on both: ``COLLATE "C"`` in a
template is kept for PostgreSQL (whatever the database's collation) and left out
for SQLite, whose default BINARY collation is that order already.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import orjson

Dialect = Literal["sqlite", "postgresql"]

_PLACEHOLDER = re.compile(r"\?")
_KEYS = re.compile(r"\bIN :keys\b")
_BY_CODE_POINT = re.compile(r' COLLATE "C"')


@dataclass(frozen=True, slots=True)
class Sql:
    """One statement, rendered for both dialects."""

    sqlite: str
    postgresql: str

    def text(self, dialect: Dialect) -> str:
        return self.sqlite if dialect == "sqlite" else self.postgresql


def sql(template: str) -> Sql:
    """Render a statement written with ``?`` placeholders and ``IN :keys`` for both dialects."""
    sqlite_text = _BY_CODE_POINT.sub("", _KEYS.sub("IN (SELECT value FROM json_each(?))", template))
    postgres_template = _KEYS.sub("= ANY(?)", template)
    counter = iter(range(1, 1_000))
    postgres_text = _PLACEHOLDER.sub(lambda _: f"${next(counter)}", postgres_template)
    return Sql(" ".join(sqlite_text.split()), " ".join(postgres_text.split()))


def keys_param(dialect: Dialect, keys: Sequence[Any]) -> Any:
    """A list of keys as the ``IN :keys`` parameter wants it."""
    return orjson.dumps(list(keys)).decode() if dialect == "sqlite" else list(keys)


def placeholders(dialect: Dialect, template: str, start: int = 1) -> str:
    """Number the ``?`` placeholders of a dynamically built statement for PostgreSQL (and drop
    ``COLLATE "C"`` for SQLite)."""
    if dialect == "sqlite":
        return _BY_CODE_POINT.sub("", template)
    counter = iter(range(start, start + 1_000))
    return _PLACEHOLDER.sub(lambda _: f"${next(counter)}", template)
