"""Revisions: every version of every post, as its page text, with who, when and why."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import BigInteger, Column, ForeignKey, Integer, Text
from sqlmodel import Field, SQLModel

from . import base  # noqa: F401  (the naming convention, before any table)


class PostRevision(SQLModel, table=True):
    """Version ``number`` of a post: its page text as written, numbered from 1 per post."""

    __tablename__ = "post_revision"

    post_id: int = Field(sa_column=Column(Integer, ForeignKey("post.id", ondelete="CASCADE"), primary_key=True))
    number: int = Field(primary_key=True)
    text: str = Field(sa_column=Column(Text, nullable=False))
    content_hash: str
    author: str = Field(description="the token name, or 'import' for the command line")
    reason: str
    created_at: dt.datetime


class ImportReceiptRecord(SQLModel, table=True):
    """The receipt of one import (command line or importDocument), kept for editors."""

    __tablename__ = "import_receipt"

    id: int | None = Field(default=None, primary_key=True)
    author: str
    finished_at: dt.datetime = Field(index=True)
    seconds: float
    created: int
    updated: int
    unchanged: int
    rejected: int
    rejections: str = Field(sa_column=Column(Text, nullable=False), description="JSON list of the first rejections")


class PurgeLog(SQLModel, table=True):
    """What a write changed, as cache keys: each server process and the CDN purge from it.

    Written in the same transaction as the write, so a purge is never lost and never
    announced for a write that did not commit.
    """

    __tablename__ = "purge_log"

    id: int | None = Field(default=None, primary_key=True)
    version: int = Field(sa_type=BigInteger, description="the store's version after the write")
    keys: str = Field(sa_column=Column(Text, nullable=False), description="space-separated surrogate keys")
    created_at: dt.datetime = Field(index=True)
