"""A document as plain JSON-ready data, with the names the GraphQL API uses."""

from __future__ import annotations

from typing import Any

from ._model import BulletList, Document, Figure, Heading
from ._slug import slug_for


def to_dict(document: Document) -> dict[str, Any]:
    """The document's content as dicts and lists (camelCase keys, dates as YYYY-MM-DD)."""
    meta = document.meta
    images = [{"url": i.url, "caption": i.caption, "source": i.source, "position": i.position} for i in document.images]
    body: list[dict[str, Any]] = []
    for block in document.body:
        if isinstance(block, Figure):
            body.append({"type": "image", "image": images[block.image - 1]})
        elif isinstance(block, BulletList):
            body.append({"type": "list", "items": list(block.items)})
        else:
            body.append({"type": "heading" if isinstance(block, Heading) else "paragraph", "text": block.text})
    reviewed = meta.revision.last_reviewed
    return {
        "slug": slug_for(document),
        "title": document.title,
        "intro": document.intro,
        "body": body,
        "images": images,
        "meta": {
            "topic": meta.topic,
            "summary": meta.summary,
            "aiOutline": {
                "context": meta.outline.context,
                "problem": meta.outline.problem,
                "stack": meta.outline.stack,
                "recommendedAction": meta.outline.recommended_action,
            },
            "aiBrief": meta.ai_brief,
            "stack": list(meta.stack),
            "tools": list(meta.tools),
            "codeLanguage": meta.code_language,
            "difficulty": meta.difficulty,
            "readingTime": meta.reading_time,
            "viewCount": meta.view_count,
            "revision": {
                "status": meta.revision.status,
                "version": meta.revision.version,
                "lastReviewed": reviewed.isoformat() if reviewed else None,
            },
            "reference": meta.reference,
            "hash": meta.hash,
            "flags": {
                "aiGeneratedStyle": meta.flags.ai_generated_style,
                "hasImages": meta.flags.has_images,
                "imageHeavy": meta.flags.image_heavy,
                "needsHumanReview": meta.flags.needs_human_review,
            },
            "checklist": list(meta.checklist),
            "payload": {
                "sourceId": meta.payload.source_id,
                "generator": meta.payload.generator,
                "paragraphs": meta.payload.paragraphs,
                "scenario": meta.payload.scenario,
                "seed": meta.payload.seed,
            },
            "notes": list(meta.notes),
        },
        "scores": {
            "quality": meta.scores.quality,
            "freshness": meta.scores.freshness,
            "depth": meta.scores.depth,
            "clarity": meta.scores.clarity,
        },
        "entities": [{"name": e.name, "type": e.type} for e in meta.entities],
    }
