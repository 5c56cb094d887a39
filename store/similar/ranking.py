"""Similar posts of many posts at once: scored term by term in sparse-times-dense products, the
same scores to the last bit as the definition one post at a time (the tests' oracle)."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
from scipy import sparse

from . import terms as term_index
from .reasons import reasons_of
from .terms import MAX_SIMILAR, TermIndex

log = logging.getLogger("alphanode.similar")

# Cells of one block of scores (posts x candidates) computed at once: bounds memory (8 bytes a cell).
BLOCK_CELLS = 1 << 21
BLOCK_COLUMNS = 4_096


# -- many posts at once -------------------------------------------------------


def _ranges(starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """The concatenation of ``arange(s, e)`` for each pair."""
    lengths = ends - starts
    total = int(lengths.sum())
    if total == 0:
        return np.empty(0, dtype=np.int64)
    ranges: np.ndarray = np.arange(total, dtype=np.int64) + np.repeat(starts - (np.cumsum(lengths) - lengths), lengths)
    return ranges


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
    """The k most similar posts of each of ``queries`` (indices), exactly as the one-post definition does."""
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
    short = (cumulative - np.repeat(before, lengths)) < term_index.MIN_CANDIDATES  # (one setting, read at each call)
    used = np.minimum(np.bincount(row[short], minlength=nq) + 1, lengths)
    ordered_weights = weights[terms]
    totals = np.empty(nq)
    left_out = np.empty(nq)
    # The same sums as the definition, one post at a time: numpy's summation order depends on the length.
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
    reasons = reasons_of(index, queries, mine, q, c)
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
    # order the definition adds them in (the other terms add 0.0, which changes nothing).
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
