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
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import sparse
from sqlalchemy import Connection, delete, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from models import Entity, Post, PostEntity, PostStack, PostTool, SimilarPost, StackTerm, Tool, table

from .write import chunks

log = logging.getLogger("alphanode.similar")

MAX_SIMILAR = 10  # stored per post; Post.similarPosts(first) reads up to this many
MIN_CANDIDATES = 400
# Above this share of the store marked, recompute everything.
FULL_REFRESH_SHARE = 0.25
WRITE_CHUNK = 2_000

post_t = table(Post)
similar_t = table(SimilarPost)

# Term kinds, in the order reasons name them.
TOPIC, ENTITY, STACK, TOOL = 0, 1, 2, 3
KIND_LABELS = {TOPIC: "topic", ENTITY: "entities", STACK: "stack", TOOL: "tools"}


@dataclass(frozen=True, slots=True)
class Match:
    """One similar post of a post."""

    similar_index: int
    score: float
    reasons: list[str]


class TermIndex:
    """Every post's terms as a sparse matrix, with weights and postings."""

    def __init__(
        self,
        post_ids: np.ndarray,
        source_ids: Sequence[str],
        post_terms: list[list[int]],
        term_kinds: np.ndarray,
        term_labels: list[str],
    ) -> None:
        n = len(post_ids)
        self.post_ids = post_ids
        self.index_of = {int(pid): i for i, pid in enumerate(post_ids)}
        order = sorted(range(n), key=source_ids.__getitem__)
        self.rank = np.empty(n, dtype=np.int64)
        self.rank[order] = np.arange(n)
        indptr = np.zeros(n + 1, dtype=np.int64)
        indptr[1:] = np.cumsum([len(t) for t in post_terms])
        indices = np.fromiter((t for terms in post_terms for t in terms), dtype=np.int32, count=int(indptr[-1]))
        v = len(term_kinds)
        self.x = sparse.csr_matrix((np.ones(len(indices), dtype=np.float64), indices, indptr), shape=(n, v))
        self.x.sort_indices()
        self.xc = self.x.tocsc()
        df = np.diff(self.xc.indptr)
        self.weights = np.where(df > 0, np.log((n + 1) / np.maximum(df, 1)), 0.0)
        self.term_kinds = term_kinds
        self.term_labels = term_labels
        # Rarest first; equal rarity by term id, so the order is deterministic.
        self.rarity_order = np.lexsort((np.arange(v), df))
        self.rarity_rank = np.empty(v, dtype=np.int64)
        self.rarity_rank[self.rarity_order] = np.arange(v)
        self.certified = 0
        self.computed = 0

    def __len__(self) -> int:
        return len(self.post_ids)

    def terms(self, i: int) -> np.ndarray:
        return self.x.indices[self.x.indptr[i] : self.x.indptr[i + 1]]

    def postings(self, term: int) -> np.ndarray:
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
        """The k most similar posts of post index ``i``."""
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
        by_kind: dict[int, list[str]] = {}
        for term in shared:
            by_kind.setdefault(int(self.term_kinds[term]), []).append(self.term_labels[term])
        return [f"{KIND_LABELS[kind]}: {', '.join(by_kind[kind])}" for kind in sorted(by_kind)]

    def score_against(self, i: int, others: np.ndarray) -> np.ndarray:
        """Scores of post ``i`` as a similar post of each of ``others`` (normalized by theirs)."""
        query = np.zeros(self.x.shape[1])
        query[self.terms(i)] = self.weights[self.terms(i)]
        raw = self.x[others] @ query
        totals = self.x[others] @ self.weights
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(totals > 0, np.round(raw / totals, 6), 0.0)


def load_index(conn: Connection) -> TermIndex:
    """Read every post's terms from the store."""
    rows = conn.execute(select(post_t.c.id, post_t.c.source_id, post_t.c.topic).order_by(post_t.c.id)).all()
    post_ids = np.array([r.id for r in rows], dtype=np.int64)
    index_of = {r.id: i for i, r in enumerate(rows)}
    term_id: dict[tuple[int, object], int] = {}
    kinds: list[int] = []
    labels: list[str] = []

    def term(kind: int, key: object, label: str) -> int:
        found = term_id.get((kind, key))
        if found is None:
            found = term_id[(kind, key)] = len(kinds)
            kinds.append(kind)
            labels.append(label)
        return found

    post_terms: list[list[int]] = [[term(TOPIC, r.topic, r.topic)] for r in rows]
    stack_names = dict(conn.execute(select(table(StackTerm).c.id, table(StackTerm).c.name)).all())
    tool_names = dict(conn.execute(select(table(Tool).c.id, table(Tool).c.name)).all())
    entity_labels = {
        r.id: f"{r.name} ({r.type})"
        for r in conn.execute(select(table(Entity).c.id, table(Entity).c.name, table(Entity).c.type))
    }
    for kind, link, column, names in (
        (STACK, table(PostStack), "term_id", stack_names),
        (TOOL, table(PostTool), "tool_id", tool_names),
        (ENTITY, table(PostEntity), "entity_id", entity_labels),
    ):
        for post_id, key in conn.execute(select(link.c.post_id, link.c[column])):
            post_terms[index_of[post_id]].append(term(kind, key, names[key]))
    for terms in post_terms:
        terms.sort()
    return TermIndex(post_ids, [r.source_id for r in rows], post_terms, np.array(kinds, dtype=np.int8), labels)


def _mark_neighbours(conn: Connection, index: TermIndex, changed: list[int]) -> None:
    """Mark the posts that a changed post may leave or enter (``similar_state = 1``).

    It may leave the lists that hold it now; it may enter the list of a candidate
    whose K-th score it now reaches, or whose list is not full.
    """
    marked: set[int] = set()
    for part in chunks(changed):
        marked.update(conn.execute(select(similar_t.c.post_id).where(similar_t.c.similar_id.in_(part))).scalars())
    kth: dict[int, float] = dict(
        conn.execute(select(similar_t.c.post_id, similar_t.c.score).where(similar_t.c.rank == MAX_SIMILAR)).all()
    )
    for post_id in changed:
        i = index.index_of.get(post_id)
        if i is None:
            continue
        others = index.candidates(i)[0]
        if len(others) == 0:
            continue
        scores = index.score_against(i, others)
        for other, score in zip(index.post_ids[others].tolist(), scores.tolist(), strict=True):
            if score > 0 and score >= kth.get(other, 0.0):
                marked.add(other)
    marked.difference_update(changed)
    for part in chunks(sorted(marked)):
        conn.execute(update(post_t).where(post_t.c.id.in_(part), post_t.c.similar_state == 0).values(similar_state=1))


def _plan(conn: Connection) -> tuple[TermIndex, list[int]]:
    """Mark neighbours of changed posts and return the posts to recompute, by id."""
    index = load_index(conn)
    changed = list(conn.execute(select(post_t.c.id).where(post_t.c.similar_state == 2)).scalars())
    if len(changed) > FULL_REFRESH_SHARE * max(len(index), 1):
        conn.execute(update(post_t).values(similar_state=1))
    elif changed:
        _mark_neighbours(conn, index, changed)
        conn.execute(update(post_t).where(post_t.c.similar_state == 2).values(similar_state=1))
    todo = list(conn.execute(select(post_t.c.id).where(post_t.c.similar_state == 1).order_by(post_t.c.id)).scalars())
    return index, todo


def _store(conn: Connection, index: TermIndex, post_ids: Sequence[int]) -> None:
    rows = []
    for post_id in post_ids:
        i = index.index_of.get(post_id)
        if i is None:
            continue
        for rank, match in enumerate(index.top(i), 1):
            rows.append(
                {
                    "post_id": post_id,
                    "rank": rank,
                    "similar_id": int(index.post_ids[match.similar_index]),
                    "score": match.score,
                    "reasons": json.dumps(match.reasons),
                }
            )
    for part in chunks(list(post_ids)):
        conn.execute(delete(similar_t).where(similar_t.c.post_id.in_(part)))
        conn.execute(update(post_t).where(post_t.c.id.in_(part)).values(similar_state=0))
    if rows:
        conn.execute(insert(similar_t), rows)


async def refresh_similar(engine: AsyncEngine) -> int:
    """Recompute similar posts for every post an import or edit touched; returns how many."""
    async with engine.connect() as conn:
        conn = await conn.execution_options(sqlite_immediate=True)
        async with conn.begin():
            pending = await conn.scalar(select(func.count()).where(post_t.c.similar_state > 0))
            if not pending:
                return 0
            index, todo = await conn.run_sync(_plan)
    for start in range(0, len(todo), WRITE_CHUNK):
        part = todo[start : start + WRITE_CHUNK]
        async with engine.connect() as conn:
            conn = await conn.execution_options(sqlite_immediate=True)
            async with conn.begin():
                await conn.run_sync(_store, index, part)
    if index.computed:
        log.info(
            "similar posts: recomputed %d post(s); top %d provably exact for %.1f%%",
            len(todo),
            MAX_SIMILAR,
            100.0 * index.certified / index.computed,
        )
    return len(todo)


def expected_weight(n: int, df: int) -> float:
    """The weight of a term held by ``df`` of ``n`` posts (for tests and docs)."""
    return math.log((n + 1) / df)


async def rebuild_similar(engine: AsyncEngine) -> int:
    """Recompute every post's similar posts with the current weights."""
    async with engine.begin() as conn:
        await conn.execute(update(post_t).values(similar_state=1))
    return await refresh_similar(engine)
