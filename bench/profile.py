"""Where a request's time goes: the API and the hand-written endpoint in one process, no load generator.

``python -m bench.profile [--dialect sqlite|postgresql] [--operation Listing] [--rounds N] [--cprofile FILE]``

Both Starlette applications are started in this process (their lifespans
run) and the same request bodies as ``bench.run`` are sent to each through
the ASGI interface, one request at a time, alternating the two applications
round by round so that both see the same machine. For each it reports the
mean wall-clock time and the mean CPU time of this process per request: with
one request at a time and the database in another process (PostgreSQL) or a
thread (SQLite), the CPU time is what the application's Python costs, the
figure the GraphQL/hand-written ratio of ``bench.run`` is mostly about. With
``--cprofile`` the API's rounds run under :mod:`cProfile` and the statistics
are written to the file (read them with ``python -m pstats FILE``).

It measures the stores ``bench.run`` made: run that first (``--keep-database``
for PostgreSQL). It is a tool for finding where time goes, not the benchmark:
its figures compare changes to the code on one machine within minutes; the
headline ratio is the one ``bench.run`` measures under load.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import gc
import random
import statistics
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from bench import handwritten, run, stores, workload
from loaders import ReadPool
from server.app import create_app
from server.settings import Settings

Asgi = Callable[[dict[str, Any], Any, Any], Awaitable[None]]


class _Collections:
    """Time spent in the cyclic garbage collector, by generation (``gc.callbacks``)."""

    def __init__(self) -> None:
        self.seconds = [0.0, 0.0, 0.0]
        self.counts = [0, 0, 0]
        self._started = 0.0

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
        else:
            self.seconds[info["generation"]] += time.perf_counter() - self._started
            self.counts[info["generation"]] += 1

    def take(self) -> tuple[list[float], list[int]]:
        taken = (self.seconds, self.counts)
        self.seconds, self.counts = [0.0, 0.0, 0.0], [0, 0, 0]
        return taken


COLLECTIONS = _Collections()


@dataclass(slots=True)
class Timing:
    wall_ms: list[float] = field(default_factory=list)
    cpu_ms: list[float] = field(default_factory=list)
    gc_seconds: list[float] = field(default_factory=lambda: [0.0, 0.0, 0.0])
    gc_counts: list[int] = field(default_factory=lambda: [0, 0, 0])

    def summary(self) -> str:
        n = len(self.wall_ms)
        collected = ", ".join(
            f"gen{g} {self.gc_counts[g]}x {self.gc_seconds[g] * 1000 / n:.3f}" for g in range(3) if self.gc_counts[g]
        )
        return (
            f"wall {statistics.fmean(self.wall_ms):7.3f} ms (median {statistics.median(self.wall_ms):7.3f})  "
            f"cpu {statistics.fmean(self.cpu_ms):7.3f} ms  gc ms/request: {collected or 'none'}"
        )


async def _lifespan(app: Asgi) -> Callable[[], Awaitable[None]]:
    """Start ``app``'s lifespan; returns the function that ends it."""
    startup: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    events: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    await startup.put({"type": "lifespan.startup"})

    async def receive() -> dict[str, Any]:
        return await startup.get()

    async def send(message: dict[str, Any]) -> None:
        await events.put(message)

    task = asyncio.create_task(app({"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}, receive, send))
    message = await events.get()
    if message["type"] != "lifespan.startup.complete":
        raise RuntimeError(f"the application did not start: {message}")

    async def stop() -> None:
        await startup.put({"type": "lifespan.shutdown"})
        await events.get()
        await task

    return stop


async def post(app: Asgi, body: bytes) -> tuple[int, bytes]:
    """One POST /graphql through the ASGI interface, as uvicorn would send it."""
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/graphql",
        "raw_path": b"/graphql",
        "query_string": b"",
        "root_path": "",
        "headers": [
            (b"host", b"127.0.0.1"),
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
        ],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
        "state": {},
    }
    sent = False
    status = 0
    chunks: list[bytes] = []

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if sent:
            await asyncio.Event().wait()
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]
        elif message["type"] == "http.response.body":
            chunks.append(message.get("body", b""))

    await app(scope, receive, send)
    return status, b"".join(chunks)


async def _round(app: Asgi, payloads: list[bytes], timing: Timing) -> None:
    COLLECTIONS.take()
    for payload in payloads:
        wall, cpu = time.perf_counter(), time.process_time()
        status, answer = await post(app, payload)
        timing.cpu_ms.append((time.process_time() - cpu) * 1000)
        timing.wall_ms.append((time.perf_counter() - wall) * 1000)
        if status != 200 or b'"errors"' in answer[:20]:
            raise SystemExit(f"answered {status}: {answer[:300]!r}")
    seconds, counts = COLLECTIONS.take()
    for g in range(3):
        timing.gc_seconds[g] += seconds[g]
        timing.gc_counts[g] += counts[g]


async def profile(url: str, operation: str, rounds: int, seed: int, cprofile: str | None) -> None:
    gc.callbacks.append(COLLECTIONS)
    pool = await ReadPool.open(url, 2)
    try:
        bodies = (await workload.build(pool, workload.Sizes(), seed)).bodies[operation]
    finally:
        await pool.close()
    payloads = [workload.encode(b) for b in bodies]
    api = create_app(Settings(database_url=url, cache=False, log_level="warning"))
    baseline = handwritten.create_app(Settings(database_url=url))
    stops = [await _lifespan(api), await _lifespan(baseline)]
    try:
        for app in (api, baseline):  # warm up: caches, connections, the fact index
            await _round(app, payloads, Timing())
            await _round(app, payloads, Timing())
        api_timing, baseline_timing = Timing(), Timing()
        profiler = cProfile.Profile() if cprofile else None
        order = random.Random(seed)
        for _ in range(rounds):
            shuffled = order.sample(payloads, len(payloads))
            if profiler is not None:
                profiler.enable()
            await _round(api, shuffled, api_timing)
            if profiler is not None:
                profiler.disable()
            await _round(baseline, shuffled, baseline_timing)
        print(f"{operation} on {url.split('://')[0]}: {len(payloads)} bodies x {rounds} rounds, one at a time")
        print(f"  graphql      {api_timing.summary()}")
        print(f"  handwritten  {baseline_timing.summary()}")
        ratio = statistics.fmean(baseline_timing.cpu_ms) / statistics.fmean(api_timing.cpu_ms)
        print(f"  hand-written CPU / GraphQL CPU: {ratio:.2f}")
        if profiler is not None and cprofile:
            profiler.dump_stats(cprofile)
            print(f"  profile of the GraphQL rounds: {cprofile}")
    finally:
        for stop in reversed(stops):
            await stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.profile", description=__doc__.split("\n\n")[0])
    parser.add_argument("--dialect", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--operation", choices=workload.HANDWRITTEN_OPERATIONS, default="Listing")
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--cprofile", metavar="FILE", help="profile the API's rounds into FILE")
    args = parser.parse_args(argv)
    if args.dialect == "postgresql":
        url = stores.postgres_store().url
    else:
        url = stores.sqlite_store(run.VAR / "sqlite.db").url
    asyncio.run(profile(url, args.operation, args.rounds, args.seed, args.cprofile))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
