"""Posts' terms: the vocabulary with its frequencies, the term index (a sparse matrix of posts by
terms, with weights and postings), and reading both from the store."""

from __future__ import annotations

import itertools
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import sparse
from sqlalchemy import Connection, func, select

from models import Entity, Post, PostEntity, PostStack, PostTool, SimilarPost, StackTerm, Tool, table

from ..bulk import chunks

log = logging.getLogger("alphanode.similar")


MAX_SIMILAR = 10  # stored per post; Post.similarPosts(first) reads up to this many
MIN_CANDIDATES = 400
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
    of the whole store: it answers :meth:`candidates`, the one-post definition and
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
        held: np.ndarray = self.x.indices[self.x.indptr[i] : self.x.indptr[i + 1]]
        return held

    def postings(self, term: int) -> np.ndarray:
        """Indices of the posts holding ``term``, ascending (in a partial index: the terms it was built for)."""
        if self._postings is not None:
            return self._postings[term]
        assert self.xc is not None
        holders: np.ndarray = self.xc.indices[self.xc.indptr[term] : self.xc.indptr[term + 1]]
        return holders

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

    def score_against(self, i: int, others: np.ndarray) -> np.ndarray:
        """Scores of post ``i`` as a similar post of each of ``others`` (normalized by theirs)."""
        query = np.zeros(self.x.shape[1])
        query[self.terms(i)] = self.weights[self.terms(i)]
        raw = self.x[others] @ query
        totals = self.x[others] @ self.weights
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(totals > 0, np.round(raw / totals, 6), 0.0)


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
