"""The definition of similar posts, one post at a time: the oracle ``store.similar.top_lists`` is held to.

Slow and plain on purpose: for post ``i`` its candidates (``TermIndex.candidates``) are scored
exactly on all its terms, cut to the ``k`` best (ties to the smaller source id), and each gets
the reasons the two posts share. The store computes the same lists many posts at a time; the
tests compare the two, score for score and reason for reason.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from store.similar import KIND_LABELS, MAX_SIMILAR, TermIndex


@dataclass(frozen=True, slots=True)
class Match:
    """One similar post of a post."""

    similar_index: int
    score: float
    reasons: list[str]


def top(index: TermIndex, i: int, k: int = MAX_SIMILAR) -> list[Match]:
    """The k most similar posts of post index ``i``: the definition, one post at a time.

    ``store.similar.top_lists`` must give the same answer for many posts at once, to the last bit.
    """
    index.computed += 1
    candidates, terms, used = index.candidates(i)
    weights = index.weights[terms]
    total = float(weights.sum())
    if total <= 0 or len(candidates) == 0:
        return []
    query = np.zeros(index.x.shape[1])
    query[terms] = weights
    raw = index.x[candidates] @ query
    scores = np.round(raw / total, 6)
    keep = scores > 0
    candidates, scores = candidates[keep], scores[keep]
    order = np.lexsort((index.rank[candidates], -scores))[:k]
    left_out = float(weights[used:].sum()) / total
    if used == len(terms) or (len(order) == k and scores[order[-1]] > left_out):
        index.certified += 1
    own = set(terms.tolist())
    return [Match(int(candidates[j]), float(scores[j]), reasons(index, own, int(candidates[j]))) for j in order]


def reasons(index: TermIndex, own: set[int], other: int) -> list[str]:
    """What two posts share, by kind of term, rarest first."""
    shared = sorted(own.intersection(index.terms(other).tolist()), key=lambda t: index.rarity_rank[t])
    return reasons_from([int(t) for t in shared], index.term_kinds, index.term_labels)


def reasons_from(shared: Sequence[int], kinds: np.ndarray, labels: list[str]) -> list[str]:
    """Reasons from shared term ids, rarest first: one line a kind of term."""
    by_kind: dict[int, list[str]] = {}
    for term in shared:
        by_kind.setdefault(int(kinds[term]), []).append(labels[term])
    return [f"{KIND_LABELS[kind]}: {', '.join(by_kind[kind])}" for kind in sorted(by_kind)]
