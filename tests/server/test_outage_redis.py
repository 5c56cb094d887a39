"""The API keeps serving when Redis is stopped, slow, or restarted.

A cache is an optimization: its outage costs speed, never availability. With the app
on a SQLite store and a private Redis (``tests/parts/redis.py``, its own process and
port, stopped and started by the test), every public read answers 200 with its data
while Redis is away, ``/healthz`` says ``"cache": "down"`` (still 200), ``/metrics``
counts the failed calls, and once the outage is known no request touches Redis
(the error count stops growing, and requests answer while Redis still sleeps). Writes
commit and are visible. When Redis answers again the cache is used again within a
second or so, and nothing stale comes out of it: the purges it missed are applied
first (a post edited during an outage), and a Redis that restarted (a new
``run_id``), possibly with an older dataset, has its whole cache invalidated first.
Whether a response came from the cache is read from ``Server-Timing``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import shutil
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from server.app import create_app
from server.caching import Entry, RedisCache
from server.redis_link import RedisLink
from server.services import Services
from server.settings import Settings
from tests.factories import import_paths
from tests.parts.redis import RedisServer, private_redis
from tests.server.caching import (
    Trio,
    cache_of,
    create_editor,
    get,
    page,
    pick_trio,
    title_of,
    update_title,
    warm,
    webhook_server,
)
from tests.server.test_persisted import codes, extension, frontend_operations, ran, send

TIMEOUT = 0.25  # ALPHANODE_REDIS_TIMEOUT of these tests
RECOVERY_DEADLINE = 5.0  # seconds: Redis is probed twice a second, so it is used again well within this
PREFIX = "alphanode-outage:"


# -- a store (copied for each test) and the app ------------------------------------------------


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory, corpus: Path) -> tuple[Path, str]:
    """A store of the session's corpus with an editor token, to copy: (its folder, the token)."""
    folder = tmp_path_factory.mktemp("outage-store")
    url = f"sqlite:///{folder / 'store.db'}"
    import_paths(url, corpus)
    return folder, create_editor(url)


@pytest.fixture
def store(template: tuple[Path, str], tmp_path: Path) -> tuple[str, str, Trio]:
    """A store of this test's own: (its URL, an editor token, three posts)."""
    folder, token = template
    for path in folder.glob("store.db*"):
        shutil.copy(path, tmp_path / path.name)
    url = f"sqlite:///{tmp_path / 'store.db'}"
    return url, token, pick_trio(url)


@contextlib.contextmanager
def app_on(url: str, redis: RedisServer, **extra: Any) -> Iterator[tuple[TestClient, Services]]:
    settings = Settings(database_url=url, redis_url=redis.url, redis_prefix=PREFIX, redis_timeout=TIMEOUT, **extra)
    app = create_app(settings)
    with TestClient(app) as client:
        yield client, app.state.services


def health(client: TestClient) -> dict[str, str]:
    response = client.get("/healthz")
    assert response.status_code == 200, response.text
    body: dict[str, str] = response.json()
    return body


def metric(client: TestClient, name: str) -> float:
    """A sample of /metrics (``name`` with its labels as Prometheus writes them); 0 when absent."""
    text = client.get("/metrics").text
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def cache_errors(client: TestClient) -> float:
    text = client.get("/metrics").text
    return sum(float(m) for m in re.findall(r"^alphanode_cache_errors_total\{[^}]*\} (\S+)$", text, re.M))


def until(condition: Callable[[], bool], deadline: float, what: str) -> float:
    """Poll ``condition`` until it holds; the seconds it took (fails past ``deadline``)."""
    started = time.monotonic()
    while not condition():
        assert time.monotonic() - started < deadline, f"{what}: not within {deadline}s"
        time.sleep(0.02)
    return time.monotonic() - started


def operations() -> list[tuple[str, str, dict[str, Any]]]:
    """The frontend's operations (server/operations/*.graphql): (text, name, variables)."""
    return [(path.read_text(encoding="utf-8"), name, variables) for path, name, variables in frontend_operations()]


def read(client: TestClient, query: str, name: str, variables: dict[str, Any]) -> Any:
    """A public GET of an operation that must answer 200 with its data."""
    response = get(client, query, variables, operation=name)
    assert response.status_code == 200, (name, response.status_code, response.text[:300])
    body = response.json()
    assert "errors" not in body, (name, body["errors"])
    assert body["data"] and all(value is not None for value in body["data"].values()), (name, body)
    return response


def cached_bodies(redis: RedisServer) -> list[bytes]:
    """The bodies of every response cached in this Redis."""
    with redis.client() as client:
        return [client.hget(name, "body") or b"" for name in client.scan_iter(match=PREFIX + "r:*")]


# -- Redis stopped ---------------------------------------------------------------------------


def test_reads_and_writes_go_on_while_redis_is_stopped_and_the_cache_comes_back(
    store: tuple[str, str, Trio], redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    url, token, trio = store
    caplog.set_level(logging.INFO, logger="alphanode.cache")
    with webhook_server() as (hook, received), app_on(url, redis_server, purge_webhook=hook) as (client, services):
        assert services.redis is not None
        assert health(client) == {"status": "ok", "database": "ok", "cache": "ok"}
        assert metric(client, "alphanode_cache_up") == 1.0
        # Given every frontend operation cached in Redis.
        for query, name, variables in operations():
            warm(client, lambda q=query, n=name, v=variables: read(client, q, n, v))  # type: ignore[misc]
        assert cache_errors(client) == 0

        # When Redis stops.
        redis_server.stop()

        # Then every read answers 200 with its data, computed, again and again; Server-Timing says
        # the cache was unavailable (not a miss).
        for _ in range(3):
            for query, name, variables in operations():
                assert cache_of(read(client, query, name, variables)) == "unavailable"
        assert services.redis.up is False
        assert health(client) == {"status": "ok", "database": "ok", "cache": "down"}
        assert metric(client, "alphanode_cache_up") == 0.0
        errors = cache_errors(client)
        assert errors >= 1
        assert metric(client, 'alphanode_cache_errors_total{operation="get"}') >= 1
        # Once the outage is known, no request touches Redis: not one more failed call.
        for _ in range(5):
            for query, name, variables in operations():
                read(client, query, name, variables)
        assert cache_errors(client) == errors

        # A write commits, is visible at once, and the purge log is followed (the webhook told).
        followed = services.purger.last if services.purger is not None else 0
        new_title = f"written while Redis was away {uuid.uuid4().hex[:8]}"
        update_title(client, token, trio.a, new_title)
        assert title_of(page(client, trio.a)) == new_title
        assert services.purger is not None and services.purger.last > followed
        until(lambda: any(f"p{trio.a_id}".encode() in body for _, body in received), 2.0, "the webhook was told")
        assert isinstance(services.cache, RedisCache) and services.cache.pending()  # remembered for Redis

        # When Redis is back (empty: no persistence).
        redis_server.start()
        took = until(lambda: health(client).get("cache") == "ok", RECOVERY_DEADLINE, "the cache is back")
        assert took < RECOVERY_DEADLINE
        assert metric(client, "alphanode_cache_up") == 1.0
        assert not services.cache.pending()
        # Then the cache is used again: hits reappear, with the write in them.
        assert title_of(warm(client, lambda: page(client, trio.a))) == new_title
        query, name, variables = operations()[0]
        warm(client, lambda: read(client, query, name, variables))

    # Each transition logged once, both at WARNING (the command line's level), and no URL in the log.
    messages = [(r.levelno, r.getMessage()) for r in caplog.records if r.name == "alphanode.cache"]
    downs = [m for level, m in messages if level == logging.WARNING and m.startswith("Redis is down")]
    assert downs == ["Redis is down (ConnectionError): serving without it until it answers again"], messages
    ups = [m for level, m in messages if level == logging.WARNING and m.startswith("Redis answers again")]
    assert len(ups) == 1, messages
    assert not any("redis://" in m or str(redis_server.port) in m for _, m in messages), messages


# -- nothing stale after recovery -----------------------------------------------------------------


def test_a_post_edited_while_redis_was_down_is_never_served_stale_after_it_restarts(
    store: tuple[str, str, Trio], persistent_redis_server: RedisServer, tmp_path: Path
) -> None:
    url, token, trio = store
    with app_on(url, persistent_redis_server) as (client, services):
        # Given the pages of A and B cached in a Redis that keeps its data across restarts.
        old_title = title_of(warm(client, lambda: page(client, trio.a)))
        warm(client, lambda: page(client, trio.b))
        persistent_redis_server.stop()
        # (The premise: a copy of what it wrote serves A's old page when started.)
        copy = tmp_path / "copy"
        shutil.copytree(persistent_redis_server.folder, copy)
        with private_redis(copy, persistent=True) as restored:
            assert any(old_title.encode() in body for body in cached_bodies(restored))

        # When A is edited while Redis is down, and Redis restarts with its old data.
        new_title = f"edited during the outage {uuid.uuid4().hex[:8]}"
        update_title(client, token, trio.a, new_title)
        assert title_of(page(client, trio.a)) == new_title
        assert services.redis is not None and not services.redis.up
        persistent_redis_server.start()

        # Then A's page is never the old one: while the app notices, and once Redis is used again.
        def recovered() -> bool:
            assert title_of(page(client, trio.a)) == new_title
            return health(client).get("cache") == "ok"

        until(recovered, RECOVERY_DEADLINE, "the cache is back")
        assert title_of(warm(client, lambda: page(client, trio.a))) == new_title
        # The restarted Redis had every entry invalidated: B's page, too, is computed again.
        assert cache_of(page(client, trio.b)) == "miss"
        assert not any(old_title.encode() in body for body in cached_bodies(persistent_redis_server))


@pytest.mark.parametrize("noticed_by", ["a-request", "the-watch"])
def test_a_redis_restored_from_an_older_dataset_is_invalidated_though_no_call_failed(
    store: tuple[str, str, Trio], persistent_redis_server: RedisServer, tmp_path: Path, noticed_by: str
) -> None:
    url, token, trio = store
    with app_on(url, persistent_redis_server) as (client, services):
        assert services.redis is not None
        # Given A's page cached, and a backup of Redis taken then (stopped for a consistent copy).
        old_title = title_of(warm(client, lambda: page(client, trio.a)))
        persistent_redis_server.stop()
        backup = tmp_path / "backup"
        shutil.copytree(persistent_redis_server.folder, backup)
        outages = services.redis.outages
        persistent_redis_server.start()

        def restart_noticed() -> bool:
            page(client, trio.a)  # (a request notices the restart, and the cache comes back)
            return services.redis is not None and services.redis.up and services.redis.outages > outages

        until(restart_noticed, RECOVERY_DEADLINE, "the restart noticed")
        # A is edited while Redis is up (its page purged there), and the new page cached.
        new_title = f"edited after the backup {uuid.uuid4().hex[:8]}"
        update_title(client, token, trio.a, new_title)
        assert title_of(warm(client, lambda: page(client, trio.a))) == new_title
        outages = services.redis.outages

        # (The premise: the backup serves A's old page.)
        with private_redis(_copied(backup, tmp_path / "premise"), persistent=True) as restored:
            assert any(old_title.encode() in body for body in cached_bodies(restored))

        # When Redis is restored from the backup between two requests (no call fails meanwhile).
        persistent_redis_server.stop()
        _copied(backup, persistent_redis_server.folder)
        persistent_redis_server.start()
        if noticed_by == "the-watch":
            # The watch compares Redis's run_id every few seconds, requests or not.
            until(lambda: services.redis is not None and services.redis.outages > outages, 8.0, "the restart noticed")

        # Then A's page is never the old one.
        def recovered() -> bool:
            assert title_of(page(client, trio.a)) == new_title
            return services.redis is not None and services.redis.up and services.redis.outages > outages

        until(recovered, RECOVERY_DEADLINE, "the restart noticed and the cache back")
        assert title_of(warm(client, lambda: page(client, trio.a))) == new_title
        assert not any(old_title.encode() in body for body in cached_bodies(persistent_redis_server))


def _copied(source: Path, target: Path) -> Path:
    shutil.rmtree(target, ignore_errors=True)
    shutil.copytree(source, target)
    return target


# -- a slow Redis ---------------------------------------------------------------------------------


def test_a_slow_redis_trips_the_breaker_and_missed_purges_are_applied_when_it_answers(
    store: tuple[str, str, Trio], redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    url, token, trio = store
    caplog.set_level(logging.INFO, logger="alphanode.cache")
    with app_on(url, redis_server) as (client, services):
        assert services.redis is not None
        warm(client, lambda: page(client, trio.a))
        b_page = warm(client, lambda: page(client, trio.b))
        run_id = services.redis.run_id

        # When Redis stops answering for three seconds (blocked, its connections open).
        sleeper = redis_server.sleep(3)
        try:
            # Then the first request waits at most the timeout, and trips the breaker.
            started = time.monotonic()
            assert cache_of(page(client, trio.a)) == "unavailable"  # asked, no answer in time: unavailable, not a miss
            assert time.monotonic() - started < 2.0
            assert services.redis.up is False
            errors = cache_errors(client)
            assert errors >= 1
            # The following ones do not touch Redis at all, and answer while it still sleeps.
            for reference in (trio.a, trio.b, trio.c) * 3:
                title_of(page(client, reference))
            new_title = f"edited while Redis was slow {uuid.uuid4().hex[:8]}"
            update_title(client, token, trio.a, new_title)
            assert title_of(page(client, trio.a)) == new_title
            assert health(client)["cache"] == "down"
            assert cache_errors(client) == errors
            assert sleeper.poll() is None, "Redis woke before the requests were answered: nothing proven"
        finally:
            sleeper.wait(timeout=10)

        # When Redis answers again (the same server: no restart).
        until(lambda: health(client).get("cache") == "ok", RECOVERY_DEADLINE, "the cache is back")
        assert services.redis.run_id == run_id
        # Then the purge it missed was applied: A's page is new; B's, unrelated, is still cached.
        response = page(client, trio.a)
        assert title_of(response) == new_title
        assert cache_of(response) == "miss"
        response = page(client, trio.b)
        assert cache_of(response) == "hit"
        assert response.content == b_page.content
        assert title_of(warm(client, lambda: page(client, trio.a))) == new_title
    messages = [r.getMessage() for r in caplog.records if r.name == "alphanode.cache"]
    assert "Redis is down (TimeoutError): serving without it until it answers again" in messages
    assert any(m.startswith("applied purges of") for m in messages), messages
    assert not any(m.startswith("invalidated the whole cache") for m in messages), messages


# -- persisted queries ------------------------------------------------------------------------------


def test_persisted_queries_run_while_redis_is_down_and_reach_it_when_it_is_back(
    store: tuple[str, str, Trio], redis_server: RedisServer
) -> None:
    url, _, _ = store
    known = "query KnownBefore { posts(first: 1) { totalCount } }"
    learned = "query LearnedDuring { posts(first: 2) { edges { node { slug } } } }"
    with app_on(url, redis_server) as (one, services):
        assert services.redis is not None
        ran(send(one, "POST", query=known, extensions=extension(known)))
        redis_server.stop()
        # A query learned before runs by its hash (this process keeps it too).
        for method in ("GET", "POST"):
            assert ran(send(one, method, extensions=extension(known)))["posts"]["totalCount"] > 1
        # A new one is learned while Redis is down, and runs by its hash.
        assert codes(send(one, "GET", extensions=extension(learned))) == ["PERSISTED_QUERY_NOT_FOUND"]
        assert services.redis.up is False
        ran(send(one, "POST", query=learned, extensions=extension(learned)))
        slugs = ran(send(one, "GET", extensions=extension(learned)))
        assert len(slugs["posts"]["edges"]) == 2
        # Another process, started while Redis is down, starts and serves (it has not learned them).
        with app_on(url, redis_server) as (two, other):
            assert other.redis is not None and other.redis.up is False
            assert health(two) == {"status": "ok", "database": "ok", "cache": "down"}
            assert codes(send(two, "GET", extensions=extension(learned))) == ["PERSISTED_QUERY_NOT_FOUND"]

            # When Redis is back (empty), the query learned meanwhile is written to it...
            redis_server.start()
            until(lambda: health(one).get("cache") == "ok", RECOVERY_DEADLINE, "Redis back for the first app")
            with redis_server.client() as raw:
                assert raw.get(f"{PREFIX}pq:{extension(learned)['persistedQuery']['sha256Hash']}") == learned.encode()
            # ... so that the other process runs it by its hash.
            until(lambda: health(two).get("cache") == "ok", RECOVERY_DEADLINE, "Redis back for the second app")
            assert ran(send(two, "GET", extensions=extension(learned))) == slugs


def test_an_app_started_while_redis_is_down_serves_and_uses_redis_once_it_answers(
    store: tuple[str, str, Trio], redis_server: RedisServer
) -> None:
    url, _, trio = store
    redis_server.stop()
    with app_on(url, redis_server) as (client, services):
        assert services.redis is not None and services.redis.up is False
        assert health(client)["cache"] == "down"
        assert cache_of(page(client, trio.a)) == "unavailable"
        assert cache_of(page(client, trio.a)) == "unavailable"
        redis_server.start()
        until(lambda: health(client).get("cache") == "ok", RECOVERY_DEADLINE, "the cache is back")
        warm(client, lambda: page(client, trio.a))


# -- the response cache and its breaker, without the app ----------------------------------------------


def _entry(body: bytes, *keys: str) -> Entry:
    return Entry(body, '"' + body.decode() + '"', keys, "application/json")


async def _until_up(link: RedisLink) -> None:
    deadline = time.monotonic() + RECOVERY_DEADLINE
    while not link.up:
        assert time.monotonic() < deadline, "Redis not used again"
        await asyncio.sleep(0.02)


@pytest.mark.parametrize("missed", ["a-few-keys", "more-than-are-remembered"])
def test_purges_redis_missed_are_applied_with_their_marks_before_it_is_read_again(
    redis_server: RedisServer, missed: str
) -> None:
    async def run() -> None:
        link = RedisLink(redis_server.url, timeout=TIMEOUT, probe_interval=0.05)
        cache = RedisCache(link, PREFIX, max_missed=3)
        await link.start()
        try:
            assert await cache.put("page-1", _entry(b"one", "p1"), started_at=0)
            assert await cache.put("page-2", _entry(b"two", "p2"), started_at=0)
            run_id = link.run_id
            # Redis stops answering (it is not restarted): the first call trips the breaker.
            sleeper = redis_server.sleep(1.5)
            assert await cache.get("page-1") is None
            assert not link.up
            assert link.errors["get"] == 1
            # Nothing touches Redis now: a store is skipped, a purge remembered.
            assert await cache.put("page-3", _entry(b"three", "p3"), started_at=9) is False
            keys = ["p1"] if missed == "a-few-keys" else ["p1", "p4", "p5", "p6"]
            assert await cache.purge(keys, 5) == 0
            assert cache.generation == 5
            assert cache.pending()
            assert link.errors == {"get": 1}
            await asyncio.to_thread(sleeper.wait, 10)
            await _until_up(link)
            assert link.run_id == run_id
            assert not cache.pending()
            # A response computed before the purge (it started at 4) cannot be stored after recovery...
            assert await cache.put("page-1", _entry(b"old", "p1"), started_at=4) is False
            assert await cache.get("page-1") is None
            if missed == "a-few-keys":
                # ... and what the purge did not name is still cached.
                assert await cache.get("page-2") == _entry(b"two", "p2")
                assert await cache.put("page-9", _entry(b"nine", "p9"), started_at=4) is True
            else:
                # Past the bound, every entry went, and nothing computed before the purge is stored.
                assert await cache.get("page-2") is None
                assert await cache.put("page-9", _entry(b"nine", "p9"), started_at=4) is False
            assert await cache.put("page-1", _entry(b"new", "p1"), started_at=5) is True
            assert await cache.get("page-1") == _entry(b"new", "p1")
        finally:
            await link.stop()

    asyncio.run(run())
