"""Check a Document built in code (by an editor, not parsed from text) as strictly as the parser checks text.

Each problem names the field by its path in the API's input (``meta.scores.quality``,
``body[3].paragraph``), says what is wrong with a code, and what was expected. A
document without problems renders to text that parses back to the same document.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from . import _format as f
from ._errors import DocumentError
from ._model import BulletList, Document, Figure, Heading, Meta, Paragraph
from ._parse import _CONTROL, _HEX, _HTML_TAG, _KEY, _SENTENCE_END, _VERSION, parse
from ._render import render

_HEADING_AS_PARAGRAPH = "a heading must not end like a sentence (. ! ? : ; quotes, ) or …)"


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with a field."""

    path: str
    code: str  # REQUIRED, INVALID_FORMAT, OUT_OF_RANGE, DUPLICATE, INVALID_REFERENCE, TAKEN, IMMUTABLE
    message: str


class _Checks:
    """The problems found so far, and the checks of one value that add to them."""

    def __init__(self) -> None:
        self.problems: list[Problem] = []
        self.add = self.problems.append

    def text(self, path: str, value: str, *, line_start_ok: bool = True) -> None:
        add = self.add
        if not value.strip():
            add(Problem(path, "REQUIRED", "must not be empty"))
            return
        if "\n" in value or "\r" in value:
            add(Problem(path, "INVALID_FORMAT", "must be one line: no line breaks"))
        elif _CONTROL.search(value):
            add(Problem(path, "INVALID_FORMAT", "must not hold control characters"))
        elif _HTML_TAG.search(value):
            add(Problem(path, "INVALID_FORMAT", "must be plain text, not HTML markup"))
        elif f.IMAGE_SOURCE_MARK in value:
            add(Problem(path, "INVALID_FORMAT", f"must not contain {f.IMAGE_SOURCE_MARK.strip()!r}"))
        elif not line_start_ok and (value.lstrip().startswith("•") or value == f.META_HEADING):
            add(Problem(path, "INVALID_FORMAT", "must not start with a bullet or be the meta heading"))

    def pattern(self, path: str, value: str, regex: re.Pattern[str], expected: str) -> None:
        if not regex.fullmatch(value):
            self.add(Problem(path, "INVALID_FORMAT", f"must be {expected}"))

    def number(self, path: str, value: int, low: int = 0, high: int = f.INT_MAX) -> None:
        if not low <= value <= high:
            self.add(Problem(path, "OUT_OF_RANGE", f"must be from {low} to {high}"))

    def items(self, path: str, values: tuple[str, ...], *, unique: bool, required: bool = False) -> None:
        if required and not values:
            self.add(Problem(path, "REQUIRED", "must list at least one value"))
        seen: set[str] = set()
        for i, value in enumerate(values):
            self.text(f"{path}[{i}]", value)
            if unique and value in seen:
                self.add(Problem(f"{path}[{i}]", "DUPLICATE", f"{value!r} is listed twice"))
            seen.add(value)


def validate(document: Document) -> list[Problem]:
    """Every problem of the document; an empty list when it is well-formed."""
    check = _Checks()
    check.text("title", document.title)
    if document.title.startswith("|"):
        check.add(Problem("title", "INVALID_FORMAT", "must not start with '|'"))
    check.text("intro", document.intro, line_start_ok=False)
    _validate_body(document, check.add, check.text)
    for i, image in enumerate(document.images):
        check.text(f"images[{i}].caption", image.caption)
        check.text(f"images[{i}].source", image.source)
        if not image.url.strip() or any(c.isspace() for c in image.url):
            check.add(Problem(f"images[{i}].url", "INVALID_FORMAT", "must be a URL without spaces"))
    _validate_meta(document.meta, check)
    problems = check.problems
    if not problems:
        problems += _round_trip(document)
    return problems


def _validate_meta(meta: Meta, check: _Checks) -> None:
    for name, value in (
        ("meta.topic", meta.topic),
        ("meta.summary", meta.summary),
        ("meta.aiBrief", meta.ai_brief),
        ("meta.codeLanguage", meta.code_language),
        ("meta.difficulty", meta.difficulty),
        ("meta.aiOutline.context", meta.outline.context),
        ("meta.aiOutline.problem", meta.outline.problem),
        ("meta.aiOutline.stack", meta.outline.stack),
        ("meta.aiOutline.recommendedAction", meta.outline.recommended_action),
        ("meta.revision.status", meta.revision.status),
        ("meta.payload.generator", meta.payload.generator),
        ("meta.payload.scenario", meta.payload.scenario),
    ):
        check.text(name, value)
    check.items("meta.stack", meta.stack, unique=True, required=True)
    check.items("meta.tools", meta.tools, unique=True)
    check.items("meta.checklist", meta.checklist, unique=False)
    check.items("meta.notes", meta.notes, unique=False)
    check.number("meta.readingTime", meta.reading_time)
    check.number("meta.viewCount", meta.view_count)
    check.number("meta.payload.paragraphs", meta.payload.paragraphs)
    check.number("meta.payload.seed", meta.payload.seed)
    for name in ("quality", "freshness", "depth", "clarity"):
        check.number(f"scores.{name}", getattr(meta.scores, name), f.SCORE_MIN, f.SCORE_MAX)
    check.pattern("meta.revision.version", meta.revision.version, _VERSION, "a version such as 1.7.2")
    check.pattern("meta.reference", meta.reference, _KEY, "letters, digits and . _ : - only")
    check.pattern("meta.payload.sourceId", meta.payload.source_id, _KEY, "letters, digits and . _ : - only")
    check.pattern("meta.hash", meta.hash, _HEX, "lowercase hexadecimal digits")
    seen = set()
    for i, entity in enumerate(meta.entities):
        check.text(f"entities[{i}].name", entity.name)
        check.text(f"entities[{i}].type", entity.type)
        if entity in seen:
            check.add(Problem(f"entities[{i}]", "DUPLICATE", f"{entity.name!r} ({entity.type}) is listed twice"))
        seen.add(entity)


def _validate_body(document: Document, add: Callable[[Problem], None], text: Callable[..., None]) -> None:
    figures = 0
    for i, block in enumerate(document.body):
        if isinstance(block, Heading):
            text(f"body[{i}].heading", block.text, line_start_ok=False)
            if block.text.rstrip().endswith(_SENTENCE_END):
                add(Problem(f"body[{i}].heading", "INVALID_FORMAT", _HEADING_AS_PARAGRAPH))
        elif isinstance(block, Paragraph):
            text(f"body[{i}].paragraph", block.text, line_start_ok=False)
            if not block.text.rstrip().endswith(_SENTENCE_END):
                add(Problem(f"body[{i}].paragraph", "INVALID_FORMAT", "a paragraph must end like a sentence"))
        elif isinstance(block, BulletList):
            if not block.items:
                add(Problem(f"body[{i}].list", "REQUIRED", "must list at least one item"))
            for j, item in enumerate(block.items):
                text(f"body[{i}].list[{j}]", item)
        elif isinstance(block, Figure):
            figures += 1
            if block.image != figures:
                add(
                    Problem(
                        f"body[{i}].image",
                        "INVALID_REFERENCE",
                        f"images are shown once each, in order: expected image {figures}, not {block.image}",
                    )
                )
    if figures != len(document.images):
        add(
            Problem(
                "images",
                "INVALID_REFERENCE",
                f"the body shows {figures} image(s) but {len(document.images)} are listed: show each once",
            )
        )


def _round_trip(document: Document) -> list[Problem]:
    """The last word: the text must parse back to the same document."""
    try:
        parsed = parse(render(document), "input")
    except DocumentError as exc:
        return [Problem("input", "INVALID_FORMAT", exc.describe())]
    if parsed != document:
        return [Problem("input", "INVALID_FORMAT", "the post would not read back the same from its page text")]
    return []
