"""Render a :class:`~documents.Document` back into page text."""

from __future__ import annotations

from . import _format as f
from ._model import BulletList, Document, Figure, Heading, Paragraph


def render(document: Document) -> str:
    """The page text of a document: ``render(parse(text)) == text``."""
    return document.layout.newline.join(_lines(document)) + (
        document.layout.newline if document.layout.final_newline else ""
    )


def _lines(doc: Document) -> list[str]:
    meta = doc.meta
    out: list[str] = []
    if doc.layout.header is not None:
        out += [doc.layout.header, ""]
    out += [doc.title, "", doc.intro]
    for block in doc.body:
        out += [""] * block.gap
        if isinstance(block, (Heading, Paragraph)):
            out.append(block.text)
        elif isinstance(block, BulletList):
            out += [f.BULLET + item for item in block.items]
        elif isinstance(block, Figure):
            image = doc.images[block.image - 1]
            out += [image.caption, f"{image.caption}{f.IMAGE_SOURCE_MARK}{image.source}"]
    out += ["", f.META_HEADING, ""]
    outline = meta.outline
    scores = meta.scores
    revision = meta.revision
    flags = meta.flags
    payload = meta.payload
    out.append("topic" + meta.topic)
    out.append("summary" + meta.summary)
    out += _keyed(
        "ai outline",
        f.OUTLINE_KEYS,
        (outline.context, outline.problem, outline.stack, outline.recommended_action),
    )
    out.append("ai brief" + meta.ai_brief)
    out += _list("stack", meta.stack)
    out += _list("tools", meta.tools)
    out.append("code language" + meta.code_language)
    out.append("difficulty" + meta.difficulty)
    out.append(f"reading time{meta.reading_time}")
    out.append(f"view count{meta.view_count}")
    out += _keyed("score", f.SCORE_KEYS, (scores.quality, scores.freshness, scores.depth, scores.clarity))
    reviewed = revision.last_reviewed.isoformat() if revision.last_reviewed else ""
    out += _keyed("revision", f.REVISION_KEYS, (revision.status, revision.version, reviewed))
    out.append("reference" + meta.reference)
    out.append("hash" + meta.hash)
    out += _keyed(
        "flags",
        f.FLAG_KEYS,
        tuple(
            int(v) for v in (flags.ai_generated_style, flags.has_images, flags.image_heavy, flags.needs_human_review)
        ),
    )
    out += _list("checklist", meta.checklist)
    out.append("entities")
    for entity in meta.entities:
        out += _pairs(f.RECORD_BULLET, f.ENTITY_KEYS, (entity.name, entity.type))
    out.append("image sources")
    for image in doc.images:
        out += _pairs(f.RECORD_BULLET, f.IMAGE_SOURCE_KEYS, (image.source, image.url, image.caption))
    out += _keyed(
        "payload",
        f.PAYLOAD_KEYS,
        (payload.source_id, payload.generator, payload.paragraphs, payload.scenario, payload.seed),
    )
    out += _list("notes", meta.notes)
    out += ["", f.SIMILAR_HEADING]
    out += doc.layout.trailer
    return out


def _list(label: str, items: tuple[str, ...]) -> list[str]:
    return [label] + [f.BULLET + item for item in items]


def _keyed(label: str, keys: tuple[str, ...], values: tuple[object, ...]) -> list[str]:
    return [label, *_pairs(f.BULLET, keys, values)]


def _pairs(prefix: str, keys: tuple[str, ...], values: tuple[object, ...]) -> list[str]:
    return [f"{prefix}{key}: {value}" for key, value in zip(keys, values, strict=True)]
