"""Searches ranked by bm25 in memory, from FTS5's own posting lists (SQLite).

FTS5 ranks a search by computing bm25 for every post it matches before it can
cut a page: a word in 65,000 of 100,000 posts took 50 to 100 ms however small the
page, and the site's most common words are its most frequent searches. Search
engines answer those from posting lists held in memory; this module does the
same with FTS5's data, so that the ranking is FTS5's to the last bit:

- a term's posting list (the posts that hold it, and its weighted frequency in
  each: every occurrence counts its column's weight) is read once from the index
  through a ``fts5vocab`` table, then kept within ``BUDGET`` bytes, least
  recently used first out;
- each post's length in tokens and the number of rows and tokens are FTS5's own,
  read with the fact index (``loaders.fts5_internals`` holds those reads of FTS5's
  internal storage, and why);
- bm25 is then computed with NumPy in the order and precision of FTS5's C code
  (``fts5_aux.c``), each elementwise step being one correctly rounded IEEE
  operation, so scores, orders and cursors are exactly those of the SQL path
  (the tests compare the two, value for value).

Writes: the fact index applies the posts each write changed (``loaders.facts``);
here their text is read again from ``post_fts`` and tokenized by FTS5 itself, on
an in-memory table with the same tokenizer, into their lengths and an overlay that
replaces those posts in every posting list. Past ``OVERLAY_LIMIT`` changed posts
the overlay is folded into new posting lists; a write of more than ``FOLLOW_LIMIT``
posts drops them (they are read again when needed). A list read at a store version
is used only at that version or later.

Writes also move every score (the number of rows, the mean length, each term's
number of posts): a ranking returns the statistics it used, relevance cursors
carry them, and the pages after a cursor are ranked with them (``frozen``), so a
walk through a search's pages meets each unchanged post once while posts are
imported.

Searches with a quoted phrase, or with a word that FTS5 splits into several
tokens, are left to FTS5: its positions decide those.
"""

from __future__ import annotations

import logging
import math
import sqlite3
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import orjson

from models.search import SEARCH_COLUMNS, SQLITE_INSTANCES, SQLITE_TOKENIZE

from .db import RequestDb
from .fts5_internals import post_sizes, totals
from .posting_files import PostingFiles

log = logging.getLogger("alphanode.search")

# bm25 weights of post_fts's columns, in SEARCH_COLUMNS order.
WEIGHTS = (10.0, 4.0, 1.0, 2.0, 5.0, 5.0)
BM25 = f"bm25(post_fts, {', '.join(str(w) for w in WEIGHTS)})"
K1 = 1.2  # FTS5's bm25 constants
B = 0.75
# Bytes of posting lists kept per read pool: 8 a post a term (its id and weighted frequency).
# Lists mapped from the instance's files (loaders.posting_files) are not counted: their pages
# are the kernel's, shared by the workers; at most MAPPED_KEPT of them are kept mapped.
BUDGET = 64 * 2**20
MAPPED_KEPT = 4_096
# Changed posts kept beside the posting lists before they are folded into them.
OVERLAY_LIMIT = 2_000
# Posts one write may change for the kept lists to follow it: tokenizing a post takes about
# 0.3 ms on the event loop. Past this the lists are dropped and read again when needed.
FOLLOW_LIMIT = 500

_WEIGHT_CASE = (
    "CASE col " + " ".join(f"WHEN '{c}' THEN {int(w)}" for c, w in zip(SEARCH_COLUMNS, WEIGHTS, strict=True)) + " END"
)
_POSTINGS = (
    "SELECT json_group_array(doc), json_group_array(f) FROM "
    f"(SELECT doc, sum({_WEIGHT_CASE}) AS f FROM {SQLITE_INSTANCES} WHERE term = ? GROUP BY doc)"
)
_CHANGED = f"SELECT rowid, {', '.join(SEARCH_COLUMNS)} FROM post_fts WHERE rowid IN (SELECT value FROM json_each(?))"


def json_numbers(text: str, dtype: type = np.int64) -> np.ndarray:
    """A JSON array of numbers, parsed by NumPy without a Python object per number."""
    return np.fromstring(text.strip()[1:-1], dtype=dtype, sep=",")


class Tokenizer:
    """FTS5's tokenizer, run on an in-memory table made like ``post_fts``: words and changed
    posts become terms exactly as the store's index makes them."""

    def __init__(self) -> None:
        conn = sqlite3.connect(":memory:", isolation_level=None, check_same_thread=False)
        conn.execute(f"CREATE VIRTUAL TABLE t USING fts5({', '.join(SEARCH_COLUMNS)}, tokenize = '{SQLITE_TOKENIZE}')")
        conn.execute("CREATE VIRTUAL TABLE t_instance USING fts5vocab(t, instance)")
        self._conn = conn
        self._lock = threading.Lock()
        self._terms: dict[str, str | None] = {}

    def term(self, word: str) -> str | None:
        """The index term of a word, or None when FTS5 makes no token or several of it."""
        if word in self._terms:
            return self._terms[word]
        with self._lock:
            self._conn.execute("BEGIN")
            try:
                self._conn.execute("INSERT INTO t(rowid, title) VALUES (1, ?)", (word,))
                found = [row[0] for row in self._conn.execute("SELECT term FROM t_instance")]
            finally:
                self._conn.execute("ROLLBACK")
        term = found[0] if len(found) == 1 else None
        if len(self._terms) < 100_000:
            self._terms[word] = term
        return term

    def frequencies(self, rows: Sequence[Sequence[Any]]) -> dict[int, dict[str, float]]:
        """Post id -> term -> weighted frequency, for rows of (id, the six columns' text)."""
        return self.tokenize(rows)[0]

    def sizes(self, rows: Sequence[Sequence[Any]]) -> dict[int, int]:
        """Post id -> its length in tokens (as FTS5's index counts it), for rows of
        (id, the six columns' text)."""
        return self.tokenize(rows)[1]

    def tokenize(self, rows: Sequence[Sequence[Any]]) -> tuple[dict[int, dict[str, float]], dict[int, int]]:
        """Post id -> term -> weighted frequency, and post id -> length in tokens, for rows of
        (id, the six columns' text): each occurrence of a term is one token."""
        found: dict[int, dict[str, float]] = {int(row[0]): {} for row in rows}
        sizes = dict.fromkeys(found, 0)
        if not rows:
            return found, sizes
        columns = ", ".join(SEARCH_COLUMNS)
        with self._lock:
            self._conn.execute("BEGIN")
            try:
                self._conn.executemany(f"INSERT INTO t(rowid, {columns}) VALUES (?, ?, ?, ?, ?, ?, ?)", rows)
                text = f"SELECT doc, term, sum({_WEIGHT_CASE}), count(*) FROM t_instance GROUP BY doc, term"
                for doc, term, frequency, occurrences in self._conn.execute(text):
                    found[doc][term] = float(frequency)
                    sizes[doc] += occurrences
            finally:
                self._conn.execute("ROLLBACK")
        return found, sizes


_tokenizer: Tokenizer | None = None


def tokenizer() -> Tokenizer:
    global _tokenizer
    if _tokenizer is None:
        _tokenizer = Tokenizer()
    return _tokenizer


@dataclass(frozen=True, slots=True)
class _List:
    """One term's posting list: post ids ascending, the term's weighted frequency in each."""

    ids: np.ndarray  # int32
    frequency: np.ndarray  # float32 (sums of integer weights: exact)
    read_at: int  # the store version it was read at
    mapped: bool = False  # from a file of the instance's (loaders.posting_files), not this process's memory

    @property
    def nbytes(self) -> int:
        """The process's own memory it holds: none for a mapped list."""
        return 0 if self.mapped else int(self.ids.nbytes + self.frequency.nbytes)


class _Lists:
    """The posting lists kept for one base version, shared by the Text snapshots built on it;
    with ``files``, also written to and mapped from the instance's files."""

    def __init__(self, version: int, files: PostingFiles | None = None) -> None:
        self.version = version
        self.files = files
        self.lists: OrderedDict[str, _List] = OrderedDict()
        self.nbytes = 0

    def get(self, term: str, version: int) -> _List | None:
        found = self.lists.get(term)
        if found is None or found.read_at > version:
            return None
        self.lists.move_to_end(term)
        return found

    def put(self, term: str, found: _List) -> None:
        old = self.lists.pop(term, None)
        if old is not None:
            self.nbytes -= old.nbytes
        self.lists[term] = found
        self.nbytes += found.nbytes
        while (self.nbytes > BUDGET or len(self.lists) > MAPPED_KEPT) and len(self.lists) > 1:
            _, dropped = self.lists.popitem(last=False)
            self.nbytes -= dropped.nbytes

    def shared(self, term: str, version: int) -> _List | None:
        """The term's list from the instance's files, read at a version these lists can use at
        ``version`` (from their base version on), kept; None when there is none."""
        if self.files is None:
            return None
        found = self.files.read(term, self.version, version)
        if found is None:
            return None
        kept = _List(found[0], found[1], found[2], mapped=True)
        self.put(term, kept)
        return kept

    def read(self, term: str, ids: np.ndarray, frequency: np.ndarray, version: int) -> _List:
        """Keep a list read from the store at ``version``; written to the instance's files first
        when there are files, and kept as mapped from them."""
        kept = _List(ids.astype(np.int32), frequency.astype(np.float32), version)
        if self.files is not None:
            ids, frequency = self.files.write(term, kept.ids, kept.frequency, version)
            kept = _List(ids, frequency, version, mapped=ids is not kept.ids)
        self.put(term, kept)
        return kept


@dataclass(slots=True)
class Text:
    """What bm25 needs of the search index at one store version. Never changed once built,
    but for the posting lists it reads and keeps."""

    version: int
    sizes: np.ndarray = field(repr=False)  # int64 by post id: the post's length in tokens (0: no row)
    rows: int  # rows in the search index (FTS5's count, archived posts included)
    tokens: int  # tokens in all of them
    lists: _Lists
    changed: np.ndarray = field(repr=False)  # bool by post id: changed since the lists' base version
    # Changed posts that have a row: term -> weighted frequency.
    overlay: dict[int, dict[str, float]] = field(repr=False)

    # -- building -------------------------------------------------------------------------

    @classmethod
    async def load(cls, db: RequestDb, version: int, files: PostingFiles | None = None) -> Text:
        """Read the totals and every post's length at the request's snapshot (version ``version``);
        posting lists shared through ``files`` when given."""
        rows, tokens = await totals(db)
        sizes = await post_sizes(db)
        return cls.of(version, sizes, rows, tokens, files)

    @classmethod
    def of(cls, version: int, sizes: np.ndarray, rows: int, tokens: int, files: PostingFiles | None = None) -> Text:
        """The text at ``version`` from its totals and every post's length (``sizes``), with no
        posting list read yet; posting lists shared through ``files`` when given."""
        lists = _Lists(version, files)
        return cls(version, sizes, rows, tokens, lists, np.zeros(len(sizes), dtype=bool), {})

    async def delta(self, db: RequestDb, version: int, changed: Sequence[int]) -> Text:
        """This text with the ``changed`` posts read again at the request's snapshot (``version``)."""
        if len(changed) > FOLLOW_LIMIT:
            return await Text.load(db, version, self.lists.files)
        rows, tokens = await totals(db)
        found = await db.fetch(_CHANGED, [orjson.dumps(list(changed)).decode()]) if changed else []
        top = max([len(self.sizes) - 1, *changed])
        sizes = np.zeros(top + 1, dtype=np.int64)
        sizes[: len(self.sizes)] = self.sizes
        marked = np.zeros(top + 1, dtype=bool)
        marked[: len(self.changed)] = self.changed
        ids = np.array(list(changed), dtype=np.int64)
        sizes[ids] = 0
        marked[ids] = True
        overlay = dict(self.overlay)
        for post_id in changed:
            overlay.pop(post_id, None)
        frequencies, lengths = tokenizer().tokenize([tuple(row) for row in found])
        for post_id, length in lengths.items():
            sizes[post_id] = length
        overlay.update(frequencies)
        text = Text(version, sizes, rows, tokens, self.lists, marked, overlay)
        if np.count_nonzero(marked) > OVERLAY_LIMIT:
            text = text._folded()
        return text

    def _folded(self) -> Text:
        """The same text with the overlay folded into new posting lists (kept lists only)."""
        lists = _Lists(self.version, self.lists.files)
        for term in list(self.lists.lists):
            ids, frequency = self._list(term, self.lists.lists[term])
            lists.put(term, _List(ids.astype(np.int32), frequency.astype(np.float32), self.version))
        return Text(self.version, self.sizes, self.rows, self.tokens, lists, np.zeros(len(self.sizes), bool), {})

    # -- reading ----------------------------------------------------------------------------

    def terms(self, words: Sequence[str]) -> list[str] | None:
        """The index terms of a search's words, one each; None when a word is not one term."""
        out = []
        for word in words:
            term = tokenizer().term(word)
            if term is None:
                return None
            out.append(term)
        return out

    async def postings(self, db: RequestDb, term: str) -> tuple[np.ndarray, np.ndarray]:
        """The term's posting list at this version: post ids ascending, weighted frequencies."""
        kept = self.lists.get(term, self.version) or self.lists.shared(term, self.version)
        if kept is None:
            ids_text, frequency_text = (await db.fetch(_POSTINGS, [term]))[0]
            ids = json_numbers(ids_text)
            frequency = np.fromstring(frequency_text.strip()[1:-1], dtype=np.float64, sep=",")
            order = np.argsort(ids, kind="stable")
            kept = self.lists.read(term, ids[order], frequency[order], self.version)
        return self._list(term, kept)

    def _list(self, term: str, kept: _List) -> tuple[np.ndarray, np.ndarray]:
        """A kept list as it is at this version: the changed posts' entries from the overlay."""
        ids = kept.ids.astype(np.int64)
        frequency = kept.frequency.astype(np.float64)
        if not self.overlay and not self.changed.any():
            return ids, frequency
        inside = ids < len(self.changed)
        keep = np.ones(len(ids), dtype=bool)
        keep[inside] = ~self.changed[ids[inside]]
        ids, frequency = ids[keep], frequency[keep]
        extra = sorted((post_id, terms[term]) for post_id, terms in self.overlay.items() if term in terms)
        if extra:
            added = np.array([p for p, _ in extra], dtype=np.int64)
            at = np.searchsorted(ids, added)
            ids = np.insert(ids, at, added)
            frequency = np.insert(frequency, at, np.array([f for _, f in extra], dtype=np.float64))
        return ids, frequency

    async def matches(self, db: RequestDb, terms: Sequence[str]) -> np.ndarray:
        """The posts holding every term (archived ones too), ids ascending."""
        return _common([await self.postings(db, term) for term in dict.fromkeys(terms)], len(self.sizes))

    async def ranking(
        self, db: RequestDb, terms: Sequence[str], frozen: Sequence[Any] | None = None
    ) -> tuple[np.ndarray, np.ndarray, list[int]]:
        """Every post holding every term (archived ones too), its relevance, and the statistics
        it was computed with: FTS5's ``-bm25(post_fts, WEIGHTS)`` for the query of these terms,
        in this order.

        The statistics are ``[rows, tokens, each term's number of posts]``. ``frozen``, the
        statistics of an earlier page of the same search, replaces the current ones when it is
        well formed: a walk through the pages ranks every post it meets by the statistics of its
        first page, so posts imported meanwhile (which move every bm25 score) neither repeat
        nor skip an unchanged post.
        """
        lists = {term: await self.postings(db, term) for term in dict.fromkeys(terms)}
        matched = _common(list(lists.values()), len(self.sizes))
        stats = [self.rows, self.tokens, *(len(lists[term][0]) for term in terms)]
        if frozen is not None and _well_formed(frozen, len(terms)):
            stats = [int(n) for n in frozen]
        rows, tokens, hits = stats[0], stats[1], stats[2:]
        score = np.zeros(len(matched), dtype=np.float64)
        if not len(matched) or not rows:
            return matched, score, stats
        # fts5_aux.c: avgdl = nToken / nRow; IDF = log((nRow - nHit + 0.5) / (nHit + 0.5)), at
        # least 1e-6; each phrase adds IDF * (f * (k1 + 1)) / (f + k1 * (1 - b + b * D / avgdl)).
        average = float(tokens) / float(rows)
        length = self.sizes[matched].astype(np.float64)
        normal = K1 * ((1 - B) + (B * length) / average)
        dense = np.zeros(len(self.sizes), dtype=np.float64)
        for term, hit in zip(terms, hits, strict=True):
            ids, frequency = lists[term]
            dense[ids] = frequency
            f = dense[matched]
            dense[ids] = 0.0
            idf = math.log((rows - hit + 0.5) / (hit + 0.5))
            if idf <= 0.0:
                idf = 1e-6
            score += idf * ((f * (K1 + 1.0)) / (f + normal))
        return matched, score, stats


def _well_formed(stats: Sequence[Any], terms: int) -> bool:
    """Statistics a cursor carries: rows and tokens positive, each term in 0..rows posts."""
    if len(stats) != terms + 2 or not all(isinstance(n, int) and not isinstance(n, bool) for n in stats):
        return False
    rows, tokens, hits = stats[0], stats[1], stats[2:]
    return 0 < rows < 2**62 and 0 < tokens < 2**62 and all(0 <= hit <= rows for hit in hits)


def _common(lists: Sequence[tuple[np.ndarray, np.ndarray]], size: int) -> np.ndarray:
    """The post ids in every list, ascending."""
    if not lists:
        return np.zeros(0, dtype=np.int64)
    ordered = sorted(lists, key=lambda pair: len(pair[0]))
    found = ordered[0][0]
    for ids, _ in ordered[1:]:
        holds = np.zeros(size, dtype=bool)
        holds[ids] = True
        found = found[holds[found]]
    return found


__all__ = ["BM25", "WEIGHTS", "Text", "Tokenizer", "tokenizer"]
