"""Request bodies for each frontend operation, drawn from the store, and the in-process checks.

The variables are taken from the store being measured, with a seeded random
generator, so that a run exercises many different rows and query plans rather
than one hot row: many slugs for the post page, successive pages of the
listing (real cursors), filters built from real posts' values with several
orderings, search words from the corpus's own titles and summaries (common and
rare, single words, pairs, quoted phrases, with and without a filter), facets
under those filters, and entity pages of many entities.

The same module runs every body once in-process, through
``server.graphql_http.execute`` on a :class:`loaders.db.ReadPool` whose
``hooks`` record each statement: that is the statements-per-request figure
(``BEGIN`` and ``ROLLBACK`` included, as the statement-count tests count
them), and the place where the hand-written endpoint's JSON and statements are
compared with the GraphQL API's.
"""

from __future__ import annotations

import itertools
import logging
import random
import re
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import orjson

from bench import handwritten
from graph.schema import executor, schema
from loaders import ReadPool, RequestDb, Row, batch
from loaders.posts import STOP_WORDS
from server.graphql_http import GraphQLParams, execute
from server.services import Services

ROOT = Path(__file__).resolve().parents[1]
OPERATIONS_DIR = ROOT / "server" / "operations"

# Operation name -> the file the frontend sends it from (the whole document, with operationName).
OPERATION_FILES = {
    "PostPage": "post-page.graphql",
    "Listing": "listing.graphql",
    "FilteredListing": "filtered-listing.graphql",
    "Search": "search.graphql",
    "Facets": "facets.graphql",
    "EntityPage": "entity-page.graphql",
    "Vocabulary": "entity-page.graphql",
}
OPERATIONS = tuple(OPERATION_FILES)
HANDWRITTEN_OPERATIONS = tuple(handwritten.HANDLERS)

LISTING_PAGE = 20
SEARCH_PAGE = 10
INT_MAX = 2**31 - 1  # GraphQL's Int
ORDERINGS: tuple[dict[str, str] | None, ...] = (
    None,
    {"field": "VIEW_COUNT", "direction": "DESC"},
    {"field": "QUALITY", "direction": "DESC"},
    {"field": "FRESHNESS", "direction": "DESC"},
    {"field": "LAST_REVIEWED", "direction": "DESC"},
    {"field": "TITLE", "direction": "ASC"},
)
_WORD = re.compile(r"\w+")

Body = dict[str, Any]


@dataclass(frozen=True, slots=True)
class Sizes:
    """How many distinct request bodies each operation rotates through."""

    post_page: int = 200
    listing_pages: int = 20
    filtered_listing: int = 60
    search: int = 60
    facets: int = 30
    entity_page: int = 40
    sample_posts: int = 1_000  # posts whose titles and values feed searches and filters

    @classmethod
    def quick(cls) -> Sizes:
        return cls(50, 10, 30, 30, 15, 20, 300)


def document(operation: str) -> str:
    return (OPERATIONS_DIR / OPERATION_FILES[operation]).read_text(encoding="utf-8")


def body(operation: str, variables: dict[str, Any]) -> Body:
    return {"query": document(operation), "variables": variables, "operationName": operation}


def encode(request: Body) -> bytes:
    return orjson.dumps(request)


class GraphQLError(AssertionError):
    """A prepared body the API did not answer cleanly: the workload or the API is wrong, not the measurement."""


class _Capture(logging.Handler):
    """Keeps the unexpected errors the API logs (their cause is masked in its answer)."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.causes: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        error = record.exc_info[1] if record.exc_info else None
        self.causes.append(f"{type(error).__name__}: {error}" if error is not None else record.getMessage())


class InProcess:
    """Runs bodies through the API's own ``execute`` (and the hand-written handlers), recording statements."""

    def __init__(self, pool: ReadPool) -> None:
        self.pool = pool
        # What execute() uses of a running app, without its caches: every body reaches the store.
        # Every request reads this pool, as the primary's pool when no replica is configured.
        self.services = cast(
            Services,
            SimpleNamespace(
                executor=executor, schema=schema, pool=pool, writer=None, read_pool=lambda authorization: pool
            ),
        )
        self.statements: list[str] = []
        pool.hooks.append(self.statements.append)
        self._capture = _Capture()
        self._logger = logging.getLogger("alphanode.graphql")
        self._logger.addHandler(self._capture)
        self._propagate, self._logger.propagate = self._logger.propagate, False

    def close(self) -> None:
        self.pool.hooks.remove(self.statements.append)
        self._logger.removeHandler(self._capture)
        self._logger.propagate = self._propagate

    async def graphql(self, request: Body) -> tuple[dict[str, Any], list[str]]:
        self.statements.clear()
        self._capture.causes.clear()
        params = GraphQLParams(request["query"], request["variables"], request["operationName"], None)
        result = await execute(self.services, params, "POST")
        if result.errors or result.data is None:
            messages = [e.message for e in result.errors or []] + self._capture.causes
            text = " ".join("; ".join(messages).split())  # one line, for the report
            raise GraphQLError(f"{text} (variables {orjson.dumps(request['variables']).decode()})")
        return result.data, list(self.statements)

    async def handwritten(self, request: Body) -> tuple[dict[str, Any], list[str]]:
        self.statements.clear()
        data = await handwritten.answer(self.pool, request["operationName"], request["variables"])
        return data, list(self.statements)

    async def rows(self, statement: str) -> list[Row]:
        db = RequestDb(self.pool)
        try:
            return await db.fetch(statement)
        finally:
            await db.close()


@dataclass(slots=True)
class _Sample:
    """Real posts with the values filters and searches are made of."""

    posts: list[Row]
    stacks: list[list[str]]
    tools: list[list[str]]
    entities: list[list[Row]]
    entity_names: list[tuple[str, str]] = field(default_factory=list)


async def _sample(run: InProcess, rng: random.Random, size: int) -> _Sample:
    ids = [row[0] for row in await run.rows("SELECT id FROM post ORDER BY id")]
    if not ids:
        raise RuntimeError("the store has no posts")
    chosen = rng.sample(ids, min(size, len(ids)))
    db = RequestDb(run.pool)
    try:
        posts = [row for row in await batch.posts_by_id(db, chosen) if row is not None]
        keys = [row["id"] for row in posts]
        sample = _Sample(
            posts,
            await batch.stack_by_post_id(db, keys),
            await batch.tools_by_post_id(db, keys),
            await batch.entities_by_post_id(db, keys),
        )
    finally:
        await db.close()
    names = await run.rows("SELECT name, type FROM entity ORDER BY name, type")
    sample.entity_names = [(row[0], row[1]) for row in names]
    return sample


def _filters(sample: _Sample, i: int, rng: random.Random) -> list[dict[str, Any]]:
    """Filters that hold the i-th sampled post (so none is empty), one per kind of filter box."""
    post, stack, tools, entities = sample.posts[i], sample.stacks[i], sample.tools[i], sample.entities[i]
    found: list[dict[str, Any]] = [
        {"topic": post["topic"]},
        {"stackAny": rng.sample(stack, min(2, len(stack)))},
        {"codeLanguage": post["code_language"], "difficulty": post["difficulty"]},
        {"status": post["status"], "minQuality": max(0, post["quality"] - 20)},
        {"hasImages": bool(post["has_images"]), "needsHumanReview": bool(post["needs_human_review"])},
        {"viewCountMin": post["view_count"] // 2, "viewCountMax": min(post["view_count"] * 2, INT_MAX)},
        {"stackAny": stack[:1], "minFreshness": max(0, post["freshness"] - 30)},
    ]
    if tools:
        found.append({"toolsAll": rng.sample(tools, min(2, len(tools)))})
    if entities:
        entity = rng.choice(entities)
        found.append({"entity": {"name": entity["name"], "type": entity["type"]}})
    if post["last_reviewed"] is not None:
        found.append({"reviewedAfter": str(post["last_reviewed"])[:10], "difficulty": post["difficulty"]})
    return found


def _words(text: str) -> list[str]:
    return [w for w in _WORD.findall(text.lower()) if w not in STOP_WORDS and len(w) > 2 and not w.isdigit()]


def _search_texts(sample: _Sample, count: int, rng: random.Random) -> list[str]:
    """What people type: common and rare words of the corpus, pairs from one title, quoted phrases."""
    titles = [str(post["title"]) for post in sample.posts]
    frequency = Counter(w for post in sample.posts for w in set(_words(f"{post['title']} {post['summary']}")))
    ranked = [w for w, _ in frequency.most_common()]
    common, rare = ranked[:40], ranked[40:] or ranked
    texts: list[str] = []
    while len(texts) < count:
        kind = len(texts) % 5
        title = rng.choice(titles)
        words = _words(title)
        if kind == 0:
            texts.append(rng.choice(common))
        elif kind == 1:
            texts.append(rng.choice(rare))
        elif kind in (2, 3) and len(words) >= 2:
            texts.append(" ".join(rng.sample(words, 2)))
        else:
            tokens = _WORD.findall(title.lower())
            pairs = [
                (a, b)
                for a, b in itertools.pairwise(tokens)
                if a not in STOP_WORDS and b not in STOP_WORDS and not a.isdigit() and not b.isdigit()
            ]
            texts.append(f'"{" ".join(rng.choice(pairs))}"' if pairs else rng.choice(common))
    return texts


async def _with_next_page(
    run: InProcess, first_page: Body, connection: str, rng: random.Random, share: float
) -> list[Body]:
    """The body, and with probability ``share`` the body of its next page (a real cursor)."""
    bodies = [first_page]
    if rng.random() < share:
        data, _ = await run.graphql(first_page)
        holder = data
        for key in connection.split("."):
            holder = holder[key] if holder is not None else None
        if holder is not None and holder["pageInfo"]["hasNextPage"]:
            variables = {**first_page["variables"], "after": holder["pageInfo"]["endCursor"]}
            bodies.append(body(first_page["operationName"], variables))
    return bodies


async def _post_pages(run: InProcess, rng: random.Random, count: int) -> list[Body]:
    slugs = [row[0] for row in await run.rows("SELECT slug FROM post ORDER BY id")]
    return [body("PostPage", {"slug": slug}) for slug in rng.sample(slugs, min(count, len(slugs)))]


async def _listing(run: InProcess, pages: int) -> list[Body]:
    """The first pages of the listing, each after the previous page's end cursor."""
    bodies: list[Body] = []
    after: str | None = None
    for _ in range(pages):
        page = body("Listing", {"first": LISTING_PAGE, "after": after})
        bodies.append(page)
        data, _ = await run.graphql(page)
        if not data["posts"]["pageInfo"]["hasNextPage"]:
            break
        after = data["posts"]["pageInfo"]["endCursor"]
    return bodies


def _filter_pool(sample: _Sample, rng: random.Random, count: int) -> list[dict[str, Any]]:
    """``count`` filters, each of a kind chosen at random and holding a random sampled post."""
    return [rng.choice(_filters(sample, rng.randrange(len(sample.posts)), rng)) for _ in range(count)]


async def _filtered(run: InProcess, filters: list[dict[str, Any]], rng: random.Random, count: int) -> list[Body]:
    """Filtered listings in several orders, some on their second page."""
    bodies: list[Body] = []
    for where in filters:
        variables: dict[str, Any] = {
            "first": LISTING_PAGE,
            "after": None,
            "where": where,
            "orderBy": rng.choice(ORDERINGS),
        }
        bodies += await _with_next_page(run, body("FilteredListing", variables), "posts", rng, 0.3)
        if len(bodies) >= count:
            break
    return bodies[:count]


async def _searches(
    run: InProcess, texts: list[str], filters: list[dict[str, Any]], rng: random.Random, count: int
) -> list[Body]:
    bodies: list[Body] = []
    for i, text in enumerate(texts):
        variables: dict[str, Any] = {
            "q": text,
            "first": SEARCH_PAGE,
            "after": None,
            "where": rng.choice(filters) if i % 6 == 5 else None,
        }
        bodies += await _with_next_page(run, body("Search", variables), "posts", rng, 0.2)
    return bodies[:count]


def _facets(texts: list[str], filters: list[dict[str, Any]], rng: random.Random, count: int) -> list[Body]:
    """The facets of everything, then under filters, a third of them with a search too."""
    bodies = [body("Facets", {"where": None, "search": None})]
    for i in range(1, count):
        search = texts[i % len(texts)] if i % 3 == 0 else None
        bodies.append(body("Facets", {"where": rng.choice(filters), "search": search}))
    return bodies


async def _entity_pages(run: InProcess, sample: _Sample, rng: random.Random, count: int) -> list[Body]:
    bodies: list[Body] = []
    for name, type_ in rng.sample(sample.entity_names, min(count, len(sample.entity_names))):
        variables: dict[str, Any] = {"name": name, "type": type_, "first": LISTING_PAGE, "after": None}
        bodies += await _with_next_page(run, body("EntityPage", variables), "entity.posts", rng, 0.3)
    return bodies[:count]


@dataclass(slots=True)
class Workloads:
    """Each operation's request bodies, or why there are none."""

    bodies: dict[str, list[Body]] = field(default_factory=dict)
    failures: dict[str, str] = field(default_factory=dict)


async def build(pool: ReadPool, sizes: Sizes, seed: int) -> Workloads:
    """Every operation's request bodies, the same for the same store and seed.

    Each operation draws from its own seeded generator, and an operation the API
    fails to answer is reported and left out without changing the others' bodies.
    """
    run = InProcess(pool)
    try:
        sample = await _sample(run, random.Random(f"{seed}:sample"), sizes.sample_posts)
        filters = _filter_pool(sample, random.Random(f"{seed}:filters"), 2 * sizes.filtered_listing)
        texts = _search_texts(sample, sizes.search, random.Random(f"{seed}:texts"))
        makers: dict[str, Callable[[random.Random], Awaitable[list[Body]]]] = {
            "PostPage": lambda rng: _post_pages(run, rng, sizes.post_page),
            "Listing": lambda rng: _listing(run, sizes.listing_pages),
            "FilteredListing": lambda rng: _filtered(run, filters, rng, sizes.filtered_listing),
            "Search": lambda rng: _searches(run, texts, filters, rng, sizes.search),
            "Facets": lambda rng: _ready(_facets(texts, filters, rng, sizes.facets)),
            "EntityPage": lambda rng: _entity_pages(run, sample, rng, sizes.entity_page),
            "Vocabulary": lambda rng: _ready([body("Vocabulary", {})]),
        }
        workloads = Workloads()
        for operation, make in makers.items():
            try:
                workloads.bodies[operation] = await make(random.Random(f"{seed}:{operation}"))
            except GraphQLError as exc:
                workloads.failures[operation] = str(exc)
        return workloads
    finally:
        run.close()


async def _ready(bodies: list[Body]) -> list[Body]:
    return bodies


@dataclass(slots=True)
class Statements:
    """Statements per request of one operation over all its bodies."""

    low: int
    high: int
    mean: float

    @classmethod
    def of(cls, counts: Sequence[int]) -> Statements:
        return cls(min(counts), max(counts), round(sum(counts) / len(counts), 2))

    def __str__(self) -> str:
        return str(self.low) if self.low == self.high else f"{self.low}–{self.high} (mean {self.mean:g})"


@dataclass(slots=True)
class Comparison:
    """The hand-written endpoint against the GraphQL API for one operation, in-process."""

    compared: int = 0
    identical_bytes: int = 0  # orjson output identical, key order included
    identical_normalized: int = 0  # identical after sorting keys
    same_statements: int = 0  # the same statement texts, as many of each
    mismatches: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.compared == self.identical_normalized == self.same_statements > 0


def normalized(data: Any) -> bytes:
    return orjson.dumps(data, option=orjson.OPT_SORT_KEYS)


async def _check_operation(
    run: InProcess, operation: str, bodies: list[Body], comparison: Comparison | None
) -> Statements:
    counts = []
    for request in bodies:
        data, texts = await run.graphql(request)
        counts.append(len(texts))
        if comparison is None:
            continue
        hand_data, hand_texts = await run.handwritten(request)
        comparison.compared += 1
        comparison.identical_bytes += orjson.dumps(data) == orjson.dumps(hand_data)
        same = normalized(data) == normalized(hand_data)
        comparison.identical_normalized += same
        comparison.same_statements += sorted(texts) == sorted(hand_texts)
        if not same and len(comparison.mismatches) < 3:
            comparison.mismatches.append(orjson.dumps(request["variables"]).decode())
    return Statements.of(counts)


async def check(pool: ReadPool, workloads: Workloads) -> tuple[dict[str, Statements], dict[str, Comparison]]:
    """Run every body once: statements per request, and the hand-written JSON and SQL against GraphQL's.

    An operation with a body the API does not answer cleanly moves to ``workloads.failures``.
    """
    run = InProcess(pool)
    statements: dict[str, Statements] = {}
    comparisons: dict[str, Comparison] = {}
    try:
        for operation, bodies in list(workloads.bodies.items()):
            comparison = Comparison() if operation in HANDWRITTEN_OPERATIONS else None
            try:
                statements[operation] = await _check_operation(run, operation, bodies, comparison)
            except GraphQLError as exc:
                workloads.failures[operation] = str(exc)
                del workloads.bodies[operation]
                continue
            if comparison is not None:
                comparisons[operation] = comparison
    finally:
        run.close()
    return statements, comparisons
