"""Mapping between a :class:`documents.Document` and the rows of the store.

``to_rows`` splits a document into the post row and its child rows;
``from_rows`` puts them back together. The two are inverses: the export of a
stored post renders to the bytes that were imported.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from documents import (
    Block,
    BulletList,
    Document,
    Entity,
    Figure,
    Flags,
    Heading,
    Image,
    Layout,
    Meta,
    Outline,
    Paragraph,
    Payload,
    Revision,
    Scores,
    render,
    slug_for,
)


def content_hash(text: str) -> str:
    """The content hash that decides created / updated / unchanged: sha256 of the page text."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@dataclass(frozen=True, slots=True)
class PostRows:
    """A document split into rows; child rows lack ``post_id`` until the post has an id."""

    post: dict[str, Any]
    blocks: list[dict[str, Any]]
    images: list[dict[str, Any]]
    checklist: list[dict[str, Any]]
    notes: list[dict[str, Any]]
    stack: tuple[str, ...]
    tools: tuple[str, ...]
    entities: tuple[tuple[str, str], ...]
    search: dict[str, str]  # the text the search index holds, by column
    text: str  # the page text, as the revision history keeps it


def to_rows(document: Document, text: str | None = None, now: dt.datetime | None = None) -> PostRows:
    """Split a document into rows. ``text`` is its page text, if already at hand."""
    text = render(document) if text is None else text
    now = now or dt.datetime.now(dt.UTC)
    meta = document.meta
    post = {
        "source_id": meta.payload.source_id,
        "reference": meta.reference,
        "slug": slug_for(document),
        "title": document.title,
        "intro": document.intro,
        "topic": meta.topic,
        "summary": meta.summary,
        "outline_context": meta.outline.context,
        "outline_problem": meta.outline.problem,
        "outline_stack": meta.outline.stack,
        "outline_action": meta.outline.recommended_action,
        "ai_brief": meta.ai_brief,
        "code_language": meta.code_language,
        "difficulty": meta.difficulty,
        "reading_time": meta.reading_time,
        "view_count": meta.view_count,
        "quality": meta.scores.quality,
        "freshness": meta.scores.freshness,
        "depth": meta.scores.depth,
        "clarity": meta.scores.clarity,
        "status": meta.revision.status,
        "version": meta.revision.version,
        "last_reviewed": meta.revision.last_reviewed,
        "meta_hash": meta.hash,
        "ai_generated_style": meta.flags.ai_generated_style,
        "has_images": meta.flags.has_images,
        "image_heavy": meta.flags.image_heavy,
        "needs_human_review": meta.flags.needs_human_review,
        "generator": meta.payload.generator,
        "paragraphs": meta.payload.paragraphs,
        "scenario": meta.payload.scenario,
        "seed": meta.payload.seed,
        "header": document.layout.header,
        "newline": document.layout.newline,
        "final_newline": document.layout.final_newline,
        "trailer": json.dumps(list(document.layout.trailer)) if document.layout.trailer else None,
        "content_hash": content_hash(text),
        "created_at": now,
        "updated_at": now,
    }
    return PostRows(
        post=post,
        blocks=list(_block_rows(document.body)),
        images=[
            {"position": i.position, "caption": i.caption, "source": i.source, "url": i.url} for i in document.images
        ],
        checklist=[{"position": n, "text": t} for n, t in enumerate(meta.checklist, 1)],
        notes=[{"position": n, "text": t} for n, t in enumerate(meta.notes, 1)],
        stack=meta.stack,
        tools=meta.tools,
        entities=tuple((e.name, e.type) for e in meta.entities),
        search=search_text(document),
        text=text,
    )


def search_text(document: Document) -> dict[str, str]:
    """What full-text search looks at: title, intro, the body's text, checklist, summary and topic."""
    body: list[str] = []
    for block in document.body:
        if isinstance(block, BulletList):
            body += block.items
        elif isinstance(block, (Heading, Paragraph)):
            body.append(block.text)
    return {
        "title": document.title,
        "intro": document.intro,
        "body": "\n".join(body),
        "checklist": "\n".join(document.meta.checklist),
        "summary": document.meta.summary,
        "topic": document.meta.topic,
    }


def _block_rows(body: Iterable[Block]) -> Iterable[dict[str, Any]]:
    position = 0
    for block in body:
        if isinstance(block, BulletList):
            for n, item in enumerate(block.items):
                position += 1
                yield _block(position, "item", item, None, block.gap if n == 0 else 0)
        elif isinstance(block, Figure):
            position += 1
            yield _block(position, "image", None, block.image, block.gap)
        else:
            position += 1
            kind = "heading" if isinstance(block, Heading) else "paragraph"
            yield _block(position, kind, block.text, None, block.gap)


def _block(position: int, kind: str, text: str | None, image: int | None, gap: int) -> dict[str, Any]:
    return {"position": position, "kind": kind, "text": text, "image": image, "gap": gap}


def blocks_from_rows(rows: Sequence[Any]) -> list[Block]:
    """Body blocks from ``post_block`` rows (with kind, text, image, gap) in position order.

    Consecutive list items with no blank line between them form one list.
    """
    blocks: list[Block] = []
    items: list[str] = []
    items_gap = 0

    def flush() -> None:
        nonlocal items
        if items:
            blocks.append(BulletList(tuple(items), items_gap))
            items = []

    for row in rows:
        kind, text, image, gap = row.kind, row.text, row.image, row.gap
        if kind == "item":
            if items and gap == 0:
                items.append(text)
                continue
            flush()
            items, items_gap = [text], gap
            continue
        flush()
        if kind == "heading":
            blocks.append(Heading(text, gap))
        elif kind == "paragraph":
            blocks.append(Paragraph(text, gap))
        elif kind == "image":
            blocks.append(Figure(image, gap))
        else:  # pragma: no cover - the write path never stores another kind
            raise ValueError(f"unknown block kind {kind!r}")
    flush()
    return blocks


def from_rows(
    post: Any,
    blocks: Sequence[Any],
    images: Sequence[Any],
    checklist: Sequence[str],
    notes: Sequence[str],
    stack: Sequence[str],
    tools: Sequence[str],
    entities: Sequence[tuple[str, str]],
) -> Document:
    """Rebuild the document of a stored post from its rows (attribute access on ``post``)."""
    return Document(
        title=post.title,
        intro=post.intro,
        body=tuple(blocks_from_rows(blocks)),
        images=tuple(Image(i.position, i.caption, i.source, i.url) for i in images),
        meta=Meta(
            topic=post.topic,
            summary=post.summary,
            outline=Outline(post.outline_context, post.outline_problem, post.outline_stack, post.outline_action),
            ai_brief=post.ai_brief,
            stack=tuple(stack),
            tools=tuple(tools),
            code_language=post.code_language,
            difficulty=post.difficulty,
            reading_time=post.reading_time,
            view_count=post.view_count,
            scores=Scores(post.quality, post.freshness, post.depth, post.clarity),
            revision=Revision(post.status, post.version, post.last_reviewed),
            reference=post.reference,
            hash=post.meta_hash,
            flags=Flags(
                bool(post.ai_generated_style),
                bool(post.has_images),
                bool(post.image_heavy),
                bool(post.needs_human_review),
            ),
            checklist=tuple(checklist),
            entities=tuple(Entity(name, type_) for name, type_ in entities),
            payload=Payload(post.source_id, post.generator, post.paragraphs, post.scenario, post.seed),
            notes=tuple(notes),
        ),
        layout=Layout(
            header=post.header,
            newline=post.newline,
            final_newline=bool(post.final_newline),
            trailer=tuple(json.loads(post.trailer)) if post.trailer else (),
        ),
    )
