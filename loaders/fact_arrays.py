"""The fact index's data: one array per field, indexed by post id, and what reads them.

``Facts`` holds the facts of every public post at one store version (see ``loaders.facts``
for why, and for how it is kept current). Its arrays are NumPy arrays that may be
memory-mapped, read-only, from the files one worker of an instance writes for the others
(``loaders.fact_files``): nothing here writes into an array it did not make. A change is
applied to a copy (``grown``), and titles changed since the arrays were made are kept
apart (``Titles``).
"""

from __future__ import annotations

import bisect
import datetime as dt
import logging
from collections import OrderedDict
from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import orjson

from .fact_titles import TITLE_ORDER_FILE, TitleOrder, Titles, save_array
from .fields import FLAGS, LINKS, NUMBERS, SCALARS, Compare, Filter
from .postings import Text, json_numbers

if TYPE_CHECKING:
    from .selection import Ordering, Selection

log = logging.getLogger("alphanode.facts")

# (sort key, post id) packed into one int64: key * ID_SPACE + id. Keys (scores, view counts
# within GraphQL's Int, day numbers, title ranks) and post ids below ID_SPACE - 1 fit.
ID_SPACE = 2**31
NO_DATE = dt.date(1, 1, 1).toordinal()  # posts never reviewed sort first (loaders.selection.NO_DATE)
_EMPTY = np.zeros(0, dtype=np.int32)


def json_ints(text: str) -> np.ndarray:
    """A JSON array of integers, parsed by NumPy without a Python object per number."""
    return json_numbers(text)


@dataclass(slots=True)
class Facts:
    """The facts of every public post at one store version. Never changed once in use."""

    version: int
    present: np.ndarray  # bool by post id: a public post has this id
    codes: dict[str, np.ndarray]  # scalar field -> int32 code by post id (-1: no post)
    values: dict[str, list[str]]  # scalar field -> its values, by code
    flags: dict[str, np.ndarray]  # flag -> bool by post id
    numbers: dict[str, np.ndarray]  # score, view count, last review's day number -> int64 by post id
    titles: Titles
    links: dict[str, tuple[np.ndarray, np.ndarray]]  # facet -> (post ids, term ids), int32, one pair per link
    names: dict[str, dict[Any, int]]  # facet -> term (name, or (name, type) for entities) -> term id
    terms: dict[str, dict[int, Any]]  # facet -> term id -> term
    matches: OrderedDict[Hashable, Any] = field(default_factory=OrderedDict)
    text: Text | None = None  # what bm25 needs of the search index (SQLite), see loaders.postings
    # The folder of the files these arrays are mapped from (loaders.fact_files), None when they
    # are this process's own.
    source: Path | None = None
    title_order_made: TitleOrder | None = None

    @property
    def size(self) -> int:
        return len(self.present)

    @property
    def usable(self) -> bool:
        """Whether every post id packs with a sort key (see ID_SPACE)."""
        return self.size < ID_SPACE - 1

    # -- building -------------------------------------------------------------------------

    @classmethod
    def empty(cls, version: int) -> Facts:
        return cls(
            version,
            np.zeros(0, dtype=bool),
            {f: np.zeros(0, dtype=np.int32) for f in SCALARS},
            {f: [] for f in SCALARS},
            {f: np.zeros(0, dtype=bool) for f in FLAGS},
            {f: np.zeros(0, dtype=np.int64) for f in (*NUMBERS, "last_reviewed")},
            Titles(np.zeros(0, dtype=np.uint8), np.zeros(1, dtype=np.int64)),
            {f: (_EMPTY, _EMPTY) for f in LINKS},
            {f: {} for f in LINKS},
            {f: {} for f in LINKS},
        )

    def grown(self, version: int, size: int) -> Facts:
        """A copy at ``version`` to apply changes to, grown to hold post ids below ``size``: the
        arrays by post id are copied, the link arrays and the title buffer shared until replaced."""

        def grown(array: np.ndarray, fill: Any) -> np.ndarray:
            out = np.full(size, fill, dtype=array.dtype)
            out[: len(array)] = array[:size]
            return out

        made = self.title_order_made
        return Facts(
            version,
            grown(self.present, False),
            {f: grown(a, -1) for f, a in self.codes.items()},
            {f: list(v) for f, v in self.values.items()},
            {f: grown(a, False) for f, a in self.flags.items()},
            {f: grown(a, 0) for f, a in self.numbers.items()},
            self.titles.copy(),
            dict(self.links),
            {f: dict(v) for f, v in self.names.items()},
            {f: dict(v) for f, v in self.terms.items()},
            title_order_made=TitleOrder(made.order) if made is not None else None,
        )

    def apply(self, changed: np.ndarray, posts: Sequence[Any], links: Sequence[Any], vocabulary: Sequence[Any]) -> None:
        """Replace the facts of the ``changed`` post ids (already grown to fit) with what was read:
        ``posts``, ``links`` and ``vocabulary`` are the JSON arrays ``loaders.facts`` reads."""
        self._set_vocabulary(vocabulary)
        gone = np.zeros(self.size, dtype=bool)
        gone[changed[changed < self.size]] = True
        self.present[gone] = False
        for codes in self.codes.values():
            codes[gone] = -1
        self._set_posts(posts)
        if self.title_order_made is not None:
            # The title order, when one was made, follows the change rather than being sorted
            # again (a sort of 100,000 titles takes a quarter of a second).
            self.title_order_made = TitleOrder(self._reordered(self.title_order_made.order, gone))
        kinds, post_ids, term_ids = (json_ints(text) for text in links)
        for n, facet in enumerate(LINKS):
            old_posts, old_terms = self.links[facet]
            keep = ~gone[old_posts]
            mine = kinds == n
            self.links[facet] = (
                np.concatenate([old_posts[keep], post_ids[mine].astype(np.int32)]),
                np.concatenate([old_terms[keep], term_ids[mine].astype(np.int32)]),
            )

    def _reordered(self, order: np.ndarray, gone: np.ndarray) -> np.ndarray:
        """``order`` without the ``gone`` posts, and with those of them still present (retitled) in
        their new places."""
        kept = order[~gone[order]]
        back = sorted((self.titles[i], i) for i in np.flatnonzero(gone & self.present).tolist())
        places = [bisect.bisect_left(kept, pair, key=self._title_key) for pair in back]
        return np.insert(kept, places, np.array([i for _, i in back], dtype=np.int32)).astype(np.int32)

    def _title_key(self, post_id: Any) -> tuple[str, int]:
        return self.titles[int(post_id)], int(post_id)

    def _set_vocabulary(self, vocabulary: Sequence[Any]) -> None:
        kinds, ids, names, types = (orjson.loads(text) for text in vocabulary)
        for facet in LINKS:
            self.names[facet].clear()
            self.terms[facet].clear()
        facets = list(LINKS)
        for kind, term_id, name, type_ in zip(kinds, ids, names, types, strict=True):
            facet = facets[kind]
            term = (name, type_) if facet == "entities" else name
            self.names[facet][term] = term_id
            self.terms[facet][term_id] = term

    def _set_posts(self, posts: Sequence[Any]) -> None:
        ids = json_ints(posts[0])
        if not len(ids):
            return
        self.present[ids] = True
        at = 1
        for f in SCALARS:
            known = {value: code for code, value in enumerate(self.values[f])}
            codes = np.empty(len(ids), dtype=np.int32)
            for n, value in enumerate(orjson.loads(posts[at])):
                code = known.get(value)
                if code is None:
                    code = known[value] = len(self.values[f])
                    self.values[f].append(value)
                codes[n] = code
            self.codes[f][ids] = codes
            at += 1
        for f in FLAGS:
            self.flags[f][ids] = json_ints(posts[at]).astype(bool)
            at += 1
        for f in (*NUMBERS, "last_reviewed"):
            self.numbers[f][ids] = json_ints(posts[at])
            at += 1
        self.titles.set(ids.tolist(), orjson.loads(posts[at]))

    # -- reading ----------------------------------------------------------------------------

    def mask(self, selection: Selection, matches: np.ndarray | None) -> np.ndarray:
        """The public posts the selection holds, as a boolean array by post id."""
        mask = self.present.copy()
        for f, value in selection.set_filters():
            mask &= self._filter_mask(f, value)
        if matches is not None:
            matched = np.zeros(self.size, dtype=bool)
            matched[matches[matches < self.size]] = True
            mask &= matched
        return mask

    def _filter_mask(self, f: Filter, value: Any) -> np.ndarray:
        """The posts one filter of ``loaders.fields`` holds (those of the SQL condition it makes)."""
        if f.link is not None:
            terms = (value,) if f.compare is Compare.ENTITY else tuple(dict.fromkeys(value))
            return self._linked(f.link.facet, terms, every=f.compare is Compare.ALL_OF)
        if f.type is str:
            values = self.values[f.array]
            if value not in values:
                return np.zeros(self.size, dtype=bool)
            held: np.ndarray = self.codes[f.array] == values.index(value)
            return held
        if f.type is bool:
            flagged: np.ndarray = self.flags[f.array] == value
            return flagged
        numbers = self.numbers[f.array]
        number = value.toordinal() if isinstance(value, dt.date) else value
        if f.compare is Compare.AT_LEAST:
            out: np.ndarray = numbers >= number
        elif f.compare is Compare.AT_MOST:
            out = numbers <= number
        else:
            out = numbers == number
        if f.type is dt.date:
            out &= numbers != NO_DATE  # posts never reviewed match no date filter (NULL in SQL)
        return out

    def _linked(self, facet: str, terms: Sequence[Any], *, every: bool) -> np.ndarray:
        """Posts linked to any (or every) of these terms."""
        names = self.names[facet]
        ids = [names[t] for t in terms if t in names]
        if (every and len(ids) < len(terms)) or not ids:
            return np.zeros(self.size, dtype=bool)
        post_ids, term_ids = self.links[facet]
        hits = post_ids[np.isin(term_ids, ids)]
        if every:
            every_term: np.ndarray = np.bincount(hits, minlength=self.size)[: self.size] == len(ids)
            return every_term
        out = np.zeros(self.size, dtype=bool)
        out[hits] = True
        return out

    def facet(self, name: str, mask: np.ndarray, limit: int) -> list[tuple[str, str | None, int]]:
        """(value, type, count) of a facet under ``mask``: most posts first, then by value and type."""
        if name in LINKS:
            post_ids, term_ids = self.links[name]
            counts = np.bincount(term_ids[mask[post_ids]])
            terms = self.terms[name]
            found = []
            for term_id in np.flatnonzero(counts):
                term = terms[int(term_id)]
                value, type_ = term if name == "entities" else (term, None)
                found.append((value, type_, int(counts[term_id])))
        else:
            counts = np.bincount(self.codes[name][mask], minlength=len(self.values[name]))
            values = self.values[name]
            found = [(values[code], None, int(counts[code])) for code in np.flatnonzero(counts)]
        found.sort(key=lambda f: (-f[2], f[0], f[1] or ""))
        return found[:limit]

    def title_order(self) -> TitleOrder:
        """The public posts in title order, sorted when first needed and then kept."""
        if self.title_order_made is None:
            ids = np.flatnonzero(self.present).tolist()
            ids.sort(key=self._title_key)
            self.title_order_made = TitleOrder(np.array(ids, dtype=np.int32))
            if self.source is not None:  # mapped from files: the other workers map this order too
                save_array(self.source / TITLE_ORDER_FILE, self.title_order_made.order)
        made = self.title_order_made
        if made.rank is None:
            rank = np.zeros(self.size, dtype=np.int64)
            rank[made.order] = np.arange(len(made.order), dtype=np.int64)
            made.rank = rank
        return made

    def page(
        self,
        mask: np.ndarray,
        ordering: Ordering,
        size: int,
        *,
        forward: bool,
        after: list[Any] | None,
        before: list[Any] | None,
    ) -> tuple[list[int], bool] | None:
        """The ids of a page (in the ordering's direction) and whether more follow; None for a
        cursor this index cannot place (the caller reads the page in SQL)."""
        ids = np.flatnonzero(mask)
        key = ordering.key
        if key == "newest":
            packed = ids
        elif key == "title":
            rank = self.title_order().rank
            assert rank is not None
            packed = rank[ids] * ID_SPACE + ids
        else:
            packed = self.numbers[key][ids] * ID_SPACE + ids
        keep = np.ones(len(ids), dtype=bool)
        for cursor, later in ((after, True), (before, False)):
            if cursor is None:
                continue
            bound = self._bound(key, cursor)
            if bound is None:
                return None
            # Strictly after (or before) the cursor in the ordering's direction.
            keep &= packed > bound if ordering.descending != later else packed < bound
        packed = packed[keep]
        # The size + 1 nearest: to the start when reading forward, to the end when backwards.
        smallest = ordering.descending != forward
        take = min(size + 1, len(packed))
        if take < len(packed):
            part = np.argpartition(packed, take - 1)[:take] if smallest else np.argpartition(packed, -take)[-take:]
            packed = packed[part]
        packed = np.sort(packed)
        if not smallest:
            packed = packed[::-1]
        more = len(packed) > size
        chosen = packed[:size] % ID_SPACE
        if not forward:
            chosen = chosen[::-1]
        return [int(i) for i in chosen], more

    def ranked_page(
        self,
        ids: np.ndarray,
        relevance: np.ndarray,
        mask: np.ndarray,
        ordering: Ordering,
        size: int,
        *,
        forward: bool,
        after: list[Any] | None,
        before: list[Any] | None,
    ) -> tuple[list[int], list[list[Any]], bool] | None:
        """A page of a search ranked by relevance: ids, cursor keys and whether more follow;
        ``ids`` and ``relevance`` are every match's, ``mask`` the posts the filters hold."""
        inside = ids < self.size
        keep = np.zeros(len(ids), dtype=bool)
        keep[inside] = mask[ids[inside]]
        ids, relevance = ids[keep], relevance[keep]
        for cursor, later in ((after, True), (before, False)):
            if cursor is None:
                continue
            value, post_id = cursor
            if not isinstance(value, int | float) or not isinstance(post_id, int):
                return None
            greater = (relevance > value) | ((relevance == value) & (ids > post_id))
            less = (relevance < value) | ((relevance == value) & (ids < post_id))
            chosen = less if ordering.descending == later else greater
            ids, relevance = ids[chosen], relevance[chosen]
        top = ordering.descending == forward  # the page holds the highest relevances
        if len(ids) > 4 * (size + 1):
            # Only those at least as relevant as the (size + 1)-th can be on the page (ties kept):
            # sorting those alone is what makes a page of a common word's 60,000 matches cheap.
            k = size + 1
            if top:
                bound = np.partition(relevance, len(relevance) - k)[len(relevance) - k]
                near = relevance >= bound
            else:
                bound = np.partition(relevance, k - 1)[k - 1]
                near = relevance <= bound
            ids, relevance = ids[near], relevance[near]
        order = np.lexsort((ids, relevance))  # ascending by relevance, then id
        if top:
            order = order[::-1]
        order = order[: size + 1]
        more = len(order) > size
        order = order[:size]
        if not forward:
            order = order[::-1]
        return (
            [int(i) for i in ids[order]],
            [[float(r), int(i)] for r, i in zip(relevance[order], ids[order], strict=True)],
            more,
        )

    def _bound(self, key: str, cursor: list[Any]) -> int | None:
        """The cursor's place among packed keys: its post's packed key, or where no post has the
        cursor's title and id, one less than the packed key of the first title after it (no post
        has that: ids stay below ID_SPACE - 1)."""
        value: Any
        if key == "newest":
            value, post_id = 0, cursor[0]
        else:
            value, post_id = cursor
        if not isinstance(post_id, int) or not 0 <= post_id < ID_SPACE - 1:
            return None
        if key == "newest":
            return int(post_id)
        if key == "title":
            if not isinstance(value, str):
                return None
            order = self.title_order().order
            # Posts strictly before the cursor in title order rank below this position.
            at = bisect.bisect_left(order, (value, post_id), key=self._title_key)
            if at < len(order) and self._title_key(order[at]) == (value, post_id):
                return at * ID_SPACE + post_id
            return at * ID_SPACE - 1
        if key == "last_reviewed":
            try:
                value = dt.date.fromisoformat(value).toordinal()
            except (TypeError, ValueError):
                return None
        if not isinstance(value, int) or not 0 <= value < 2**31:
            return None
        return int(value * ID_SPACE + post_id)


__all__ = [
    "FLAGS",
    "ID_SPACE",
    "LINKS",
    "NUMBERS",
    "SCALARS",
    "Facts",
    "json_ints",
]
