"""Edits by editors: save a post, mark it reviewed, set its status, archive, restore, roll back.

Every edit is one transaction through the same write path as imports
(``write.write_batch``): the search index, the revision history and the marks
for similar posts move with it. Optimistic concurrency: an edit that names the
content hash it started from fails with :class:`Conflict` if the post changed
meanwhile, and changes nothing.

    EditError            an edit that cannot be made; nothing was written
    ├── NotFound         no such post, or no such revision
    ├── Conflict         the post changed since, or a key belongs to another post
    └── Invalid          the result would not be a well-formed post (problems by field)
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

from sqlalchemy import Connection, Engine, select
from sqlalchemy.ext.asyncio import AsyncEngine

from documents import Document, Problem, parse, render, validate
from models import Post, table
from models.engine import is_sqlite, sync_twin
from models.trouble import diagnose

from . import edit_rows
from .revisions import latest_number, text_of
from .rows import content_hash, to_rows
from .similar import refresh_similar
from .write import Incoming, VocabularyCache, write_batch

log = logging.getLogger("alphanode.edit")

post_t = table(Post)
T = TypeVar("T")


class EditError(Exception):
    """An edit that cannot be made; nothing was written."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class NotFound(EditError):
    """No such post, or no such revision of it."""


class Conflict(EditError):
    """The post changed since the edit began, or a key it needs belongs to another post."""

    def __init__(self, message: str, current_hash: str | None = None) -> None:
        super().__init__(message)
        self.current_hash = current_hash


class Invalid(EditError):
    """The edited post would not be well-formed."""

    def __init__(self, problems: list[Problem]) -> None:
        super().__init__("the post is not valid: " + "; ".join(f"{p.path}: {p.message}" for p in problems))
        self.problems = problems


@dataclass(frozen=True, slots=True)
class Saved:
    """What an edit did."""

    post_id: int
    status: Literal["created", "updated", "unchanged"]
    revision: int
    content_hash: str


def post_id_of(conn: Connection, source_id: str) -> int | None:
    return conn.execute(select(post_t.c.id).where(post_t.c.source_id == source_id)).scalar_one_or_none()


def save_document(
    conn: Connection,
    document: Document,
    *,
    author: str,
    reason: str,
    post_id: int | None = None,
    expected_hash: str | None = None,
    text: str | None = None,
) -> Saved:
    """Create the post (``post_id`` None) or replace the post ``post_id`` with ``document``."""
    problems = validate(document) if text is None else []
    if problems:
        raise Invalid(problems)
    text = render(document) if text is None else text
    if post_id is not None:
        stored = _stored(conn, post_id)
        if document.source_id != stored.source_id:
            raise Invalid([Problem("meta.payload.sourceId", "IMMUTABLE", "the source id of a post never changes")])
        if expected_hash is not None and expected_hash != stored.content_hash:
            raise Conflict("the post changed since you read it: read it again and redo the edit", stored.content_hash)
        return _save_over(conn, stored, document, text, author=author, reason=reason)
    existing = post_id_of(conn, document.source_id)
    if existing is not None:
        raise Conflict(f"a post with source id {document.source_id!r} exists already: update it instead")
    (outcome,) = write_batch(conn, [Incoming(reason, text, document, author=author, reason=reason)], VocabularyCache())
    if outcome.status == "rejected":
        raise Conflict((outcome.error or "").split(": ", 1)[-1])
    assert outcome.post_id is not None
    revision = latest_number(conn, outcome.post_id)
    return Saved(outcome.post_id, outcome.status, revision, content_hash(text))


def change_document(
    conn: Connection,
    post_id: int,
    change: Callable[[Document], Document],
    *,
    author: str,
    reason: str,
    expected_hash: str | None = None,
) -> Saved:
    """Load the post, apply ``change`` to its document and save the result."""
    stored = _stored(conn, post_id)
    if expected_hash is not None and expected_hash != stored.content_hash:
        raise Conflict("the post changed since you read it: read it again and redo the edit", stored.content_hash)
    document = change(stored.document)
    problems = validate(document)
    if problems:
        raise Invalid(problems)
    if document.source_id != stored.source_id:
        raise Invalid([Problem("meta.payload.sourceId", "IMMUTABLE", "the source id of a post never changes")])
    return _save_over(conn, stored, document, render(document), author=author, reason=reason)


def _stored(conn: Connection, post_id: int) -> edit_rows.Stored:
    """The post as an edit reads it, locked on PostgreSQL until the transaction ends; NotFound if none."""
    stored = edit_rows.load(conn, post_id)
    if stored is None:
        raise NotFound("no post with this id")
    return stored


def _save_over(
    conn: Connection, stored: edit_rows.Stored, document: Document, text: str, *, author: str, reason: str
) -> Saved:
    """Write ``document`` (rendered as ``text``) over the stored post: only what moved."""
    new_hash = content_hash(text)
    if new_hash == stored.content_hash:
        return Saved(stored.post_id, "unchanged", stored.revision, new_hash)
    now = dt.datetime.now(dt.UTC)
    old, new = edit_rows.old_rows(stored), to_rows(document, text, now)
    if (old.post["reference"], old.post["slug"]) != (new.post["reference"], new.post["slug"]):
        clash = edit_rows.taken_key(conn, stored.post_id, new)
        if clash is not None:
            raise Conflict(clash)
    number = edit_rows.write(conn, stored, old, new, author=author, reason=reason, now=now)
    return Saved(stored.post_id, "updated", number, new_hash)


def mark_reviewed(conn: Connection, post_id: int, *, author: str, today: dt.date | None = None) -> Saved:
    """Reviewed today: needs-human-review off, last reviewed today, status `reviewed`."""
    day = today or dt.datetime.now(dt.UTC).date()

    def change(document: Document) -> Document:
        meta = document.meta
        return dataclasses.replace(
            document,
            meta=dataclasses.replace(
                meta,
                flags=dataclasses.replace(meta.flags, needs_human_review=False),
                revision=dataclasses.replace(meta.revision, status="reviewed", last_reviewed=day),
            ),
        )

    return change_document(conn, post_id, change, author=author, reason="marked reviewed")


def set_status(conn: Connection, post_id: int, status: str, *, author: str) -> Saved:
    def change(document: Document) -> Document:
        meta = document.meta
        return dataclasses.replace(
            document, meta=dataclasses.replace(meta, revision=dataclasses.replace(meta.revision, status=status))
        )

    return change_document(conn, post_id, change, author=author, reason=f"status set to {status}")


def set_archived(conn: Connection, post_id: int, archived: bool, *, author: str) -> Saved:
    """Archive (hide from readers everywhere) or restore a post; the history records who and when."""
    stored = _stored(conn, post_id)
    if stored.archived == archived:
        return Saved(post_id, "unchanged", stored.revision, stored.content_hash)
    now = dt.datetime.now(dt.UTC)
    rows = to_rows(stored.document, render(stored.document), now)
    rows.post["content_hash"] = stored.content_hash  # the text is the post's as stored
    number = edit_rows.write(
        conn,
        stored,
        rows,
        rows,
        author=author,
        reason="archived" if archived else "restored",
        now=now,
        archived_at=now if archived else None,
    )
    return Saved(post_id, "updated", number, stored.content_hash)


def rollback(conn: Connection, post_id: int, number: int, *, author: str) -> Saved:
    """Make revision ``number`` the current text again; the rollback is itself a new revision."""
    _stored(conn, post_id)
    text = text_of(conn, post_id, number)
    if text is None:
        raise NotFound(f"this post has no revision {number}")
    document = parse(text, f"revision {number}")
    return save_document(
        conn, document, author=author, reason=f"rolled back to revision {number}", post_id=post_id, text=text
    )


async def run_edit(engine: AsyncEngine, edit: Callable[..., T], *args: Any, refresh: bool = True, **kwargs: Any) -> T:
    """Run one edit in its own write transaction, then refresh similar posts of what it touched
    (unless ``refresh`` is False: a server's ``store.refresher`` does it in the background).

    On SQLite the transaction runs in a worker thread on the store's synchronous twin
    (``models.engine.sync_twin``): the same statements without a thread hop for each.
    """
    if is_sqlite(engine):
        return_value = await asyncio.to_thread(_edit_in_thread, sync_twin(engine), edit, args, kwargs)
    else:
        async with engine.connect() as conn:
            conn = await conn.execution_options(sqlite_immediate=True)
            async with conn.begin():
                return_value = await conn.run_sync(lambda sync: edit(sync, *args, **kwargs))
    if not refresh:
        return return_value
    # The edit is committed: its answer must say so whatever happens next. A refresh that fails
    # (the database gone a moment later) leaves its posts marked, and the next refresh, after any
    # write or import, completes it.
    try:
        await refresh_similar(engine)
    except Exception as exc:
        if diagnose(exc) is None:  # a bug: its traceback for the operator
            log.exception("similar posts not refreshed after an edit; left to the next write")
        else:
            log.warning("similar posts not refreshed after an edit, left to the next write: %s", exc.__class__.__name__)
    return return_value


def _edit_in_thread(engine: Engine, edit: Callable[..., T], args: tuple[Any, ...], kwargs: dict[str, Any]) -> T:
    with engine.connect() as conn:
        conn = conn.execution_options(sqlite_immediate=True)
        with conn.begin():
            return edit(conn, *args, **kwargs)
