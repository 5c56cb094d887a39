"""A store of ~300 posts served over HTTP, and what each query must return, computed from the documents.

Shared by ``test_finding_posts.py``, ``test_search_posts.py`` and ``test_vocabulary.py``. Every expectation
here is computed in Python from the parsed documents (``documents.parse`` and
their fields), never from the API or the store.

The corpus is 300 synthesized documents, the real seed document and a few
documents written here from synthesized ones (``crafted``), because the
synthesizer never writes what some requirements are about: posts never reviewed
(no ``last reviewed`` date), titles that are not lowercase ASCII, a title shared
by two posts, and text with ``<``, ``>`` and ``&`` for the search snippets.

The importer imports files in sorted path order, so the n-th file of the sorted
list is the post with the n-th smallest id: ``Source.id`` is that rank.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import re
import shutil
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from starlette.testclient import TestClient

from documents import BulletList, Document, Entity, Heading, Paragraph, parse, render, slug_for, to_dict
from documents.synth import synthesize, write
from loaders import ReadPool
from server.app import create_app
from server.settings import Settings
from store.importer import Receipt
from tests.conftest import OPERATIONS, SEED_DOCUMENT
from tests.factories import imported

SYNTHESIZED = 300
SEED = 4242
CRAFT_SEED = 4243  # the crafted documents start from synthesized documents of another run: their own ids

FILTERED_LISTING = (OPERATIONS / "filtered-listing.graphql").read_text(encoding="utf-8")
SEARCH = (OPERATIONS / "search.graphql").read_text(encoding="utf-8")
FACETS = (OPERATIONS / "facets.graphql").read_text(encoding="utf-8")
ENTITY_PAGE = (OPERATIONS / "entity-page.graphql").read_text(encoding="utf-8")

# Tokens as the search index sees them: runs of letters and digits (an underscore separates, as in FTS5's
# unicode61 and PostgreSQL's parser).
TOKEN = re.compile(r"[^\W_]+")
FTS5_SHADOW = re.compile(r"'\w+'\.'post_fts_\w+'")


# -- the corpus ---------------------------------------------------------------


# A stack term, a tool and an entity only one crafted document has.
OWN_TERMS: dict[str, Any] = {
    "stack": "quokka stack",
    "tool": "quokka-cli",
    "entity": Entity("quokka outage", "problem"),
}


def _crafted() -> list[tuple[str, Document]]:
    """(file name, document): documents the synthesizer does not write, from synthesized ones."""
    specs: list[dict[str, Any]] = [
        # Capitals sort before lowercase letters by code point; never reviewed.
        {"title": "Zero downtime, capitalised", "reviewed": None, "difficulty": "intermediate"},
        # After every ASCII letter; the intro has markup-like text around a word found nowhere else.
        {
            "title": "Émile's notes on flaky checks",
            "intro": 'when p99 < 200ms & errors > 1%, the quokka <probe> says "fine" and we ship.',
            "difficulty": "intermediate",
            "own_terms": True,
        },
        {"title": "ärger mit timeouts", "reviewed": None, "difficulty": "advanced"},
        {"title": "_underscore sorts between upper and lower case", "difficulty": "intermediate"},
        # Above the Basic Multilingual Plane: by code point after every other title (not so in UTF-16).
        {"title": "🚀 launch notes", "reviewed": None, "difficulty": "intermediate"},
        {"title": "Ｆullwidth letters sort after Greek", "difficulty": "beginner"},
        {"title": "Ωmega release notes", "difficulty": "intermediate"},
        {"title": "10 checks before a release", "reviewed": None, "difficulty": "beginner"},
        # The seed document's title again: ties are broken by id.
        {"title": "practical guide to keeping staging close to production with python services"},
    ]
    out = []
    for n, (spec, base) in enumerate(zip(specs, synthesize(len(specs), seed=CRAFT_SEED), strict=True), 1):
        meta = base.meta
        revision = meta.revision
        if "reviewed" in spec:
            revision = dataclasses.replace(revision, last_reviewed=spec["reviewed"])
        meta = dataclasses.replace(meta, revision=revision, difficulty=spec.get("difficulty", meta.difficulty))
        if spec.get("own_terms"):
            meta = dataclasses.replace(
                meta,
                stack=(*meta.stack, OWN_TERMS["stack"]),
                tools=(*meta.tools, OWN_TERMS["tool"]),
                entities=(*meta.entities, OWN_TERMS["entity"]),
            )
        document = dataclasses.replace(base, title=spec["title"], intro=spec.get("intro", base.intro), meta=meta)
        out.append((f"crafted_{n:02d}.txt", document))
    return out


def write_corpus(folder: Path) -> None:
    """The synthesized documents, the seed document and the crafted documents, as files."""
    write(folder, SYNTHESIZED, seed=SEED)
    shutil.copy(SEED_DOCUMENT, folder / SEED_DOCUMENT.name)
    for name, document in _crafted():
        (folder / name).write_text(render(document), encoding="utf-8")


def retire_own_terms(store: Store, folder: Path) -> str:
    """Import a new version of the crafted document with ``OWN_TERMS`` without them: the terms stay in
    the store's vocabulary tables, used by no post. Returns the document's slug."""
    (index, source), *others = [(n, s) for n, s in enumerate(store.sources) if OWN_TERMS["tool"] in s.meta.tools]
    assert not others
    meta = source.meta
    meta = dataclasses.replace(
        meta,
        stack=tuple(t for t in meta.stack if t != OWN_TERMS["stack"]),
        tools=tuple(t for t in meta.tools if t != OWN_TERMS["tool"]),
        entities=tuple(e for e in meta.entities if e != OWN_TERMS["entity"]),
    )
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / source.path.name
    path.write_text(render(dataclasses.replace(source.document, meta=meta)), encoding="utf-8")
    receipt = asyncio.run(import_folder(store.url, folder))
    assert (receipt.created, receipt.updated) == (0, 1)
    (updated,) = read_sources(folder, first_id=source.id)
    store.replace(index, updated)
    return updated.slug


def write_new_documents(folder: Path, count: int, after: int = 0) -> None:
    """Documents of the same run that are not in the corpus yet (new source ids), ``after`` the first
    ones written this way."""
    write(folder, count, seed=SEED, start=SYNTHESIZED + 1 + after)


@dataclass(frozen=True)
class Source:
    """One document: its id in the store (its rank in import order), its parsed form and its JSON form."""

    id: int
    path: Path
    document: Document
    data: dict[str, Any]

    @property
    def slug(self) -> str:
        return str(self.data["slug"])

    @property
    def meta(self) -> Any:
        return self.document.meta

    @cached_property
    def words(self) -> frozenset[str]:
        """Every token of the texts search looks at."""
        return frozenset(t for unit in search_units(self.document) for t in tokens(unit))


class OpenPool:
    """A read pool kept open across writes, with the event loop its requests run on."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.loop = asyncio.new_event_loop()
        self.pool: ReadPool = self.loop.run_until_complete(ReadPool.open(url, 2))

    def close(self) -> None:
        self.loop.run_until_complete(self.pool.close())
        self.loop.close()


def read_sources(folder: Path, first_id: int = 1) -> list[Source]:
    """The folder's documents in import order (sorted paths), numbered from ``first_id``."""
    sources = []
    for n, path in enumerate(sorted(folder.rglob("*.txt")), first_id):
        document = parse(path.read_bytes(), path.name)
        sources.append(Source(n, path, document, to_dict(document)))
    assert len({s.slug for s in sources}) == len(sources)
    assert all(s.slug == slug_for(s.document) for s in sources)
    return sources


async def import_folder(url: str, folder: Path) -> Receipt:
    """Import a folder into the store at ``url`` (creating its tables if need be)."""
    receipt: Receipt = await imported(url, folder)
    return receipt


@dataclass
class Recorder:
    """The statements the read pool sent to the database while ``on``.

    SQLite's trace also reports the statements FTS5 runs inside a statement to read its shadow tables
    (as comments, ``-- SELECT ...``, or ``SELECT k, v FROM 'main'.'post_fts_config'`` on a connection's
    first search); they are not statements of the request and are left out.
    """

    on: bool = False
    statements: list[str] = field(default_factory=list)

    def __call__(self, statement: str) -> None:
        text = statement.lstrip()
        # PRAGMA: a new connection's settings, not the request's.
        if (
            self.on
            and not text.upper().startswith("PRAGMA")
            and not text.startswith("--")
            and not FTS5_SHADOW.search(text)
        ):
            self.statements.append(statement)


@dataclass
class Store:
    """The app serving the store, and the documents it holds in import order.

    ``sources`` changes (through ``add`` and ``replace``) when a test imports more documents:
    expectations are always computed from it at the time of the test.
    """

    client: TestClient
    url: str
    sources: list[Source]
    recorder: Recorder

    _index: dict[str, Source] = field(default_factory=dict, repr=False)

    @property
    def by_slug(self) -> dict[str, Source]:
        if not self._index:
            self._index = {s.slug: s for s in self.sources}
        return self._index

    def add(self, sources: list[Source]) -> None:
        """Posts a test imported."""
        self.sources.extend(sources)
        self._index = {}

    def replace(self, index: int, source: Source) -> None:
        """A post a test imported a new version of."""
        self.sources[index] = source
        self._index = {}


@contextmanager
def serve(url: str, folder: Path) -> Iterator[Store]:
    """Import ``folder`` into the (empty) store at ``url`` and serve it."""
    write_corpus(folder)
    sources = read_sources(folder)
    assert asyncio.run(import_folder(url, folder)).created == len(sources)
    # Without the response cache: these tests read what the store holds, request after request,
    # and count statements; the cache has tests of its own (tests/server/test_caching.py).
    app = create_app(Settings(database_url=url, cache=False))
    recorder = Recorder()
    with TestClient(app) as client:
        client.portal.call(app.state.read_pool.trace, recorder)
        yield Store(client, url, sources, recorder)


# -- requests -----------------------------------------------------------------


def post(
    client: TestClient, query: str, variables: dict[str, Any] | None = None, *, accept: str | None = None, **extra: Any
) -> tuple[int, dict[str, Any]]:
    headers = {"accept": accept} if accept else {}
    response = client.post("/graphql", json={"query": query, "variables": variables or {}, **extra}, headers=headers)
    assert response.status_code != 500, response.text
    body: dict[str, Any] = response.json()
    return response.status_code, body


def data_of(client: TestClient, query: str, variables: dict[str, Any] | None = None, **extra: Any) -> dict[str, Any]:
    status, body = post(client, query, variables, **extra)
    assert status == 200, body
    assert "errors" not in body, body["errors"]
    data: dict[str, Any] = body["data"]
    return data


def only_error(body: dict[str, Any]) -> dict[str, Any]:
    assert len(body.get("errors", [])) == 1, body
    error: dict[str, Any] = body["errors"][0]
    return error


def walk(
    client: TestClient,
    query: str,
    variables: dict[str, Any],
    connection: Callable[[dict[str, Any]], dict[str, Any]],
    *,
    first: int = 7,
    operation: str | None = None,
    limit: int = 1000,
) -> list[dict[str, Any]]:
    """Every page of a connection, following ``endCursor`` from the first page; each page checked."""
    pages: list[dict[str, Any]] = []
    after: str | None = None
    while True:
        extra = {"operationName": operation} if operation else {}
        page = connection(data_of(client, query, {**variables, "first": first, "after": after}, **extra))
        pages.append(page)
        if "totalCount" in page:
            assert page["totalCount"] == pages[0]["totalCount"], "totalCount changed between pages"
        edges = page["edges"]
        assert len(edges) <= first
        if "cursor" in (edges[0] if edges else {}):
            assert page["pageInfo"]["endCursor"] == edges[-1]["cursor"]
        if not page["pageInfo"]["hasNextPage"]:
            return pages
        assert len(edges) == first, "a page before the last one is not full"
        after = page["pageInfo"]["endCursor"]
        assert len(pages) < limit, "the walk does not end"


def slugs_of(pages: list[dict[str, Any]]) -> list[str]:
    return [edge["node"]["slug"] for page in pages for edge in page["edges"]]


# -- what the documents say ---------------------------------------------------


def matches(source: Source, where: dict[str, Any] | None) -> bool:
    """Whether a document passes a PostFilter given as GraphQL variables (camelCase)."""
    meta = source.meta
    flags = meta.flags
    reviewed = meta.revision.last_reviewed
    for name, value in (where or {}).items():
        if value is None:
            continue
        if name in ("stackAny", "toolsAll") and not value:
            continue  # empty lists do not filter
        ok = {
            "topic": lambda v: meta.topic == v,
            "stackAny": lambda v: any(term in meta.stack for term in v),
            "toolsAll": lambda v: all(tool in meta.tools for tool in v),
            "entity": lambda v: Entity(v["name"], v["type"]) in meta.entities,
            "codeLanguage": lambda v: meta.code_language == v,
            "difficulty": lambda v: meta.difficulty == v,
            "status": lambda v: meta.revision.status == v,
            "aiGeneratedStyle": lambda v: flags.ai_generated_style == v,
            "hasImages": lambda v: flags.has_images == v,
            "imageHeavy": lambda v: flags.image_heavy == v,
            "needsHumanReview": lambda v: flags.needs_human_review == v,
            "minQuality": lambda v: meta.scores.quality >= v,
            "minFreshness": lambda v: meta.scores.freshness >= v,
            "minDepth": lambda v: meta.scores.depth >= v,
            "minClarity": lambda v: meta.scores.clarity >= v,
            "viewCountMin": lambda v: meta.view_count >= v,
            "viewCountMax": lambda v: meta.view_count <= v,
            "readingTimeMin": lambda v: meta.reading_time >= v,
            "readingTimeMax": lambda v: meta.reading_time <= v,
            "reviewedAfter": lambda v: reviewed is not None and reviewed >= dt.date.fromisoformat(v),
            "reviewedBefore": lambda v: reviewed is not None and reviewed <= dt.date.fromisoformat(v),
        }[name](value)
        if not ok:
            return False
    return True


def search_units(document: Document) -> list[str]:
    """The texts search looks at, each on its own: title, intro, the body's headings, paragraphs and list
    items, the meta checklist, summary and topic."""
    units = [document.title, document.intro]
    for block in document.body:
        if isinstance(block, BulletList):
            units += block.items
        elif isinstance(block, Heading | Paragraph):
            units.append(block.text)
    return [*units, *document.meta.checklist, document.meta.summary, document.meta.topic]


def other_units(document: Document) -> list[str]:
    """Texts of the document that search does not look at."""
    meta = document.meta
    outline = meta.outline
    return [
        meta.ai_brief,
        outline.context,
        outline.problem,
        outline.recommended_action,
        *meta.notes,
        *meta.stack,
        *meta.tools,
        *(e.name for e in meta.entities),
        *(i.caption for i in document.images),
    ]


def tokens(text: str) -> list[str]:
    return TOKEN.findall(text.lower())


def contains_words(source: Source, words: set[str]) -> bool:
    """Every word occurs, as a whole word, case-insensitively, somewhere search looks."""
    return words <= source.words


def contains_phrase(source: Source, phrase: list[str]) -> bool:
    """The words occur one right after the other within one text."""
    n = len(phrase)
    for unit in search_units(source.document):
        seen = tokens(unit)
        if any(seen[i : i + n] == phrase for i in range(len(seen) - n + 1)):
            return True
    return False


def vocabulary(sources: list[Source]) -> set[str]:
    """Every token of every text of every document, searched or not."""
    return {t for s in sources for unit in search_units(s.document) + other_units(s.document) for t in tokens(unit)}


def has_no_other_form(word: str, words: set[str]) -> bool:
    """No other word of the corpus could share a stem with ``word`` (caches, cached, caching for cache):
    none starts with its first letters but for a possible suffix of up to three."""
    stem = word[: max(4, len(word) - 3)] if len(word) > 4 else word
    return not any(other != word and other.startswith(stem) for other in words)


def selected(store: Store, where: dict[str, Any] | None = None, words: set[str] | None = None) -> list[Source]:
    return [s for s in store.sources if matches(s, where) and (words is None or contains_words(s, words))]


def slug_set(sources: list[Source]) -> set[str]:
    return {s.slug for s in sources}


# -- orderings ----------------------------------------------------------------

NEVER = dt.date.min  # never-reviewed posts sort as the oldest

SORT_KEYS: dict[str, Callable[[Source], Any]] = {
    "VIEW_COUNT": lambda s: s.meta.view_count,
    "QUALITY": lambda s: s.meta.scores.quality,
    "FRESHNESS": lambda s: s.meta.scores.freshness,
    "DEPTH": lambda s: s.meta.scores.depth,
    "CLARITY": lambda s: s.meta.scores.clarity,
    "LAST_REVIEWED": lambda s: s.meta.revision.last_reviewed or NEVER,
    "TITLE": lambda s: s.document.title,  # str comparison is by code point
}


def ordered(sources: list[Source], field_name: str | None, direction: str = "DESC") -> list[str]:
    """Slugs sorted by the field's key then the id, both in the direction; newest first without a field."""
    if field_name is None:
        return [s.slug for s in sorted(sources, key=lambda s: s.id, reverse=True)]
    key = SORT_KEYS[field_name]
    return [s.slug for s in sorted(sources, key=lambda s: (key(s), s.id), reverse=direction == "DESC")]


# -- facets -------------------------------------------------------------------

# Facet -> the PostFilter field it ignores, and the values a document has for it (value, type).
FACETS_OF: dict[str, tuple[str, Callable[[Source], list[tuple[str, str | None]]]]] = {
    "topic": ("topic", lambda s: [(s.meta.topic, None)]),
    "stack": ("stackAny", lambda s: [(t, None) for t in s.meta.stack]),
    "tools": ("toolsAll", lambda s: [(t, None) for t in s.meta.tools]),
    "entities": ("entity", lambda s: [(e.name, e.type) for e in s.meta.entities]),
    "codeLanguage": ("codeLanguage", lambda s: [(s.meta.code_language, None)]),
    "difficulty": ("difficulty", lambda s: [(s.meta.difficulty, None)]),
    "status": ("status", lambda s: [(s.meta.revision.status, None)]),
}


def expected_facet(
    store: Store, facet: str, where: dict[str, Any] | None, words: set[str] | None, first: int
) -> list[dict[str, Any]]:
    """The facet's values over the posts the filter selects without the facet's own field: most posts
    first, then by value (then type)."""
    own, values = FACETS_OF[facet]
    rest = {k: v for k, v in (where or {}).items() if k != own}
    counts = Counter(v for s in selected(store, rest, words) for v in values(s))
    ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0][0], item[0][1] or ""))
    return [{"value": value, "count": n, "type": type_} for (value, type_), n in ranked[:first]]
