"""What a request asks of posts: which ones (a :class:`Selection`: filters and a search) and in
which order (an :class:`Ordering`), with the search's words and phrases as the databases read them."""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from dataclasses import asdict, dataclass, replace
from typing import Any

import orjson

_WORD = re.compile(r"\w+", re.UNICODE)
_PHRASE_OR_WORD = re.compile(r'"([^"]*)"|([^\s"]+)')
NO_DATE = "0001-01-01"  # where posts never reviewed sort by last review


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


@dataclass(frozen=True, slots=True)
class Selection:
    """Which posts: every field that is not None narrows the set."""

    topic: str | None = None
    stack_any: tuple[str, ...] | None = None
    tools_all: tuple[str, ...] | None = None
    entity: tuple[str, str] | None = None
    code_language: str | None = None
    difficulty: str | None = None
    status: str | None = None
    ai_generated_style: bool | None = None
    has_images: bool | None = None
    image_heavy: bool | None = None
    needs_human_review: bool | None = None
    min_quality: int | None = None
    min_freshness: int | None = None
    min_depth: int | None = None
    min_clarity: int | None = None
    view_count_min: int | None = None
    view_count_max: int | None = None
    reading_time_max: int | None = None
    reviewed_after: dt.date | None = None
    reviewed_before: dt.date | None = None
    search: SearchTerms | None = None
    archived: bool = False  # True: archived posts only (editors); readers always get False

    def without(self, facet: str) -> Selection:
        """The same selection without the facet's own filter (facets count as if it were not chosen)."""
        field = _FACET_FILTER[facet]
        cleared: dict[str, Any] = {field: None}
        return replace(self, **cleared)

    def fingerprint(self) -> str:
        data = asdict(self)
        return hashlib.blake2b(orjson.dumps(data, default=str, option=orjson.OPT_SORT_KEYS), digest_size=6).hexdigest()


# Sort keys: SQL expression and the Python type of its value in a cursor.
SORT_KEYS: dict[str, tuple[str, type]] = {
    "newest": ("post.id", int),
    "view_count": ("post.view_count", int),
    "quality": ("post.quality", int),
    "freshness": ("post.freshness", int),
    "depth": ("post.depth", int),
    "clarity": ("post.clarity", int),
    "last_reviewed": (f"COALESCE(post.last_reviewed, '{NO_DATE}')", str),
    "title": ('post.title COLLATE "C"', str),  # by code point on both databases (see loaders.sql)
    "relevance": ("s.relevance", float),
}


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


# A facet's own filter, which its counts leave out (Selection.without).
_FACET_FILTER = {
    "topic": "topic",
    "stack": "stack_any",
    "tools": "tools_all",
    "entities": "entity",
    "code_language": "code_language",
    "difficulty": "difficulty",
    "status": "status",
}
