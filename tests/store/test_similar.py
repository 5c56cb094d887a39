"""Similar posts: idf-weighted shared terms, deterministic ties, reasons, targeted refresh."""

from __future__ import annotations

import dataclasses
import json
import math
from collections import Counter
from pathlib import Path

import orjson
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from documents import Document, Entity, parse, render
from models import Post, SimilarPost, table
from store import similar
from store.importer import import_sources
from store.similar import MAX_SIMILAR, rebuild_similar
from store.sources import collect_sources, text_source
from tests.conftest import SEED_DOCUMENT
from tests.store import similar_oracle as oracle

pytestmark = pytest.mark.anyio

SEED = parse(SEED_DOCUMENT.read_text(encoding="utf-8"))


def variant(n: int, *, topic: str, tools: tuple[str, ...], stack: tuple[str, ...] = ("python",)) -> Document:
    """The seed document with its own ids, topic, stack and tools; no entities, to keep terms explicit."""
    meta = SEED.meta
    return dataclasses.replace(
        SEED,
        title=f"post {n}",
        meta=dataclasses.replace(
            meta,
            topic=topic,
            stack=stack,
            tools=tools,
            entities=(),
            reference=f"ref-{n:03d}",
            payload=dataclasses.replace(meta.payload, source_id=f"src-{n:03d}"),
        ),
    )


async def similar_lists(engine: AsyncEngine) -> dict[str, list[tuple[str, float, list[str]]]]:
    post, similar = table(Post), table(SimilarPost)
    async with engine.connect() as conn:
        source = dict((await conn.execute(select(post.c.id, post.c.source_id))).all())
        rows = await conn.execute(
            select(similar.c.post_id, similar.c.similar_id, similar.c.score, similar.c.reasons).order_by(
                similar.c.post_id, similar.c.rank
            )
        )
        lists: dict[str, list[tuple[str, float, list[str]]]] = {s: [] for s in source.values()}
        for row in rows:
            reasons = json.loads(row.reasons)
            assert row.reasons == orjson.dumps(reasons).decode()  # stored as orjson writes it
            lists[source[row.post_id]].append((source[row.similar_id], row.score, reasons))
    return lists


async def import_documents(engine: AsyncEngine, documents: list[Document]) -> None:
    receipt = await import_sources(engine, [text_source(d.source_id, render(d)) for d in documents])
    assert receipt.ok, receipt.rejected


async def test_a_rare_shared_term_outweighs_several_common_ones(engine: AsyncEngine) -> None:
    # Given "git", "docker" and "logs" on every post, and "flamegraph" on two only
    common = ("git", "docker", "logs")
    docs = [variant(1, topic="t1", tools=(*common, "flamegraph"))]
    docs.append(variant(2, topic="t2", tools=("flamegraph",)))  # shares the rare tool only
    docs.append(variant(3, topic="t3", tools=common))  # shares the three common tools only
    docs += [variant(n, topic=f"t{n}", tools=(*common, f"tool{n}")) for n in range(4, 12)]
    await import_documents(engine, docs)
    # Then post 1's best match is post 2, and the reason says why
    best, score, reasons = (await similar_lists(engine))["src-001"][0]
    assert best == "src-002"
    assert reasons == ["stack: python", "tools: flamegraph"]
    assert 0 < score < 1


async def test_equal_scores_go_to_the_smaller_source_id(engine: AsyncEngine) -> None:
    docs = [variant(n, topic="same topic", tools=("pytest",)) for n in (7, 3, 9, 5)]
    await import_documents(engine, docs)
    lists = await similar_lists(engine)
    assert [s for s, _, _ in lists["src-007"]] == ["src-003", "src-005", "src-009"]
    assert [s for s, _, _ in lists["src-003"]] == ["src-005", "src-007", "src-009"]
    assert len({score for _, score, _ in lists["src-007"]}) == 1


async def test_posts_sharing_nothing_are_not_similar(engine: AsyncEngine) -> None:
    docs = [
        variant(1, topic="a", tools=("x",), stack=("s1",)),
        variant(2, topic="b", tools=("y",), stack=("s2",)),
        variant(3, topic="a", tools=("z",), stack=("s3",)),
    ]
    await import_documents(engine, docs)
    lists = await similar_lists(engine)
    assert [s for s, _, _ in lists["src-001"]] == ["src-003"]
    assert lists["src-001"][0][2] == ["topic: a"]
    assert lists["src-002"] == []


def _terms(document: Document) -> set[tuple[str, str]]:
    meta = document.meta
    return (
        {("topic", meta.topic)}
        | {("stack", s) for s in meta.stack}
        | {("tools", t) for t in meta.tools}
        | {("entities", f"{e.name} ({e.type})") for e in meta.entities}
    )


def _brute_force(documents: list[Document]) -> dict[str, list[tuple[str, float]]]:
    """The definition, computed directly: idf-weighted share of p's terms that q has too."""
    terms = {d.source_id: _terms(d) for d in documents}
    df = Counter(t for ts in terms.values() for t in ts)
    n = len(documents)
    weight = {t: math.log((n + 1) / c) for t, c in df.items()}
    expected = {}
    for p, mine in terms.items():
        total = sum(weight[t] for t in mine)
        scored = [(q, round(sum(weight[t] for t in mine & theirs) / total, 6)) for q, theirs in terms.items() if q != p]
        scored = [(q, s) for q, s in scored if s > 0]
        scored.sort(key=lambda item: (-item[1], item[0]))
        expected[p] = scored[:MAX_SIMILAR]
    return expected


async def test_stored_similar_posts_match_the_definition_on_a_corpus(engine: AsyncEngine, corpus: Path) -> None:
    await import_sources(engine, collect_sources([str(corpus)])[0])
    documents = [parse(p.read_text(encoding="utf-8")) for p in sorted(corpus.glob("*.txt"))]
    expected = _brute_force(documents)
    stored = await similar_lists(engine)
    by_id = {d.source_id: _terms(d) for d in documents}
    for source_id, matches in stored.items():
        assert [(q, pytest.approx(s, abs=1e-6)) for q, s, _ in matches] == expected[source_id], source_id
        for q, _, reasons in matches:
            shared = by_id[source_id] & by_id[q]
            named = {(r.split(": ", 1)[0], item) for r in reasons for item in r.split(": ", 1)[1].split(", ")}
            assert named == shared, (source_id, q)


async def test_an_update_refreshes_only_the_posts_it_can_affect(engine: AsyncEngine) -> None:
    # Given two unrelated families of posts
    family_a = [variant(n, topic="alpha", tools=("a-tool", f"a{n}")) for n in range(1, 7)]
    family_b = [variant(n, topic="beta", tools=("b-tool", f"b{n}"), stack=("go",)) for n in range(11, 17)]
    await import_documents(engine, family_a + family_b)
    before = await similar_lists(engine)
    # When one post of family A changes its tools
    changed = variant(1, topic="alpha", tools=("a-tool", "a2", "a3"))
    receipt = await import_sources(engine, [text_source("changed", render(changed))])
    # Then only family A is recomputed: the changed post and the posts it may enter or leave
    assert receipt.updated == 1
    assert 1 < receipt.similar_refreshed <= len(family_a)
    after = await similar_lists(engine)
    for n in range(11, 17):
        assert after[f"src-{n:03d}"] == before[f"src-{n:03d}"]
    assert [q for q, _, _ in after["src-001"]][:2] == ["src-002", "src-003"]


async def test_rebuild_recomputes_every_post(engine: AsyncEngine) -> None:
    await import_documents(engine, [variant(n, topic="t", tools=("x",)) for n in range(1, 5)])
    assert await rebuild_similar(engine) == 4


def test_variant_is_a_valid_document() -> None:
    doc = variant(1, topic="t", tools=("x",))
    assert parse(render(doc)) == doc
    assert doc.meta.entities == ()
    assert Entity("python services", "stack") in SEED.meta.entities


async def _lists_of_every_post(engine: AsyncEngine, *, around: list[int] | None = None) -> dict[int, list[tuple]]:
    """Each post's similar posts, by post id: computed many at once (top_lists) and one by one (top)."""
    async with engine.connect() as conn:
        index = await conn.run_sync(lambda c: similar.load_index(c, around=around))
    wanted = [int(i) for i in index.post_ids] if around is None else around
    lists = similar.lists_for(index, wanted)
    rows = similar.rows_for(index, lists, wanted[0], wanted[-1])
    many: dict[int, list[tuple]] = {post_id: [] for post_id in wanted}
    for post_id, _, similar_id, score, reasons in rows:
        many[post_id].append((similar_id, score, json.loads(reasons)))
    one = {
        post_id: [
            (int(index.post_ids[m.similar_index]), m.score, m.reasons)
            for m in oracle.top(index, index.index_of[post_id])
        ]
        for post_id in wanted
    }
    assert many == one
    return many


async def test_many_posts_at_once_give_what_one_post_at_a_time_gives(
    engine: AsyncEngine, corpus: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Few candidates, so that gathering them stops early and differs from post to post
    monkeypatch.setattr(similar.terms, "MIN_CANDIDATES", 12)
    await import_sources(engine, collect_sources([str(corpus)])[0], refresh=False)
    everything = await _lists_of_every_post(engine)
    # A partial index (some posts and their candidates) gives the same lists for those posts
    some = sorted(everything)[::7]
    assert await _lists_of_every_post(engine, around=some) == {post_id: everything[post_id] for post_id in some}


async def test_reasons_are_right_when_the_hashes_of_shared_terms_collide(
    engine: AsyncEngine, corpus: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(similar.reasons, "mix", lambda words: words & 0)  # every set of shared terms hashes alike
    await import_sources(engine, collect_sources([str(corpus)])[0], refresh=False)
    await _lists_of_every_post(engine)


async def test_a_refresh_in_worker_processes_stores_what_one_in_this_process_does(
    engine: AsyncEngine, corpus: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    await import_sources(engine, collect_sources([str(corpus)])[0])
    here = await similar_lists(engine)
    monkeypatch.setattr(similar.refresh, "PARALLEL_FROM", 10)
    monkeypatch.setattr(similar.refresh, "COMPUTE_PART", 20)
    monkeypatch.setattr(similar.refresh, "WRITE_CHUNK", 7)
    assert await rebuild_similar(engine) == 81
    assert await similar_lists(engine) == here
