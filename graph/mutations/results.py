"""What mutations return: a success, or a typed reason why nothing was written."""

from __future__ import annotations

from enum import Enum
from typing import Annotated

import strawberry

from documents import Problem

from ..post import Post


@strawberry.enum(description="Why a field's value was refused.")
class ValidationCode(Enum):
    REQUIRED = strawberry.enum_value("REQUIRED", description="A value is needed and none (or an empty one) was given.")
    INVALID_FORMAT = strawberry.enum_value(
        "INVALID_FORMAT", description="The value is not of the form the field takes (see the message)."
    )
    OUT_OF_RANGE = strawberry.enum_value("OUT_OF_RANGE", description="A number outside the field's range.")
    DUPLICATE = strawberry.enum_value("DUPLICATE", description="A value listed twice where each must be unique.")
    INVALID_REFERENCE = strawberry.enum_value(
        "INVALID_REFERENCE", description="A reference to something that is not there (such as an image position)."
    )
    IMMUTABLE = strawberry.enum_value("IMMUTABLE", description="A value that never changes once a post exists.")
    PARSE_ERROR = strawberry.enum_value(
        "PARSE_ERROR", description="A page-text document that is not well-formed (see line and message)."
    )


@strawberry.type(description="One field's problem.")
class FieldError:
    path: list[str] = strawberry.field(
        description='Where the problem is, from the mutation\'s input: such as `["meta", "scores", "quality"]` '
        'or `["body", "3", "paragraph"]`.'
    )
    code: ValidationCode = strawberry.field(description="What kind of problem.")
    message: str = strawberry.field(description="What was expected, in words.")


@strawberry.type(description="The input was refused; nothing was written.")
class ValidationError:
    message: str = strawberry.field(description="A summary of what is wrong.")
    fields: list[FieldError] = strawberry.field(description="Each problem, by field.")

    @classmethod
    def from_problems(cls, problems: list[Problem], prefix: tuple[str, ...] = ("input",)) -> ValidationError:
        fields = [
            FieldError(path=[*prefix, *_path(p.path)], code=ValidationCode(p.code), message=p.message) for p in problems
        ]
        summary = "; ".join(f"{'.'.join(f.path)}: {f.message}" for f in fields)
        return cls(message=f"the input is not valid: {summary}", fields=fields)


def _path(dotted: str) -> list[str]:
    """``body[3].paragraph`` -> ``["body", "3", "paragraph"]``; ``input`` (the whole) -> ``[]``."""
    if dotted == "input":
        return []
    parts: list[str] = []
    for part in dotted.split("."):
        name, *indexes = part.replace("]", "").split("[")
        parts.append(name)
        parts += indexes
    return parts


@strawberry.type(description="The post (or its revision) does not exist; nothing was written.")
class NotFound:
    message: str = strawberry.field(description="What was not found.")


@strawberry.type(description="The post changed since it was read, or a unique key belongs to another post.")
class Conflict:
    message: str = strawberry.field(description="What conflicts, and what to do.")
    current_hash: str | None = strawberry.field(
        default=None, description="The post's content hash now, when the conflict is a stale `expectedHash`."
    )


@strawberry.type(description="A post as it is after the mutation.")
class PostSaved:
    post: Post = strawberry.field(description="The post, as readers will now see it (archived posts: editors only).")
    revision: int = strawberry.field(description="The number of the revision this mutation made (or the current one).")
    changed: bool = strawberry.field(description="False when the post already was as asked and nothing was written.")


@strawberry.type(description="A document the importer refused.")
class ImportRejection:
    document: str = strawberry.field(description="The document's name.")
    error: str = strawberry.field(description="The document, line and what was expected there.")


@strawberry.type(description="What an import did, like the command line's receipt.")
class ImportReceipt:
    created: int = strawberry.field(description="Posts created.")
    updated: int = strawberry.field(description="Posts updated.")
    unchanged: int = strawberry.field(description="Documents identical to the stored post.")
    rejected: list[ImportRejection] = strawberry.field(description="Documents refused, with why.")
    post: Post | None = strawberry.field(description="The imported post, unless the document was rejected.")


ImportDocumentResult = Annotated[
    ImportReceipt | ValidationError | Conflict,
    strawberry.union("ImportDocumentResult", description="The receipt, or why the document was refused."),
]
CreatePostResult = Annotated[
    PostSaved | ValidationError | Conflict,
    strawberry.union("CreatePostResult", description="The new post, or why it was not created."),
]
UpdatePostResult = Annotated[
    PostSaved | ValidationError | NotFound | Conflict,
    strawberry.union("UpdatePostResult", description="The updated post, or why it was not updated."),
]
PostChangeResult = Annotated[
    PostSaved | ValidationError | NotFound | Conflict,
    strawberry.union("PostChangeResult", description="The post after the change, or why it was not made."),
]
