"""What two similar posts share, as the stored JSON list of reasons, for many pairs at once."""

from __future__ import annotations

import itertools
import logging

import numpy as np
import orjson

from .terms import KIND_LABELS, TermIndex

log = logging.getLogger("alphanode.similar")


def reasons_of(
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
        hashed[start : start + step] = mix(both ^ salt).sum(axis=1, dtype=np.uint64)
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


def mix(z: np.ndarray) -> np.ndarray:
    """splitmix64's finalizer, element-wise (uint64, wrapping): every bit of the input moves every bit."""
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    mixed: np.ndarray = z ^ (z >> np.uint64(31))
    return mixed


def _reasons_json(index: TermIndex, terms: np.ndarray, shared: np.ndarray) -> list[str]:
    """The reasons of each row as JSON text, as ``orjson.dumps`` writes them: its shared terms
    (``terms`` where ``shared``), rarest first."""
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
    quoted = [orjson.dumps(label).decode()[1:-1] for label in index.term_labels]
    kinds = index.term_kinds.tolist()
    pieces = [f'["{KIND_LABELS[kinds[t]]}: {quoted[t]}' for t in range(v)]
    pieces += [f'","{KIND_LABELS[kinds[t]]}: {quoted[t]}' for t in range(v)]
    pieces += [f", {quoted[t]}" for t in range(v)]
    parts = [pieces[i] for i in (variant * v + term).tolist()]
    bounds = [*np.flatnonzero(row_start).tolist(), len(parts)]
    return ["".join(parts[a:b]) + '"]' for a, b in itertools.pairwise(bounds)]
