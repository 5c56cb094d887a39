"""What a request asks of posts: which ones (a :class:`Selection`: filters and a search) and in
which order (an :class:`Ordering`), with the search's words and phrases as the databases read them."""

from __future__ import annotations

import hashlib
import re
from dataclasses import asdict, dataclass, replace
from typing import Any

import orjson

from .fields import FACET_FILTER, FILTER_BY_NAME, FILTERS, ORDERS, Filter

_WORD = re.compile(r"\w+", re.UNICODE)
_PHRASE_OR_WORD = re.compile(r'"([^"]*)"|([^\s"]+)')


# PostgreSQL's english stop words (tsearch_data/english.stop). Both databases leave
# them out of a search, so that a query finds the same posts on either; typed
# operators (AND, OR, NOT, NEAR) are words like any other, and mostly stop words.
STOP_WORDS = frozenset(
    """i me my myself we our ours ourselves you your yours yourself yourselves he him his himself she her hers
    herself it its itself they them their theirs themselves what which who whom this that these those am is are
    was were be been being have has had having do does did doing a an the and but if or because as until while of
    at by for with about against between into through during before after above below to from up down in out on
    off over under again further then once here there when where why how all any both each few more most other
    some such no nor not only own same so than too very s t can will just don should now near""".split()  # noqa: SIM905
)


@dataclass(frozen=True, slots=True)
class SearchTerms:
    """What a user typed, as words and quoted phrases; nothing in it is query syntax.

    Words are runs of letters and digits, lowercased; stop words are left out of
    words (a phrase keeps them, in place). Quotes make a phrase; every other
    character only separates words.
    """

    words: tuple[str, ...]
    phrases: tuple[tuple[str, ...], ...]

    @classmethod
    def parse(cls, text: str) -> SearchTerms:
        words: list[str] = []
        phrases: list[tuple[str, ...]] = []
        for phrase, word in _PHRASE_OR_WORD.findall(text):
            tokens = tuple(t.lower() for t in _WORD.findall(phrase if phrase else word))
            if phrase and len([t for t in tokens if t not in STOP_WORDS]) > 1:
                phrases.append(tokens)
            else:
                words += [t for t in tokens if t not in STOP_WORDS]
        return cls(tuple(dict.fromkeys(words)), tuple(dict.fromkeys(phrases)))

    @property
    def empty(self) -> bool:
        return not self.words and not self.phrases

    def fts5(self) -> str:
        """An FTS5 query: every word and phrase quoted, all of them required."""
        parts = [f'"{w}"' for w in self.words] + ['"' + " ".join(p) + '"' for p in self.phrases]
        return " ".join(parts)


@dataclass(frozen=True, slots=True, init=False)
class Selection:
    """Which posts: filters (the fields of ``loaders.fields.FILTERS``, by name), a search, and
    whether archived posts instead of public ones.

    Made with the filters as keywords (``Selection(topic="x", min_quality=80)``); a filter that
    is None does not narrow the set and is not kept. A filter reads as an attribute
    (``selection.topic``, None when unset).
    """

    filters: tuple[tuple[str, Any], ...]  # (name, value) of the set filters, in FILTERS' order
    search: SearchTerms | None
    archived: bool  # True: archived posts only (editors); readers always get False

    def __init__(
        self,
        filters: tuple[tuple[str, Any], ...] = (),
        search: SearchTerms | None = None,
        archived: bool = False,
        **named: Any,
    ) -> None:
        given = dict(filters)
        given.update(named)
        unknown = given.keys() - FILTER_BY_NAME.keys()
        if unknown:
            raise TypeError(f"Selection has no filter {', '.join(sorted(unknown))}")
        kept = tuple((f.name, given[f.name]) for f in FILTERS if given.get(f.name) is not None)
        object.__setattr__(self, "filters", kept)
        object.__setattr__(self, "search", search)
        object.__setattr__(self, "archived", archived)

    def __getattr__(self, name: str) -> Any:
        if name in FILTER_BY_NAME:
            return dict(self.filters).get(name)
        raise AttributeError(name)

    def set_filters(self) -> list[tuple[Filter, Any]]:
        """The filters that are set, with their values, in FILTERS' order."""
        return [(FILTER_BY_NAME[name], value) for name, value in self.filters]

    def with_filters(self, **filters: Any) -> Selection:
        """The same selection with these filters set (or, None, cleared)."""
        return replace(self, **filters)

    def without(self, facet: str) -> Selection:
        """The same selection without the facet's own filter (facets count as if it were not chosen)."""
        cleared: dict[str, Any] = {FACET_FILTER[facet]: None}
        return replace(self, **cleared)

    def fingerprint(self) -> str:
        data: dict[str, Any] = dict.fromkeys(FILTER_BY_NAME)
        data.update(self.filters)
        data["search"] = asdict(self.search) if self.search is not None else None
        data["archived"] = self.archived
        return hashlib.blake2b(orjson.dumps(data, default=str, option=orjson.OPT_SORT_KEYS), digest_size=6).hexdigest()


# Sort keys: SQL expression and the Python type of its value in a cursor.
SORT_KEYS: dict[str, tuple[str, type]] = {o.key: (o.sql, o.cursor) for o in ORDERS}


@dataclass(frozen=True, slots=True)
class Ordering:
    """An order of posts: a sort key and a direction; the post id breaks ties the same way."""

    key: str = "newest"
    descending: bool = True

    def name(self, selection: Selection) -> str:
        """What a cursor must match: the ordering and the selection it was given out for."""
        return f"{self.key}:{'desc' if self.descending else 'asc'}:{selection.fingerprint()}"

    @property
    def cursor_shape(self) -> tuple[type, ...]:
        if self.key == "relevance":
            # And the statistics the ranking was made with (loaders.postings), ints, maybe none.
            return (float, int, list)
        return (int,) if self.key == "newest" else (SORT_KEYS[self.key][1], int)
