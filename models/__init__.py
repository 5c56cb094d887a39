"""SQLModel tables and engine set-up. Tables only: the write path is in ``store``."""

from .engine import create_all, create_engine, is_sqlite, normalize_url
from .tables import (
    ChecklistItem,
    Entity,
    Post,
    PostBlock,
    PostEntity,
    PostImage,
    PostNote,
    PostStack,
    PostTool,
    SimilarPost,
    StackTerm,
    Tool,
    table,
)

__all__ = [
    "ChecklistItem",
    "Entity",
    "Post",
    "PostBlock",
    "PostEntity",
    "PostImage",
    "PostNote",
    "PostStack",
    "PostTool",
    "SimilarPost",
    "StackTerm",
    "Tool",
    "create_all",
    "create_engine",
    "is_sqlite",
    "normalize_url",
    "table",
]
