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
marks what it wrote (a ``similar_pending`` row of state 2, ``store.pending``);
:func:`refresh_similar` then marks the neighbours those posts may enter or leave (state 1) and
recomputes the marked posts only. When most of the store is marked, everything
is recomputed with the current weights.

How it is computed: the definition above for one post is the tests' oracle (``tests/store/similar_oracle.py``);
:func:`top_lists` computes the same lists for many posts at once, term by term:
the posts that gather their candidates from a term's postings are scored against
those postings in one sparse-times-dense product, whose sums add the shared
weights in the same order as that definition, so the scores are the same
to the last bit. A refresh of a few posts reads only the posts involved (the
vocabulary with its frequencies, the posts to recompute and their candidates);
a refresh of many reads every post's terms, and from ``PARALLEL_FROM`` posts on
computes in worker processes while this one writes what they computed.

The parts: ``terms`` (vocabulary, term index, reading the store), ``ranking`` (many posts at
once), ``reasons`` (what two posts share, as stored), ``refresh`` (after writes). The
definition one post at a time is the tests' oracle (``tests/store/similar_oracle.py``).
"""

from __future__ import annotations

from .ranking import TopLists, top_lists
from .refresh import PARALLEL_FROM, lists_for, rebuild_similar, refresh_similar, rows_for
from .terms import KIND_LABELS, MAX_SIMILAR, TermIndex, Vocabulary, load_index, load_vocabulary

__all__ = [
    "KIND_LABELS",
    "MAX_SIMILAR",
    "PARALLEL_FROM",
    "TermIndex",
    "TopLists",
    "Vocabulary",
    "lists_for",
    "load_index",
    "load_vocabulary",
    "rebuild_similar",
    "refresh_similar",
    "rows_for",
    "top_lists",
]
