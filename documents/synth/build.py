"""One synthesized document, from ``(seed, index)`` alone, in named steps.

Every step draws from the document's own generator in a fixed order: the order of the draws is
what makes a document, so a step that drew in another order would make other documents for the
same seed (``tests/documents/test_synth.py`` keeps them byte for byte).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import random
from dataclasses import dataclass

from documents._model import (
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

from . import vocabulary as v
from .draw import Uniform, between, clamp, pick, rank, sample, weighted

GENERATOR = "anp content synthesizer"


@dataclass(frozen=True, slots=True)
class Subject:
    """What a post is about: the problem, the stack and its terms, the tools, and the words its text is filled with."""

    stack: str
    area: str
    language: str
    problem: str
    scenario: str
    stack_terms: tuple[str, ...]
    tools: tuple[str, ...]
    words: dict[str, str]


@dataclass(frozen=True, slots=True)
class Sections:
    """The body's sections in order, the checklist's place among them, and the paragraphs in all."""

    sections: list[list[Block]]
    checklist: tuple[str, ...]
    checklist_at: int
    paragraphs: int


def document_key(seed: int, index: int) -> int:
    """A 64-bit integer that depends only on (seed, index): the document's random seed."""
    digest = hashlib.blake2b(f"anp:{seed}:{index}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


def document(seed: int, index: int) -> Document:
    """Document ``index`` of the run with ``seed``; depends on nothing else."""
    key = document_key(seed, index)
    rng = random.Random(key)
    r = rng.random
    subject = _subject(r)
    title = pick(r, v.TITLES).format_map(subject.words)
    intro = pick(r, v.INTROS).format_map(subject.words)
    sections = _sections(r, subject)
    body, images = _illustrated(r, seed, index, subject, sections)
    meta = _meta(rng, key, seed, index, subject, sections, len(images))
    return Document(title=title, intro=intro, body=tuple(body), images=tuple(images), meta=meta, layout=Layout())


def _subject(r: Uniform) -> Subject:
    stack, area, language, related, stack_tools = pick(r, v.STACKS)
    problem = pick(r, v.PROBLEMS_BY_AREA[area])
    scenario = pick(r, v.SCENARIOS)
    # stack terms: the stack and its area, then usually its language and sometimes a related term.
    terms = [stack, area]
    extra = r()
    if extra < 0.8:
        terms.append(language)
        if extra < 0.3:
            terms.append(pick(r, related))
    own_tools = sample(r, stack_tools, between(r, 1, min(5, len(stack_tools))))
    generic_tools = sample(r, v.GENERIC_TOOLS, between(r, 0, 3))
    tools = tuple(dict.fromkeys(own_tools + generic_tools))[:8]
    if len(tools) < 2:
        tools = (*tools, *(tool for tool in v.GENERIC_TOOLS if tool not in tools))[:2]
    words = {
        "problem": problem,
        "stack": stack,
        "scenario": scenario,
        "area": area,
        "language": language,
        "tool": tools[0],
        "other": tools[1],
    }
    return Subject(stack, area, language, problem, scenario, tuple(dict.fromkeys(terms)), tools, words)


def _sections(r: Uniform, subject: Subject) -> Sections:
    """Prose sections in their order, and the checklist section anywhere before the closing ones."""
    checklist = tuple(sample(r, v.CHECKLIST, between(r, 3, 7)))
    prose = sorted(sample(r, v.SECTIONS, between(r, 1, 4)), key=rank)
    sections: list[list[Block]] = []
    paragraphs = 0
    spare = list(v.GENERIC_PARAGRAPHS)  # each generic paragraph at most once per document
    for heading, _, own in prose:
        # A section opens with one of its own paragraphs, then more of its own or generic ones.
        count = between(r, 1, 3)
        paragraphs += count
        texts = list(own)
        chosen = [texts.pop(int(r() * len(texts)))]
        for _ in range(count - 1):
            k = int(r() * (len(texts) + len(spare)))
            chosen.append(texts.pop(k) if k < len(texts) else spare.pop(k - len(texts)))
        blocks: list[Block] = [Heading(heading)]
        blocks += [Paragraph(text.format_map(subject.words)) for text in chosen]
        sections.append(blocks)
    opening = sum(1 for section in prose if section[1] < 2)
    checklist_section: list[Block] = [Heading(pick(r, v.CHECKLIST_HEADINGS)), BulletList(checklist)]
    checklist_at = between(r, 0, opening)
    sections.insert(checklist_at, checklist_section)
    return Sections(sections, checklist, checklist_at, paragraphs)


def _illustrated(
    r: Uniform, seed: int, index: int, subject: Subject, sections: Sections
) -> tuple[list[Block], list[Image]]:
    """The body: the sections with images right after the intro and between them."""
    image_count = weighted(r, v.IMAGE_COUNTS, v.IMAGE_COUNT_WEIGHTS)
    # Slot 0 is right after the intro, slot k right after section k.
    slots = [0] * (len(sections.sections) + 1)
    for _ in range(image_count):
        slots[between(r, 0, len(sections.sections))] += 1
    photos = sample(r, v.UNSPLASH_PHOTOS, image_count)
    about = f"{subject.problem} with {subject.stack}"
    images: list[Image] = []
    body: list[Block] = []
    # An image right after a list or another image has no blank line before it, as in the seed.
    gap = 1
    for slot, shown in enumerate(slots):
        if slot:
            body += sections.sections[slot - 1]
            gap = 0 if slot - 1 == sections.checklist_at else 1
        for _ in range(shown):
            position = len(images) + 1
            if r() < 0.4:
                source = "picsum.photos"
                url = f"https://picsum.photos/seed/anp-{seed}-{index:06d}-{position}/1200/630"
            else:
                source = "unsplash"
                url = f"https://images.unsplash.com/photo-{photos[position - 1]}?auto=format&fit=crop&w=1200&q=80"
            images.append(Image(position, f"{about} visual reference {position}", source, url))
            body.append(Figure(position, gap))
            gap = 0
    return body, images


@dataclass(frozen=True, slots=True)
class _Standing:
    """How long, how hard, how recent, how good and how read a post is."""

    reading_time: int
    difficulty: str
    reviewed_offset: int
    status: str
    version: str
    scores: Scores
    view_count: int
    flags: Flags


def _standing(rng: random.Random, paragraphs: int, image_count: int) -> _Standing:
    r = rng.random
    reading_time = clamp(paragraphs * (0.8 + 0.9 * r()) + 0.3 * image_count + 3 * r(), 2, 20)
    if reading_time >= 12:
        difficulty = weighted(r, v.DIFFICULTIES, v.DIFFICULTY_WEIGHTS_LONG)
    elif reading_time <= 4:
        difficulty = weighted(r, v.DIFFICULTIES, v.DIFFICULTY_WEIGHTS_SHORT)
    else:
        difficulty = weighted(r, v.DIFFICULTIES, v.DIFFICULTY_WEIGHTS_MEDIUM)
    reviewed_offset = between(r, 0, v.REVIEW_SPAN)
    age = 1 - reviewed_offset / v.REVIEW_SPAN  # 0: reviewed on the last day, 1: on the first
    status = weighted(r, v.STATUSES, v.STATUS_WEIGHTS_STALE if age > 0.6 else v.STATUS_WEIGHTS_FRESH)
    version = f"{weighted(r, v.MAJORS, v.MAJOR_WEIGHTS)}.{between(r, 0, 12)}.{between(r, 0, 20)}"
    quality = clamp(rng.triangular(30, 100, 88))
    scores = Scores(
        quality=quality,
        freshness=clamp(95 - 70 * age + rng.gauss(0, 6)),
        depth=clamp(25 + 4 * paragraphs + 2 * reading_time + rng.gauss(0, 10)),
        clarity=clamp(quality + rng.gauss(-3, 8)),
    )
    # Published posts are read more; views span several orders of magnitude.
    top = 6.0 if status in ("published", "reviewed") else 4.8
    view_count = int(10 ** (1 + (top - 1) * r()))
    if status == "needs review":
        needs_review = True
    elif status == "drafted":
        needs_review = r() < 0.6
    else:
        needs_review = r() < (0.4 if quality < 60 else 0.1)
    flags = Flags(
        ai_generated_style=r() < 0.8,
        has_images=image_count > 0,
        image_heavy=image_count >= 3,
        needs_human_review=needs_review,
    )
    return _Standing(reading_time, difficulty, reviewed_offset, status, version, scores, view_count, flags)


def _meta(
    rng: random.Random, key: int, seed: int, index: int, subject: Subject, sections: Sections, image_count: int
) -> Meta:
    r = rng.random
    standing = _standing(rng, sections.paragraphs, image_count)
    s = subject
    entities = [Entity(s.stack, "stack"), Entity(s.area, "area"), Entity(s.problem, "problem")]
    entities += [Entity(tool, "tool") for tool in sample(r, s.tools, between(r, 0, 3))]
    return Meta(
        topic=f"{s.problem} / {s.stack}",
        summary=pick(r, v.SUMMARIES).format_map({**s.words, "emphasis": pick(r, v.EMPHASES)}),
        outline=Outline(context=s.scenario, problem=s.problem, stack=s.stack, recommended_action=pick(r, v.ACTIONS)),
        ai_brief=pick(r, v.BRIEFS).format_map(s.words),
        stack=s.stack_terms,
        tools=s.tools,
        code_language=s.language,
        difficulty=standing.difficulty,
        reading_time=standing.reading_time,
        view_count=standing.view_count,
        scores=standing.scores,
        revision=Revision(
            status=standing.status,
            version=standing.version,
            last_reviewed=dt.date.fromordinal(v.FIRST_REVIEW + standing.reviewed_offset),
        ),
        reference=f"anp-ref-{seed}-{index:06d}-{between(r, 0, 9999):04d}",
        hash=f"{rng.getrandbits(96):024x}",
        flags=standing.flags,
        checklist=sections.checklist,
        entities=tuple(entities),
        payload=Payload(
            source_id=f"alphanode-{seed}-{index:06d}",
            generator=GENERATOR,
            paragraphs=sections.paragraphs,
            scenario=s.scenario,
            seed=key & 0x7FFF_FFFF,  # fits a 32-bit column and a GraphQL Int
        ),
        notes=tuple(sample(r, v.NOTES, weighted(r, v.NOTE_COUNTS, v.NOTE_COUNT_WEIGHTS))),
    )
