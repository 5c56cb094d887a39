"""SQLModel tables and engine set-up. Tables only: the write path is in ``store``."""

from .accounts import ApiToken
from .engine import create_all, create_engine, is_sqlite, normalize_url
from .revisions import ImportReceiptRecord, PostRevision, PurgeLog
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
    SimilarPending,
    SimilarPost,
    StackTerm,
    StoreVersion,
    Tool,
    table,
)

__all__ = [
    "ApiToken",
    "ChecklistItem",
    "Entity",
    "ImportReceiptRecord",
    "Post",
    "PostBlock",
    "PostEntity",
    "PostImage",
    "PostNote",
    "PostRevision",
    "PostStack",
    "PostTool",
    "PurgeLog",
    "SimilarPending",
    "SimilarPost",
    "StackTerm",
    "StoreVersion",
    "Tool",
    "create_all",
    "create_engine",
    "is_sqlite",
    "normalize_url",
    "table",
]
