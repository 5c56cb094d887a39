"""The typed shape of an alphanode page-text document.

Every class is a frozen dataclass: a parsed document is a value, and two
documents are equal exactly when they render to the same text.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class Image:
    """An inline image: its caption and source from the body, its URL from the meta block."""

    position: int  # 1-based, in page order
    caption: str
    source: str
    url: str


@dataclass(frozen=True, slots=True)
class Heading:
    """A section heading."""

    text: str
    gap: int = 1  # blank lines before the block


@dataclass(frozen=True, slots=True)
class Paragraph:
    """A paragraph of prose."""

    text: str
    gap: int = 1


@dataclass(frozen=True, slots=True)
class BulletList:
    """A bulleted list, such as a section's checklist."""

    items: tuple[str, ...]
    gap: int = 1


@dataclass(frozen=True, slots=True)
class Figure:
    """An image shown at this place in the body; ``image`` is its 1-based position."""

    image: int
    gap: int = 0


Block = Heading | Paragraph | BulletList | Figure


@dataclass(frozen=True, slots=True)
class Outline:
    """The "ai outline" block."""

    context: str
    problem: str
    stack: str
    recommended_action: str


@dataclass(frozen=True, slots=True)
class Scores:
    """Editorial scores, each 0..100."""

    quality: int
    freshness: int
    depth: int
    clarity: int


@dataclass(frozen=True, slots=True)
class Revision:
    """Revision status, version string and the date of the last review."""

    status: str
    version: str
    last_reviewed: dt.date | None


@dataclass(frozen=True, slots=True)
class Flags:
    """Boolean flags of the meta block."""

    ai_generated_style: bool
    has_images: bool
    image_heavy: bool
    needs_human_review: bool


@dataclass(frozen=True, slots=True)
class Entity:
    """A named thing the post is about, with its type (stack, area, problem, ...)."""

    name: str
    type: str


@dataclass(frozen=True, slots=True)
class Payload:
    """Provenance of the document: who made it and from which seed."""

    source_id: str
    generator: str
    paragraphs: int
    scenario: str
    seed: int


@dataclass(frozen=True, slots=True)
class Meta:
    """The "alphanode post meta" block."""

    topic: str
    summary: str
    outline: Outline
    ai_brief: str
    stack: tuple[str, ...]
    tools: tuple[str, ...]
    code_language: str
    difficulty: str
    reading_time: int
    view_count: int
    scores: Scores
    revision: Revision
    reference: str
    hash: str
    flags: Flags
    checklist: tuple[str, ...]
    entities: tuple[Entity, ...]
    payload: Payload
    notes: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Layout:
    """How the text was laid out, beyond its content, so that it renders back byte for byte."""

    header: str | None = "| | |"  # the row of cells above the title, if any
    newline: str = "\n"
    final_newline: bool = False
    trailer: tuple[str, ...] = ()  # lines after "Similar Posts"


@dataclass(frozen=True, slots=True)
class Document:
    """One post as the synthesizer writes it."""

    title: str
    intro: str
    body: tuple[Block, ...]
    images: tuple[Image, ...]
    meta: Meta
    layout: Layout = field(default_factory=Layout)

    @property
    def source_id(self) -> str:
        """The import key: the payload's source id."""
        return self.meta.payload.source_id

    @property
    def reference(self) -> str:
        return self.meta.reference
