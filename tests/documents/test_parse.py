"""Parsing the real seed document: byte-exact round trips and the typed values it yields."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from documents import (
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
    parse,
    render,
)

FIXTURE = Path(__file__).resolve().parents[2] / "samples" / "000_08d1a06747f7756e.txt"
SEED_BYTES = FIXTURE.read_bytes()
SEED = SEED_BYTES.decode("utf-8")

SUBJECT = "keeping staging close to production"
STACK = "python services"
CAPTION = f"{SUBJECT} with {STACK} visual reference"
CHECKLIST = (
    "inspect cache headers",
    "test logged-in traffic",
    "purge only the affected route",
    "measure response time",
    "keep a rollback command ready",
)


def test_seed_is_the_documented_shape() -> None:
    # The fixture's own layout, which the other tests rely on.
    assert SEED.startswith("| | |\n\n")
    assert SEED.endswith("\n\nSimilar Posts")
    assert "\r" not in SEED
    assert SEED.count("\n") == 106


def test_round_trip_str() -> None:
    assert render(parse(SEED)) == SEED


def test_round_trip_bytes() -> None:
    document = parse(SEED_BYTES)
    assert render(document).encode("utf-8") == SEED_BYTES
    assert document == parse(SEED)


@pytest.mark.parametrize(
    ("newline", "final_newline"),
    [("\n", True), ("\r\n", False), ("\r\n", True)],
    ids=["lf-final-newline", "crlf", "crlf-final-newline"],
)
def test_round_trip_layout_variants(newline: str, final_newline: bool) -> None:
    text = SEED.replace("\n", newline) + (newline if final_newline else "")
    document = parse(text)
    assert render(document) == text
    assert render(parse(text.encode("utf-8"))) == text
    assert document.layout == Layout(header="| | |", newline=newline, final_newline=final_newline)
    # Only the layout differs: the content is the seed's.
    assert document.body == parse(SEED).body
    assert document.meta == parse(SEED).meta


def test_round_trip_with_trailer_lines() -> None:
    text = SEED + "\n\nsome related post\nanother related post\n"
    document = parse(text)
    assert document.layout.trailer == ("", "some related post", "another related post")
    assert document.layout.final_newline
    assert render(document) == text


def test_round_trip_without_header_row() -> None:
    text = SEED.removeprefix("| | |\n\n")
    document = parse(text)
    assert document.layout.header is None
    assert render(document) == text


def test_title_and_intro() -> None:
    document = parse(SEED)
    assert document.title == f"practical guide to {SUBJECT} with {STACK}"
    assert document.intro.startswith("when a project grows, keeping staging close to production stops")
    assert document.intro.endswith("while keeping the admin area responsive.")
    assert document.source_id == "alphanode-001632"
    assert document.reference == "anp-ref-001632-5801"
    assert document.layout == Layout()


def test_body_block_sequence() -> None:
    body = parse(SEED).body
    assert [type(block) for block in body] == [
        Figure,
        Figure,
        Heading,
        Paragraph,
        Paragraph,
        Heading,
        BulletList,
        Figure,
        Heading,
        Paragraph,
    ]
    assert body[0] == Figure(image=1, gap=1)
    assert body[1] == Figure(image=2, gap=0)
    assert body[2] == Heading("production checks", gap=1)
    assert isinstance(body[3], Paragraph)
    assert body[3].text.startswith("cache rules should be written")
    assert body[3].gap == 1
    assert isinstance(body[4], Paragraph)
    assert body[4].text.startswith("large content sites need")
    assert body[4].gap == 1
    assert body[5] == Heading("implementation checklist", gap=1)
    assert body[6] == BulletList(CHECKLIST, gap=1)
    assert body[7] == Figure(image=3, gap=0)  # right after the list, no blank line
    assert body[8] == Heading("final notes", gap=1)
    assert isinstance(body[9], Paragraph)
    assert body[9].text.startswith("the best result is not only")
    assert body[9].gap == 1


def test_images() -> None:
    assert parse(SEED).images == (
        Image(1, f"{CAPTION} 1", "picsum.photos", "https://picsum.photos/seed/anp-001632/1200/630"),
        Image(
            2,
            f"{CAPTION} 2",
            "unsplash",
            "https://images.unsplash.com/photo-1555949963-aa79dcee981c?auto=format&fit=crop&w=1200&q=80",
        ),
        Image(
            3,
            f"{CAPTION} 3",
            "unsplash",
            "https://images.unsplash.com/photo-1555066931-4365d14bab8c?auto=format&fit=crop&w=1200&q=80",
        ),
    )


def test_meta_typed_values() -> None:
    meta = parse(SEED).meta
    assert meta == Meta(
        topic=f"{SUBJECT} / {STACK}",
        summary=(
            f"this ai-style technical summary explains {SUBJECT} in {STACK}, with emphasis on "
            "measurement, safe defaults, rollback planning, and maintainable documentation."
        ),
        outline=Outline(
            context="while keeping the admin area responsive",
            problem=SUBJECT,
            stack=STACK,
            recommended_action="measure first, change carefully, document the result",
        ),
        ai_brief=(
            "the article is written like a careful ai generated engineering draft: it explains the "
            "reason for the change, lists operational checks, and avoids pretending that one command "
            "fixes every production case."
        ),
        stack=(STACK, "backend", "python"),
        tools=("fastapi", "pytest", "uvicorn", "ruff", "git", "logs"),
        code_language="python",
        difficulty="intermediate",
        reading_time=5,
        view_count=223096,
        scores=Scores(quality=96, freshness=92, depth=79, clarity=93),
        revision=Revision(status="drafted", version="1.7.2", last_reviewed=dt.date(2026, 7, 2)),
        reference="anp-ref-001632-5801",
        hash="6b3e02d5b09c4776ea6816ea",
        flags=Flags(ai_generated_style=True, has_images=True, image_heavy=True, needs_human_review=False),
        checklist=CHECKLIST,
        entities=(
            Entity(name=STACK, type="stack"),
            Entity(name="backend", type="area"),
            Entity(name=SUBJECT, type="problem"),
        ),
        payload=Payload(
            source_id="alphanode-001632",
            generator="anp content synthesizer",
            paragraphs=3,
            scenario="while keeping the admin area responsive",
            seed=1632,
        ),
        notes=(
            "sanitized array meta is expected to render as a list in the frontend box",
            "view count is synthetic and only used for testing meta volume",
            "content is generated for import/load testing and should be reviewed before indexing",
        ),
    )


def test_meta_value_types() -> None:
    meta = parse(SEED).meta
    # Array meta comes out as tuples of str, never a joined string.
    for values in (meta.stack, meta.tools, meta.checklist, meta.notes):
        assert type(values) is tuple
        assert values
        assert all(type(value) is str for value in values)
    assert type(meta.entities) is tuple
    assert all(type(entity) is Entity for entity in meta.entities)
    images = parse(SEED).images
    assert type(images) is tuple
    assert all(type(image) is Image for image in images)
    # Numbers are int (not bool, not str); flags are bool; the review date is a date.
    for number in (
        meta.reading_time,
        meta.view_count,
        meta.scores.quality,
        meta.scores.freshness,
        meta.scores.depth,
        meta.scores.clarity,
        meta.payload.paragraphs,
        meta.payload.seed,
    ):
        assert type(number) is int
    for flag in (
        meta.flags.ai_generated_style,
        meta.flags.has_images,
        meta.flags.image_heavy,
        meta.flags.needs_human_review,
    ):
        assert type(flag) is bool
    assert type(meta.revision.last_reviewed) is dt.date
    assert type(meta.revision.version) is str


def test_empty_last_reviewed_is_none() -> None:
    text = SEED.replace("  • last reviewed: 2026-07-02", "  • last reviewed: ")
    document = parse(text)
    assert document.meta.revision.last_reviewed is None
    assert render(document) == text


def test_parsed_document_is_a_value() -> None:
    document = parse(SEED, "seed.txt")
    assert isinstance(document, Document)
    assert document == parse(SEED_BYTES, "other-name.txt")
    assert hash(document) == hash(parse(SEED))
