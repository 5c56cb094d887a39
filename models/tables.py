"""SQLModel tables: the normalized store of posts. Tables only, no business logic.

Scalars of a post's meta block are columns of ``post``; ordered lists are child
tables with a ``position`` column; stack terms, tools and entities are shared
vocabulary tables joined through link tables, so that filters and facets are
indexed joins. The import key is the payload's source id; reference and slug are
unique too.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import BigInteger, Column, ForeignKey, Index, Integer, Table, UniqueConstraint, text
from sqlmodel import Field, SQLModel

from . import base  # noqa: F401  (the naming convention, before any table)

# Child tables are read by post id: without a rowid, SQLite stores them clustered
# by their primary key (post_id, position), so one post's rows sit together.
_CLUSTERED = {"sqlite_with_rowid": False}


SORT_COLUMNS = ("view_count", "quality", "freshness", "depth", "clarity")


def _post_fk() -> Column[int]:
    return Column(Integer, ForeignKey("post.id", ondelete="CASCADE"), primary_key=True)


class Post(SQLModel, table=True):
    """One post: title, intro and every scalar of its meta block."""

    __tablename__ = "post"
    # Keyset pages walk (sort key, id); the title and last-review orders are expression
    # indexes per dialect, made by the migrations (see migrations/versions/0001).
    __table_args__ = (
        *(Index(f"ix_post_{key}_id", key, "id") for key in SORT_COLUMNS),
        # Partial: only archived posts are in it. Readers ask for `archived_at IS NULL`, which
        # matches nearly every post; a full index on it lured SQLite's planner away from the
        # selective ones (a slug lookup scanned the whole table).
        Index(
            "ix_post_archived_at",
            "archived_at",
            sqlite_where=text("archived_at IS NOT NULL"),
            postgresql_where=text("archived_at IS NOT NULL"),
        ),
    )

    id: int | None = Field(default=None, primary_key=True)
    source_id: str = Field(unique=True, description="payload source id, the import key")
    reference: str = Field(unique=True)
    slug: str = Field(unique=True)
    title: str
    intro: str
    topic: str = Field(index=True)
    summary: str
    outline_context: str
    outline_problem: str
    outline_stack: str
    outline_action: str
    ai_brief: str
    code_language: str = Field(index=True)
    difficulty: str = Field(index=True)
    reading_time: int
    view_count: int = Field(sa_type=BigInteger)
    quality: int
    freshness: int
    depth: int
    clarity: int
    status: str = Field(index=True)
    version: str
    last_reviewed: dt.date | None = Field(default=None, index=True)
    meta_hash: str
    ai_generated_style: bool
    has_images: bool
    image_heavy: bool
    needs_human_review: bool
    generator: str
    paragraphs: int
    scenario: str
    seed: int = Field(sa_type=BigInteger)
    # Layout: what render() needs beyond content to give back the same bytes.
    header: str | None = None
    newline: str = "\n"
    final_newline: bool = False
    trailer: str | None = Field(default=None, description="JSON list of lines after 'Similar Posts'")
    # Bookkeeping.
    content_hash: str = Field(description="sha256 of the imported page text")
    archived_at: dt.datetime | None = Field(
        default=None, description="when an editor archived the post; readers never see archived posts"
    )
    created_at: dt.datetime
    updated_at: dt.datetime


class PostBlock(SQLModel, table=True):
    """One line-level block of the body, in page order.

    ``kind`` is heading, paragraph, item (a list item; consecutive items with no
    blank line between them form one list) or image (``image`` is the image's
    position). ``gap`` is the number of blank lines before the block.
    """

    __tablename__ = "post_block"
    __table_args__ = _CLUSTERED

    post_id: int = Field(sa_column=_post_fk())
    position: int = Field(primary_key=True)
    kind: str
    text: str | None = None
    image: int | None = None
    gap: int = 0


class PostImage(SQLModel, table=True):
    """An image of a post, with caption and source from the body and URL from the meta block."""

    __tablename__ = "post_image"
    __table_args__ = _CLUSTERED

    post_id: int = Field(sa_column=_post_fk())
    position: int = Field(primary_key=True)
    caption: str
    source: str
    url: str


class ChecklistItem(SQLModel, table=True):
    """An item of the meta block's checklist."""

    __tablename__ = "checklist_item"
    __table_args__ = _CLUSTERED

    post_id: int = Field(sa_column=_post_fk())
    position: int = Field(primary_key=True)
    text: str


class PostNote(SQLModel, table=True):
    """A note of the meta block."""

    __tablename__ = "post_note"
    __table_args__ = _CLUSTERED

    post_id: int = Field(sa_column=_post_fk())
    position: int = Field(primary_key=True)
    text: str


class StackTerm(SQLModel, table=True):
    """A stack term (python, backend, ...), shared by the posts that list it."""

    __tablename__ = "stack_term"

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(unique=True)


class Tool(SQLModel, table=True):
    """A tool (pytest, git, ...), shared by the posts that list it."""

    __tablename__ = "tool"

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(unique=True)


class Entity(SQLModel, table=True):
    """A named entity with its type, shared by the posts that mention it."""

    __tablename__ = "entity"
    __table_args__ = (UniqueConstraint("name", "type", name="uq_entity_name_type"),)

    id: int | None = Field(default=None, primary_key=True)
    name: str
    type: str = Field(index=True)


class PostStack(SQLModel, table=True):
    """Link: a post lists a stack term at a position."""

    __tablename__ = "post_stack"
    __table_args__ = (Index("ix_post_stack_term", "term_id", "post_id"), _CLUSTERED)

    post_id: int = Field(sa_column=_post_fk())
    term_id: int = Field(foreign_key="stack_term.id", primary_key=True)
    position: int


class PostTool(SQLModel, table=True):
    """Link: a post lists a tool at a position."""

    __tablename__ = "post_tool"
    __table_args__ = (Index("ix_post_tool_tool", "tool_id", "post_id"), _CLUSTERED)

    post_id: int = Field(sa_column=_post_fk())
    tool_id: int = Field(foreign_key="tool.id", primary_key=True)
    position: int


class PostEntity(SQLModel, table=True):
    """Link: a post mentions an entity at a position."""

    __tablename__ = "post_entity"
    __table_args__ = (Index("ix_post_entity_entity", "entity_id", "post_id"), _CLUSTERED)

    post_id: int = Field(sa_column=_post_fk())
    entity_id: int = Field(foreign_key="entity.id", primary_key=True)
    position: int


class SimilarPost(SQLModel, table=True):
    """A precomputed similar post: ``post_id``'s ``rank``-th most similar post is ``similar_id``."""

    __tablename__ = "similar_post"
    __table_args__ = (Index("ix_similar_post_similar", "similar_id"), _CLUSTERED)

    post_id: int = Field(sa_column=_post_fk())
    rank: int = Field(primary_key=True)
    similar_id: int = Field(sa_column=Column(Integer, ForeignKey("post.id", ondelete="CASCADE"), nullable=False))
    score: float
    reasons: str = Field(description="JSON list of what the two posts share")


class SimilarPending(SQLModel, table=True):
    """A post whose similar posts wait to be computed again; fresh posts have no row.

    Kept apart from ``post`` so that marking and clearing rewrite a narrow row, not a post's: on
    PostgreSQL an update writes a new version of the whole row, and a first import updating
    every post once would leave the post table twice its live size.
    """

    __tablename__ = "similar_pending"
    __table_args__ = _CLUSTERED

    post_id: int = Field(sa_column=_post_fk())
    state: int = Field(description="1 to recompute; 2 changed: recompute it and its neighbours")


class StoreVersion(SQLModel, table=True):
    """One row: a number every write transaction increases, so readers know when aggregates went stale."""

    __tablename__ = "store_version"

    id: int = Field(default=1, primary_key=True)
    version: int = Field(default=0, sa_type=BigInteger)


def table(model: type[SQLModel]) -> Table:
    """The Core table of a model, for bulk statements that skip the ORM."""
    return model.__table__  # type: ignore[attr-defined]
