"""API tokens: create (shown once), list, revoke, and look up by hash.

A token is ``anp_`` and 43 URL-safe characters (256 random bits). Only its
sha256 is stored, so a copy of the database gives no one a token; a token's
first characters are kept to tell tokens apart in ``token list``.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import secrets
from dataclasses import dataclass

from sqlalchemy import Connection, insert, select, update

from models.accounts import ApiToken
from models.tables import table

ROLES = ("editor", "admin")
PREFIX = "anp_"
TOKEN_FORMAT = re.compile(r"anp_[A-Za-z0-9_-]{43}")
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9 ._@-]{0,99}")

token_t = table(ApiToken)


class TokenError(ValueError):
    """A token command that cannot be carried out (bad name, unknown token, name taken)."""


@dataclass(frozen=True, slots=True)
class TokenInfo:
    name: str
    role: str
    prefix: str
    created_at: dt.datetime
    revoked_at: dt.datetime | None


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def well_formed(token: str) -> bool:
    return TOKEN_FORMAT.fullmatch(token) is not None


def create_token(conn: Connection, name: str, role: str) -> str:
    """Store a new token for ``name`` with ``role`` and return it; it cannot be shown again."""
    if role not in ROLES:
        raise TokenError(f"role must be one of {', '.join(ROLES)}, not {role!r}")
    if not _NAME.fullmatch(name):
        raise TokenError("name: 1 to 100 letters, digits, spaces and . _ @ -, starting with a letter or digit")
    active = select(token_t.c.id).where(token_t.c.name == name, token_t.c.revoked_at.is_(None))
    if conn.execute(active).first() is not None:
        raise TokenError(f"a token named {name!r} exists already: revoke it or choose another name")
    token = PREFIX + secrets.token_urlsafe(32)
    conn.execute(
        insert(token_t).values(
            name=name,
            role=role,
            token_hash=hash_token(token),
            prefix=token[: len(PREFIX) + 6],
            created_at=dt.datetime.now(dt.UTC),
        )
    )
    return token


def list_tokens(conn: Connection) -> list[TokenInfo]:
    rows = conn.execute(
        select(token_t.c.name, token_t.c.role, token_t.c.prefix, token_t.c.created_at, token_t.c.revoked_at).order_by(
            token_t.c.name
        )
    )
    return [TokenInfo(*row) for row in rows]


def revoke_token(conn: Connection, name: str) -> bool:
    """Revoke the token named ``name``; False if there is none (or it is revoked already)."""
    result = conn.execute(
        update(token_t)
        .where(token_t.c.name == name, token_t.c.revoked_at.is_(None))
        .values(revoked_at=dt.datetime.now(dt.UTC))
    )
    return bool(result.rowcount)
