"""What is sent: the reads, the writes and the imports, scheduled open-loop, and what each answered."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import itertools
import random
import time
import urllib.parse
import urllib.request
from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import orjson

from bench.soak.common import (
    ERROR_EXAMPLES,
    HOT_BODIES,
    HOT_SHARE,
    IMPORT_SEED,
    MUTATIONS,
    NEW_IMPORT_SHARE,
    READ_BACK,
    READ_MIX,
    REVALIDATE_SHARE,
    STATUSES,
    TIMEOUT_S,
    WRITE_MIX,
    WRITE_SHARE,
)
from bench.soak.wire import Answer, Connection, Pool, _get_prefix, _headers, post_request
from documents import render
from documents.synth import synthesize

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
