"""A long soak of the served API: ``python -m bench.soak [--dialect sqlite|postgresql] [--minutes N] ...``.

Method
------
1. **Store.** ``alphanode generate`` of ``--posts`` documents (default 20,000, seed 42,
   kept in ``var/soak/n<posts>/corpus`` and reused) and ``alphanode import`` of them
   into a new SQLite file (``var/soak/sqlite.db``) or a new PostgreSQL database
   (``alphanode_soak`` on 127.0.0.1:5432, user postgres, dropped at the end), through
   ``bench/stores.py``; an editor token for the writes (``alphanode token create``).
2. **Requests.** The frontend's operations (``server/operations``) with variables drawn
   from the store by ``bench/workload.py``: post pages by slug (every post) and by
   reference, listing pages with real cursors, filtered listings in several orders,
   searches of common and rare words, facets, entity pages and the vocabulary. Reads
   go as GET, as the site sends them, so that the response cache answers them; each
   operation's bodies are drawn 70% from its first 200 (the popular ones) and 30% from
   all of them, so the cache both hits and misses (and evicts, past its size). One
   read in ten is sent with ``If-None-Match`` of an ETag seen before (304 is a success).
3. **Peak.** The API under uvicorn (``bench/load.py``: one worker, no access log, a
   free port) answers two closed loops (8 connections, each sending its next request
   when its answer is in) for ``--peak-seconds`` each: the reads alone, then the soak's
   95/5 mix. Both are recorded; the soak's rate is a share of the mix's (``--peak-of
   reads`` for the reads'): each write purges every cached list and costs far more than
   a read, so the reads' peak is several times what the mixed traffic sustains.
4. **Fill.** The server holds bounded caches (the response cache, 64 MiB of bodies;
   kept search matches, rankings and posting lists; counts; parsed documents; prepared
   statements), and a process's memory grows until they are full: at the soak's rate that
   took 20 to 25 minutes, which a half-hour soak would report as a trend. So before the
   soak the caches are filled at saturation (closed loops of 8 connections, for at most
   ``--fill-minutes``, default 20; 0 skips it): first the reads alone, until the response
   cache holds 90% of its bound (``ALPHANODE_CACHE_MAX_BYTES``, set to 64 MiB here) or
   grew less than 0.5 MiB in a 15 s step (the reads' variety is spent); then the 95/5 mix
   (what writes bring: matches and rankings at each new store version, counts, statements),
   until the server's mean USS over the last two minutes is at most 1% above that of the
   two before. Its length, each stage's end, requests, errors (counted with the peak's),
   the server's USS and the cache's size before and after are recorded; the fill's writes
   are checked with the soak's. The soak's own first five minutes stay its warm-up.
5. **Soak.** An open loop at ``--load`` (default 0.7) of that peak, or ``--rate``:
   request ``i`` is scheduled at ``start + i / rate`` whatever the answers do, sent on
   the first free connection of 32 kept open, and its latency counts from the moment it
   was scheduled, so time spent queued behind a slow answer is in it. 95% reads, 5%
   writes with the editor token: ``updatePost`` (a new title, with the ``expectedHash``
   the previous write answered), ``setStatus``, ``markReviewed`` on a pool of posts not
   read by slug (a new title is a new slug), never two writes to one post at a time; and
   ``importDocument``: one in ten (``NEW_IMPORT_SHARE``) a freshly synthesized document
   (seed 4242, a new source id each), the others one of those imported again with a new
   title (an update), so that the store stays near its size. Each write that answers
   ``PostSaved`` (or a receipt that created or updated the post) is recorded with what it
   should have left in the store; a post whose write failed is read again before its next
   write (and whether the failed write is in the store all the same is counted).
6. **Samples.** At the start and every ``--sample-seconds`` (60; a tenth of the run for
   runs shorter than ten minutes): the interval's requests, errors (any status but 200
   and 304, a GraphQL ``errors`` entry, a write not saved, a timeout), p50/p99/max
   latency of all requests and of reads and writes apart, cache hits and misses (from
   ``Server-Timing``'s ``cache`` part); for the uvicorn process and its children, and on
   PostgreSQL each backend ``pg_stat_activity`` lists for the database, RSS, USS and PSS
   (psutil ``memory_full_info``), open file descriptors and threads; the server's
   database connections (PostgreSQL: backends of the database; SQLite: the server's open
   descriptors on the store's files); the load generator's CPU time.
7. **Checks.** Every recorded write is read back over GraphQL with the editor token
   (the store, past the cache) and without (what readers get, through the cache): title,
   status and ``contentHash`` must be what the last write left; each imported document is
   exported (``store.export``, what ``alphanode export`` prints) and must be the
   imported text byte for byte, and ``--cli-exports`` of them also through the
   ``alphanode export --reference`` command. The verdict: no errors (peak and soak), no
   lost write, no stale read, the server's mean USS and the p99 latency of the last ten
   minutes at most 10% above those of the first ten after a five-minute warm-up (runs
   under 25 minutes: last third against first third; p99 with a 1 ms floor), file
   descriptors and database connections not growing (last window's maximum over the
   first's: at most 4 descriptors, 2 connections). Written to
   ``bench/results/<date>-soak-<dialect>[-N].json`` with a plot beside it (``.png``:
   p50/p99 and the server's USS/PSS over time). The exit status is 1 when the verdict
   fails.

Caveats
-------
- The load generator shares the machine with the server (and PostgreSQL): it is one
  asyncio process writing HTTP/1.1 by hand on keep-alive sockets, to cost little; its
  CPU time is reported beside the server's.
- A write purges ``lists`` from the cache: listings, searches and facets miss after each
  write, which is what the hit ratio mostly measures.
- New posts grow the store a little during the run (about 1% in half an hour), and the
  fact index and search caches with it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import datetime as dt
import hashlib
import itertools
import os
import random
import re
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections import Counter, deque
from collections.abc import AsyncIterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import numpy as np
import orjson
import psutil

from bench import load, stores, workload
from bench.run import load_average, machine_info
from documents import render
from documents.synth import synthesize
from loaders import ReadPool

ROOT = load.ROOT
RESULTS = ROOT / "bench" / "results"
WORK = ROOT / "var" / "soak"
SEED = 42
IMPORT_SEED = 4242  # documents imported during the soak: source ids alphanode-4242-NNNNNN
PG_DATABASE = "alphanode_soak"
HOST = "127.0.0.1"
MIB = 1024 * 1024

# Share of each read operation, in percent of reads (a site's traffic: post pages first).
READ_MIX = {
    "PostPage": 34,
    "PostByReference": 8,
    "Listing": 14,
    "FilteredListing": 14,
    "Search": 14,
    "Facets": 8,
    "EntityPage": 6,
    "Vocabulary": 2,
}
WRITE_MIX = {"updatePost": 3, "setStatus": 3, "markReviewed": 2, "importDocument": 2}
WRITE_SHARE = 0.05
# Of the imports, new documents; the others import an earlier one again, revised (a new title).
# A site's store grows by a few hundred posts a day; at this traffic, every import a new post
# would grow it by a tenth in half an hour, and a soak would measure a bigger store, not time.
NEW_IMPORT_SHARE = 0.1
HOT_BODIES = 200  # each operation's popular bodies
HOT_SHARE = 0.7  # of its requests
REVALIDATE_SHARE = 0.1  # reads sent with If-None-Match of an ETag seen before
STATUSES = ("published", "drafted", "needs review", "scheduled")
SOAK_CONNECTIONS = 32
PEAK_CONNECTIONS = 8
TIMEOUT_S = 30.0
IDLE_REOPEN_S = 4.0  # uvicorn closes a keep-alive connection idle for 5 s
FLAT_SHARE = 0.10
RESPONSE_CACHE_BYTES = 64 * 1024 * 1024  # the server's default bound, set explicitly for the run
FILL_SHARE = 0.9  # the fill ends once the response cache holds this share of its bound
FILL_CHUNK_S = 15.0  # closed-loop run between two looks at the cache's size
FILL_STALL_MIB = 0.5  # or once it grew less than this in a chunk
FILL_SETTLE_CHUNKS = 8  # then the mix, until USS over the last 8 chunks (2 minutes)…
FILL_SETTLE_SHARE = 0.01  # …is at most 1% above that of the 8 before
P99_FLOOR_MS = 1.0
FD_SLACK = 4
CONNECTION_SLACK = 2
ERROR_EXAMPLES = 20

POST_FIELDS = "id slug title contentHash meta { reference revision { status } }"
SAVED = f"... on PostSaved {{ changed post {{ {POST_FIELDS} }} }}"
REFUSED = "... on ValidationError { message fields { path code message } } ... on Conflict { message currentHash }"
MUTATIONS = {
    "updatePost": (
        "mutation Update($id: ID!, $input: PostPatch!, $expectedHash: String!) { result: "
        "updatePost(id: $id, input: $input, expectedHash: $expectedHash) "
        f"{{ __typename {SAVED} {REFUSED} ... on NotFound {{ message }} }} }}"
    ),
    "setStatus": (
        "mutation SetStatus($id: ID!, $status: String!) { result: setStatus(id: $id, status: $status) "
        f"{{ __typename {SAVED} {REFUSED} ... on NotFound {{ message }} }} }}"
    ),
    "markReviewed": (
        "mutation MarkReviewed($id: ID!) { result: markReviewed(id: $id) "
        f"{{ __typename {SAVED} {REFUSED} ... on NotFound {{ message }} }} }}"
    ),
    "importDocument": (
        "mutation Import($text: String!) { result: importDocument(text: $text) { __typename "
        f"... on ImportReceipt {{ created updated unchanged rejected {{ document error }} post {{ {POST_FIELDS} }} }} "
        f"{REFUSED} }} }}"
    ),
}
READ_BACK = "query ReadBack($reference: String!) { post(reference: $reference) { " + POST_FIELDS + " } }"


def _say(message: str) -> None:
    print(message, flush=True)


# -- HTTP/1.1 on keep-alive sockets ------------------------------------------------------


@dataclass(slots=True)
class Answer:
    status: int
    headers: dict[bytes, bytes]  # names in lower case
    body: bytes


class Connection:
    """One keep-alive connection to the server: a request, then its answer, in turn."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None
        self.used = 0.0

    async def open(self) -> None:
        self.reader, self.writer = await asyncio.open_connection(HOST, self.port)
        self.used = time.monotonic()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None

    async def exchange(self, request: bytes) -> Answer:
        if self.writer is None or time.monotonic() - self.used > IDLE_REOPEN_S:
            self.close()
            await self.open()
        assert self.reader is not None and self.writer is not None
        try:
            self.writer.write(request)
            head = await self.reader.readuntil(b"\r\n\r\n")
            lines = head[:-4].split(b"\r\n")
            status = int(lines[0].split(b" ", 2)[1])
            headers = {}
            for line in lines[1:]:
                name, _, value = line.partition(b":")
                headers[name.strip().lower()] = value.strip()
            if status == 304 or status == 204:
                body = b""
            elif b"content-length" in headers:
                body = await self.reader.readexactly(int(headers[b"content-length"]))
            elif headers.get(b"transfer-encoding", b"").lower() == b"chunked":
                body = await self._chunked()
            else:
                body = await self.reader.read()
                headers[b"connection"] = b"close"
        except BaseException:
            self.close()  # a half-read answer leaves the connection unusable
            raise
        if headers.get(b"connection", b"").lower() == b"close":
            self.close()
        self.used = time.monotonic()
        return Answer(status, headers, body)

    async def _chunked(self) -> bytes:
        assert self.reader is not None
        parts = []
        while True:
            size = int((await self.reader.readuntil(b"\r\n")).split(b";")[0], 16)
            if size == 0:
                await self.reader.readuntil(b"\r\n")
                return b"".join(parts)
            parts.append(await self.reader.readexactly(size))
            await self.reader.readexactly(2)


class Pool:
    """Connections kept open; a request waits for a free one (that wait is part of its latency)."""

    def __init__(self, port: int, size: int) -> None:
        self.port = port
        self.size = size
        self.free: asyncio.Queue[Connection] = asyncio.Queue()

    async def open(self) -> None:
        for _ in range(self.size):
            conn = Connection(self.port)
            await conn.open()
            self.free.put_nowait(conn)

    @contextlib.asynccontextmanager
    async def connection(self) -> AsyncIterator[Connection]:
        conn = await self.free.get()
        try:
            yield conn
        finally:
            self.free.put_nowait(conn)

    async def exchange(self, request: bytes) -> Answer:
        async with self.connection() as conn:
            return await asyncio.wait_for(conn.exchange(request), TIMEOUT_S)

    def close(self) -> None:
        while not self.free.empty():
            self.free.get_nowait().close()


def _get_prefix(operation: str) -> bytes:
    """The start of a GET request for an operation: path, query document and operation name."""
    document = workload.document("PostPage" if operation == "PostByReference" else operation)
    query = urllib.parse.urlencode({"query": document, "operationName": operation})
    return f"GET {load.PATH}?{query}&variables=".encode()


def _headers(port: int, extra: str = "") -> bytes:
    return (
        f" HTTP/1.1\r\nHost: {HOST}:{port}\r\nAccept: application/graphql-response+json, application/json\r\n{extra}"
    ).encode()


def post_request(port: int, payload: dict[str, Any], token: str | None) -> bytes:
    body = orjson.dumps(payload)
    auth = f"Authorization: Bearer {token}\r\n" if token else ""
    head = (
        f"POST {load.PATH} HTTP/1.1\r\nHost: {HOST}:{port}\r\nContent-Type: application/json\r\n"
        f"Accept: application/graphql-response+json, application/json\r\n{auth}Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


# -- what is sent --------------------------------------------------------------------------


@dataclass(slots=True)
class Read:
    operation: str
    variables: bytes  # URL-encoded JSON
    etag: bytes | None = None  # the last one the server gave for it


@dataclass(slots=True)
class Tracked:
    """A post the soak edits, and what it should hold after the last write that was saved."""

    id: str
    reference: str
    base_title: str
    title: str
    status: str
    content_hash: str
    writes: int = 0
    uncertain: bool = False  # after a write that failed: read again before the next one; not checked if last
    attempted: tuple[str, str, str] | None = None  # (kind, title, status) the failed write would have left


@dataclass(slots=True)
class Imported:
    reference: str
    text: str
    content_hash: str
    number: int = 0  # its place in the import seed's sequence: the same document, revised
    revisions: int = 0  # times imported again, revised
    uncertain: bool = False  # a revision answered with an error: written or not, unknown


@dataclass(slots=True)
class Window:
    """What the requests completed in one sampling interval did."""

    reads: list[float] = field(default_factory=list)  # latency, ms
    writes: list[float] = field(default_factory=list)
    read_errors: int = 0
    write_errors: int = 0
    unanswered: int = 0  # still waiting when the run's last requests were given up on
    cache: Counter[str] = field(default_factory=Counter)
    statuses: Counter[int] = field(default_factory=Counter)
    operations: Counter[str] = field(default_factory=Counter)


def _percentiles(values: list[float]) -> dict[str, Any]:
    if not values:
        return {"count": 0, "p50_ms": None, "p99_ms": None, "max_ms": None}
    p50, p99 = np.percentile(np.asarray(values), [50, 99])
    return {"count": len(values), "p50_ms": round(float(p50), 2), "p99_ms": round(float(p99), 2),
            "max_ms": round(max(values), 2)}  # fmt: skip


class Traffic:
    """The request mix, the connections, and the bookkeeping of every answer and write."""

    def __init__(
        self,
        port: int,
        token: str,
        reads: dict[str, list[Read]],
        tracked: list[Tracked],
        rng: random.Random,
        connections: int,
    ) -> None:
        self.port = port
        self.token = token
        self.reads = reads
        self.rng = rng
        self.pool = Pool(port, connections)
        self.prefixes = {op: _get_prefix(op) for op in reads}
        self.tail = _headers(port) + b"\r\n"
        self.tracked = tracked
        self.idle: deque[Tracked] = deque(tracked)  # posts with no write in flight
        self.imports: list[Imported] = []
        self.imported_idle: deque[int] = deque()  # indexes in imports with no import in flight
        self.import_numbers = itertools.count(1)
        self.operations = list(READ_MIX)
        self.weights = list(itertools.accumulate(READ_MIX.values()))
        self.write_kinds = list(WRITE_MIX)
        self.write_weights = list(itertools.accumulate(WRITE_MIX.values()))
        self.window = Window()
        self.errors_seen: list[dict[str, Any]] = []
        self.write_counts: Counter[str] = Counter()  # kind -> saved
        self.write_failures: Counter[str] = Counter()
        # Writes answered with an error that the store holds all the same (found when the post is read again).
        self.failed_but_written: Counter[str] = Counter()
        self.failed_imports: list[Imported] = []
        self.in_flight = 0

    # -- choosing

    def _read(self) -> Read:
        operation = self.rng.choices(self.operations, cum_weights=self.weights)[0]
        bodies = self.reads[operation]
        hot = min(len(bodies), HOT_BODIES)
        index = self.rng.randrange(hot) if self.rng.random() < HOT_SHARE else self.rng.randrange(len(bodies))
        return bodies[index]

    def take_window(self) -> Window:
        window, self.window = self.window, Window()
        return window

    def _error(self, operation: str, status: int, detail: bytes | str, variables: Any = None) -> None:
        if len(self.errors_seen) < ERROR_EXAMPLES:
            text = detail.decode("utf-8", "replace") if isinstance(detail, bytes) else detail
            self.errors_seen.append(
                {
                    "at": dt.datetime.now().astimezone().isoformat(timespec="seconds"),
                    "operation": operation,
                    "status": status,
                    "detail": text[:1000],
                    "variables": variables,
                }
            )

    # -- sending

    async def one(self, scheduled: float, reads_only: bool = False) -> None:
        """One request of the mix, its latency counted from ``scheduled`` (perf_counter seconds)."""
        self.in_flight += 1
        try:
            if not reads_only and self.rng.random() < WRITE_SHARE:
                await self._write(scheduled)
            else:
                await self._send_read(self._read(), scheduled)
        except asyncio.CancelledError:
            self.window.unanswered += 1
            raise
        finally:
            self.in_flight -= 1

    async def _send_read(self, read: Read, scheduled: float) -> None:
        extra = b""
        if read.etag is not None and self.rng.random() < REVALIDATE_SHARE:
            extra = b"If-None-Match: " + read.etag + b"\r\n"
        request = self.prefixes[read.operation] + read.variables + self.tail[:-2] + extra + b"\r\n"
        window = self.window
        try:
            answer = await self.pool.exchange(request)
        except (OSError, asyncio.IncompleteReadError, TimeoutError, ValueError) as exc:
            self.window.read_errors += 1
            self.window.reads.append((time.perf_counter() - scheduled) * 1000)
            self._error(
                read.operation, 0, f"{type(exc).__name__}: {exc}", urllib.parse.unquote(read.variables.decode())
            )
            return
        window = self.window  # the interval in which it completed
        window.reads.append((time.perf_counter() - scheduled) * 1000)
        window.statuses[answer.status] += 1
        window.operations[read.operation] += 1
        timing = answer.headers.get(b"server-timing", b"")
        mark = timing.find(b'cache;desc="')
        if mark >= 0:
            window.cache[timing[mark + 12 : timing.find(b'"', mark + 12)].decode()] += 1
        if answer.status == 200 and b'"errors":' not in answer.body:
            read.etag = answer.headers.get(b"etag", read.etag)
        elif answer.status != 304:
            window.read_errors += 1
            self._error(read.operation, answer.status, answer.body, urllib.parse.unquote(read.variables.decode()))

    async def _write(self, scheduled: float) -> None:
        """One write, its post chosen once a connection is free (so that no two writes to a post overlap)."""
        kind = self.rng.choices(self.write_kinds, cum_weights=self.write_weights)[0]
        async with self.pool.connection() as conn:
            post = self.idle.popleft() if kind != "importDocument" and self.idle else None
            slot = None  # an earlier import to import again, revised
            if post is None and self.imported_idle and self.rng.random() >= NEW_IMPORT_SHARE:
                slot = self.imported_idle.popleft()
            try:
                await self._write_on(conn, kind if post is not None else "importDocument", post, scheduled, slot)
            except asyncio.CancelledError:
                if post is not None:
                    post.uncertain = True  # sent, maybe written, never answered
                if slot is not None:
                    self.imports[slot].uncertain = True
                raise
            finally:
                if post is not None:
                    self.idle.append(post)
                if slot is not None and not self.imports[slot].uncertain:
                    self.imported_idle.append(slot)

    async def _write_on(
        self, conn: Connection, kind: str, post: Tracked | None, scheduled: float, slot: int | None = None
    ) -> None:
        if post is not None and post.uncertain:
            await self.refresh(conn, post)
        text = reference = ""
        number = 0
        if kind == "importDocument":
            number = next(self.import_numbers) if slot is None else self.imports[slot].number
            document = next(iter(synthesize(1, IMPORT_SEED, start=number)))
            if slot is not None:
                document = dataclasses.replace(
                    document, title=f"{document.title} revised {self.imports[slot].revisions + 1}"
                )
            text, reference = render(document), document.reference
            variables: dict[str, Any] = {"text": text}
        elif kind == "updatePost":
            assert post is not None
            title = f"{post.base_title} revised {post.writes + 1}"
            variables = {"id": post.id, "input": {"title": title}, "expectedHash": post.content_hash}
        elif kind == "setStatus":
            assert post is not None
            status = self.rng.choice([s for s in STATUSES if s != post.status])
            variables = {"id": post.id, "status": status}
        else:
            assert post is not None
            variables = {"id": post.id}
        request = post_request(self.port, {"query": MUTATIONS[kind], "variables": variables}, self.token)
        try:
            answer = await asyncio.wait_for(conn.exchange(request), TIMEOUT_S)
        except (OSError, asyncio.IncompleteReadError, TimeoutError, ValueError) as exc:
            self.window.write_errors += 1
            self.window.writes.append((time.perf_counter() - scheduled) * 1000)
            self.write_failures[kind] += 1
            if post is not None:
                post.uncertain = True  # it may or may not have been written
            if slot is not None:
                self.imports[slot].uncertain = True
            self._error(kind, 0, f"{type(exc).__name__}: {exc}")
            return
        window = self.window
        window.writes.append((time.perf_counter() - scheduled) * 1000)
        window.statuses[answer.status] += 1
        window.operations[kind] += 1
        problem = self._saved(kind, answer, post, variables, text, slot, number)
        if problem and slot is not None:
            self.imports[slot].uncertain = True
        elif problem and post is not None:
            post.uncertain = True  # an error may come after the write was committed
            title = variables["input"]["title"] if kind == "updatePost" else post.title
            status = {"setStatus": variables.get("status"), "markReviewed": "reviewed"}.get(kind, post.status)
            post.attempted = (kind, title, str(status))
        elif problem:
            self.failed_imports.append(Imported(reference, text, ""))
        if problem:
            window.write_errors += 1
            self.write_failures[kind] += 1
            self._error(kind, answer.status, problem, {k: v for k, v in variables.items() if k != "text"})
        else:
            self.write_counts[kind] += 1

    async def refresh(self, conn: Connection, post: Tracked) -> None:
        """What the store holds of a post after a write that failed (it may have been written or not)."""
        request = post_request(self.port, {"query": READ_BACK, "variables": {"reference": post.reference}}, self.token)
        answer = await asyncio.wait_for(conn.exchange(request), TIMEOUT_S)
        found = (orjson.loads(answer.body).get("data") or {}).get("post") if answer.status == 200 else None
        if found is not None:
            if post.attempted is not None and post.attempted[1:] == (
                found["title"],
                found["meta"]["revision"]["status"],
            ):
                self.failed_but_written[post.attempted[0]] += 1
            post.title, post.status = found["title"], found["meta"]["revision"]["status"]
            post.content_hash = found["contentHash"]
            post.uncertain, post.attempted = False, None

    def _saved(
        self,
        kind: str,
        answer: Answer,
        post: Tracked | None,
        variables: dict[str, Any],
        text: str,
        slot: int | None = None,
        number: int = 0,
    ) -> str:
        """Record a saved write; or what was wrong with the answer ("" when it was saved)."""
        if answer.status != 200:
            return answer.body.decode("utf-8", "replace")
        try:
            parsed = orjson.loads(answer.body)
        except orjson.JSONDecodeError:
            return answer.body.decode("utf-8", "replace")
        result = (parsed.get("data") or {}).get("result")
        if parsed.get("errors") or result is None:
            return answer.body.decode("utf-8", "replace")
        if kind == "importDocument":
            counted = "created" if slot is None else "updated"
            if result["__typename"] != "ImportReceipt" or result[counted] != 1 or result["post"] is None:
                return answer.body.decode("utf-8", "replace")
            saved = result["post"]
            if slot is None:
                self.imports.append(Imported(saved["meta"]["reference"], text, saved["contentHash"], number))
                self.imported_idle.append(len(self.imports) - 1)
            else:
                imported = self.imports[slot]
                imported.text, imported.content_hash = text, saved["contentHash"]
                imported.revisions += 1
            return ""
        assert post is not None
        if result["__typename"] != "PostSaved":
            return answer.body.decode("utf-8", "replace")
        saved = result["post"]
        title = variables["input"]["title"] if kind == "updatePost" else post.title
        status = {"setStatus": variables.get("status"), "markReviewed": "reviewed"}.get(kind, post.status)
        post.writes += 1
        post.title, post.status, post.content_hash = title, str(status), saved["contentHash"]
        if saved["title"] != post.title or saved["meta"]["revision"]["status"] != post.status:
            return f"saved, but answered title {saved['title']!r} status {saved['meta']['revision']['status']!r}"
        return ""

    # -- loops

    async def closed_loop(self, seconds: float, connections: int, reads_only: bool) -> tuple[int, float]:
        """``connections`` clients each sending the next request when the last is answered; (requests, seconds)."""
        deadline = time.perf_counter() + seconds
        done = 0

        async def client() -> None:
            nonlocal done
            while time.perf_counter() < deadline:
                await self.one(time.perf_counter(), reads_only=reads_only)
                done += 1

        started = time.perf_counter()
        await asyncio.gather(*(client() for _ in range(connections)))
        return done, time.perf_counter() - started

    async def open_loop(self, rate: float, seconds: float) -> int:
        """Requests scheduled at ``rate`` a second for ``seconds``, whatever the answers do; waits for the last."""
        started = time.perf_counter()
        tasks: set[asyncio.Task[None]] = set()
        scheduled = 0
        while True:
            at = started + scheduled / rate
            if at - started >= seconds:
                break
            delay = at - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            task = asyncio.create_task(self.one(at))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
            scheduled += 1
        if tasks:  # the last answers; past the timeout, what is still waiting is given up (an error each)
            _, pending = await asyncio.wait(set(tasks), timeout=TIMEOUT_S + 5)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        return scheduled


# -- processes -----------------------------------------------------------------------------


def process_figures(pid: int, store_files: frozenset[str] = frozenset()) -> dict[str, Any] | None:
    """RSS, USS, PSS (MiB), descriptors, threads and CPU seconds of one process; None when it is gone."""
    try:
        proc = psutil.Process(pid)
        with proc.oneshot():
            full = proc.memory_full_info()
            cpu = proc.cpu_times()
            figures = {
                "pid": pid,
                "name": proc.name(),
                "rss_mib": round(full.rss / MIB, 1),
                "uss_mib": round(full.uss / MIB, 1),
                "pss_mib": round(full.pss / MIB, 1),
                "fds": proc.num_fds(),
                "threads": proc.num_threads(),
                "cpu_seconds": round(cpu.user + cpu.system, 2),
            }
            if store_files:
                figures["store_fds"] = sum(1 for f in proc.open_files() if f.path in store_files)
        return figures
    except (psutil.NoSuchProcess, psutil.ZombieProcess):
        return None


def server_figures(pid: int, store_files: frozenset[str]) -> dict[str, Any]:
    """The uvicorn process and its children, each and summed."""
    pids = [pid]
    with contextlib.suppress(psutil.NoSuchProcess):
        pids += [child.pid for child in psutil.Process(pid).children(recursive=True)]
    each = [f for f in (process_figures(p, store_files) for p in pids) if f is not None]
    total = {key: round(sum(f[key] for f in each), 2) for key in ("rss_mib", "uss_mib", "pss_mib", "cpu_seconds")}
    total.update({key: sum(f[key] for f in each) for key in ("fds", "threads")})
    if store_files:
        total["store_fds"] = sum(f["store_fds"] for f in each)
    return {**total, "processes": each}


def response_cache_mib(port: int) -> float | None:
    """The bodies the server's in-process response cache holds (its ``/metrics``), in MiB: the share
    of its memory that fills up to a bound during the first part of a run."""
    try:
        with urllib.request.urlopen(f"http://{HOST}:{port}/metrics", timeout=5) as answer:
            text = answer.read().decode()
    except OSError:
        return None
    found = re.search(r"^alphanode_response_cache_bytes ([0-9.e+]+)$", text, re.MULTILINE)
    return round(float(found.group(1)) / MIB, 1) if found else None


async def postgres_backends(database: str) -> list[tuple[int, str, str]]:
    """(pid, backend type, state) of each backend connected to the database."""
    conn = await asyncpg.connect(
        host=stores.PG_HOST, port=stores.PG_PORT, user=stores.PG_USER, database="postgres", timeout=10
    )
    try:
        rows = await conn.fetch(
            "SELECT pid, backend_type, coalesce(state, '') FROM pg_stat_activity WHERE datname = $1", database
        )
    finally:
        await conn.close()
    return [(int(r[0]), str(r[1]), str(r[2])) for r in rows]


class Sampler:
    """Every process's figures, and the interval's requests, at each tick."""

    def __init__(self, traffic: Traffic, server: load.Server, store: stores.Store, database: str | None) -> None:
        self.traffic = traffic
        self.server = server
        self.database = database
        self.store_files: frozenset[str] = frozenset()
        if store.dialect == "sqlite":
            path = os.path.realpath(store.url.removeprefix("sqlite:///"))
            self.store_files = frozenset(path + suffix for suffix in ("", "-wal", "-shm"))
        self.samples: list[dict[str, Any]] = []
        self.started = time.perf_counter()
        self.last = self.started
        self.cpu_started = time.process_time()

    async def sample(self) -> dict[str, Any]:
        now = time.perf_counter()
        window = self.traffic.take_window()
        seconds = now - self.last
        self.last = now
        figures = await asyncio.to_thread(server_figures, self.server.pid, self.store_files)
        figures["response_cache_mib"] = await asyncio.to_thread(response_cache_mib, self.server.port)
        sample: dict[str, Any] = {
            "t_s": round(now - self.started, 1),
            "interval_s": round(seconds, 1),
            "requests": len(window.reads) + len(window.writes),
            "rps": round((len(window.reads) + len(window.writes)) / seconds, 1) if seconds > 0 else 0.0,
            "errors": window.read_errors + window.write_errors + window.unanswered,
            "unanswered": window.unanswered,
            "all": _percentiles(window.reads + window.writes),
            "reads": {**_percentiles(window.reads), "errors": window.read_errors},
            "writes": {**_percentiles(window.writes), "errors": window.write_errors},
            "cache": dict(window.cache),
            "hit_ratio": _ratio(window.cache),
            "statuses": {str(k): v for k, v in sorted(window.statuses.items())},
            "operations": dict(window.operations),
            "in_flight": self.traffic.in_flight,
            "server": figures,
            "generator_cpu_seconds": round(time.process_time() - self.cpu_started, 2),
            "load_average_1m": load_average(),
        }
        if self.database is not None:
            backends = await postgres_backends(self.database)
            each = await asyncio.to_thread(
                lambda: [
                    {**f, "backend_type": kind, "state": state}
                    for pid, kind, state in backends
                    if (f := process_figures(pid)) is not None
                ]
            )
            sample["database"] = {
                "connections": sum(1 for _, kind, _ in backends if kind == "client backend"),
                "rss_mib": round(sum(b["rss_mib"] for b in each), 1),
                "uss_mib": round(sum(b["uss_mib"] for b in each), 1),
                "pss_mib": round(sum(b["pss_mib"] for b in each), 1),
                "fds": sum(b["fds"] for b in each),
                "backends": each,
            }
        else:
            sample["database"] = {"connections": figures["store_fds"]}
        sample["_latencies"] = (window.reads, window.writes)  # for the windows' p99, not written out
        self.samples.append(sample)
        return sample

    async def every(self, interval: float, until: float) -> None:
        """A sample at each ``interval`` from the start, up to ``until`` seconds (the run's end)."""
        tick = 1
        while tick * interval < until - 0.5:
            await asyncio.sleep(max(0.0, self.started + tick * interval - time.perf_counter()))
            _print_sample(await self.sample())
            tick += 1


def _ratio(cache: Counter[str] | dict[str, int]) -> float | None:
    looked = cache.get("hit", 0) + cache.get("miss", 0)
    return round(cache.get("hit", 0) / looked, 3) if looked else None


# -- the run -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Config:
    dialect: str
    posts: int
    seconds: float
    peak_seconds: float
    load: float
    rate: float | None
    peak_of: str  # "mix" or "reads": which peak the rate is a share of
    fill_seconds: float  # longest warm-up of the server's caches before the soak (0: none)
    sample_seconds: float
    connections: int
    cli_exports: int
    seed: int
    out: Path
    work: Path

    @property
    def corpus(self) -> Path:
        return self.work / f"n{self.posts}" / "corpus"


def _sizes(posts: int) -> workload.Sizes:
    return workload.Sizes(
        post_page=posts,  # every post (less the edited ones): more than the cache holds at 20,000
        listing_pages=50,
        filtered_listing=300,
        search=300,
        facets=100,
        entity_page=200,
        sample_posts=2_000,
    )


async def _read_bodies(url: str, posts: int, seed: int) -> tuple[dict[str, list[dict[str, Any]]], list[str]]:
    """Each operation's request bodies (bench/workload.py), and every post's reference."""
    pool = await ReadPool.open(url, 2)
    try:
        built = await workload.build(pool, _sizes(posts), seed)
        if built.failures:
            raise SystemExit(f"the API fails to answer the workload's bodies: {built.failures}")
        run = workload.InProcess(pool)
        try:
            references = [str(row[0]) for row in await run.rows("SELECT reference FROM post ORDER BY id")]
        finally:
            run.close()
    finally:
        await pool.close()
    return built.bodies, references


def _variables(variables: dict[str, Any]) -> bytes:
    return urllib.parse.quote(orjson.dumps(variables).decode(), safe="").encode()


def _plan(
    bodies: dict[str, list[dict[str, Any]]], references: list[str], rng: random.Random
) -> tuple[dict[str, list[Read]], list[str]]:
    """The reads, and the references of the posts to edit (none of them read by slug: a new title is a new slug)."""
    post_pages = bodies["PostPage"]
    edited = max(1, min(300, len(post_pages) // 5))
    chosen = set(rng.sample(range(len(post_pages)), edited))
    edited_slugs = {post_pages[i]["variables"]["slug"] for i in chosen}
    reads = {op: [Read(op, _variables(b["variables"])) for b in found] for op, found in bodies.items()}
    reads["PostPage"] = [r for i, r in enumerate(reads["PostPage"]) if i not in chosen]
    return reads, sorted(edited_slugs)


def _graphql(server: load.Server, query: str, variables: dict[str, Any], token: str | None) -> dict[str, Any]:
    """One request outside the load, as an editor when ``token``; its ``data`` (errors raise)."""
    import http.client

    conn = http.client.HTTPConnection(HOST, server.port, timeout=60)
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    try:
        conn.request("POST", load.PATH, body=orjson.dumps({"query": query, "variables": variables}), headers=headers)
        response = conn.getresponse()
        status, body = response.status, response.read()
    finally:
        conn.close()
    parsed = orjson.loads(body)
    if status != 200 or parsed.get("errors"):
        raise RuntimeError(f"{status}: {body[:500]!r}")
    return dict(parsed["data"])


def _tracked(server: load.Server, token: str, slugs: list[str]) -> list[Tracked]:
    query = "query Slug($slug: String!) { post(slug: $slug) { " + POST_FIELDS + " } }"
    found = []
    for slug in slugs:
        post = _graphql(server, query, {"slug": slug}, token)["post"]
        found.append(
            Tracked(
                id=post["id"],
                reference=post["meta"]["reference"],
                base_title=post["title"],
                title=post["title"],
                status=post["meta"]["revision"]["status"],
                content_hash=post["contentHash"],
            )
        )
    return found


def _add_references(
    reads: dict[str, list[Read]], tracked: list[Tracked], references: list[str], rng: random.Random
) -> None:
    """Post pages by reference: each edited post (the first, popular ones) and as many others."""
    edited = [t.reference for t in tracked]
    others = rng.sample(references, min(len(references), len(edited)))
    reads["PostByReference"] = [Read("PostByReference", _variables({"reference": ref})) for ref in [*edited, *others]]


# -- checks at the end ---------------------------------------------------------------------


async def _read_back(traffic: Traffic, references: list[str], token: str | None) -> dict[str, Any]:
    """Each post by reference over GraphQL (POST with the token: the store; GET without: what readers get)."""
    found: dict[str, Any] = {}
    queue = deque(references)
    prefix = f"GET {load.PATH}?{urllib.parse.urlencode({'query': READ_BACK})}&variables=".encode()
    tail = _headers(traffic.port) + b"\r\n"

    async def worker() -> None:
        while queue:
            reference = queue.popleft()
            if token is None:
                request = prefix + _variables({"reference": reference}) + tail
            else:
                payload = {"query": READ_BACK, "variables": {"reference": reference}}
                request = post_request(traffic.port, payload, token)
            answer = await traffic.pool.exchange(request)
            parsed = orjson.loads(answer.body) if answer.body else {}
            found[reference] = (parsed.get("data") or {}).get("post") if answer.status == 200 else None

    await asyncio.gather(*(worker() for _ in range(min(8, traffic.pool.size))))
    return found


def _exports(url: str, references: list[str]) -> dict[str, str | None]:
    """Each post's page text as ``alphanode export`` prints it (the same functions, one connection)."""
    import models
    from store.export import find_post_id, load_document

    def export_all(conn: Any) -> dict[str, str | None]:
        texts: dict[str, str | None] = {}
        for reference in references:
            post_id = find_post_id(conn, reference=reference)
            document = None if post_id is None else load_document(conn, post_id)
            texts[reference] = None if document is None else render(document)
        return texts

    async def run() -> dict[str, str | None]:
        engine = models.create_engine(url)
        try:
            async with engine.connect() as conn:
                return dict(await conn.run_sync(export_all))
        finally:
            await engine.dispose()

    return asyncio.run(run())


def cli_export(url: str, reference: str) -> bytes:
    """``alphanode export --reference REF``: its standard output, bytes as they are."""
    done = subprocess.run(
        [sys.executable, "-m", "server.cli", "export", "--reference", reference, "--database", url],
        cwd=ROOT,
        capture_output=True,
        check=False,
    )
    return done.stdout if done.returncode == 0 else b""


async def read_back_all(traffic: Traffic) -> tuple[dict[str, Any], dict[str, Any]]:
    """Every edited post and import by reference: as the store holds it, and as readers get it.

    Posts whose last write failed are read first (was it written all the same?), and so are
    the documents whose import failed.
    """
    async with traffic.pool.connection() as conn:
        for post in traffic.tracked:
            if post.uncertain:
                await traffic.refresh(conn, post)
    failed = [i.reference for i in traffic.failed_imports]
    for found in (await _read_back(traffic, failed, traffic.token)).values():
        if found is not None:
            traffic.failed_but_written["importDocument"] += 1
    edited = [t.reference for t in traffic.tracked if t.writes and not t.uncertain]
    references = edited + [i.reference for i in traffic.imports if not i.uncertain]
    return await _read_back(traffic, references, traffic.token), await _read_back(traffic, references, None)


def verify(
    traffic: Traffic, stored: dict[str, Any], public: dict[str, Any], url: str, cli_exports: int, rng: random.Random
) -> dict[str, Any]:
    """Every saved write against the store: lost writes (the store differs) and stale reads (the cache differs)."""
    edited = [t for t in traffic.tracked if t.writes and not t.uncertain]
    mismatches: list[dict[str, Any]] = []
    lost = stale = 0
    for post in edited:
        expected = {"title": post.title, "status": post.status, "contentHash": post.content_hash}
        for where, found in (("store", stored), ("readers", public)):
            got = found.get(post.reference)
            seen = None
            if got is not None:
                seen = {
                    "title": got["title"],
                    "status": got["meta"]["revision"]["status"],
                    "contentHash": got["contentHash"],
                }
            if seen != expected:
                lost += where == "store"
                stale += where == "readers"
                if len(mismatches) < ERROR_EXAMPLES:
                    mismatches.append({"reference": post.reference, "where": where, "expected": expected, "got": seen})
    imports = [i for i in traffic.imports if not i.uncertain]
    texts = _exports(url, [i.reference for i in imports])
    lost_imports = stale_imports = 0
    for imported in imports:
        text = texts.get(imported.reference)
        digest = hashlib.sha256(imported.text.encode("utf-8")).hexdigest()
        got_store, got_public = stored.get(imported.reference), public.get(imported.reference)
        if text != imported.text or got_store is None or got_store["contentHash"] != digest:
            lost_imports += 1
            if len(mismatches) < ERROR_EXAMPLES:
                mismatches.append(
                    {"reference": imported.reference, "where": "import", "export_identical": text == imported.text}
                )
        elif got_public is None or got_public["contentHash"] != digest:
            stale_imports += 1
    sampled = rng.sample(imports, min(cli_exports, len(imports)))
    identical = sum(cli_export(url, i.reference) == i.text.encode("utf-8") for i in sampled)
    return {
        "posts_edited": len([t for t in traffic.tracked if t.writes]),
        "posts_checked": len(edited),
        "posts_uncertain": len([t for t in traffic.tracked if t.uncertain]),
        "imports_checked": len(imports),
        "imports_uncertain": len(traffic.imports) - len(imports),
        "imports_revised": sum(i.revisions for i in traffic.imports),
        "lost_edits": lost,
        "lost_imports": lost_imports,
        "lost_writes": lost + lost_imports,
        "stale_reads": stale + stale_imports,
        "cli_exports": {"checked": len(sampled), "identical": identical},
        "mismatches": mismatches,
    }


# -- verdict -------------------------------------------------------------------------------


def windows(samples: list[dict[str, Any]], seconds: float) -> tuple[tuple[float, float], tuple[float, float], str]:
    """The early and late windows compared (seconds from the start), and how they were chosen."""
    if seconds >= 25 * 60:
        return (5 * 60, 15 * 60), (seconds - 10 * 60, seconds + 1e9), "minutes 5-15 against the last ten"
    third = seconds / 3
    return (0.0, third), (seconds - third, seconds + 1e9), "first third against last third"


def _in(sample: dict[str, Any], window: tuple[float, float]) -> bool:
    return window[0] < sample["t_s"] <= window[1] and sample["requests"] > 0


def judge(
    samples: list[dict[str, Any]], seconds: float, peak_errors: int, verification: dict[str, Any], write_count: int
) -> dict[str, Any]:
    early_w, late_w, how = windows(samples, seconds)
    early = [s for s in samples if _in(s, early_w)]
    late = [s for s in samples if _in(s, late_w)]
    checks: dict[str, dict[str, Any]] = {}
    errors = sum(s["errors"] for s in samples)
    checks["no_errors"] = {"passed": errors == 0 and peak_errors == 0, "soak": errors, "peak_and_fill": peak_errors}
    checks["no_lost_writes"] = {
        "passed": verification["lost_writes"] == 0 and write_count > 0,
        "lost": verification["lost_writes"],
        "saved": write_count,
    }
    checks["no_stale_reads"] = {"passed": verification["stale_reads"] == 0, "stale": verification["stale_reads"]}
    cli = verification["cli_exports"]
    checks["cli_export_identical"] = {"passed": cli["identical"] == cli["checked"], **cli}
    if not early or not late:
        checks["windows"] = {"passed": False, "detail": "too few samples to compare"}
        return {"passed": False, "windows": how, "checks": checks}

    uss_early = float(np.mean([s["server"]["uss_mib"] for s in early]))
    uss_late = float(np.mean([s["server"]["uss_mib"] for s in late]))
    checks["memory_flat"] = {
        "passed": uss_late <= uss_early * (1 + FLAT_SHARE),
        "early_mean_uss_mib": round(uss_early, 1),
        "late_mean_uss_mib": round(uss_late, 1),
        "change": round(uss_late / uss_early - 1, 3),
    }

    def p99(chosen: list[dict[str, Any]]) -> float:
        values = [v for s in chosen for part in s["_latencies"] for v in part]
        return float(np.percentile(np.asarray(values), 99))

    p99_early, p99_late = p99(early), p99(late)
    checks["p99_flat"] = {
        "passed": p99_late <= max(p99_early * (1 + FLAT_SHARE), p99_early + P99_FLOOR_MS),
        "early_p99_ms": round(p99_early, 2),
        "late_p99_ms": round(p99_late, 2),
        "change": round(p99_late / p99_early - 1, 3) if p99_early else None,
    }
    fds_early = max(s["server"]["fds"] for s in early)
    fds_late = max(s["server"]["fds"] for s in late)
    checks["fds_flat"] = {"passed": fds_late - fds_early <= FD_SLACK, "early_max": fds_early, "late_max": fds_late}
    conn_early = max(s["database"]["connections"] for s in early)
    conn_late = max(s["database"]["connections"] for s in late)
    checks["connections_flat"] = {
        "passed": conn_late - conn_early <= CONNECTION_SLACK,
        "early_max": conn_early,
        "late_max": conn_late,
    }
    return {"passed": all(c["passed"] for c in checks.values()), "windows": how, "checks": checks}


# -- output --------------------------------------------------------------------------------


def result_stem(folder: Path, date: str, dialect: str) -> Path:
    """``<date>-soak-<dialect>``, or ``-2``, ``-3``… after it: never an earlier run's name."""
    base = f"{date}-soak-{dialect}"
    stem, n = base, 1
    while (folder / f"{stem}.json").exists() or (folder / f"{stem}.png").exists():
        n += 1
        stem = f"{base}-{n}"
    return folder / stem


def plot(result: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    samples = [s for s in result["samples"] if s["requests"] > 0]
    everything = result["samples"]
    minutes = [s["t_s"] / 60 for s in samples]
    figure, (latency, memory, rate, resources) = plt.subplots(4, 1, figsize=(10, 13), sharex=True)
    connections_label = (
        "PostgreSQL connections to the database"
        if result["dialect"] == "postgresql"
        else "server descriptors on the store's files"
    )
    title = (
        f"alphanode soak, {result['dialect']}: {result['config']['posts']:,} posts, "
        f"{result['target_rps']:.0f} req/s for {result['config']['seconds'] / 60:.1f} min "
        f"({'passed' if result['verdict']['passed'] else 'FAILED'})"
    )
    if result.get("fill"):
        fill = result["fill"]
        title += (
            f"\nafter a fill of {fill['seconds']:.0f} s (at saturation; response cache "
            f"{fill['response_cache_mib']['after']} MiB, USS {fill['uss_mib']['after']} MiB)"
        )
    figure.suptitle(title)
    latency.plot(minutes, [s["all"]["p50_ms"] for s in samples], marker="o", label="p50, all")
    latency.plot(minutes, [s["all"]["p99_ms"] for s in samples], marker="o", label="p99, all")
    latency.plot(minutes, [s["reads"]["p99_ms"] for s in samples], linestyle="--", label="p99, reads")
    latency.plot(minutes, [s["writes"]["p99_ms"] for s in samples], linestyle=":", label="p99, writes")
    latency.set_title("Latency per interval (from the scheduled start)")
    latency.set_ylabel("milliseconds")
    latency.set_yscale("log")
    latency.grid(True, which="both", alpha=0.3)
    latency.legend(loc="upper left", fontsize="small")

    mem_minutes = [s["t_s"] / 60 for s in everything]
    memory.plot(mem_minutes, [s["server"]["uss_mib"] for s in everything], marker="o", label="server USS")
    memory.plot(mem_minutes, [s["server"]["pss_mib"] for s in everything], marker="o", label="server PSS")
    memory.plot(mem_minutes, [s["server"]["rss_mib"] for s in everything], linestyle="--", label="server RSS")
    if result["dialect"] == "postgresql":
        memory.plot(
            mem_minutes, [s["database"]["uss_mib"] for s in everything], linestyle=":", label="PostgreSQL backends USS"
        )
    memory.set_title("Memory of the server (uvicorn and its children)")
    memory.set_ylabel("MiB")
    memory.set_ylim(bottom=0)
    memory.grid(True, alpha=0.3)
    memory.legend(loc="lower right", fontsize="small")

    rate.plot(minutes, [s["rps"] for s in samples], marker="o", label="answered")
    rate.axhline(result["target_rps"], color="grey", linestyle="--", label="target rate")
    rate.bar(minutes, [s["errors"] / s["interval_s"] for s in samples], width=0.02 * max(minutes[-1], 1),
             color="tab:red", label="errors")  # fmt: skip
    rate.set_title("Requests per second (errors in red)")
    rate.set_ylabel("requests/s")
    rate.set_ylim(bottom=0)
    rate.grid(True, alpha=0.3)
    rate.legend(loc="lower right", fontsize="small")

    resources.plot(mem_minutes, [s["server"]["fds"] for s in everything], marker="o", label="server file descriptors")
    resources.plot(mem_minutes, [s["database"]["connections"] for s in everything], marker="o", label=connections_label)
    resources.set_title("Descriptors and database connections")
    resources.set_ylabel("count")
    resources.set_xlabel("minutes since the soak started")
    resources.set_ylim(bottom=0)
    resources.grid(True, alpha=0.3)
    resources.legend(loc="lower right", fontsize="small")
    figure.tight_layout(rect=(0, 0, 1, 0.98))
    figure.savefig(path, dpi=100)
    plt.close(figure)


def _fmt(value: Any, digits: int = 1) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def _print_sample(s: dict[str, Any]) -> None:
    _say(
        f"  {s['t_s'] / 60:6.2f} min {s['requests']:>7} req {s['rps']:>7.1f}/s  "
        f"p50 {_fmt(s['all']['p50_ms'], 2):>7} p99 {_fmt(s['all']['p99_ms'], 2):>8} "
        f"max {_fmt(s['all']['max_ms']):>8} ms  "
        f"writes p99 {_fmt(s['writes']['p99_ms']):>7}  err {s['errors']:>3}  hit {_fmt(s['hit_ratio'], 2):>4}  "
        f"USS {s['server']['uss_mib']:7.1f} PSS {s['server']['pss_mib']:7.1f} MiB  "
        f"cache {_fmt(s['server'].get('response_cache_mib')):>5} MiB  fds {s['server']['fds']:>4}  "
        f"db conns {s['database']['connections']}"
    )


def _peak_line(peak: dict[str, Any] | None, share: float) -> str:
    if peak is None:
        return "rate given (--rate): no peak measured"
    return (
        f"peak (closed loop, {PEAK_CONNECTIONS} connections): reads alone {peak['reads']['rps']:.1f} req/s, "
        f"the 95/5 mix {peak['mix']['rps']:.1f} req/s; the soak runs at {share:.0%} of the "
        f"{'mix' if peak['of'] == 'mix' else 'reads'}'s"
    )


def _fill_line(fill: dict[str, Any] | None) -> str:
    if fill is None:
        return "no fill before the soak (--fill-minutes 0)"
    cache, uss = fill["response_cache_mib"], fill["uss_mib"]
    return (
        f"fill at saturation (reads, then the mix): {fill['seconds']:.0f} s, {fill['requests']:,} requests, "
        f"{fill['errors']} errors; "
        f"response cache {cache['before']} -> {cache['after']} MiB of {cache['bound']}; "
        f"server USS {uss['before']} -> {uss['after']} MiB; ended: {fill['ended']}"
    )


def summary(result: dict[str, Any]) -> str:
    soak, verdict = result["soak"], result["verdict"]
    lines = [
        "",
        f"soak on {result['dialect']}: {result['config']['posts']:,} posts, target {result['target_rps']:.1f} req/s "
        f"{result['config']['seconds'] / 60:.1f} min",
        _peak_line(result["peak"], result["config"]["load"]),
        _fill_line(result["fill"]),
        "",
        "| minute | requests | req/s | p50 ms | p99 ms | max ms | reads p99 | writes p99 | errors | hit ratio | "
        "USS MiB | PSS MiB | fds | db conns |",
        "| --: | --: | --: | --: | --: | --: | --: | --: | --: | --: | --: | --: | --: | --: |",
    ]
    for s in result["samples"]:
        lines.append(
            f"| {s['t_s'] / 60:.2f} | {s['requests']} | {s['rps']:.1f} | {_fmt(s['all']['p50_ms'], 2)} | "
            f"{_fmt(s['all']['p99_ms'], 2)} | {_fmt(s['all']['max_ms'])} | {_fmt(s['reads']['p99_ms'], 2)} | "
            f"{_fmt(s['writes']['p99_ms'], 2)} | {s['errors']} | {_fmt(s['hit_ratio'], 3)} | "
            f"{s['server']['uss_mib']:.1f} | {s['server']['pss_mib']:.1f} | {s['server']['fds']} | "
            f"{s['database']['connections']} |"
        )
    g = result["generator"]
    lines += [
        "",
        f"requests: {soak['completed']:,} of {soak['scheduled']:,} scheduled ({soak['achieved_rps']:.1f} req/s); "
        f"p50 {_fmt(soak['all']['p50_ms'], 2)} ms, p99 {_fmt(soak['all']['p99_ms'], 2)} ms, "
        f"max {_fmt(soak['all']['max_ms'])} ms; cache hit ratio {soak['hit_ratio']}",
        f"writes saved: {result['writes']['saved']} ("
        + ", ".join(f"{k} {v}" for k, v in result["writes"]["by_kind"].items())
        + f"); failed {result['writes']['failed']} (of which in the store all the same: "
        + (", ".join(f"{k} {v}" for k, v in result["writes"]["failed_but_in_the_store"].items()) or "none")
        + ")",
        f"load generator: {g['cpu_seconds']:.1f} s CPU ({g['cpu_percent_of_one_core']:.1f}% of one core); "
        f"server {g['server_cpu_percent_of_one_core']:.1f}% of one core",
        f"verdict ({verdict['windows']}): {'PASSED' if verdict['passed'] else 'FAILED'}",
    ]
    for name, check in verdict["checks"].items():
        detail = ", ".join(f"{k} {v}" for k, v in check.items() if k != "passed")
        lines.append(f"  {'ok  ' if check['passed'] else 'FAIL'} {name}: {detail}")
    return "\n".join(lines)


def server_log_digest(log: Path) -> dict[str, Any]:
    """The server log's exceptions (the last line of each traceback) and warnings, counted, and its last lines."""
    if not log.exists():
        return {"path": str(log), "lines": 0}
    lines = log.read_text(errors="replace").splitlines()
    exception = re.compile(r"^[A-Za-z_][\w.]*(Error|Exception|Warning)\b.*")
    found: Counter[str] = Counter()
    for line in lines:
        if exception.match(line) or line.startswith(("ERROR", "WARNING", "unexpected error")):
            found[line[:300]] += 1
    return {"path": str(log), "lines": len(lines), "counted": dict(found.most_common(20)), "last": lines[-20:]}


# -- main ----------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.soak", description=__doc__.splitlines()[0])
    parser.add_argument("--dialect", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--minutes", type=float, default=30.0, help="length of the soak (default 30)")
    parser.add_argument("--seconds", type=float, help="length of the soak in seconds (instead of --minutes)")
    parser.add_argument("--posts", type=int, default=20_000, help="synthesized posts in the store (default 20,000)")
    pace = parser.add_mutually_exclusive_group()
    pace.add_argument("--rate", type=float, help="requests per second (no peak measurement)")
    pace.add_argument("--load", type=float, default=0.7, help="share of the measured peak (default 0.7)")
    parser.add_argument("--peak-seconds", type=float, default=20.0, help="each closed-loop peak run (default 20)")
    parser.add_argument(
        "--peak-of",
        choices=("mix", "reads"),
        default="mix",
        help="the peak --load is a share of: the 95/5 mix's (default) or the reads' alone",
    )
    parser.add_argument(
        "--fill-minutes",
        type=float,
        default=20.0,
        help="longest fill of the server's caches at saturation before the soak (default 20; 0: none)",
    )
    parser.add_argument("--sample-seconds", type=float, help="sampling interval (60; a tenth of runs under 10 min)")
    parser.add_argument("--connections", type=int, default=SOAK_CONNECTIONS, help="open connections (default 32)")
    parser.add_argument("--cli-exports", type=int, default=10, help="imports also checked with `alphanode export`")
    parser.add_argument("--out", type=Path, default=RESULTS, help="folder of the result files (bench/results)")
    parser.add_argument("--work", type=Path, default=WORK, help="corpus, SQLite store and logs (var/soak)")
    return parser.parse_args(argv)


def _config(args: argparse.Namespace) -> Config:
    seconds = args.seconds if args.seconds is not None else args.minutes * 60
    sample = args.sample_seconds or (60.0 if seconds >= 600 else seconds / 10)
    return Config(
        dialect=args.dialect,
        posts=args.posts,
        seconds=seconds,
        peak_seconds=args.peak_seconds,
        load=args.load,
        rate=args.rate,
        peak_of=args.peak_of,
        fill_seconds=args.fill_minutes * 60,
        sample_seconds=sample,
        connections=args.connections,
        cli_exports=args.cli_exports,
        seed=SEED,
        out=args.out,
        work=args.work,
    )


def _build_store(config: Config) -> tuple[stores.Store, dict[str, Any]]:
    """A new store of the corpus: a SQLite file under the work folder, or the soak's PostgreSQL database."""
    started = time.perf_counter()
    if stores.ensure_corpus(config.corpus, config.posts, config.seed):
        _say(f"  generated {config.posts:,} documents in {time.perf_counter() - started:.1f} s")
    if config.dialect == "sqlite":
        path = config.work / "sqlite.db"
        path.parent.mkdir(parents=True, exist_ok=True)
        stores.remove_sqlite(path)
        store = stores.sqlite_store(path)
    else:
        stores.create_postgres_database(PG_DATABASE)
        store = stores.postgres_store(PG_DATABASE)
    timing = stores.import_corpus(store, config.corpus, config.posts)
    _say(f"  imported {timing.created:,} documents in {timing.wall_seconds:.1f} s")
    if config.dialect == "postgresql":
        _say(f"  VACUUM (ANALYZE) in {stores.settle_postgres(PG_DATABASE):.1f} s")
    return store, timing.as_dict()


async def _peak(traffic: Traffic, server: load.Server, seconds: float, mix: str) -> dict[str, Any]:
    """Requests per second at saturation: a closed loop of the reads alone, or of the soak's mix."""
    traffic.take_window()
    cpu_before = await asyncio.to_thread(load.cpu_seconds, server.pid)
    done, elapsed = await traffic.closed_loop(seconds, PEAK_CONNECTIONS, reads_only=mix == "reads")
    cpu = await asyncio.to_thread(load.cpu_seconds, server.pid) - cpu_before
    window = traffic.take_window()
    return {
        "server_cpu_percent_of_one_core": round(cpu / elapsed * 100, 1),
        "seconds": round(elapsed, 1),
        "connections": PEAK_CONNECTIONS,
        "requests": done,
        "rps": round(done / elapsed, 1),
        **{k: v for k, v in _percentiles(window.reads + window.writes).items() if k != "count"},
        "writes": len(window.writes),
        "errors": window.read_errors + window.write_errors,
        "hit_ratio": _ratio(window.cache),
    }


async def _fill(traffic: Traffic, server: load.Server, seconds: float) -> dict[str, Any]:
    """Warm the server's bounded caches before the soak, for at most ``seconds``.

    First the reads alone at saturation, until the response cache holds ``FILL_SHARE`` of its
    bound or stops growing; then the soak's mix at saturation (the caches writes bring: search
    matches and rankings at each new store version, statements, counts), until the server's USS
    settles: its mean over the last ``FILL_SETTLE_CHUNKS`` looks at most ``FILL_SETTLE_SHARE``
    above that of the looks before.
    """
    traffic.take_window()
    before = await asyncio.to_thread(process_figures, server.pid)
    cache_before = await asyncio.to_thread(response_cache_mib, server.port)
    bound = RESPONSE_CACHE_BYTES / MIB
    started = time.perf_counter()
    requests, errors, cache = 0, 0, cache_before or 0.0
    stages: dict[str, Any] = {}
    step = min(FILL_CHUNK_S, seconds / 8)  # shorter steps for a short fill (the smoke test's)

    def left() -> float:
        return seconds - (time.perf_counter() - started)

    async def chunk(reads_only: bool) -> None:
        nonlocal requests, errors
        done, _ = await traffic.closed_loop(min(step, left()), PEAK_CONNECTIONS, reads_only=reads_only)
        window = traffic.take_window()
        requests, errors = requests + done, errors + window.read_errors + window.write_errors + window.unanswered

    why = "time"
    while left() > 0:
        await chunk(reads_only=True)
        now = await asyncio.to_thread(response_cache_mib, server.port)
        if now is None:
            why = "no response cache size in /metrics"
            break
        grew, cache = now - cache, now
        if cache >= bound * FILL_SHARE:
            why = f"the response cache holds {FILL_SHARE:.0%} of its bound"
            break
        if grew < FILL_STALL_MIB:
            why = f"the response cache grew less than {FILL_STALL_MIB} MiB in {step:.0f} s"
            break
    stages["reads"] = {"seconds": round(time.perf_counter() - started, 1), "ended": why}

    looks: list[float] = []
    why = "time"
    while left() > 0:
        await chunk(reads_only=False)
        figures = await asyncio.to_thread(process_figures, server.pid)
        if figures is None:
            why = "the server is gone"
            break
        looks.append(figures["uss_mib"])
        n = FILL_SETTLE_CHUNKS
        if len(looks) >= 2 * n and np.mean(looks[-n:]) <= np.mean(looks[-2 * n : -n]) * (1 + FILL_SETTLE_SHARE):
            why = f"USS rose less than {FILL_SETTLE_SHARE:.0%} over the last {n * step:.0f} s"
            break
    stages["mix"] = {
        "seconds": round(time.perf_counter() - started - stages["reads"]["seconds"], 1),
        "ended": why,
        "uss_mib": looks,
    }
    cache = await asyncio.to_thread(response_cache_mib, server.port) or cache
    after = await asyncio.to_thread(process_figures, server.pid)
    return {
        "seconds": round(time.perf_counter() - started, 1),
        "requests": requests,
        "errors": errors,
        "ended": f"reads: {stages['reads']['ended']}; mix: {stages['mix']['ended']}",
        "stages": stages,
        "response_cache_mib": {"before": cache_before, "after": cache, "bound": round(bound, 1)},
        "uss_mib": {"before": before["uss_mib"] if before else None, "after": after["uss_mib"] if after else None},
    }


async def session(
    traffic: Traffic, server: load.Server, store: stores.Store, config: Config, result: dict[str, Any]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Peak, soak and the read-back of every write, on one event loop; fills ``result``."""
    await traffic.pool.open()
    try:
        rate = config.rate
        if rate is None:
            result["peak"] = {"of": config.peak_of}
            for mix in ("reads", "mix"):
                result["peak"][mix] = peak = await _peak(traffic, server, config.peak_seconds, mix)
                _say(
                    f"peak, closed loop of {'the reads' if mix == 'reads' else 'the 95/5 mix'} "
                    f"({PEAK_CONNECTIONS} connections, {peak['seconds']:.0f} s): {peak['rps']:.1f} req/s, "
                    f"p50 {peak['p50_ms']} ms, p99 {peak['p99_ms']} ms, {peak['errors']} errors, "
                    f"server CPU {peak['server_cpu_percent_of_one_core']}% of one core"
                )
            rate = result["peak"][config.peak_of]["rps"] * config.load
        result["target_rps"] = round(rate, 1)
        result["fill"] = None
        if config.fill_seconds > 0:
            result["fill"] = fill = await _fill(traffic, server, config.fill_seconds)
            _say(
                f"fill at saturation (reads, then the mix) for {fill['seconds']:.0f} s ({fill['requests']:,} requests, "
                f"{fill['errors']} errors): response cache {fill['response_cache_mib']['before']} -> "
                f"{fill['response_cache_mib']['after']} MiB, USS {fill['uss_mib']['before']} -> "
                f"{fill['uss_mib']['after']} MiB; ended: {fill['ended']}"
            )
        database = PG_DATABASE if store.dialect == "postgresql" else None
        sampler = Sampler(traffic, server, store, database)
        _say(f"soak: open loop at {rate:.1f} req/s for {config.seconds / 60:.1f} min, {config.connections} connections")
        _print_sample(await sampler.sample())
        ticking = asyncio.create_task(sampler.every(config.sample_seconds, config.seconds))
        scheduled = await traffic.open_loop(rate, config.seconds)
        ticking.cancel()
        _print_sample(await sampler.sample())
        result["soak_wall_seconds"] = round(time.perf_counter() - sampler.started, 1)
        result["_scheduled"] = scheduled
        result["_samples"] = sampler.samples
        _say(f"checking {sum(traffic.write_counts.values())} saved writes")
        return await read_back_all(traffic)
    finally:
        traffic.pool.close()


def _soak_figures(samples: list[dict[str, Any]], scheduled: int, wall: float) -> dict[str, Any]:
    reads = [v for s in samples for v in s["_latencies"][0]]
    writes = [v for s in samples for v in s["_latencies"][1]]
    cache: Counter[str] = Counter()
    for s in samples:
        cache.update(s["cache"])
    completed = len(reads) + len(writes)
    return {
        "scheduled": scheduled,
        "completed": completed,
        "achieved_rps": round(completed / wall, 1) if wall else 0.0,
        "errors": sum(s["errors"] for s in samples),
        "all": _percentiles(reads + writes),
        "reads": _percentiles(reads),
        "writes": _percentiles(writes),
        "cache": dict(cache),
        "hit_ratio": _ratio(cache),
    }


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    config = _config(args)
    postgres = None
    if config.dialect == "postgresql":
        try:
            postgres = stores.postgres_version()
        except Exception as exc:
            print(f"PostgreSQL does not answer at {stores.PG_HOST}:{stores.PG_PORT} ({exc})", file=sys.stderr)
            return 2
    started = dt.datetime.now().astimezone().isoformat(timespec="seconds")
    command = " ".join(["python -m bench.soak", *(sys.argv[1:] if argv is None else argv)]).strip()
    rng = random.Random(f"{config.seed}:soak")
    result: dict[str, Any] = {
        "kind": "soak",
        "dialect": config.dialect,
        "started": started,
        "command": command,
        "config": {
            **{k: v for k, v in asdict(config).items() if k not in ("out", "work")},
            "read_mix_percent": READ_MIX,
            "write_share": WRITE_SHARE,
            "write_mix": WRITE_MIX,
            "peak_connections": PEAK_CONNECTIONS,
        },
        "machine": machine_info("none: an asyncio HTTP/1.1 client (bench/soak.py)", postgres),
        "peak": None,
    }
    _say(f"[{config.dialect}] store of {config.posts:,} posts")
    store, result["import"] = _build_store(config)
    log = config.work / "logs" / f"{config.dialect}-server.log"
    try:
        token = stores.editor_token(store)
        _say("  request bodies from the store (bench/workload.py)")
        bodies, references = asyncio.run(_read_bodies(store.url, config.posts, config.seed))
        reads, edited_slugs = _plan(bodies, references, rng)
        env = {"ALPHANODE_CACHE": "true", "ALPHANODE_CACHE_MAX_BYTES": str(RESPONSE_CACHE_BYTES)}
        with load.serve(load.GRAPHQL_APP, store.url, log, env=env) as server:
            tracked = _tracked(server, token, edited_slugs)
            _add_references(reads, tracked, references, rng)
            result["bodies"] = {op: len(found) for op, found in reads.items()}
            result["posts_edited_pool"] = len(tracked)
            traffic = Traffic(server.port, token, reads, tracked, rng, config.connections)
            stored, public = asyncio.run(session(traffic, server, store, config, result))
            result["server_log"] = server_log_digest(log)
        verification = verify(traffic, stored, public, store.url, config.cli_exports, rng)
    finally:
        if config.dialect == "postgresql":
            stores.drop_postgres_database(PG_DATABASE)
        else:
            stores.remove_sqlite(config.work / "sqlite.db")

    samples = result.pop("_samples")
    wall = result.pop("soak_wall_seconds")
    result["soak"] = {**_soak_figures(samples, result.pop("_scheduled"), wall), "wall_seconds": wall}
    result["writes"] = {
        "saved": sum(traffic.write_counts.values()),
        "failed": sum(traffic.write_failures.values()),
        "by_kind": dict(traffic.write_counts),
        "failed_by_kind": dict(traffic.write_failures),
        "failed_but_in_the_store": dict(traffic.failed_but_written),
    }
    result["verification"] = verification
    first, last = samples[0], samples[-1]
    generator_cpu = last["generator_cpu_seconds"]
    server_cpu = last["server"]["cpu_seconds"] - first["server"]["cpu_seconds"]
    result["generator"] = {
        "cpu_seconds": generator_cpu,
        "cpu_percent_of_one_core": round(generator_cpu / wall * 100, 1),
        "server_cpu_seconds": round(server_cpu, 1),
        "server_cpu_percent_of_one_core": round(server_cpu / wall * 100, 1),
    }
    peak_errors = result["peak"]["reads"]["errors"] + result["peak"]["mix"]["errors"] if result["peak"] else 0
    peak_errors += result["fill"]["errors"] if result["fill"] else 0
    result["verdict"] = judge(samples, config.seconds, peak_errors, verification, result["writes"]["saved"])
    result["errors_seen"] = traffic.errors_seen
    result["samples"] = [{k: v for k, v in s.items() if k != "_latencies"} for s in samples]

    config.out.mkdir(parents=True, exist_ok=True)
    stem = result_stem(config.out, started[:10], config.dialect)
    stem.with_suffix(".json").write_bytes(orjson.dumps(result, option=orjson.OPT_INDENT_2) + b"\n")
    plot(result, stem.with_suffix(".png"))
    print(summary(result))
    if traffic.errors_seen:
        _say("first errors:")
        for error in traffic.errors_seen[:5]:
            _say(f"  {error['operation']} {error['status']}: {error['detail'][:300]}")
    _say(f"wrote {stem.with_suffix('.json')} and {stem.with_suffix('.png')}")
    return 0 if result["verdict"]["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
