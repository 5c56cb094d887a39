"""Typed inputs for writing posts, and their translation into documents.

``PostInput`` holds every part of a post (createPost); ``PostPatch`` holds any
of them (updatePost), each part replacing the stored one whole. Layout is
chosen the way the content synthesizer lays pages out: one blank line between
blocks, none before an image that follows a list or another image.
"""

from __future__ import annotations

import dataclasses
import datetime as dt

import strawberry

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
)


@strawberry.input(description="The four editorial scores, each 0..100.")
class ScoresInput:
    quality: int = strawberry.field(description="Quality, 0..100.")
    freshness: int = strawberry.field(description="Freshness, 0..100.")
    depth: int = strawberry.field(description="Depth, 0..100.")
    clarity: int = strawberry.field(description="Clarity, 0..100.")


@strawberry.input(description="The outline the post is written from.")
class AiOutlineInput:
    context: str = strawberry.field(description="The situation the post is set in.")
    problem: str = strawberry.field(description="The problem the post addresses.")
    stack: str = strawberry.field(description="The main stack.")
    recommended_action: str = strawberry.field(description="What the post recommends.")


@strawberry.input(description="Revision status, version and date of the last review.")
class RevisionInput:
    status: str = strawberry.field(description="Revision status, such as `drafted` or `reviewed`.")
    version: str = strawberry.field(description="Version of the text, such as `1.7.2`.")
    last_reviewed: dt.date | None = strawberry.field(default=None, description="Last review; null if never.")


@strawberry.input(description="Boolean flags of a post.")
class FlagsInput:
    ai_generated_style: bool = strawberry.field(description="Written in the style of generated text.")
    has_images: bool = strawberry.field(description="The post shows at least one image.")
    image_heavy: bool = strawberry.field(description="Images carry much of the post.")
    needs_human_review: bool = strawberry.field(description="An editor should review the post.")


@strawberry.input(description="Provenance of a post.")
class PayloadInput:
    source_id: str = strawberry.field(description="The source id: the post's import key; it never changes.")
    generator: str = strawberry.field(description="What produced the post, such as `editor`.")
    paragraphs: int = strawberry.field(description="Number of body paragraphs.")
    scenario: str = strawberry.field(description="The scenario the post was written for.")
    seed: int = strawberry.field(description="The generator's seed; 0 for posts written by hand.")


@strawberry.input(description="An image of a post; the body shows it where an `image` block names its position.")
class ImageInput:
    url: str = strawberry.field(description="Where the image is served from.")
    caption: str = strawberry.field(description="The caption under the image.")
    source: str = strawberry.field(description="Who provides the image, such as `unsplash`.")


@strawberry.input(description="An entity the post is about.")
class EntityInput:
    name: str = strawberry.field(description="The entity's name.")
    type: str = strawberry.field(description="The entity's type, such as `stack`, `area` or `problem`.")


@strawberry.input(one_of=True, description="One block of the body: exactly one of its fields.")
class BlockInput:
    heading: str | None = strawberry.field(
        default=strawberry.UNSET, description="A heading; it must not end like a sentence."
    )
    paragraph: str | None = strawberry.field(
        default=strawberry.UNSET, description="A paragraph; it must end like a sentence (. ! ? …)."
    )
    list: list[str] | None = strawberry.field(default=strawberry.UNSET, description="A bulleted list's items.")
    image: int | None = strawberry.field(
        default=strawberry.UNSET, description="The 1-based position of the image to show here."
    )


@strawberry.input(description="The meta block of a post.")
class PostMetaInput:
    topic: str = strawberry.field(description="The topic, such as `caching / python services`.")
    summary: str = strawberry.field(description="A one-paragraph summary.")
    ai_outline: AiOutlineInput = strawberry.field(description="The outline.")
    ai_brief: str = strawberry.field(description="How the post was written.")
    stack: list[str] = strawberry.field(description="Stack terms, at least one, each once.")
    tools: list[str] = strawberry.field(description="Tools, each once.")
    code_language: str = strawberry.field(description="The main language of the post's code.")
    difficulty: str = strawberry.field(description="`beginner`, `intermediate`, `advanced`, ...")
    reading_time: int = strawberry.field(description="Reading time in minutes.")
    view_count: int = strawberry.field(description="Number of views.")
    revision: RevisionInput = strawberry.field(description="Revision status, version and last review.")
    reference: str = strawberry.field(description="The unique editorial reference.")
    hash: str = strawberry.field(description="The synthesizer's hash of the document (hexadecimal).")
    flags: FlagsInput = strawberry.field(description="Boolean flags.")
    checklist: list[str] = strawberry.field(description="The checklist.")
    payload: PayloadInput = strawberry.field(description="Provenance.")
    notes: list[str] = strawberry.field(description="Editorial notes.")


@strawberry.input(description="Every part of a new post.")
class PostInput:
    title: str = strawberry.field(description="The title.")
    intro: str = strawberry.field(description="The introductory paragraph.")
    body: list[BlockInput] = strawberry.field(description="The body, block by block.")
    images: list[ImageInput] = strawberry.field(description="The images, in the order the body shows them.")
    meta: PostMetaInput = strawberry.field(description="The meta block.")
    scores: ScoresInput = strawberry.field(description="The editorial scores.")
    entities: list[EntityInput] = strawberry.field(description="Entities the post is about, each once.")


@strawberry.input(description="Changes to the meta block: each field that is set replaces the stored one.")
class PostMetaPatch:
    topic: str | None = strawberry.field(default=None, description="The topic.")
    summary: str | None = strawberry.field(default=None, description="The summary.")
    ai_outline: AiOutlineInput | None = strawberry.field(default=None, description="The outline, whole.")
    ai_brief: str | None = strawberry.field(default=None, description="The brief.")
    stack: list[str] | None = strawberry.field(default=None, description="Stack terms, whole.")
    tools: list[str] | None = strawberry.field(default=None, description="Tools, whole.")
    code_language: str | None = strawberry.field(default=None, description="The code language.")
    difficulty: str | None = strawberry.field(default=None, description="The difficulty.")
    reading_time: int | None = strawberry.field(default=None, description="Reading time in minutes.")
    view_count: int | None = strawberry.field(default=None, description="Number of views.")
    revision: RevisionInput | None = strawberry.field(default=None, description="Revision fields, whole.")
    reference: str | None = strawberry.field(default=None, description="The editorial reference.")
    hash: str | None = strawberry.field(default=None, description="The synthesizer's hash.")
    flags: FlagsInput | None = strawberry.field(default=None, description="The flags, whole.")
    checklist: list[str] | None = strawberry.field(default=None, description="The checklist, whole.")
    notes: list[str] | None = strawberry.field(default=None, description="The notes, whole.")


@strawberry.input(description="Changes to a post: each field that is set replaces the stored part whole.")
class PostPatch:
    title: str | None = strawberry.field(default=None, description="The title.")
    intro: str | None = strawberry.field(default=None, description="The introductory paragraph.")
    body: list[BlockInput] | None = strawberry.field(default=None, description="The body, whole.")
    images: list[ImageInput] | None = strawberry.field(default=None, description="The images, whole.")
    meta: PostMetaPatch | None = strawberry.field(default=None, description="Changes to the meta block.")
    scores: ScoresInput | None = strawberry.field(default=None, description="The scores, whole.")
    entities: list[EntityInput] | None = strawberry.field(default=None, description="The entities, whole.")


def _blocks(blocks: list[BlockInput]) -> tuple[Block, ...]:
    out: list[Block] = []
    previous: Block | None = None
    for block in blocks:
        made: Block
        if block.heading not in (None, strawberry.UNSET):
            made = Heading(str(block.heading), 1)
        elif block.paragraph not in (None, strawberry.UNSET):
            made = Paragraph(str(block.paragraph), 1)
        elif block.list not in (None, strawberry.UNSET):
            made = BulletList(tuple(block.list or ()), 1)
        else:
            position = int(block.image or 0)
            made = Figure(position, 0 if isinstance(previous, (BulletList, Figure)) else 1)
        out.append(made)
        previous = made
    return tuple(out)


def _images(images: list[ImageInput]) -> tuple[Image, ...]:
    return tuple(Image(i, image.caption, image.source, image.url) for i, image in enumerate(images, 1))


def _outline(o: AiOutlineInput) -> Outline:
    return Outline(o.context, o.problem, o.stack, o.recommended_action)


def _revision(r: RevisionInput) -> Revision:
    return Revision(r.status, r.version, r.last_reviewed)


def _flags(f: FlagsInput) -> Flags:
    return Flags(f.ai_generated_style, f.has_images, f.image_heavy, f.needs_human_review)


def _entities(entities: list[EntityInput]) -> tuple[Entity, ...]:
    return tuple(Entity(e.name, e.type) for e in entities)


def document_from_input(post: PostInput) -> Document:
    """A new post's document, laid out like the synthesizer's."""
    meta = post.meta
    return Document(
        title=post.title,
        intro=post.intro,
        body=_blocks(post.body),
        images=_images(post.images),
        meta=Meta(
            topic=meta.topic,
            summary=meta.summary,
            outline=_outline(meta.ai_outline),
            ai_brief=meta.ai_brief,
            stack=tuple(meta.stack),
            tools=tuple(meta.tools),
            code_language=meta.code_language,
            difficulty=meta.difficulty,
            reading_time=meta.reading_time,
            view_count=meta.view_count,
            scores=Scores(post.scores.quality, post.scores.freshness, post.scores.depth, post.scores.clarity),
            revision=_revision(meta.revision),
            reference=meta.reference,
            hash=meta.hash,
            flags=_flags(meta.flags),
            checklist=tuple(meta.checklist),
            entities=_entities(post.entities),
            payload=Payload(
                meta.payload.source_id,
                meta.payload.generator,
                meta.payload.paragraphs,
                meta.payload.scenario,
                meta.payload.seed,
            ),
            notes=tuple(meta.notes),
        ),
        layout=Layout(),
    )


def apply_patch(document: Document, patch: PostPatch) -> Document:
    """The document with the patch's parts replaced; layout kept where the body is."""
    meta = document.meta
    if patch.meta is not None:
        m = patch.meta
        meta = dataclasses.replace(
            meta,
            topic=meta.topic if m.topic is None else m.topic,
            summary=meta.summary if m.summary is None else m.summary,
            outline=meta.outline if m.ai_outline is None else _outline(m.ai_outline),
            ai_brief=meta.ai_brief if m.ai_brief is None else m.ai_brief,
            stack=meta.stack if m.stack is None else tuple(m.stack),
            tools=meta.tools if m.tools is None else tuple(m.tools),
            code_language=meta.code_language if m.code_language is None else m.code_language,
            difficulty=meta.difficulty if m.difficulty is None else m.difficulty,
            reading_time=meta.reading_time if m.reading_time is None else m.reading_time,
            view_count=meta.view_count if m.view_count is None else m.view_count,
            revision=meta.revision if m.revision is None else _revision(m.revision),
            reference=meta.reference if m.reference is None else m.reference,
            hash=meta.hash if m.hash is None else m.hash,
            flags=meta.flags if m.flags is None else _flags(m.flags),
            checklist=meta.checklist if m.checklist is None else tuple(m.checklist),
            notes=meta.notes if m.notes is None else tuple(m.notes),
        )
    if patch.scores is not None:
        s = patch.scores
        meta = dataclasses.replace(meta, scores=Scores(s.quality, s.freshness, s.depth, s.clarity))
    if patch.entities is not None:
        meta = dataclasses.replace(meta, entities=_entities(patch.entities))
    return dataclasses.replace(
        document,
        title=document.title if patch.title is None else patch.title,
        intro=document.intro if patch.intro is None else patch.intro,
        body=document.body if patch.body is None else _blocks(patch.body),
        images=document.images if patch.images is None else _images(patch.images),
        meta=meta,
    )
