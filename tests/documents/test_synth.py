"""The content synthesizer: deterministic, unique, consistent, varied documents that round-trip."""

from __future__ import annotations

import random
import re
from collections import Counter
from pathlib import Path

import pytest

from documents import BulletList, Document, Figure, Heading, Paragraph, parse, render
from documents.synth import GENERATOR, file_name, synthesize, write

FIXTURE = Path(__file__).resolve().parents[2] / "samples" / "000_08d1a06747f7756e.txt"
SEED = 20240101
OTHER_SEED = 7


@pytest.fixture(scope="module")
def documents() -> list[Document]:
    return list(synthesize(2000, SEED))


@pytest.fixture(scope="module")
def sample(documents: list[Document]) -> list[Document]:
    return documents[:500]


def _texts(count: int, seed: int, start: int = 1) -> list[str]:
    return [render(document) for document in synthesize(count, seed, start)]


# -- determinism ----------------------------------------------------------------


def test_same_seed_gives_same_documents() -> None:
    assert _texts(50, SEED) == _texts(50, SEED)


def test_different_seeds_give_different_documents() -> None:
    ours, theirs = _texts(50, SEED), _texts(50, OTHER_SEED)
    assert all(a != b for a, b in zip(ours, theirs, strict=True))


def test_first_documents_do_not_depend_on_count() -> None:
    assert _texts(10, SEED) == _texts(200, SEED)[:10]


def test_start_resumes_a_run_at_that_index() -> None:
    assert _texts(5, SEED, start=6) == _texts(10, SEED)[5:]


def test_global_random_state_is_neither_used_nor_changed() -> None:
    random.seed(1)
    state = random.getstate()
    first = _texts(20, SEED)
    assert random.getstate() == state
    random.seed(2)
    assert _texts(20, SEED) == first


def test_synthesize_yields_count_documents() -> None:
    assert len(list(synthesize(7, SEED))) == 7
    assert list(synthesize(0, SEED)) == []


@pytest.mark.parametrize(("count", "seed", "start"), [(-1, 1, 1), (1, -1, 1), (1, 1, -1)])
def test_negative_arguments_are_rejected(count: int, seed: int, start: int, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="must be 0 or more"):
        synthesize(count, seed, start)
    with pytest.raises(ValueError, match="must be 0 or more"):
        write(tmp_path, count, seed, start)


# -- uniqueness -----------------------------------------------------------------


def test_source_ids_references_and_file_names_are_unique_within_a_run(documents: list[Document]) -> None:
    assert len({d.source_id for d in documents}) == len(documents)
    assert len({d.reference for d in documents}) == len(documents)
    assert len({file_name(d, i) for i, d in enumerate(documents, 1)}) == len(documents)


def test_source_ids_references_and_file_names_are_unique_across_seeds(documents: list[Document]) -> None:
    others = list(synthesize(len(documents), OTHER_SEED))
    both = documents + others
    assert len({d.source_id for d in both}) == len(both)
    assert len({d.reference for d in both}) == len(both)
    names = [file_name(d, i) for i, d in enumerate(documents, 1)]
    names += [file_name(d, i) for i, d in enumerate(others, 1)]
    assert len(set(names)) == len(both)


def test_identifiers_follow_the_documented_patterns(documents: list[Document]) -> None:
    for index, document in enumerate(documents[:100], 1):
        assert document.source_id == f"alphanode-{SEED}-{index:06d}"
        assert re.fullmatch(rf"anp-ref-{SEED}-{index:06d}-[0-9]{{4}}", document.reference)
        assert re.fullmatch(r"[0-9a-f]{24}", document.meta.hash)
        assert 0 <= document.meta.payload.seed < 2**31


def test_file_name_is_the_index_and_a_hash_of_the_text(documents: list[Document]) -> None:
    name = file_name(documents[0], 1)
    assert re.fullmatch(r"000001_[0-9a-f]{16}\.txt", name)
    assert file_name(documents[0], 1) == name
    assert file_name(documents[1], 1) != name
    assert file_name(documents[0], 123456).startswith("123456_")


# -- the format -----------------------------------------------------------------


def test_every_document_round_trips_through_the_parser(documents: list[Document]) -> None:
    for index, document in enumerate(documents, 1):
        text = render(document)
        parsed = parse(text, file_name(document, index))
        assert parsed == document
        assert render(parsed) == text


def test_layout_is_that_of_the_real_document(sample: list[Document]) -> None:
    real = parse(FIXTURE.read_text(encoding="utf-8"))
    assert real.meta.payload.generator == GENERATOR
    for document in sample:
        assert document.layout == real.layout
        text = render(document)
        assert text.startswith("| | |\n\n")
        assert text.endswith("\n\nSimilar Posts")


def test_images_follow_lists_and_images_without_a_blank_line(sample: list[Document]) -> None:
    after_list = 0
    for document in sample:
        previous = None
        for block in document.body:
            if isinstance(block, Figure):
                expected = 0 if isinstance(previous, (Figure, BulletList)) else 1
                assert block.gap == expected
                after_list += isinstance(previous, BulletList)
            else:
                assert block.gap == 1
            previous = block
    assert after_list > 0


# -- consistency ------------------------------------------------------------------


def test_meta_agrees_with_the_body(sample: list[Document]) -> None:
    for document in sample:
        meta = document.meta
        paragraphs = [b for b in document.body if isinstance(b, Paragraph)]
        lists = [b for b in document.body if isinstance(b, BulletList)]
        figures = [b for b in document.body if isinstance(b, Figure)]
        assert meta.payload.paragraphs == len(paragraphs)
        assert len({p.text for p in paragraphs}) == len(paragraphs)
        assert meta.flags.has_images == bool(document.images)
        assert meta.flags.image_heavy == (len(document.images) >= 3)
        assert [f.image for f in figures] == list(range(1, len(document.images) + 1))
        assert [lst.items for lst in lists] == [meta.checklist]
        assert meta.payload.generator == GENERATOR
        assert meta.payload.scenario == meta.outline.context


def test_topic_stack_and_entities_name_the_same_problem_and_stack(sample: list[Document]) -> None:
    for document in sample:
        meta = document.meta
        problem, stack = meta.outline.problem, meta.outline.stack
        assert meta.topic == f"{problem} / {stack}"
        assert meta.stack[0] == stack
        assert meta.code_language in document.meta.stack or len(meta.stack) == 2
        types = [(e.type, e.name) for e in meta.entities]
        assert types[:3] == [("stack", stack), ("area", meta.stack[1]), ("problem", problem)]
        assert all(t == "tool" and name in meta.tools for t, name in types[3:])
        assert len(set(meta.stack)) == len(meta.stack)
        assert len(set(meta.tools)) == len(meta.tools)
        for image in document.images:
            assert image.caption == f"{problem} with {stack} visual reference {image.position}"


def test_image_urls_look_like_the_real_document(sample: list[Document]) -> None:
    patterns = {
        "picsum.photos": r"https://picsum\.photos/seed/anp-[0-9]+-[0-9]{6}-[0-9]+/1200/630",
        "unsplash": r"https://images\.unsplash\.com/photo-[0-9]+-[0-9a-f]+\?auto=format&fit=crop&w=1200&q=80",
    }
    for document in sample:
        for image in document.images:
            assert re.fullmatch(patterns[image.source], image.url)


def test_values_stay_in_their_ranges(sample: list[Document]) -> None:
    for document in sample:
        meta = document.meta
        assert 2 <= meta.reading_time <= 20
        assert 10 <= meta.view_count <= 1_000_000
        scores = meta.scores
        assert all(0 <= s <= 100 for s in (scores.quality, scores.freshness, scores.depth, scores.clarity))
        reviewed = meta.revision.last_reviewed
        assert reviewed is not None
        assert "2024-01-01" <= reviewed.isoformat() <= "2026-11-01"
        assert re.fullmatch(r"[0-9]+\.[0-9]+\.[0-9]+", meta.revision.version)
        assert meta.difficulty in ("beginner", "intermediate", "advanced")


# -- variety ----------------------------------------------------------------------


def test_documents_vary_in_shape(sample: list[Document]) -> None:
    def spread(values: list[int]) -> set[int]:
        return set(Counter(values))

    paragraphs = spread([d.meta.payload.paragraphs for d in sample])
    images = spread([len(d.images) for d in sample])
    sections = spread([sum(isinstance(b, Heading) for b in d.body) for d in sample])
    assert len(paragraphs) >= 6
    assert {0, 1, 2, 3, 4} <= images
    assert {2, 3, 4, 5} <= sections
    assert len(spread([len(d.meta.checklist) for d in sample])) >= 4
    assert len(spread([len(d.meta.tools) for d in sample])) >= 5
    assert len(spread([len(d.meta.entities) for d in sample])) >= 3
    assert len(spread([len(d.meta.stack) for d in sample])) >= 3
    assert 0 in spread([len(d.meta.notes) for d in sample])
    assert len(spread([len(d.meta.notes) for d in sample])) >= 4


def test_documents_vary_in_content(sample: list[Document]) -> None:
    assert len({d.meta.topic for d in sample}) >= 200
    assert len({d.meta.outline.stack for d in sample}) >= 20
    assert len({d.meta.outline.problem for d in sample}) >= 40
    assert len({d.meta.revision.status for d in sample}) >= 5
    assert {d.meta.difficulty for d in sample} == {"beginner", "intermediate", "advanced"}
    assert len({d.title for d in sample}) >= 400
    assert len({d.meta.revision.version for d in sample}) >= 100
    views = [d.meta.view_count for d in sample]
    assert min(views) < 1_000 and max(views) > 100_000


def test_every_flag_takes_both_values(sample: list[Document]) -> None:
    for name in ("ai_generated_style", "has_images", "image_heavy", "needs_human_review"):
        assert {getattr(d.meta.flags, name) for d in sample} == {False, True}, name


# -- writing ------------------------------------------------------------------------


def test_write_creates_the_directory_and_writes_rendered_files(tmp_path: Path) -> None:
    out = tmp_path / "a" / "b"
    assert write(out, 20, SEED) == 20
    expected = {file_name(d, i): render(d) for i, d in enumerate(synthesize(20, SEED), 1)}
    assert {p.name for p in out.iterdir()} == set(expected)
    for name, text in expected.items():
        data = (out / name).read_bytes()
        assert data == text.encode("utf-8")
        assert render(parse(data, name)) == text


def test_write_is_idempotent(tmp_path: Path) -> None:
    write(tmp_path, 15, SEED)
    first = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    assert write(tmp_path, 15, SEED) == 15
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == first


def test_write_with_start_continues_the_same_run(tmp_path: Path) -> None:
    whole, parts = tmp_path / "whole", tmp_path / "parts"
    write(whole, 12, SEED)
    write(parts, 5, SEED)
    write(parts, 7, SEED, start=6)
    assert sorted(p.name for p in whole.iterdir()) == sorted(p.name for p in parts.iterdir())


def test_write_reports_progress(tmp_path: Path) -> None:
    seen: list[int] = []
    write(tmp_path, 4, SEED, progress=seen.append)
    assert seen == [1, 2, 3, 4]


def test_interrupted_write_leaves_only_whole_documents(tmp_path: Path) -> None:
    def stop(done: int) -> None:
        if done == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        write(tmp_path, 10, SEED, progress=stop)
    files = sorted(tmp_path.iterdir())
    assert [p.name[:6] for p in files] == ["000001", "000002", "000003"]
    for path in files:
        parse(path.read_bytes(), path.name)


def test_failed_rename_leaves_no_temporary_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def fail(src: object, dst: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr("documents.synth.os.replace", fail)
    with pytest.raises(OSError, match="disk full"):
        write(tmp_path, 3, SEED)
    assert list(tmp_path.iterdir()) == []
