"""Searches ranked in memory (loaders.postings): FTS5's bm25 to the last bit, kept current by writes.

SQLite only: PostgreSQL ranks with ts_rank in the database. A store of 200
synthesized posts; each check compares the in-memory ranking (post ids and their
relevance) with what FTS5 itself computes, ``-bm25(post_fts, …)`` read back as
17 significant digits, value for value.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import itertools
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest
from starlette.testclient import TestClient

from documents import render
from documents.synth import write
from graph.pagination import encode_cursor
from loaders import RequestDb
from loaders import postings as postings_module
from loaders.facts import Facts
from loaders.fts5_internals import varints
from loaders.posting_files import PostingFiles
from loaders.postings import BM25, Tokenizer
from loaders.posts import STOP_WORDS, Ordering, SearchTerms, Selection, count, index_terms, page
from server.app import create_app
from server.settings import Settings

from .finding import OpenPool, import_folder, read_sources, write_new_documents

POSTS = 200
SEED = 7301


@dataclasses.dataclass
class Corpus:
    url: str
    folder: Path
    words: list[str]  # words of the corpus's titles, stop words left out


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Corpus:
    url = f"sqlite:///{tmp_path_factory.mktemp('in-memory') / 'store.db'}"
    folder = tmp_path_factory.mktemp("in-memory-documents")
    write(folder, POSTS, seed=SEED)
    assert asyncio.run(import_folder(url, folder)).created == POSTS
    titles = [s.data["title"] for s in read_sources(folder)]
    words = sorted({w for t in titles for w in t.lower().split() if w.isalpha() and w not in STOP_WORDS})
    return Corpus(url, folder, words)


class Watch(OpenPool):
    """A read pool kept open across writes, asking through one event loop; a worker sharing its
    index and posting lists through ``share`` when given."""

    def __init__(self, url: str, share: Path | None = None) -> None:
        super().__init__(url)
        if share is not None:
            self.pool.facts.share(share)

    def run(self, work: Any) -> Any:
        async def in_request() -> Any:
            db = RequestDb(self.pool)
            try:
                return await work(db)
            finally:
                await db.close()

        return self.loop.run_until_complete(in_request())

    def facts(self) -> Facts:
        async def at(db: RequestDb) -> Facts:
            facts = await self.pool.facts.at(db)
            assert facts is not None and facts.text is not None
            return facts

        found: Facts = self.run(at)
        return found

    def compare(self, text: str) -> int:
        """The in-memory ranking of ``text`` against FTS5's; the number of posts it matches."""
        terms = SearchTerms.parse(text)

        async def both(db: RequestDb) -> tuple[Any, Any]:
            facts = await self.pool.facts.at(db)
            assert facts is not None and facts.text is not None
            index_terms = facts.text.terms(terms.words)
            assert index_terms is not None, text
            ids, relevance, _ = await facts.text.ranking(db, index_terms)
            rows = await db.fetch(
                f"SELECT rowid, printf('%!.17g', -{BM25}) FROM post_fts WHERE post_fts MATCH ? ORDER BY rowid",
                [terms.fts5()],
            )
            return (ids.tolist(), relevance.tolist()), ([r[0] for r in rows], [float(r[1]) for r in rows])

        in_memory, in_fts5 = self.run(both)
        assert in_memory == in_fts5, text
        return len(in_memory[0])


@pytest.fixture
def watch(corpus: Corpus) -> Iterator[Watch]:
    w = Watch(corpus.url)
    yield w
    w.close()


def test_rankings_are_fts5s_to_the_last_bit(corpus: Corpus, watch: Watch) -> None:
    words = corpus.words
    pairs = [f"{a} {b}" for a, b in zip(words, words[7:] + words[:7], strict=True)]
    matched = [watch.compare(text) for text in [*words, *pairs, f"{words[0]} {words[0]}"]]
    # Words of one post's title, many posts' words, and pairs: all of them found something.
    assert all(n > 0 for n in matched[: len(words)])
    assert max(matched) > POSTS // 2


def test_a_search_ranked_in_memory_reads_only_its_page(corpus: Corpus, watch: Watch) -> None:
    search = Selection(search=SearchTerms.parse(max(corpus.words, key=len)))
    ranked = Ordering("relevance")

    async def first_page(db: RequestDb) -> Any:
        return await page(db, search, ranked, 5, forward=True)

    async def counted(db: RequestDb) -> tuple[Any, int, int]:
        facts = await db.pool.facts.at(db)
        assert facts is not None
        facts.matches.clear()
        db.pool.aggregates.clear()
        before = db.statements
        found = await page(db, search, ranked, 5, forward=True)
        total = await count(db, search)
        return found, total, db.statements - before

    watch.run(first_page)  # reads the word's posting list
    found, total, statements = watch.run(counted)
    # Ranked and counted in memory: the one statement reads the page's rows with their snippets.
    assert statements == 1 and found.rows
    watch.pool.use_facts = False
    watch.pool.aggregates.clear()  # counted again, in SQL
    in_sql = watch.run(first_page)
    total_in_sql = watch.run(lambda db: count(db, search))
    watch.pool.use_facts = True
    assert [r["id"] for r in found.rows] == [r["id"] for r in in_sql.rows]
    assert [k[:2] for k in found.keys] == [k[:2] for k in in_sql.keys]
    assert found.highlights == in_sql.highlights and total == total_in_sql
    # In memory, each cursor also carries the statistics it was ranked by: rows, tokens, the word's posts.
    rows, tokens, hits = found.keys[0][2]
    assert (
        rows == POSTS and tokens > rows and 0 < hits == total and all(k[2] == [rows, tokens, hits] for k in found.keys)
    )


def walk_while_importing(
    watch: Watch, corpus: Corpus, text: str, size: int, imports: int, folder: Path, first_new: int
) -> tuple[set[int], list[int], list[Any]]:
    """The posts a relevance walk through ``text`` matched before it began, the posts it met page by
    page of ``size``, and its last cursor, with 3 new posts imported after each of its first
    ``imports`` pages (every bm25 score moves: rows, lengths, each word's rarity)."""
    search, ranked = Selection(search=SearchTerms.parse(text)), Ordering("relevance")
    matched = {r["id"] for r in watch.run(lambda db: page(db, search, ranked, 100, forward=True)).rows}
    seen: list[int] = []
    after: list[Any] | None = None
    for n in range(100):
        found = watch.run(lambda db, after=after: page(db, search, ranked, size, forward=True, after=after))
        seen += [r["id"] for r in found.rows]
        if not found.more:
            break
        after = found.keys[-1]
        if n < imports:
            write_new_documents(folder / str(n), 3, after=first_new + 3 * n)
            assert asyncio.run(import_folder(corpus.url, folder / str(n))).created == 3
    assert after is not None
    return matched, seen, after


def test_a_walk_meets_each_post_once_while_imports_move_every_score(
    corpus: Corpus, watch: Watch, tmp_path: Path
) -> None:
    # Two words of many posts: imports move their weights apart (idf) as well as every length's.
    common = sorted(corpus.words[:60], key=watch.compare)[-2:]
    matched, seen, after = walk_while_importing(watch, corpus, " ".join(common), 3, 6, tmp_path, 950)
    assert len(matched) > 20
    assert len(seen) == len(set(seen)) and matched <= set(seen)
    # The walk ranked by its first page's statistics, which the imports did move.
    frozen = after[2]

    async def now(db: RequestDb) -> tuple[list[int], Any, Any]:
        facts = await db.pool.facts.at(db)
        assert facts is not None and facts.text is not None
        terms = facts.text.terms(common)
        assert terms is not None
        _, current, stats = await facts.text.ranking(db, terms)
        _, walked, _ = await facts.text.ranking(db, terms, frozen)
        return stats, current, walked

    stats, current, walked = watch.run(now)
    assert stats[0] == frozen[0] + 18 and (current != walked).any()
    # And a new walk, begun now, ranks by the statistics of now.
    search, ranked = Selection(search=SearchTerms.parse(" ".join(common))), Ordering("relevance")
    first = watch.run(lambda db: page(db, search, ranked, 3, forward=True))
    assert first.keys[0][2] == stats


def test_a_walk_through_a_phrase_search_meets_each_post_once_while_posts_are_imported(
    corpus: Corpus, watch: Watch, tmp_path: Path
) -> None:
    """Phrases are ranked by FTS5, with the statistics of the moment: the ranking made for the
    walk's first page is kept across the writes for the pages after it."""
    titles = [s.data["title"].lower().split() for s in read_sources(corpus.folder)]
    pairs = Counter(f"{a} {b}" for t in titles for a, b in itertools.pairwise(t) if a.isalpha() and b.isalpha())
    phrase = next(p for p, _ in pairs.most_common() if not set(p.split()) & STOP_WORDS)
    assert SearchTerms.parse(f'"{phrase}"').phrases
    matched, seen, after = walk_while_importing(watch, corpus, f'"{phrase}"', 2, 5, tmp_path, 1_000)
    assert len(matched) > 10
    assert len(seen) == len(set(seen)) and matched <= set(seen)
    assert len(after[2]) == 1  # the store version of the ranking it walked
    assert watch.facts().version > after[2][0]


def rewrite(folder: Path, corpus: Corpus, start: int, change: Any, count: int = 3) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for source in read_sources(corpus.folder)[start : start + count]:
        document = change(source.document)
        (folder / source.path.name).write_text(render(document), encoding="utf-8")
    assert asyncio.run(import_folder(corpus.url, folder)).updated == count


def test_writes_reach_the_kept_lists(corpus: Corpus, watch: Watch, tmp_path: Path) -> None:
    common = corpus.words[:6]
    for word in common:
        watch.compare(word)
    kept = watch.facts().text
    assert kept is not None and set(kept.lists.lists) >= set(kept.terms(common) or ["?"])
    # When three posts get a word no post had in their titles, and three others lose theirs...
    rewrite(tmp_path / "a", corpus, 0, lambda d: dataclasses.replace(d, title=f"{d.title} zyzzyva"))
    rewrite(tmp_path / "b", corpus, 20, lambda d: dataclasses.replace(d, title="Untitled"))
    # ...and new posts arrive.
    write_new_documents(tmp_path / "c", 4, after=900)
    assert asyncio.run(import_folder(corpus.url, tmp_path / "c")).created == 4
    # Then the next request carries the kept lists over (no full load) and every ranking is still FTS5's.
    loads = watch.pool.facts.loads
    assert watch.compare("zyzzyva") == 3
    text = watch.facts().text
    assert text is not None and text.lists is kept.lists and text.overlay
    for word in [*common, *corpus.words[-5:]]:
        watch.compare(word)
    assert watch.pool.facts.loads == loads
    # And back.
    rewrite(tmp_path / "d", corpus, 0, lambda d: d)
    assert watch.compare("zyzzyva") == 0  # FTS5 and the lists agree it matches nothing any more
    assert watch.run(lambda db: count(db, Selection(search=SearchTerms.parse("zyzzyva")))) == 0


@pytest.mark.parametrize(("limit", "start"), [("OVERLAY_LIMIT", 40), ("FOLLOW_LIMIT", 60)])
def test_writes_past_a_limit_fold_or_drop_the_kept_lists(
    corpus: Corpus, watch: Watch, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, limit: str, start: int
) -> None:
    """Past OVERLAY_LIMIT changed posts the overlay is folded into new lists, which keep the words
    they held; past FOLLOW_LIMIT posts in one write the lists are dropped, read again when needed."""
    word = corpus.words[start // 10]
    term = Tokenizer().term(word)
    watch.compare(word)
    before = watch.facts().text
    assert before is not None and term in before.lists.lists
    monkeypatch.setattr(postings_module, limit, 2)
    rewrite(tmp_path / "a", corpus, start, lambda d: dataclasses.replace(d, title=f"{d.title} {word}"))
    after = watch.facts().text
    assert after is not None and after.lists is not before.lists and not after.overlay
    assert (term in after.lists.lists) == (limit == "OVERLAY_LIMIT")
    watch.compare(word)
    rewrite(tmp_path / "b", corpus, start, lambda d: d)
    watch.compare(word)


def test_lists_beyond_the_budget_go_least_recently_used_first(
    corpus: Corpus, watch: Watch, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = corpus.words[1]
    tokenizer = Tokenizer()
    second = next(w for w in corpus.words[2:] if tokenizer.term(w) != tokenizer.term(first))
    watch.compare(first)
    lists = watch.facts().text.lists  # type: ignore[union-attr]
    monkeypatch.setattr(postings_module, "BUDGET", lists.nbytes)  # room for what is kept, no more
    watch.compare(second)
    # The newest list stays even when it alone is over the budget: the search in hand needs it.
    assert list(lists.lists) == [tokenizer.term(second)]
    watch.compare(first)  # read again when needed
    assert list(lists.lists) == [tokenizer.term(first)]


def test_lists_read_at_a_later_version_serve_no_earlier_snapshot() -> None:
    lists = postings_module._Lists(5)
    kept = postings_module._List(np.array([1], dtype=np.int32), np.array([1.0], dtype=np.float32), 9)
    lists.put("word", kept)
    assert lists.get("word", 9) is kept and lists.get("word", 12) is kept
    assert lists.get("word", 8) is None


def test_phrases_and_words_of_several_tokens_are_left_to_fts5(corpus: Corpus, watch: Watch) -> None:
    facts = watch.facts()
    text = facts.text
    assert text is not None
    assert text.terms(["testing", "café"]) == ["test", "cafe"]
    tokenizer = Tokenizer()
    assert tokenizer.term("") is None
    phrase = SearchTerms.parse(f'"{corpus.words[0]} {corpus.words[1]}"')
    assert phrase.phrases
    assert index_terms(facts, phrase) is None
    assert index_terms(facts, SearchTerms.parse("testing")) == ["test"]


def test_changed_posts_are_tokenized_as_fts5_tokenizes_them() -> None:
    found = Tokenizer().frequencies([(7, "Testing tests", "", "a test", "", "", "")])
    # Title weighs 10 an occurrence, body 1; "a" is a token like any other here.
    assert found == {7: {"test": 21.0, "a": 1.0}}


def test_varints_decode_as_sqlite_writes_them() -> None:
    # 0x7f, 0x80 (two bytes), 100,000 (three bytes), 0
    data = bytes([0x7F, 0x81, 0x00, 0x86, 0x8D, 0x20, 0x00])
    assert varints(data).tolist() == [127, 128, 100_000, 0]


def test_cursors_without_statistics_or_with_forged_ones_still_page(corpus: Corpus) -> None:
    query = (
        "query($q: String!, $after: String) { posts(search: $q, first: 3, after: $after) "
        "{ edges { cursor node { slug } } } }"
    )
    app = create_app(Settings(database_url=corpus.url, cache=False))
    with TestClient(app) as client:

        def ask(after: str | None) -> dict[str, Any]:
            variables = {"q": corpus.words[0], "after": after}
            return dict(client.post("/graphql", json={"query": query, "variables": variables}).json())

        first = ask(None)["data"]["posts"]["edges"]
        raw = first[-1]["cursor"]
        kind, key = orjson.loads(base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)))
        assert len(key) == 3 and len(key[2]) == 3  # relevance, id, the ranking's statistics
        second = ask(raw)["data"]["posts"]["edges"]
        assert second and {e["node"]["slug"] for e in second}.isdisjoint(e["node"]["slug"] for e in first)
        # A cursor given out before cursors carried statistics, one with none, one with statistics
        # no ranking could have (more posts holding the word than posts): the current ones rank.
        for forged in (key[:2], [*key[:2], []], [*key[:2], [1, 1, 999]]):
            page = ask(encode_cursor(kind, forged))
            assert "errors" not in page and page["data"]["posts"]["edges"] == second, forged
        # Statistics that are not numbers are not a cursor of this API.
        refused = ask(encode_cursor(kind, [*key[:2], ["many"]]))
        assert "not a cursor given out by this API" in refused["errors"][0]["message"]


# -- posting lists shared by the workers of an instance (loaders.posting_files) ------------------


def files_of(watch: Watch) -> PostingFiles:
    assert watch.pool.facts.files is not None
    return watch.pool.facts.files.postings


def test_a_list_one_worker_read_is_mapped_by_the_others(corpus: Corpus, tmp_path: Path) -> None:
    first, second = Watch(corpus.url, tmp_path / "index"), Watch(corpus.url, tmp_path / "index")
    try:
        words = corpus.words[:5]
        for word in words:
            first.compare(word)
        read = files_of(first).written
        assert read == len({Tokenizer().term(w) for w in words})
        # The first worker keeps them as mapped from the files: none of its own memory is held.
        lists = first.facts().text.lists  # type: ignore[union-attr]
        assert lists.nbytes == 0 and all(kept.mapped for kept in lists.lists.values())
        # The second maps them rather than reading the store, and ranks exactly as FTS5 does.
        for word in words:
            second.compare(word)
        assert (files_of(second).written, files_of(second).mapped) == (0, read)
        # Through writes too: the changed posts overlay the mapped lists.
        rewrite(tmp_path / "a", corpus, 0, lambda d: dataclasses.replace(d, title=f"{d.title} {words[0]}"))
        rewrite(tmp_path / "b", corpus, 40, lambda d: dataclasses.replace(d, title="Untitled"))
        for word in words:
            second.compare(word)
            first.compare(word)
        assert files_of(second).written == 0
    finally:
        first.close()
        second.close()
        rewrite(tmp_path / "c", corpus, 0, lambda d: d)
        rewrite(tmp_path / "d", corpus, 40, lambda d: d)


def test_a_shared_list_serves_only_the_versions_it_can(tmp_path: Path) -> None:
    """A list read at version v serves a reader at version w whose lists are based at b when
    b <= v <= w: the changes after v are in the reader's overlay, none before b are."""
    files = PostingFiles(tmp_path)
    ids, frequency = np.array([3, 5], dtype=np.int32), np.array([1.0, 4.0], dtype=np.float32)
    mapped = files.write("word", ids, frequency, 9)
    assert isinstance(mapped[0].base, np.memmap) or isinstance(mapped[0], np.memmap)
    found = files.read("word", 5, 9)
    assert found is not None and found[0].tolist() == [3, 5] and found[1].tolist() == [1.0, 4.0] and found[2] == 9
    assert files.read("word", 5, 12) is not None
    assert files.read("word", 5, 8) is None  # newer than the reader's snapshot
    assert files.read("word", 10, 12) is None  # older than the reader's base: changes it would miss
    assert files.read("other", 0, 100) is None
    # A newer read replaces the link; the older file goes once no link points at it.
    files.write("word", ids[:1], frequency[:1], 12)
    found = files.read("word", 0, 100)
    assert found is not None and found[2] == 12 and found[0].tolist() == [3]


def test_shared_lists_stay_within_their_disk_budget(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from loaders import posting_files

    monkeypatch.setattr(posting_files, "STALE_AFTER", -1.0)  # nothing is on its way here
    one = 1_000 * posting_files.RECORD.itemsize
    files = PostingFiles(tmp_path, budget=3 * one + 512)
    (tmp_path / ".left-by-a-killed-worker").write_bytes(b"x")
    for n, term in enumerate(["a", "b", "c", "d", "e"]):
        files.write(term, np.arange(1_000, dtype=np.int32), np.ones(1_000, dtype=np.float32), 1)
        files.write("a", np.arange(n + 1, dtype=np.int32), np.ones(n + 1, dtype=np.float32), 2 + n)  # "a" stays small
    kept = sorted(p.name for p in tmp_path.iterdir() if p.suffix == ".npy")
    assert sum((tmp_path / name).stat().st_size for name in kept) <= files.budget
    # The oldest large lists went, with their links; the newest "a" alone of its versions is left.
    assert files.read("b", 0, 10) is None and files.read("e", 0, 10) is not None
    assert [name for name in kept if name.startswith(posting_files._name("a"))] == [f"{posting_files._name('a')}-6.npy"]
    assert not (tmp_path / ".left-by-a-killed-worker").exists()
    assert all((tmp_path / p.name).exists() for p in tmp_path.iterdir() if p.is_symlink())


def test_a_folder_that_cannot_be_written_leaves_the_lists_in_memory(corpus: Corpus, tmp_path: Path) -> None:
    watch = Watch(corpus.url, tmp_path / "index")
    try:
        watch.compare(corpus.words[0])  # the index's files are there; make the lists' folder a file
        folder = files_of(watch).folder
        for path in folder.iterdir():
            path.unlink()
        folder.rmdir()
        folder.write_bytes(b"")
        watch.compare(corpus.words[3])
        lists = watch.facts().text.lists  # type: ignore[union-attr]
        term = Tokenizer().term(corpus.words[3])
        assert term is not None and not lists.lists[term].mapped and lists.nbytes > 0
    finally:
        watch.close()
