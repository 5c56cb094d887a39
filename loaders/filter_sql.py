"""The SQL conditions of a selection, made from ``loaders.fields`` with SQLAlchemy Core over the
SQLModel tables and compiled once per dialect and *shape* (which filters are set).

The compiled text has ``?`` placeholders, as the statements ``loaders.post_sql`` builds around it
(numbered for PostgreSQL with the rest of the statement); the raw drivers run it. Values are
bound in the order the compiled statement names them.
"""

from __future__ import annotations

import datetime as dt
import operator
from functools import lru_cache
from typing import Any

from sqlalchemy import BindParameter, ColumnElement, any_, bindparam, false, func, literal_column, select
from sqlalchemy.dialects.postgresql.base import PGDialect
from sqlalchemy.dialects.sqlite.base import SQLiteDialect
from sqlalchemy.engine import Dialect as SqlDialect

from models.tables import Post, table

from .fields import FILTER_BY_NAME, Compare, Filter
from .sql import Dialect, keys_param

_POST = table(Post)
# Compiled without the drivers' bind casts, with ``?`` for every value.
_DIALECTS: dict[str, SqlDialect] = {
    "sqlite": SQLiteDialect(paramstyle="qmark"),
    "postgresql": PGDialect(paramstyle="qmark"),  # type: ignore[no-untyped-call]
}


def conditions(dialect: Dialect, archived: bool, given: list[tuple[Filter, Any]]) -> tuple[list[str], list[Any]]:
    """The conditions (``?`` placeholders) of a selection's filters and their values, in order."""
    texts, names = _compiled(dialect, archived, tuple(f.name for f, _ in given))
    values: dict[str, Any] = {}
    for f, value in given:
        values.update(_values(f, value, dialect))
    return list(texts), [values[name] for name in names]


@lru_cache(maxsize=1024)
def _compiled(dialect: Dialect, archived: bool, names: tuple[str, ...]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The conditions' text and the names of their values in order: which posts (archived or
    public), then the column filters, then the link filters, each in ``FILTERS``' order."""
    filters = sorted((FILTER_BY_NAME[name] for name in names), key=lambda f: f.link is not None)
    expressions = [_visible(dialect, archived), *(_condition(f, dialect) for f in filters)]
    texts: list[str] = []
    binds: list[str] = []
    for expression in expressions:
        compiled = expression.compile(dialect=_DIALECTS[dialect])
        texts.append(" ".join(str(compiled).split()))
        binds += compiled.positiontup or []
    return tuple(texts), tuple(binds)


def _visible(dialect: Dialect, archived: bool) -> ColumnElement[bool]:
    if archived:
        return _POST.c.archived_at.is_not(None)
    if dialect == "sqlite":
        # Public posts by id, not by 'archived_at IS NULL': SQLite then needs no post's row to
        # decide, and answers counts and facets from an index alone where one holds the filters
        # (a facet of statuses over 100,000 posts: 13 ms instead of 180). Archived posts are few,
        # and only they are in ix_post_archived_at.
        return _POST.c.id.not_in(select(_POST.c.id).where(_POST.c.archived_at.is_not(None)))
    return _POST.c.archived_at.is_(None)


_COMPARE = {Compare.EQUALS: operator.eq, Compare.AT_LEAST: operator.ge, Compare.AT_MOST: operator.le}


def _condition(f: Filter, dialect: Dialect) -> ColumnElement[bool]:
    if f.link is None:
        assert f.column is not None
        column = _POST.c[f.column.key]
        value: BindParameter[Any] = bindparam(f.name)
        compare = _COMPARE.get(f.compare)
        if compare is not None:
            condition: ColumnElement[bool] = compare(column, value)
            return condition
        raise ValueError(f"{f.name}: {f.compare} needs a link")
    link = f.link.table.alias("l")
    terms = f.link.vocabulary.alias("t")
    found = select(link.c.post_id).select_from(link.join(terms, terms.c.id == link.c[f.link.key]))
    if f.compare is Compare.ENTITY:
        found = found.where(terms.c.name == bindparam(f"{f.name}_name"), terms.c.type == bindparam(f"{f.name}_type"))
    elif f.compare in (Compare.ANY_OF, Compare.ALL_OF):
        listed: BindParameter[Any] = bindparam(f.name)
        if dialect == "sqlite":  # the list as one JSON text: the same statement whatever its length
            found = found.where(terms.c.name.in_(select(literal_column("value")).select_from(func.json_each(listed))))
        else:
            found = found.where(terms.c.name == any_(listed))
        if f.compare is Compare.ALL_OF:
            found = found.group_by(link.c.post_id).having(func.count() == bindparam(f"{f.name}_count"))
    else:
        return false()
    return _POST.c.id.in_(found)


def _values(f: Filter, value: Any, dialect: Dialect) -> dict[str, Any]:
    """A filter's value as the compiled condition binds it."""
    if f.compare is Compare.ENTITY:
        name, type_ = value
        return {f"{f.name}_name": name, f"{f.name}_type": type_}
    if f.compare is Compare.ANY_OF:
        return {f.name: keys_param(dialect, value)}
    if f.compare is Compare.ALL_OF:
        terms = tuple(dict.fromkeys(value))
        return {f.name: keys_param(dialect, terms), f"{f.name}_count": len(terms)}
    if isinstance(value, dt.date) and dialect == "sqlite":
        return {f.name: value.isoformat()}
    return {f.name: value}
