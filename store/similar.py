"""Similar posts: ranked by what two posts share, rare shared terms weighing more.

The terms of a post are its topic, its stack terms, its tools and its entities.
A term held by ``df`` of the ``N`` posts weighs ``ln((N + 1) / df)`` (inverse
document frequency), so a shared topic or problem counts for far more than a
shared ``git``. The score of post q for post p is the weight of the terms they
share divided by the weight of all of p's terms (0..1, rounded to 6 places); ties
go to the smaller source id, so the ranking is the same in every store.

Candidates for p are the posts holding p's rarest terms: postings are gathered in
order of rarity until at least ``MIN_CANDIDATES`` posts are in hand, then every
candidate is scored exactly on all terms. When the K-th best score is above the
weight of the terms left out (the most any other post could reach), the top K is
provably exact; the share of posts for which that holds is logged.

Similar posts are computed on write and stored in ``similar_post``. An import
marks what it wrote (``similar_state = 2``); :func:`refresh_similar` then marks
the neighbours those posts may enter or leave (``similar_state = 1``) and
recomputes the marked posts only. When most of the store is marked, everything
is recomputed with the current weights.

How it is computed: :meth:`TermIndex.top` is the definition above for one post;
:func:`top_lists` computes the same lists for many posts at once, term by term:
the posts that gather their candidates from a term's postings are scored against
those postings in one sparse-times-dense product, whose sums add the shared
weights in the same order as :meth:`TermIndex.top`, so the scores are the same
to the last bit. A refresh of a few posts reads only the posts involved (the
vocabulary with its frequencies, the posts to recompute and their candidates);
a refresh of many reads every post's terms, and from ``PARALLEL_FROM`` posts on
computes in worker processes while this one writes what they computed.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import itertools
import json
import logging
import math
import multiprocessing
import os
import pickle
import uuid
from collections.abc import AsyncIterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from typing import Any

import asyncpg
import numpy as np
from scipy import sparse
from sqlalchemy import Connection, delete, func, select, update
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from models import Entity, Post, PostEntity, PostStack, PostTool, SimilarPost, StackTerm, Tool, table

from . import purge
from .prepare import start_worker, workers_can_start
from .write import chunks, insert_many, tune_for_bulk

log = logging.getLogger("alphanode.similar")

MAX_SIMILAR = 10  # stored per post; Post.similarPosts(first) reads up to this many
MIN_CANDIDATES = 400
# Above this share of the store marked, recompute everything.
FULL_REFRESH_SHARE = 0.25
# Up to this share of the store to recompute, read only the posts involved rather than every post's terms.
PARTIAL_READ_SHARE = 0.02
WRITE_CHUNK = 10_000  # posts whose similar posts are written in one transaction
COMPUTE_PART = 10_000  # posts computed at a time
BULK = 5_000  # posts: from here on, SQLite is tuned for bulk writes (see write.tune_for_bulk)
# From this many posts on, worker processes compute while this process writes.
PARALLEL_FROM = 20_000
WORKERS = 2  # at most
# Cells of one block of scores (posts x candidates) computed at once: bounds memory (8 bytes a cell).
BLOCK_CELLS = 1 << 21
BLOCK_COLUMNS = 4_096

post_t = table(Post)
similar_t = table(SimilarPost)

# Term kinds, in the order reasons name them.
TOPIC, ENTITY, STACK, TOOL = 0, 1, 2, 3
KIND_LABELS = {TOPIC: "topic", ENTITY: "entities", STACK: "stack", TOOL: "tools"}
# Link tables, in the order their terms are numbered (after the topics).
LINKS = (
    (STACK, table(PostStack), "term_id"),
    (TOOL, table(PostTool), "tool_id"),
    (ENTITY, table(PostEntity), "entity_id"),
)
# Reading every post's terms, straight from the driver.
READ_POSTS = "SELECT id, source_id, topic FROM post"
READ_LINKS = {
    STACK: "SELECT post_id, term_id FROM post_stack",
    TOOL: "SELECT post_id, tool_id FROM post_tool",
    ENTITY: "SELECT post_id, entity_id FROM post_entity",
}


@dataclass(frozen=True, slots=True)
class Match:
    """One similar post of a post."""

    similar_index: int
    score: float
    reasons: list[str]


@dataclass(frozen=True, slots=True)
class Vocabulary:
    """Every term held by some post: kind, label and document frequency, by term id.

    Term ids number the topics in the order of the first post (by id) that has
    each, then stack terms, tools and entities in the order of their ids. The
    order matters: equally rare terms are taken rarest-first by term id, and
    scores add shared weights in term id order.
    """

    posts: int  # N, the number of posts
    kinds: np.ndarray  # int8, by term id
    labels: list[str]
    df: np.ndarray  # int64: how many posts hold the term
    topics: dict[str, int]  # topic -> term id
    links: dict[int, np.ndarray]  # kind -> term id by vocabulary row id (-1: no post holds it)

    def __len__(self) -> int:
        return len(self.labels)


def load_vocabulary(conn: Connection) -> Vocabulary:
    """The store's terms and their frequencies, from aggregates (no per-post rows)."""
    posts = conn.execute(select(func.count()).select_from(post_t)).scalar_one()
    kinds: list[int] = []
    labels: list[str] = []
    df: list[int] = []
    topics: dict[str, int] = {}
    rows = conn.execute(select(post_t.c.topic, func.count(), func.min(post_t.c.id)).group_by(post_t.c.topic))
    for topic, count, _ in sorted(rows, key=lambda r: r[2]):
        topics[topic] = len(labels)
        kinds.append(TOPIC)
        labels.append(topic)
        df.append(count)
    names: dict[int, dict[int, str]] = {
        STACK: dict(conn.execute(select(table(StackTerm).c.id, table(StackTerm).c.name)).all()),
        TOOL: dict(conn.execute(select(table(Tool).c.id, table(Tool).c.name)).all()),
        ENTITY: {
            r.id: f"{r.name} ({r.type})"
            for r in conn.execute(select(table(Entity).c.id, table(Entity).c.name, table(Entity).c.type))
        },
    }
    links: dict[int, np.ndarray] = {}
    for kind, link, column in LINKS:
        counts: list[tuple[int, int]] = sorted(
            (key, count) for key, count in conn.execute(select(link.c[column], func.count()).group_by(link.c[column]))
        )
        lookup = np.full(max((key for key, _ in counts), default=0) + 1, -1, dtype=np.int64)
        for key, count in counts:
            lookup[key] = len(labels)
            kinds.append(kind)
            labels.append(names[kind][key])
            df.append(count)
        links[kind] = lookup
    return Vocabulary(posts, np.array(kinds, dtype=np.int8), labels, np.array(df, dtype=np.int64), topics, links)


class TermIndex:
    """Posts' terms as a sparse matrix (a row a post), with weights and postings.

    A full index holds every post. A partial one (:func:`load_index` with
    ``around``) holds some posts and every candidate of theirs, with the weights
    of the whole store: it answers :meth:`candidates`, :meth:`top` and
    :func:`top_lists` for those posts only.
    """

    def __init__(
        self,
        vocabulary: Vocabulary,
        post_ids: np.ndarray,
        source_ids: Sequence[str],
        indptr: np.ndarray,
        indices: np.ndarray,
        postings: dict[int, np.ndarray] | None = None,
    ) -> None:
        n = len(post_ids)
        v = len(vocabulary)
        self.vocabulary = vocabulary
        self.post_ids = post_ids
        self.index_of = {pid: i for i, pid in enumerate(post_ids.tolist())}
        order = sorted(range(n), key=source_ids.__getitem__)
        self.rank = np.empty(n, dtype=np.int64)
        self.rank[order] = np.arange(n)
        self.x = sparse.csr_matrix(
            (np.ones(len(indices), dtype=np.float64), indices.astype(np.int32), indptr.astype(np.int64)), shape=(n, v)
        )
        self.x.sort_indices()
        self._postings = postings
        self.xc = self.x.tocsc() if postings is None else None
        df = vocabulary.df
        self.weights = np.where(df > 0, np.log((vocabulary.posts + 1) / np.maximum(df, 1)), 0.0)
        self.term_kinds = vocabulary.kinds
        self.term_labels = vocabulary.labels
        # Rarest first; equal rarity by term id, so the order is deterministic.
        self.rarity_order = np.lexsort((np.arange(v), df))
        self.rarity_rank = np.empty(v, dtype=np.int64)
        self.rarity_rank[self.rarity_order] = np.arange(v)
        self.certified = 0
        self.computed = 0

    def __len__(self) -> int:
        return len(self.post_ids)

    @property
    def full(self) -> bool:
        return self._postings is None

    def terms(self, i: int) -> np.ndarray:
        return self.x.indices[self.x.indptr[i] : self.x.indptr[i + 1]]

    def postings(self, term: int) -> np.ndarray:
        """Indices of the posts holding ``term``, ascending (in a partial index: the terms it was built for)."""
        if self._postings is not None:
            return self._postings[term]
        assert self.xc is not None
        return self.xc.indices[self.xc.indptr[term] : self.xc.indptr[term + 1]]

    def candidates(self, i: int) -> tuple[np.ndarray, np.ndarray, int]:
        """Posts holding post i's rarest terms; with i's terms rarest first and how many were used."""
        terms = self.terms(i)
        terms = terms[np.argsort(self.rarity_rank[terms], kind="stable")]
        gathered: list[np.ndarray] = [np.empty(0, dtype=np.int32)]
        size = 0
        used = 0
        for term in terms:
            postings = self.postings(int(term))
            gathered.append(postings)
            size += len(postings)
            used += 1
            if size >= MIN_CANDIDATES:
                break
        candidates = np.unique(np.concatenate(gathered))
        return candidates[candidates != i], terms, used

    def top(self, i: int, k: int = MAX_SIMILAR) -> list[Match]:
        """The k most similar posts of post index ``i``: the definition, one post at a time.

        :func:`top_lists` gives the same answer for many posts at once, much faster.
        """
        self.computed += 1
        candidates, terms, used = self.candidates(i)
        weights = self.weights[terms]
        total = float(weights.sum())
        if total <= 0 or len(candidates) == 0:
            return []
        query = np.zeros(self.x.shape[1])
        query[terms] = weights
        raw = self.x[candidates] @ query
        scores = np.round(raw / total, 6)
        keep = scores > 0
        candidates, scores = candidates[keep], scores[keep]
        order = np.lexsort((self.rank[candidates], -scores))[:k]
        left_out = float(weights[used:].sum()) / total
        if used == len(terms) or (len(order) == k and scores[order[-1]] > left_out):
            self.certified += 1
        own = set(terms.tolist())
        return [Match(int(candidates[j]), float(scores[j]), self.reasons(own, int(candidates[j]))) for j in order]

    def reasons(self, own: set[int], other: int) -> list[str]:
        """What two posts share, by kind of term, rarest first."""
        shared = sorted(own.intersection(self.terms(other).tolist()), key=lambda t: self.rarity_rank[t])
        return _reasons([int(t) for t in shared], self.term_kinds, self.term_labels)

    def score_against(self, i: int, others: np.ndarray) -> np.ndarray:
        """Scores of post ``i`` as a similar post of each of ``others`` (normalized by theirs)."""
        query = np.zeros(self.x.shape[1])
        query[self.terms(i)] = self.weights[self.terms(i)]
        raw = self.x[others] @ query
        totals = self.x[others] @ self.weights
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(totals > 0, np.round(raw / totals, 6), 0.0)


def _reasons(shared: Sequence[int], kinds: np.ndarray, labels: list[str]) -> list[str]:
    """Reasons from shared term ids, rarest first: one line a kind of term."""
    by_kind: dict[int, list[str]] = {}
    for term in shared:
        by_kind.setdefault(int(kinds[term]), []).append(labels[term])
    return [f"{KIND_LABELS[kind]}: {', '.join(by_kind[kind])}" for kind in sorted(by_kind)]


# -- many posts at once -------------------------------------------------------


def _ranges(starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """The concatenation of ``arange(s, e)`` for each pair."""
    lengths = ends - starts
    total = int(lengths.sum())
    if total == 0:
        return np.empty(0, dtype=np.int64)
    return np.arange(total, dtype=np.int64) + np.repeat(starts - (np.cumsum(lengths) - lengths), lengths)


@dataclass(frozen=True, slots=True)
class TopLists:
    """Similar posts of many posts, as parallel arrays: the lists one after the other, best first."""

    query: np.ndarray  # index of the post, per match
    similar: np.ndarray  # index of the similar post
    score: np.ndarray
    rank: np.ndarray  # 1..K
    reasons: list[str]  # JSON lists
    certified: int
    computed: int


def top_lists(index: TermIndex, queries: np.ndarray, k: int = MAX_SIMILAR) -> TopLists:
    """The k most similar posts of each of ``queries`` (indices), exactly as :meth:`TermIndex.top` gives them."""
    queries = np.asarray(queries, dtype=np.int64)
    x = index.x
    weights, rarity_rank, df = index.weights, index.rarity_rank, index.vocabulary.df
    nq = len(queries)

    # Each query's terms, rarest first; how many of them gather its candidates; its total weight.
    starts, ends = x.indptr[queries].astype(np.int64), x.indptr[queries + 1].astype(np.int64)
    lengths = ends - starts
    row = np.repeat(np.arange(nq), lengths)
    terms = x.indices[_ranges(starts, ends)].astype(np.int64)
    terms = terms[np.lexsort((rarity_rank[terms], row))]
    first = np.cumsum(lengths) - lengths
    cumulative = np.cumsum(df[terms])
    before = np.concatenate(([0], cumulative))[first]
    short = (cumulative - np.repeat(before, lengths)) < MIN_CANDIDATES
    used = np.minimum(np.bincount(row[short], minlength=nq) + 1, lengths)
    ordered_weights = weights[terms]
    totals = np.empty(nq)
    left_out = np.empty(nq)
    # The same sums as TermIndex.top, one post at a time: numpy's summation order depends on the length.
    for j, (s, e, u) in enumerate(zip(first.tolist(), (first + lengths).tolist(), used.tolist(), strict=True)):
        w = ordered_weights[s:e]
        totals[j] = total = float(w.sum())
        left_out[j] = float(w[u:].sum()) / total if total > 0 else 0.0
    position = np.arange(len(terms)) - np.repeat(first, lengths)
    gathering = position < np.repeat(used, lengths)
    has_candidates = np.zeros(nq, dtype=bool)
    np.logical_or.at(has_candidates, row[gathering], df[terms[gathering]] > 1)
    scored = has_candidates & (totals > 0)

    # Score the queries gathering from each term against that term's postings, block by block.
    request_query = row[gathering]
    request_term = terms[gathering]
    keep = scored[request_query]
    request_query, request_term = request_query[keep], request_term[keep]
    by_term = np.argsort(request_term, kind="stable")
    request_query, request_term = request_query[by_term], request_term[by_term]
    bounds = np.flatnonzero(np.diff(request_term)) + 1
    nothing = np.empty(0, np.int64)
    found: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = [(nothing, nothing, nothing)]
    for group in np.split(np.arange(len(request_term)), bounds) if len(request_term) else []:
        postings = index.postings(int(request_term[group[0]])).astype(np.int64)
        columns = max(1, min(len(postings), BLOCK_COLUMNS))
        for c0 in range(0, len(postings), columns):
            piece = postings[c0 : c0 + columns]
            rows = max(1, BLOCK_CELLS // len(piece))
            for r0 in range(0, len(group), rows):
                found.append(_score_block(index, queries, request_query[group[r0 : r0 + rows]], piece, totals, k))

    # Merge each query's blocks: drop repeats (a candidate found through two terms), keep the k best.
    q, c, key = (np.concatenate([f[i] for f in found]) for i in range(3))
    order = np.lexsort((-key, q))
    q, c, key = q[order], c[order], key[order]
    repeat = np.zeros(len(q), dtype=bool)
    repeat[1:] = (q[1:] == q[:-1]) & (key[1:] == key[:-1])
    q, c, key = q[~repeat], c[~repeat], key[~repeat]
    group_start = np.flatnonzero(np.concatenate(([True], q[1:] != q[:-1]))) if len(q) else np.empty(0, np.int64)
    within = np.arange(len(q)) - np.repeat(group_start, np.diff(np.append(group_start, len(q))))
    best = within < k
    q, c, key, rank = q[best], c[best], key[best], within[best] + 1
    # The score np.round gives: the integer of the key over 10**6.
    score = (key // len(index)).astype(np.float64) / 1e6

    # Certified: every term was used, or the k-th score beats the most the terms left out could give.
    counts = np.bincount(q, minlength=nq)
    kth = np.zeros(nq)
    last = rank == k
    kth[q[last]] = score[last]
    certified = scored & ((used == lengths) | ((counts == k) & (kth > left_out)))

    mine = np.full((nq, int(lengths.max()) if nq else 0), -1, dtype=np.int32)
    mine[row, position] = terms
    reasons = _reasons_of(index, queries, mine, q, c)
    return TopLists(queries[q], c, score, rank, reasons, int(certified.sum()), nq)


def _score_block(
    index: TermIndex,
    queries: np.ndarray,
    which: np.ndarray,
    candidates: np.ndarray,
    totals: np.ndarray,
    k: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Scores of queries ``which`` (positions in ``queries``) against ``candidates``; each one's k best.

    Returns (query position, candidate, sort key) of the k best of each query. The key is
    ``round(score * 10**6) * n + (n - 1 - rank of the candidate's source id)``: larger is
    better, by score and then by smaller source id; -1 for the query itself.
    """
    x = index.x
    n = len(index)
    posts = queries[which]
    a_starts, a_ends = x.indptr[posts].astype(np.int64), x.indptr[posts + 1].astype(np.int64)
    a_terms = x.indices[_ranges(a_starts, a_ends)]
    b_starts, b_ends = x.indptr[candidates].astype(np.int64), x.indptr[candidates + 1].astype(np.int64)
    b_terms = x.indices[_ranges(b_starts, b_ends)]
    # Only terms both sides hold add to a score: a column of the product each.
    held = np.zeros(x.shape[1], dtype=bool)
    held[b_terms] = True
    shared = held[a_terms]
    needed = np.unique(a_terms[shared])
    column_of = np.full(x.shape[1], -1, dtype=np.int64)
    column_of[needed] = np.arange(len(needed))
    a_row = np.repeat(np.arange(len(posts)), a_ends - a_starts)
    a_indptr = np.zeros(len(posts) + 1, dtype=np.int64)
    a_indptr[1:] = np.cumsum(np.bincount(a_row[shared], minlength=len(posts)))
    a = sparse.csr_matrix(
        (index.weights[a_terms[shared]], column_of[a_terms[shared]], a_indptr), shape=(len(posts), len(needed))
    )
    b = np.zeros((len(needed), len(candidates)))
    b_column = np.repeat(np.arange(len(candidates)), b_ends - b_starts)
    b_row = column_of[b_terms]
    held_by_both = b_row >= 0
    b[b_row[held_by_both], b_column[held_by_both]] = 1.0
    # csr @ dense adds, for each cell, the weights of the shared terms in term id order: the
    # order TermIndex.top adds them in (the other terms add 0.0, which changes nothing).
    key = a @ b
    # np.round(raw / total, 6) is rint(raw / total * 1e6) / 1e6: keep the integer, in place.
    key /= totals[which][:, None]
    key *= 1e6
    np.rint(key, out=key)
    # Exact in a float: below 2**53 while n * 10**6 is.
    key *= n
    key += (n - 1 - index.rank[candidates]).astype(np.float64)[None, :]
    self_column = np.searchsorted(candidates, posts)
    inside = self_column < len(candidates)
    inside[inside] = candidates[self_column[inside]] == posts[inside]
    key[np.flatnonzero(inside), self_column[inside]] = -1.0
    width = len(candidates)
    if width > k:
        pick = np.argpartition(key, width - k, axis=1)[:, width - k :]
    else:
        pick = np.broadcast_to(np.arange(width), (len(posts), width))
    picked_key = np.take_along_axis(key, pick, axis=1).ravel()
    picked = candidates[pick].ravel()
    owner = np.repeat(which, pick.shape[1])
    good = picked_key >= n  # a score above 0, not the query itself
    return owner[good], picked[good], picked_key[good].astype(np.int64)


def _reasons_of(
    index: TermIndex, queries: np.ndarray, mine: np.ndarray, q: np.ndarray, similar: np.ndarray
) -> list[str]:
    """JSON reasons of each match of ``queries[q[j]]`` with ``similar[j]``.

    ``mine`` holds each query's terms, rarest first, padded with -1. Equal sets of
    shared terms give equal reasons, and a few sets cover many matches: matches are
    grouped by their set (as bits), and each set's reasons are written once.
    """
    if len(q) == 0:
        return []
    x = index.x
    v = x.shape[1]
    words = (v + 63) // 64
    # Which terms each post holds, as bits: a row of words a post.
    holder = np.repeat(np.arange(len(index), dtype=np.int64), np.diff(x.indptr))
    bits = np.zeros(len(index) * words, dtype=np.uint64)
    np.bitwise_or.at(
        bits, holder * words + (x.indices >> 6), np.left_shift(np.uint64(1), (x.indices & 63).astype(np.uint64))
    )
    bits = bits.reshape(len(index), words)
    posts = queries[q]
    # Group equal sets: by a hash of the bits, then checked against the bits of the group's first match.
    salt = np.random.default_rng(0).integers(0, 2**63, size=words, dtype=np.int64).astype(np.uint64)
    step = max(1024, (1 << 20) // words)
    hashed = np.empty(len(q), dtype=np.uint64)
    for start in range(0, len(q), step):
        both = bits[posts[start : start + step]] & bits[similar[start : start + step]]
        hashed[start : start + step] = _mix(both ^ salt).sum(axis=1, dtype=np.uint64)
    _, first_of, inverse = np.unique(hashed, return_index=True, return_inverse=True)
    representative = first_of[inverse.ravel()]
    collided: list[int] = []
    for start in range(0, len(q), step):
        group = representative[start : start + step]
        both = bits[posts[start : start + step]] & bits[similar[start : start + step]]
        differ = (both != bits[posts[group]] & bits[similar[group]]).any(axis=1)
        collided += (start + np.flatnonzero(differ)).tolist()
    # A set whose hash another set has (rare): grouped with the equal sets among those.
    first_with: dict[bytes, int] = {}
    for j in collided:
        representative[j] = first_with.setdefault((bits[posts[j]] & bits[similar[j]]).tobytes(), j)
    unique, which = np.unique(representative, return_inverse=True)
    # Each set's reasons, from its terms in the query's order (rarest first); a few sets at a time.
    texts: list[str] = []
    for start in range(0, len(unique), 1 << 15):
        part = unique[start : start + (1 << 15)]
        terms = mine[q[part]]
        safe = np.maximum(terms, 0)
        word = bits[similar[part][:, None], safe >> 6]
        shared = (terms >= 0) & (((word >> (safe & 63).astype(np.uint64)) & np.uint64(1)) == 1)
        texts += _reasons_json(index, safe, shared)
    return [texts[j] for j in which.ravel().tolist()]


def _mix(z: np.ndarray) -> np.ndarray:
    """splitmix64's finalizer, element-wise (uint64, wrapping): every bit of the input moves every bit."""
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def _reasons_json(index: TermIndex, terms: np.ndarray, shared: np.ndarray) -> list[str]:
    """``json.dumps`` of the reasons of each row: its shared terms (``terms`` where ``shared``), rarest first."""
    v = len(index.term_labels)
    row, column = np.nonzero(shared)
    term = terms[row, column]
    kind = index.term_kinds[term]
    order = np.lexsort((column, kind, row))  # by row, then kind, then rarity
    row, term, kind = row[order], term[order], kind[order]
    row_start = np.concatenate(([True], row[1:] != row[:-1]))
    kind_start = row_start | np.concatenate(([True], kind[1:] != kind[:-1]))
    variant = np.where(row_start, 0, np.where(kind_start, 1, 2))
    # JSON escapes character by character: labels are escaped once, then joined.
    quoted = [json.dumps(label)[1:-1] for label in index.term_labels]
    kinds = index.term_kinds.tolist()
    pieces = [f'["{KIND_LABELS[kinds[t]]}: {quoted[t]}' for t in range(v)]
    pieces += [f'", "{KIND_LABELS[kinds[t]]}: {quoted[t]}' for t in range(v)]
    pieces += [f", {quoted[t]}" for t in range(v)]
    parts = [pieces[i] for i in (variant * v + term).tolist()]
    bounds = [*np.flatnonzero(row_start).tolist(), len(parts)]
    return ["".join(parts[a:b]) + '"]' for a, b in itertools.pairwise(bounds)]


# -- reading the store --------------------------------------------------------


def _pairs(conn: Connection, statement: Any) -> np.ndarray:
    """Rows of two integers as an (n, 2) array."""
    return _as_pairs(conn.execute(statement).all())


def _as_pairs(rows: Sequence[Any]) -> np.ndarray:
    return np.fromiter(itertools.chain.from_iterable(rows), dtype=np.int64, count=2 * len(rows)).reshape(-1, 2)


def _fetch_all(conn: Connection, sql: str, pairs: bool = False) -> Any:
    """Every row of a statement without parameters, from the driver's cursor (for millions of rows,
    SQLAlchemy's result rows cost more than the database); with ``pairs``, rows of two integers
    as an (n, 2) array, read a part at a time."""
    dbapi = conn.connection.dbapi_connection
    assert dbapi is not None
    cursor = dbapi.cursor()
    try:
        cursor.execute(sql)
        if not pairs:
            return list(cursor.fetchall())
        parts = [np.empty((0, 2), dtype=np.int64)]
        while rows := cursor.fetchmany(50_000):
            parts.append(_as_pairs(rows))
        return np.concatenate(parts)
    finally:
        cursor.close()


def _read_posts(
    conn: Connection, vocabulary: Vocabulary, post_ids: Sequence[int] | None
) -> tuple[np.ndarray, list[str], np.ndarray, np.ndarray]:
    """Ids (ascending), source ids and terms (CSR indptr, indices) of these posts, or of every post."""
    posts: list[Any] = []
    links: dict[int, list[np.ndarray]] = {kind: [] for kind, _, _ in LINKS}
    if post_ids is None:
        posts = _fetch_all(conn, READ_POSTS)
        for kind, _, _ in LINKS:
            links[kind].append(_fetch_all(conn, READ_LINKS[kind], pairs=True))
    for part in chunks(sorted(post_ids or ())):
        posts += conn.execute(
            select(post_t.c.id, post_t.c.source_id, post_t.c.topic).where(post_t.c.id.in_(part))
        ).all()
        for kind, link, column in LINKS:
            links[kind].append(_pairs(conn, select(link.c.post_id, link.c[column]).where(link.c.post_id.in_(part))))
    posts.sort(key=lambda r: r[0])
    ids = np.array([r[0] for r in posts], dtype=np.int64)
    topic_of = vocabulary.topics
    rows = [np.arange(len(ids))]
    cols = [np.array([topic_of[r[2]] for r in posts], dtype=np.int64)]
    for kind, _, _ in LINKS:
        pairs = np.concatenate([np.empty((0, 2), dtype=np.int64), *links[kind]])
        rows.append(np.searchsorted(ids, pairs[:, 0]))
        cols.append(vocabulary.links[kind][pairs[:, 1]])
    row = np.concatenate(rows)
    col = np.concatenate(cols)
    order = np.lexsort((col, row))
    indptr = np.zeros(len(ids) + 1, dtype=np.int64)
    indptr[1:] = np.cumsum(np.bincount(row, minlength=len(ids)))
    return ids, [r[1] for r in posts], indptr, col[order]


def _read_postings(conn: Connection, vocabulary: Vocabulary, terms: Sequence[int]) -> dict[int, np.ndarray]:
    """Post ids holding each of these terms."""
    found: dict[int, list[np.ndarray]] = {}
    wanted = set(terms)
    topics = [topic for topic, term in vocabulary.topics.items() if term in wanted]
    for part in chunks(topics):
        rows = conn.execute(select(post_t.c.id, post_t.c.topic).where(post_t.c.topic.in_(part))).all()
        ids = np.array([r[0] for r in rows], dtype=np.int64)
        _collect(found, np.array([vocabulary.topics[r[1]] for r in rows], dtype=np.int64), ids)
    for kind, link, column in LINKS:
        lookup = vocabulary.links[kind]
        keys = [int(key) for key in np.flatnonzero(lookup >= 0) if int(lookup[key]) in wanted]
        for part in chunks(keys):
            pairs = _pairs(conn, select(link.c.post_id, link.c[column]).where(link.c[column].in_(part)))
            _collect(found, lookup[pairs[:, 1]], pairs[:, 0])
    return {term: np.sort(np.concatenate(ids)) for term, ids in found.items()}


def _collect(found: dict[int, list[np.ndarray]], terms: np.ndarray, post_ids: np.ndarray) -> None:
    """Add (term, post id) pairs to postings."""
    order = np.argsort(terms, kind="stable")
    terms, post_ids = terms[order], post_ids[order]
    bounds = np.flatnonzero(np.diff(terms)) + 1
    for start, ids in zip(np.concatenate(([0], bounds)).tolist(), np.split(post_ids, bounds), strict=True):
        if len(ids):
            found.setdefault(int(terms[start]), []).append(ids)


def load_index(conn: Connection, around: Sequence[int] | None = None) -> TermIndex:
    """Read every post's terms from the store; with ``around``, only those posts' and their candidates'."""
    vocabulary = load_vocabulary(conn)
    if around is None:
        ids, source_ids, indptr, indices = _read_posts(conn, vocabulary, None)
        return TermIndex(vocabulary, ids, source_ids, indptr, indices)
    # The posts' terms, then the postings of the terms that gather their candidates.
    ids, _, indptr, indices = _read_posts(conn, vocabulary, around)
    rarity = np.lexsort((np.arange(len(vocabulary)), vocabulary.df))
    rarity_rank = np.empty(len(vocabulary), dtype=np.int64)
    rarity_rank[rarity] = np.arange(len(vocabulary))
    gathering: set[int] = set()
    for i in range(len(ids)):
        terms = indices[indptr[i] : indptr[i + 1]]
        terms = terms[np.argsort(rarity_rank[terms], kind="stable")]
        size = np.cumsum(vocabulary.df[terms])
        used = min(int(np.searchsorted(size, MIN_CANDIDATES, side="left")) + 1, len(terms))
        gathering.update(terms[:used].tolist())
    postings = _read_postings(conn, vocabulary, sorted(gathering))
    everyone = set(ids.tolist()).union(*(p.tolist() for p in postings.values()))
    ids, source_ids, indptr, indices = _read_posts(conn, vocabulary, sorted(everyone))
    local = {term: np.searchsorted(ids, p) for term, p in postings.items()}
    return TermIndex(vocabulary, ids, source_ids, indptr, indices, postings=local)


# -- refreshing ---------------------------------------------------------------


def _mark_neighbours(conn: Connection, index: TermIndex, changed: list[int]) -> None:
    """Mark the posts that a changed post may leave or enter (``similar_state = 1``).

    It may leave the lists that hold it now; it may enter the list of a candidate
    whose K-th score it now reaches, or whose list is not full.
    """
    marked: set[int] = set()
    for part in chunks(changed):
        marked.update(conn.execute(select(similar_t.c.post_id).where(similar_t.c.similar_id.in_(part))).scalars())
    scored: list[tuple[np.ndarray, np.ndarray]] = []
    for post_id in changed:
        i = index.index_of.get(post_id)
        if i is None:
            continue
        others = index.candidates(i)[0]
        if len(others) == 0:
            continue
        scored.append((index.post_ids[others], index.score_against(i, others)))
    ids = sorted(set(itertools.chain.from_iterable(o.tolist() for o, _ in scored)))
    kth: dict[int, float] = {}
    for part in chunks(ids):
        kth.update(
            conn.execute(
                select(similar_t.c.post_id, similar_t.c.score).where(
                    similar_t.c.rank == MAX_SIMILAR, similar_t.c.post_id.in_(part)
                )
            ).all()
        )
    for others, scores in scored:
        for other, score in zip(others.tolist(), scores.tolist(), strict=True):
            if score > 0 and score >= kth.get(other, 0.0):
                marked.add(other)
    marked.difference_update(changed)
    for part in chunks(sorted(marked)):
        conn.execute(update(post_t).where(post_t.c.id.in_(part), post_t.c.similar_state == 0).values(similar_state=1))


def _index_for(conn: Connection, post_ids: list[int], posts: int) -> TermIndex:
    """A partial index around a few posts, a full one when they are many."""
    return load_index(conn, around=post_ids) if len(post_ids) <= PARTIAL_READ_SHARE * posts else load_index(conn)


def _plan(conn: Connection) -> tuple[TermIndex, list[int], bool]:
    """Mark neighbours of changed posts and return the posts to recompute, by id, with an index for
    them, and whether everything is recomputed."""
    posts = conn.execute(select(func.count()).select_from(post_t)).scalar_one()
    changed = list(conn.execute(select(post_t.c.id).where(post_t.c.similar_state == 2)).scalars())
    index = None
    everything = len(changed) > FULL_REFRESH_SHARE * max(posts, 1)
    if everything:
        # Everything is recomputed: marked posts stay marked (rewriting a post row costs),
        # the others are marked too, so that an interrupted refresh is finished by the next one.
        conn.execute(update(post_t).where(post_t.c.similar_state == 0).values(similar_state=1))
    elif changed:
        index = _index_for(conn, changed, posts)
        _mark_neighbours(conn, index, changed)
        conn.execute(update(post_t).where(post_t.c.similar_state == 2).values(similar_state=1))
    todo = list(conn.execute(select(post_t.c.id).where(post_t.c.similar_state > 0).order_by(post_t.c.id)).scalars())
    if index is None or not index.full:
        index = _index_for(conn, todo, posts)
    return index, todo, everything


def _lists(index: TermIndex, post_ids: Sequence[int]) -> TopLists:
    """The similar posts of these posts (ascending ids), as :func:`top_lists` gives them."""
    queries = np.array([i for i in map(index.index_of.get, post_ids) if i is not None], dtype=np.int64)
    return top_lists(index, queries)


def _rows(index: TermIndex, lists: TopLists, first: int, last: int) -> list[tuple[int, int, int, float, str]]:
    """(post_id, rank, similar_id, score, reasons) of the similar posts of posts ``first..last`` (ids)."""
    posts = index.post_ids[lists.query]
    part = slice(int(np.searchsorted(posts, first, side="left")), int(np.searchsorted(posts, last, side="right")))
    return list(
        zip(
            posts[part].tolist(),
            lists.rank[part].tolist(),
            index.post_ids[lists.similar[part]].tolist(),
            lists.score[part].tolist(),
            lists.reasons[part],
            strict=True,
        )
    )


_COLUMNS = ("post_id", "rank", "similar_id", "score", "reasons")  # in table order, for insert_many


# Refreshes of several processes (server workers and instances, imports, concurrent edits) take
# turns on PostgreSQL: two that planned the same posts would each delete and insert their rows (a
# duplicate key), two that update overlapping post rows in different orders deadlock, and a plan
# read while another refresh writes sees half of it. SQLite's write lock already makes them take
# turns. The key is arbitrary and fixed ("an_sim").
SIMILAR_LOCK_KEY = 0x616E5F73696D
LOCK_RETRY = 0.05  # seconds between tries for the refresh lock while another refresh holds it
PLAN_ATTEMPTS = 5  # a plan whose marks meet a concurrent write's (PostgreSQL) is made again


@contextlib.asynccontextmanager
async def _one_refresh_at_a_time(engine: AsyncEngine) -> AsyncIterator[None]:
    """Hold the refresh lock for the whole refresh (PostgreSQL): a transaction of its own holds it.

    A transaction-scoped lock, not a session one, so that it works through a pooler in
    transaction mode; the transaction writes nothing. The lock is tried, and tried again a
    moment later in a new transaction, never waited for inside one: a transaction waiting on
    the server holds a server session, and behind a pooler with few of them the refresh that
    holds the lock could wait for a session that the refreshes waiting for it hold.
    """
    if engine.dialect.name != "postgresql":
        yield
        return
    async with engine.connect() as conn:
        while True:
            async with conn.begin():
                if await conn.scalar(select(func.pg_try_advisory_xact_lock(SIMILAR_LOCK_KEY))):
                    yield
                    return
            await asyncio.sleep(LOCK_RETRY)


def _serialization_failure(exc: BaseException) -> bool:
    """PostgreSQL's "could not serialize access" (SQLSTATE 40001), raised through SQLAlchemy."""
    seen: BaseException | None = exc
    while seen is not None:
        if getattr(seen, "sqlstate", None) == "40001" or isinstance(seen, asyncpg.SerializationError):
            return True
        seen = getattr(seen, "orig", None) or seen.__cause__
    return False


def _store(
    conn: Connection, post_ids: Sequence[int], rows: list[tuple[int, int, int, float, str]], everything: bool
) -> None:
    """Write these posts' similar posts and clear their marks.

    Only the marks the plan set (1) are cleared: a post a write changed since (2) keeps its mark
    for that write's refresh. A refresh of everything left the changed posts' marks at 2 (a
    first import's: rewriting every post row costs) and clears them all.
    """
    planned = post_t.c.similar_state > 0 if everything else post_t.c.similar_state == 1
    for part in chunks(list(post_ids)):
        conn.execute(delete(similar_t).where(similar_t.c.post_id.in_(part)))
        conn.execute(update(post_t).where(post_t.c.id.in_(part), planned).values(similar_state=0))
    insert_many(conn, similar_t, _COLUMNS, rows)
    # These posts' pages show new similar posts: cached copies must go.
    purge.record(conn, post_ids, lists=False)


async def refresh_similar(engine: AsyncEngine) -> int:
    """Recompute similar posts for every post an import or edit touched; returns how many."""
    pools: list[ProcessPoolExecutor] = []
    try:
        async with _one_refresh_at_a_time(engine):
            for attempt in range(1, PLAN_ATTEMPTS + 1):
                try:
                    planned = await _plan_in_one_snapshot(engine, pools)
                    break
                except DBAPIError as exc:
                    if not _serialization_failure(exc) or attempt == PLAN_ATTEMPTS:
                        raise
                    log.info("similar posts: a write met the plan; planning again")
            if planned is None:
                return 0
            index, todo, everything = planned
            pool = pools[0] if pools and len(todo) >= PARALLEL_FROM else None
            await _recompute(engine, index, todo, everything, pool)
    finally:
        for started in pools:
            started.shutdown(wait=True, cancel_futures=True)
    if index.computed:
        log.info(
            "similar posts: recomputed %d post(s); top %d provably exact for %.1f%%",
            len(todo),
            MAX_SIMILAR,
            100.0 * index.certified / index.computed,
        )
    return len(todo)


async def _plan_in_one_snapshot(
    engine: AsyncEngine, pools: list[ProcessPoolExecutor]
) -> tuple[TermIndex, list[int], bool] | None:
    """The plan, read from one snapshot (SQLite's write transaction; PostgreSQL's REPEATABLE READ,
    where posts written meanwhile would otherwise show up between two of its statements); None
    when nothing waits. A large plan starts the worker processes into ``pools`` meanwhile."""
    async with engine.connect() as conn:
        if engine.dialect.name == "sqlite":
            conn = await conn.execution_options(sqlite_immediate=True)
        else:
            conn = await conn.execution_options(isolation_level="REPEATABLE READ")
        async with conn.begin():
            pending = await conn.scalar(select(func.count()).where(post_t.c.similar_state > 0))
            if not pending:
                return None
            if not pools and pending >= PARALLEL_FROM and workers_can_start():
                pools.append(_start_pool())  # its processes start while the plan is made
            return await conn.run_sync(_plan)


async def _recompute(
    engine: AsyncEngine, index: TermIndex, todo: list[int], everything: bool, pool: ProcessPoolExecutor | None
) -> None:
    """Compute and store the similar posts of ``todo``, a part at a time.

    With a pool, the parts are computed in its processes while this one writes them.
    """
    parts = [todo[start : start + COMPUTE_PART] for start in range(0, len(todo), COMPUTE_PART)]
    computing: collections.deque[asyncio.Future[TopLists]] = collections.deque()
    if pool is not None:
        shared = pickle.dumps(index, protocol=pickle.HIGHEST_PROTOCOL)
        token = uuid.uuid4().hex
        computing.extend(asyncio.wrap_future(pool.submit(_lists_elsewhere, token, shared, part)) for part in parts)
    bulk = len(todo) >= BULK
    try:
        for part in parts:
            lists = None
            if computing:
                try:
                    lists = await computing.popleft()
                except BrokenProcessPool:
                    log.warning("the worker processes stopped: computing in this process")
                    for future in computing:
                        future.cancel()
                    computing.clear()
            if lists is None:
                lists = _lists(index, part)
            index.computed += lists.computed
            index.certified += lists.certified
            for start in range(0, len(part), WRITE_CHUNK):
                chunk = part[start : start + WRITE_CHUNK]
                rows = _rows(index, lists, chunk[0], chunk[-1])
                async with engine.connect() as conn:
                    conn = await conn.execution_options(sqlite_immediate=True)
                    async with conn.begin():
                        if bulk:
                            await conn.run_sync(tune_for_bulk)
                        await conn.run_sync(_store, chunk, rows, everything)
    finally:
        for future in computing:
            future.cancel()


def _start_pool() -> ProcessPoolExecutor:
    workers = min(os.cpu_count() or 1, WORKERS)
    pool = ProcessPoolExecutor(
        max_workers=workers,
        mp_context=multiprocessing.get_context("spawn"),
        initializer=start_worker,
        initargs=(frozenset(),),
    )
    for _ in range(workers):  # start them now, and have them read this module
        pool.submit(_ready)
    return pool


def _ready() -> None:
    pass


# In a worker process: the index of the refresh at hand, read once.
_index_here: dict[str, TermIndex] = {}


def _lists_elsewhere(token: str, shared: bytes, post_ids: list[int]) -> TopLists:
    """:func:`_lists` in a worker process, given the index pickled."""
    index = _index_here.get(token)
    if index is None:
        _index_here.clear()
        index = _index_here[token] = pickle.loads(shared)  # noqa: S301 - our own parent's index
    return _lists(index, post_ids)


def expected_weight(n: int, df: int) -> float:
    """The weight of a term held by ``df`` of ``n`` posts (for tests and docs)."""
    return math.log((n + 1) / df)


async def rebuild_similar(engine: AsyncEngine) -> int:
    """Recompute every post's similar posts with the current weights."""
    async with engine.begin() as conn:
        await conn.execute(update(post_t).values(similar_state=1))
    return await refresh_similar(engine)
