"""Targeted purges through the ASGI app on real stores: an edit or an import purges exactly the
responses that show what it changed, in the process and in Redis, on SQLite and PostgreSQL; the purge
webhook; a purge and a store racing in Redis; the in-process cache's memory of purges."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import shutil
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from documents import parse, render
from server.app import create_app
from server.settings import Settings
from tests.factories import import_files, import_paths
from tests.server.caching import (
    FACETS,
    LISTING,
    PURGE_DEADLINE,
    REDIS_URL,
    Trio,
    cache_of,
    create_editor,
    get,
    keys_of,
    page,
    pick_trio,
    redis_key_count,
    title_of,
    update_title,
    warm,
    webhook_server,
)

# -- targeted purges: in the process and in Redis, on SQLite and PostgreSQL -------------------------


@dataclasses.dataclass
class Served:
    url: str
    client: TestClient
    token: str
    trio: Trio
    documents: Path


@pytest.fixture(params=["memory", "redis"])
def served(request: pytest.FixtureRequest, database_url: str, tmp_path: Path, corpus: Path) -> Iterator[Served]:
    """The app on a store of its own (the session's corpus), with the in-process cache or Redis."""
    documents = tmp_path / "documents"
    shutil.copytree(corpus, documents)
    import_paths(database_url, documents)
    token = create_editor(database_url)
    extra: dict[str, Any] = {}
    if request.param == "redis":
        extra = {"redis_url": REDIS_URL, "redis_prefix": request.getfixturevalue("redis_prefix")}
    with TestClient(create_app(Settings(database_url=database_url, **extra))) as client:
        yield Served(database_url, client, token, pick_trio(database_url), documents)
    if request.param == "redis":
        assert redis_key_count(extra["redis_prefix"]) > 0  # it did use Redis (the fixture deletes the keys)


def test_an_edit_purges_exactly_the_responses_that_show_the_post(served: Served) -> None:
    client, trio = served.client, served.trio
    # Given the pages of A, B and C, a listing and the facets in the cache.
    pages = {ref: warm(client, lambda ref=ref: page(client, ref)) for ref in (trio.a, trio.b, trio.c)}
    assert f"p{trio.a_id}" in keys_of(pages[trio.c])  # C's page shows A among its similar posts
    assert f"p{trio.a_id}" not in keys_of(pages[trio.b])
    warm(client, lambda: get(client, LISTING, {"first": 20}))
    warm(client, lambda: get(client, FACETS, {}, operation="Facets"))

    # When an editor changes A's title.
    new_title = f"a title nobody wrote before {uuid.uuid4().hex[:8]}"
    update_title(client, served.token, trio.a, new_title)

    # Then A's page is computed again and shows the new title.
    response = page(client, trio.a)
    assert cache_of(response) == "miss"
    assert title_of(response) == new_title
    # C's page, which shows A's title among its similar posts, too.
    response = page(client, trio.c)
    assert cache_of(response) == "miss"
    shown = [item["post"]["title"] for item in response.json()["data"]["post"]["similarPosts"]]
    assert new_title in shown
    # Lists and counts are purged.
    assert cache_of(get(client, LISTING, {"first": 20})) == "miss"
    assert cache_of(get(client, FACETS, {}, operation="Facets")) == "miss"
    # B, unrelated to A, is still served from the cache.
    response = page(client, trio.b)
    assert cache_of(response) == "hit"
    assert response.content == pages[trio.b].content


def _changed_copy(path: Path, title: str) -> Any:
    document = parse(path.read_bytes(), path.name)
    changed = dataclasses.replace(document, title=title)
    path.write_text(render(changed), encoding="utf-8")
    return changed


def test_a_cli_import_purges_the_running_apps_page_within_a_second(served: Served) -> None:
    client, trio = served.client, served.trio
    warm(client, lambda: page(client, trio.a))
    warm(client, lambda: page(client, trio.b))
    # Given A's document changed on disk, imported by another process (the command line's code).
    path = next(p for p in served.documents.glob("*.txt") if parse(p.read_bytes(), p.name).meta.reference == trio.a)
    new_title = f"imported from the command line {uuid.uuid4().hex[:8]}"
    _changed_copy(path, new_title)
    receipt = import_files(served.url, path)
    assert receipt.updated == 1
    imported = time.monotonic()
    # Then the running app drops its copy of A's page within a second.
    while True:
        response = page(client, trio.a)
        if title_of(response) == new_title:
            break
        assert cache_of(response) == "hit"
        assert time.monotonic() - imported < PURGE_DEADLINE, "the import did not purge the app's cache within 1 s"
        time.sleep(0.02)
    took = time.monotonic() - imported
    assert took <= PURGE_DEADLINE, took
    assert cache_of(response) == "miss"
    assert cache_of(page(client, trio.b)) == "hit"


# -- the purge webhook ---------------------------------------------------------------------------


def test_the_purge_webhook_gets_the_keys_of_a_change(tmp_path: Path, corpus: Path) -> None:
    url = f"sqlite:///{tmp_path / 'store.db'}"
    import_paths(url, corpus)
    token = create_editor(url)
    trio = pick_trio(url)
    with (
        webhook_server() as (hook, received),
        TestClient(create_app(Settings(database_url=url, purge_webhook=hook))) as client,
    ):
        update_title(client, token, trio.a, "a title for the content delivery network")
        deadline = time.monotonic() + 2.0
        keys: set[str] = set()
        while not ({f"p{trio.a_id}", "lists"} <= keys) and time.monotonic() < deadline:
            time.sleep(0.02)
            keys = set()
            for content_type, body in list(received):
                assert content_type.startswith("application/json")
                payload = json.loads(body)
                assert set(payload) == {"keys"} and isinstance(payload["keys"], list)
                keys |= set(payload["keys"])
    assert f"p{trio.a_id}" in keys, keys
    assert "lists" in keys
    assert f"p{trio.b_id}" not in keys


def test_a_purge_and_a_store_in_redis_never_leave_a_stale_page_whichever_lands_first(redis_prefix: str) -> None:
    # Process 2 stores a page computed before a write (purge-log id 5 changed post 1; it started at 4),
    # while process 1 applies that write's purge. Storing and purging are each one atomic script in
    # Redis, so they can only land one before the other: either way the old page must not stay cached
    # (it would be served until its time to live, an hour).
    from server.caching import Entry, RedisCache

    old = Entry(b"old", '"old"', ("p1",), "application/json")

    async def run() -> tuple[bool, Entry | None, bool, Entry | None]:
        storing, purging = RedisCache(REDIS_URL, redis_prefix), RedisCache(REDIS_URL, redis_prefix)
        try:
            # The purge lands first: the store sees its mark and refuses.
            await purging.purge(["p1"], 5)
            refused = await storing.put("old-page", old, started_at=4)
            after_refusal = await purging.get("old-page")
            # The store lands first (a page that began after an older purge): the purge removes it.
            stored = await storing.put("old-page-2", Entry(b"old", '"old"', ("p2",), "application/json"), 4)
            await purging.purge(["p2"], 6)
            after_purge = await purging.get("old-page-2")
            return refused, after_refusal, stored, after_purge
        finally:
            await storing.close()
            await purging.close()

    refused, after_refusal, stored, after_purge = asyncio.run(run())
    assert (refused, after_refusal) == (False, None)
    assert stored is True
    assert after_purge is None


def test_the_in_process_cache_remembers_a_bounded_number_of_purges_and_never_stores_what_they_replaced() -> None:
    # Each purged surrogate key's generation is kept so that a page computed before the purge is not
    # stored after it. A store of a million posts would keep a million such marks: past the bound the
    # oldest are forgotten, and a page begun before the newest forgotten one is refused (a miss later,
    # never a stale page).
    from server.caching import Entry, MemoryCache

    def page(key: str) -> Entry:
        return Entry(b"body of " + key.encode(), f'"{key}"', (key,), "application/json")

    async def run() -> None:
        cache = MemoryCache(max_marks=3)
        for generation, key in enumerate(("p1", "p2", "p3", "p4", "p5"), start=10):
            await cache.purge([key], generation)
        assert cache.purge_marks == 3  # p3, p4, p5 kept; p1 (10) and p2 (11) forgotten
        # Begun before p2's forgotten purge: refused whatever its keys, as p2's own page would be.
        assert await cache.put("page-p9", page("p9"), started_at=10) is False
        assert await cache.put("page-p2", page("p2"), started_at=10) is False
        # Begun after it: a page of a key still remembered is judged by its own mark…
        assert await cache.put("page-p5", page("p5"), started_at=13) is False
        assert await cache.put("page-p3", page("p3"), started_at=13) is True
        # …and a page of a forgotten key is stored.
        assert await cache.put("page-p1", page("p1"), started_at=11) is True
        assert await cache.get("page-p1") == page("p1")
        # A key purged again moves to the newest end: purging two more forgets p4, not p3.
        await cache.purge(["p3"], 15)
        await cache.purge(["p6"], 16)
        assert cache.purge_marks == 3
        assert await cache.put("page-p4", page("p4"), started_at=13) is True  # p4 (13) forgotten: 13 >= 13
        assert await cache.put("page-p3b", page("p3"), started_at=14) is False  # p3's mark is 15

    asyncio.run(run())
