"""The purger's Varnish purges, against stand-in Varnish servers that record what they receive.

A purge-log row is written as a write writes it (``store.purge.record``); ``Purger.poll`` then
purges the process's own cache, and only after it sends each Varnish one PURGE naming the keys
in ``Surrogate-Key`` (several when they would not fit ``MAX_PURGE_HEADER``), and the same again
``repurge_delay`` seconds later. A Varnish that is away or refuses is counted, said once until
it takes purges again, and holds up neither the others nor the process. The real Varnish, with
the shipped VCL, is in ``test_varnish.py``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

import models
from server.caching import Entry, MemoryCache
from server.purging import MAX_PURGE_HEADER, Purger, key_batches, varnish_urls
from store.purge import record
from tests.parts.processes import free_port

pytestmark = pytest.mark.anyio


@dataclass
class Received:
    """A PURGE a stand-in Varnish received: its keys, and what the process's cache held then."""

    keys: str
    cache_entries: int
    at: float = field(default_factory=time.monotonic)


@dataclass
class StandIn:
    """A server answering PURGE with ``status`` (which may change), keeping what it received."""

    url: str
    status: int
    cache_entries: Callable[[], int]  # what the process's cache holds, recorded with each PURGE
    received: list[Received] = field(default_factory=list)


class _Varnish(BaseHTTPRequestHandler):
    def do_PURGE(self) -> None:
        varnish: StandIn = self.server.stand_in  # type: ignore[attr-defined]
        varnish.received.append(Received(self.headers.get("surrogate-key", ""), varnish.cache_entries()))
        self.send_response(varnish.status)
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextlib.contextmanager
def stand_in(cache_entries: Callable[[], int] = lambda: 0, status: int = 200) -> Iterator[StandIn]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Varnish)
    varnish = StandIn(f"http://127.0.0.1:{server.server_address[1]}", status, cache_entries)
    server.stand_in = varnish  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield varnish
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    engine = models.create_engine(f"sqlite:///{tmp_path / 'store.db'}")
    await models.create_all(engine)
    try:
        yield engine
    finally:
        await engine.dispose()


async def start(purger: Purger) -> None:
    """Start the purger and let its loop poll once (nothing yet): with a long interval, only the
    test's own polls read what it writes next."""
    await purger.start()
    await asyncio.sleep(0.05)


async def write(engine: AsyncEngine, post_ids: list[int]) -> None:
    """A write's purge-log row: the posts' keys and ``lists``."""
    async with engine.begin() as conn:
        await conn.run_sync(lambda sync: record(sync, post_ids, lists=True))


def test_varnish_addresses_and_key_batches() -> None:
    assert varnish_urls(None) == []
    assert varnish_urls(" 127.0.0.1:6081, http://cache.internal:80 ,") == [
        "http://127.0.0.1:6081",
        "http://cache.internal:80",
    ]
    keys = [f"p{n}" for n in range(1, 3001)] + ["lists"]
    batches = key_batches(keys)
    assert len(batches) > 1
    assert all(len(batch) <= MAX_PURGE_HEADER for batch in batches)
    assert " ".join(batches).split() == keys
    assert key_batches(["x" * 50, "y"], limit=10) == ["x" * 50, "y"]
    assert key_batches([]) == []


async def test_each_poll_purges_the_cache_then_every_varnish_once_and_again_after_the_delay(
    engine: AsyncEngine,
) -> None:
    cache = MemoryCache()
    await cache.put("page-1", Entry(b"{}", '"e"', ("p1",), "application/json"), 0)
    outcomes: list[bool] = []
    with stand_in(lambda: len(cache)) as one, stand_in(lambda: len(cache)) as two:
        purger = Purger(
            engine, cache, interval=60, varnish=[one.url, two.url], repurge_delay=0.4, on_varnish=outcomes.append
        )
        await start(purger)
        try:
            await write(engine, [1])
            await write(engine, [2])
            assert await purger.poll() == 2
            polled = time.monotonic()
            # One PURGE each for both rows, sent once the process's own cache no longer held the page.
            for varnish in (one, two):
                assert [(r.keys, r.cache_entries) for r in varnish.received] == [("lists p1 p2", 0)]
            await asyncio.sleep(0.7)
        finally:
            await purger.stop()
    # The same again, after the delay.
    for varnish in (one, two):
        assert [r.keys for r in varnish.received] == ["lists p1 p2"] * 2
        assert varnish.received[1].at - polled >= 0.35
    assert outcomes == [True] * 4


async def test_a_long_key_list_goes_in_several_purges_within_the_header_bound(engine: AsyncEngine) -> None:
    posts = list(range(1, 1501))
    with stand_in() as varnish:
        purger = Purger(engine, MemoryCache(), interval=60, varnish=[varnish.url], repurge_delay=0)
        await start(purger)
        try:
            await write(engine, posts)
            await purger.poll()
        finally:
            await purger.stop()
    assert len(varnish.received) > 1
    assert all(len(r.keys) <= MAX_PURGE_HEADER for r in varnish.received)
    sent = [key for r in varnish.received for key in r.keys.split()]
    assert sorted(sent) == sorted([f"p{n}" for n in posts] + ["lists"])


async def test_a_varnish_away_or_refusing_is_logged_once_and_counted_and_holds_up_nothing(
    engine: AsyncEngine, caplog: pytest.LogCaptureFixture
) -> None:
    cache = MemoryCache()
    await cache.put("page-1", Entry(b"{}", '"e"', ("p1",), "application/json"), 0)
    away = f"http://127.0.0.1:{free_port()}"
    outcomes: list[bool] = []
    caplog.set_level(logging.WARNING, logger="alphanode.purge")
    with stand_in(status=403) as refusing, stand_in() as working:
        purger = Purger(
            engine,
            cache,
            interval=60,
            varnish=[away, refusing.url, working.url],
            repurge_delay=0,
            on_varnish=outcomes.append,
        )
        await start(purger)
        try:
            await write(engine, list(range(1, 1501)))  # several PURGEs' worth of keys
            assert await purger.poll() == 1  # no exception
            # The working Varnish got every key; the refusing one the first PURGE only: the rest would fail alike.
            assert len(working.received) > 1 and len(refused := refusing.received) == 1
            assert sorted(outcomes) == [False, False] + [True] * len(working.received)
            assert len(cache) == 0  # the process's own cache was purged all the same
            # Another write: the failures are counted, not said again.
            await write(engine, [7])
            await purger.poll()
            assert outcomes[-3:].count(False) == 2 and len(refused) == 2
            # Until the refusing Varnish takes a purge again.
            refusing.status = 200
            await write(engine, [8])
            await purger.poll()
        finally:
            await purger.stop()
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert [w for w in warnings if away in w] == [f"purging 1501 key(s) from Varnish at {away} failed: ConnectError"], (
        warnings
    )
    assert [w for w in warnings if refusing.url in w] == [
        f"purging 1501 key(s) from Varnish at {refusing.url} failed: it answered 403",
        f"Varnish at {refusing.url} takes purges again",
    ], warnings
