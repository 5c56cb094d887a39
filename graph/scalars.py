"""Custom scalars."""

from __future__ import annotations

import datetime as dt
import re

import strawberry
from graphql import GraphQLError

from .executor.internals import ScalarDefinition

_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


def _serialize_date(value: dt.date) -> str:
    return value.isoformat()


def _parse_date(value: object) -> dt.date:
    # A GraphQLError, not a ValueError: graphql-core reports it as the client's
    # mistake (a validation or variable error) instead of an internal one.
    if not isinstance(value, str) or not _DATE.fullmatch(value):
        raise GraphQLError(f"Date must be a string YYYY-MM-DD, not {value!r}")
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise GraphQLError(f"Date must be a real calendar date, not {value!r}") from None


Date = strawberry.scalar(
    name="Date",
    description="A calendar date as YYYY-MM-DD (ISO 8601), such as `2026-07-02`.",
    serialize=_serialize_date,
    parse_value=_parse_date,
)

SCALAR_MAP: dict[object, ScalarDefinition] = {dt.date: Date}
