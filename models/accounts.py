"""API tokens: who may edit. Only a token's hash is stored."""

from __future__ import annotations

import datetime as dt

from sqlmodel import Field, SQLModel

from . import base  # noqa: F401  (the naming convention, before any table)


class ApiToken(SQLModel, table=True):
    """A bearer token for editors and admins; the token itself is shown once and never stored."""

    __tablename__ = "api_token"

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(index=True, description="who holds the token; unique among tokens not revoked")
    role: str = Field(description="editor or admin")
    token_hash: str = Field(unique=True, description="sha256 of the token, hex")
    prefix: str = Field(description="the token's first characters, to recognise it in lists")
    created_at: dt.datetime
    revoked_at: dt.datetime | None = None
