"""Mutations: editors write posts through the same store path as the importer.

Every mutation needs an editor or admin token (UNAUTHENTICATED, FORBIDDEN
otherwise) and returns a typed result: the post as saved, or ValidationError,
NotFound or Conflict, in which case nothing was written.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, TypeVar, cast

import strawberry

from documents import DocumentError, parse
from loaders import Loaders, RequestDb
from store import edit
from store.importer import import_sources
from store.sources import text_source

from ..auth import require_editor
from ..context import Info, Writer, WriteReport
from ..errors import ApiError
from ..node import decode_id
from ..post import Post
from .inputs import PostInput, PostPatch, apply_patch, document_from_input
from .results import (
    Conflict,
    CreatePostResult,
    FieldError,
    ImportDocumentResult,
    ImportReceipt,
    ImportRejection,
    NotFound,
    PostChangeResult,
    PostSaved,
    UpdatePostResult,
    ValidationCode,
    ValidationError,
)

T = TypeVar("T")

IdArg = Annotated[strawberry.ID, strawberry.argument(description="The post's global ID.")]


def _source_id(post_id: str) -> str | None:
    type_name, key = decode_id(post_id)
    return key if type_name == "Post" else None


async def _writer(info: Info) -> Writer:
    """The writer, once the request's read transaction has ended.

    A write takes connections of its own (the write engine's): the request gives its read
    connection back first, so that it never holds one while it waits for another. Behind a pooler
    in transaction mode both come from the same few server sessions, and mutations that each held
    a read transaction while they waited for a write connection would wait for each other. What a
    mutation answers is read afresh after its write (``_load_post``).
    """
    writer = info.context.writer
    if writer is None:  # pragma: no cover - the app always sets one
        raise ApiError("this server does not accept writes")
    await info.context.db.close()
    return writer


async def _saved(info: Info, saved: edit.Saved) -> PostSaved:
    post = await _load_post(info, saved.post_id)
    return PostSaved(post=post, revision=saved.revision, changed=saved.status != "unchanged")


async def _load_post(info: Info, post_id: int) -> Post:
    """The post as written: read, with all it holds, in a snapshot taken after the edit committed.

    The request's first snapshot began before the write (at the token's look-up) and ended
    before it (``_writer``), so the context gets a new database handle and loaders.
    """
    context = info.context
    await context.db.close()
    context.db = RequestDb(context.db.pool, include_archived=True)  # an editor's: archived posts too
    context.loaders = Loaders.create(context.db)
    row = await context.loaders.post_by_id.load(post_id)
    assert row is not None
    return Post.from_row(row)


# What an edit of a post answers.
EditOutcome = PostSaved | ValidationError | NotFound | Conflict


async def _run(info: Info, edit_fn: Callable[..., edit.Saved], *args: Any, **kwargs: Any) -> EditOutcome:
    """Run an edit; map the store's errors to result types."""
    try:
        saved = await (await _writer(info)).run(edit_fn, *args, **kwargs)
    except edit.Invalid as exc:
        return ValidationError.from_problems(exc.problems)
    except edit.NotFound as exc:
        return NotFound(message=exc.message)
    except edit.Conflict as exc:
        return Conflict(message=exc.message, current_hash=exc.current_hash)
    return await _saved(info, saved)


async def _post_id(info: Info, id: str) -> int | None:
    source_id = _source_id(id)
    return None if source_id is None else await (await _writer(info)).post_id(source_id)


def _not_found(id: str) -> NotFound:
    return NotFound(message=f"no post with id {id!r}")


async def _edit_post(
    info: Info, mutation: str, id: str, edit_fn: Callable[..., edit.Saved], *args: Any, **kwargs: Any
) -> EditOutcome:
    """An editor's edit of the post with this global ID (``NotFound`` when there is none)."""
    viewer = require_editor(info.context.viewer, mutation)
    post_id = await _post_id(info, id)
    if post_id is None:
        return _not_found(id)
    return await _run(info, edit_fn, post_id, *args, author=viewer.name, **kwargs)


@strawberry.type(description="Writing posts. Every mutation needs an editor or admin token.")
class Mutation:
    @strawberry.mutation(
        description="Import one page-text document, exactly as `alphanode import` would: created, updated or "
        "unchanged by its source id and content."
    )
    async def import_document(
        self, info: Info, text: Annotated[str, strawberry.argument(description="The document's page text.")]
    ) -> ImportDocumentResult:
        viewer = require_editor(info.context.viewer, "importDocument")
        try:
            document = parse(text, "text")
        except DocumentError as exc:
            return ValidationError(
                message=exc.describe(),
                fields=[FieldError(path=["text"], code=ValidationCode.PARSE_ERROR, message=exc.describe())],
            )
        writer = await _writer(info)
        async with writer.turn():
            receipt = await import_sources(
                writer.engine,
                [text_source(f"importDocument by {viewer.name}", text)],
                author=viewer.name,
                refresh=writer.refresh_inline,
            )
        post_id = await writer.post_id(document.source_id)
        # This process's cache is purged before the answer, like after any other mutation.
        await writer.notify(WriteReport(() if post_id is None else (post_id,)))
        if receipt.rejected:
            return Conflict(message="; ".join((o.error or "").split(": ", 1)[-1] for o in receipt.rejected))
        return ImportReceipt(
            created=receipt.created,
            updated=receipt.updated,
            unchanged=receipt.unchanged,
            rejected=[ImportRejection(document=o.name, error=o.error or "") for o in receipt.rejected],
            post=await _load_post(info, post_id) if post_id is not None else None,
        )

    @strawberry.mutation(description="Create a post from every part of it.")
    async def create_post(
        self, info: Info, input: Annotated[PostInput, strawberry.argument(description="The new post.")]
    ) -> CreatePostResult:
        viewer = require_editor(info.context.viewer, "createPost")
        document = document_from_input(input)
        outcome = await _run(info, edit.save_document, document, author=viewer.name, reason="created")
        return cast(CreatePostResult, outcome)  # (a new post is never NotFound)

    @strawberry.mutation(
        description="Change parts of a post. `expectedHash` is the `contentHash` you read: if the post changed "
        "since, the result is a Conflict and nothing changes."
    )
    async def update_post(
        self,
        info: Info,
        id: IdArg,
        input: Annotated[PostPatch, strawberry.argument(description="The parts to replace.")],
        expected_hash: Annotated[str, strawberry.argument(description="The post's `contentHash` when you read it.")],
    ) -> UpdatePostResult:
        return await _edit_post(
            info,
            "updatePost",
            id,
            edit.change_document,
            lambda document: apply_patch(document, input),
            reason="updated",
            expected_hash=expected_hash,
        )

    @strawberry.mutation(description="Mark a post reviewed: needs-human-review off, reviewed today, status `reviewed`.")
    async def mark_reviewed(self, info: Info, id: IdArg) -> PostChangeResult:
        return await _edit_post(info, "markReviewed", id, edit.mark_reviewed)

    @strawberry.mutation(description="Set a post's revision status.")
    async def set_status(
        self,
        info: Info,
        id: IdArg,
        status: Annotated[str, strawberry.argument(description="The new status, such as `published`.")],
    ) -> PostChangeResult:
        return await _edit_post(info, "setStatus", id, edit.set_status, status)

    @strawberry.mutation(
        description="Archive a post: readers no longer see it anywhere (post, lists, search, facets, similar posts)."
    )
    async def archive_post(self, info: Info, id: IdArg) -> PostChangeResult:
        return await _edit_post(info, "archivePost", id, edit.set_archived, True)

    @strawberry.mutation(description="Restore an archived post: readers see it again.")
    async def restore_post(self, info: Info, id: IdArg) -> PostChangeResult:
        return await _edit_post(info, "restorePost", id, edit.set_archived, False)

    @strawberry.mutation(
        description="Make an earlier revision the post's text again. The rollback is itself a new revision, so "
        "it can be undone the same way."
    )
    async def rollback_post(
        self,
        info: Info,
        id: IdArg,
        revision: Annotated[int, strawberry.argument(description="The revision number to go back to.")],
    ) -> PostChangeResult:
        return await _edit_post(info, "rollbackPost", id, edit.rollback, revision)
