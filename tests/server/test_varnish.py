"""Varnish in front of two real instances, with the VCL the repository ships.

Two ``alphanode serve`` processes on one SQLite store, each told of the Varnish by
``ALPHANODE_VARNISH_PURGE_URLS``, behind a private varnishd (``tests/parts/varnish.py``)
loading ``deploy/varnish/alphanode.vcl`` as shipped, with a fleet.vcl naming the two
instances and the shipped ACL. Whether Varnish answered from its cache is read from the
``X-Cache`` header the VCL adds and from ``X-Varnish``: one request id on a miss or a pass,
two on a hit, the second being the request that stored the object.

A public GET is a miss, then a hit of the same object; a request with Authorization, and
/healthz, never are. A write through one instance reaches readers through Varnish and
readers of the other instance within a second, and leaves an unrelated page cached in
Varnish. A response computed before a write and stored in Varnish after every instance
purged it (held in Varnish by the test until then) is dropped by the purge sent again
``ALPHANODE_VARNISH_REPURGE_DELAY`` later.
"""

from __future__ import annotations

import http.client
import os
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx2
import pytest
from sqlalchemy import text

from tests.factories import import_paths
from tests.parts import varnish as varnish_part
from tests.parts.processes import free_port
from tests.parts.varnish import VCL, PrivateVarnish
from tests.server.caching import (
    PURGE_DEADLINE,
    Trio,
    bearer,
    create_editor,
    on_store,
    page,
    pick_trio,
    title_of,
    update_title,
)
from tests.server.test_observability import scrape, value
from tests.server.test_two_processes import servers

REPURGE_DELAY = 2.0  # seconds: ALPHANODE_VARNISH_REPURGE_DELAY of the instances (the default)
PURGES = "alphanode_varnish_purges"  # the family of alphanode_varnish_purges_total

# Holds a fetch that carries X-Test-Hold in Varnish, after the instance answered and before the
# object is stored, until the test closes the connection Varnish opens to it.
HOLD = """
import vtc;
sub vcl_backend_response {{
    if (bereq.http.X-Test-Hold) {{
        vtc.barrier_sync("127.0.0.1 {port}", 20s);
    }}
}}
"""


@dataclass
class Fleet:
    varnish: httpx2.Client
    one: httpx2.Client  # the instances, directly
    two: httpx2.Client
    url: str  # Varnish's
    token: str
    trio: Trio
    spare: tuple[str, int]  # reference and id of a post no other test reads
    hold: socket.socket  # where a held fetch connects
    written: float = 0.0  # when a test last wrote (time.monotonic())


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory, corpus: Path) -> Iterator[Fleet]:
    if (reason := varnish_part.missing()) is not None:
        pytest.skip(reason)
    folder = tmp_path_factory.mktemp("varnish-fleet")
    store = f"sqlite:///{folder / 'store.db'}"
    import_paths(store, corpus)
    token = create_editor(store)
    trio = pick_trio(store)
    others = text("SELECT reference, id FROM post WHERE id NOT IN (:a, :b, :c) ORDER BY id LIMIT 1")
    spare = on_store(store, lambda conn: conn.execute(others, {"a": trio.a_id, "b": trio.b_id, "c": trio.c_id}).one())
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("ALPHANODE_")}
    env |= {
        "ALPHANODE_DATABASE_URL": store,
        "ALPHANODE_VARNISH_PURGE_URLS": f"http://127.0.0.1:{port}",
        "ALPHANODE_VARNISH_REPURGE_DELAY": str(REPURGE_DELAY),
        "ALPHANODE_LOG_LEVEL": "warning",
    }
    logs = [folder / "one.log", folder / "two.log"]
    with (
        socket.create_server(("127.0.0.1", 0)) as hold,
        servers(env, logs) as (one, two),
        PrivateVarnish.create(
            [("127.0.0.1", one.base_url.port or 0), ("127.0.0.1", two.base_url.port or 0)],
            port=port,
            extra=HOLD.format(port=hold.getsockname()[1]),
        ) as varnish,
        httpx2.Client(base_url=varnish.url, timeout=10.0) as through,
    ):
        varnish.wait_until_healthy()
        yield Fleet(through, one, two, varnish.url, token, trio, (spare[0], spare[1]), hold)
    for log in logs:
        output = log.read_text(errors="replace")
        assert "Traceback" not in output, output


@pytest.fixture(autouse=True)
def settled(request: pytest.FixtureRequest) -> None:
    """A test of the fleet begins once the second purges of earlier tests' writes are sent: they
    would purge pages it reads (a page shows its similar posts) and move the purge counters."""
    if "fleet" in request.fixturenames:
        fleet: Fleet = request.getfixturevalue("fleet")
        time.sleep(max(0.0, fleet.written + REPURGE_DELAY + 0.3 - time.monotonic()))


def write_title(fleet: Fleet, reference: str, title: str) -> float:
    """An editor's new title for a post, through instance one; when it was answered."""
    update_title(fleet.one, fleet.token, reference, title)
    fleet.written = time.monotonic()
    return fleet.written


def cache_of(response: httpx2.Response) -> str:
    """HIT, MISS or PASS: what Varnish did."""
    assert response.status_code in (200, 304), response.text
    return response.headers["x-cache"]


def object_of(hit: httpx2.Response) -> str:
    """The object a hit was answered from: the id of the fetch that stored it, after the request's own."""
    ids = hit.headers["x-varnish"].split()
    assert len(ids) == 2, ids
    return ids[1]


def purges(client: httpx2.Client) -> float:
    """The PURGE requests an instance sent Varnish and Varnish accepted."""
    return value(scrape(client), PURGES, PURGES + "_total", result="ok")


def purge(url: str, keys: str | None, source: str = "127.0.0.1") -> tuple[int, str]:
    """A PURGE sent to Varnish from ``source`` (an address of this machine's loopback); its status and body."""
    host, port = url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=10, source_address=(source, 0))
    try:
        conn.request("PURGE", "/", headers={"Surrogate-Key": keys} if keys is not None else {})
        response = conn.getresponse()
        return response.status, response.read().decode()
    finally:
        conn.close()


def test_a_public_get_is_a_miss_then_a_hit_of_the_same_object(fleet: Fleet) -> None:
    # Given the page of a post nobody read through Varnish yet.
    reference = fleet.trio.c
    # When it is read twice.
    first = page(fleet.varnish, reference)
    second = page(fleet.varnish, reference)
    # Then the first went to an instance, the second was the object it stored.
    assert cache_of(first) == "MISS"
    assert len(first.headers["x-varnish"].split()) == 1
    assert cache_of(second) == "HIT"
    assert int(object_of(second)) > int(first.headers["x-varnish"])  # the miss's fetch, which came after it
    assert second.content == first.content
    assert "age" in second.headers
    # The API's caching headers pass through; the tags and the instance's timings of a hit do not.
    assert second.headers["cache-control"].startswith("public, max-age=")
    assert second.headers["etag"] == first.headers["etag"]
    for internal in ("surrogate-key", "xkey", "server-timing"):
        assert internal not in second.headers, internal
    assert "server-timing" in first.headers  # a miss: this request's own
    # The same query with its parameters in another order is the same object.
    params = dict(reversed(list(first.request.url.params.multi_items())))
    reordered = fleet.varnish.get("/graphql", params=params)
    assert str(reordered.request.url) != str(first.request.url)
    assert cache_of(reordered) == "HIT" and object_of(reordered) == object_of(second)
    # A browser's cookies do not matter to the API, nor to Varnish.
    with_cookie = page(fleet.varnish, reference, headers={"Cookie": "session=1"})
    assert cache_of(with_cookie) == "HIT" and object_of(with_cookie) == object_of(second)
    # And a conditional GET with its ETag is a 304 from Varnish, without a body.
    revalidated = page(fleet.varnish, reference, headers={"If-None-Match": first.headers["etag"]})
    assert revalidated.status_code == 304
    assert revalidated.content == b""
    assert cache_of(revalidated) == "HIT"


def test_a_request_with_authorization_is_never_answered_from_nor_stored_in_varnish(fleet: Fleet) -> None:
    # Given a post's public page cached in Varnish.
    reference = fleet.trio.c
    page(fleet.varnish, reference)
    assert cache_of(page(fleet.varnish, reference)) == "HIT"
    # When an editor reads it twice.
    answers = [page(fleet.varnish, reference, headers=bearer(fleet.token)) for _ in range(2)]
    # Then each went to an instance, and neither is kept.
    for answer in answers:
        assert cache_of(answer) == "PASS"
        assert len(answer.headers["x-varnish"].split()) == 1
        assert answer.headers["cache-control"] == "private, no-store"
        assert title_of(answer)
    # And readers still get the public object.
    assert cache_of(page(fleet.varnish, reference)) == "HIT"


def test_healthz_is_never_cached(fleet: Fleet) -> None:
    for _ in range(3):
        response = fleet.varnish.get("/healthz")
        assert response.status_code == 200
        assert response.json()["status"] == "ok"
        assert cache_of(response) == "PASS"
        assert len(response.headers["x-varnish"].split()) == 1
        assert response.headers["age"] == "0"


def test_a_write_through_one_instance_reaches_varnish_and_the_other_instance_within_a_second(fleet: Fleet) -> None:
    trio = fleet.trio
    # Given A's and B's pages cached in Varnish, and A's in instance two's own cache.
    for reference in (trio.a, trio.b):
        page(fleet.varnish, reference)
    assert cache_of(page(fleet.varnish, trio.a)) == "HIT"
    b_cached = page(fleet.varnish, trio.b)
    assert cache_of(b_cached) == "HIT"
    page(fleet.two, trio.a)
    sent = [purges(fleet.one), purges(fleet.two)]

    # When an editor changes A's title through instance one.
    new_title = f"written through instance one {uuid.uuid4().hex[:8]}"
    written = write_title(fleet, trio.a, new_title)

    # Then within a second Varnish serves the new title, and so does instance two directly.
    while True:
        through, direct = page(fleet.varnish, trio.a), page(fleet.two, trio.a)
        if title_of(through) == new_title and title_of(direct) == new_title:
            break
        assert time.monotonic() - written < PURGE_DEADLINE, (title_of(through), title_of(direct))
        time.sleep(0.02)
    assert cache_of(through) in ("MISS", "HIT")  # HIT: an earlier try of this loop stored it
    # Each instance purged Varnish (test_purging.py: each after its own cache).
    assert purges(fleet.one) > sent[0]
    assert purges(fleet.two) > sent[1]
    # And B's page, unrelated to A, is still the object Varnish stored before the write.
    response = page(fleet.varnish, trio.b)
    assert cache_of(response) == "HIT"
    assert object_of(response) == object_of(b_cached)
    assert response.content == b_cached.content


def test_a_response_computed_before_a_write_and_stored_after_its_purges_is_purged_again(fleet: Fleet) -> None:
    reference, post_id = fleet.spare
    assert purge(fleet.url, f"p{post_id}")[0] == 200  # not cached in Varnish, whatever ran before
    old_title = title_of(page(fleet.one, reference))
    fleet.hold.settimeout(10)
    # Given a read through Varnish that an instance has answered, held in Varnish before it is stored.
    held: dict[str, Any] = {}

    def read() -> None:
        with httpx2.Client(base_url=fleet.url, timeout=30) as client:
            held["response"] = page(client, reference, headers={"X-Test-Hold": "1"})

    reader = threading.Thread(target=read)
    reader.start()
    connection, _ = fleet.hold.accept()
    try:
        # When an editor changes the post's title, and every instance has purged Varnish.
        sent = [purges(fleet.one), purges(fleet.two)]
        new_title = f"written while a read was on its way {uuid.uuid4().hex[:8]}"
        written = write_title(fleet, reference, new_title)
        while purges(fleet.one) == sent[0] or purges(fleet.two) == sent[1]:
            assert time.monotonic() - written < PURGE_DEADLINE, "the instances did not purge Varnish"
            time.sleep(0.02)
    finally:
        connection.close()  # lets the held response be stored
    reader.join(timeout=30)
    # Then Varnish stored the old page after the purges, and serves it.
    assert title_of(held["response"]) == old_title
    stale = page(fleet.varnish, reference)
    assert (cache_of(stale), title_of(stale)) == ("HIT", old_title)
    assert time.monotonic() - written < REPURGE_DELAY - 0.5, "too slow to see the race before the second purge"
    # Until the purge sent again drops it.
    while title_of(response := page(fleet.varnish, reference)) != new_title:
        assert time.monotonic() - written < REPURGE_DELAY + PURGE_DEADLINE, "the second purge did not come"
        time.sleep(0.05)
    took = time.monotonic() - written
    assert took > REPURGE_DELAY - 0.5, took
    assert cache_of(response) == "MISS"


def test_purging_by_hand_is_allowed_to_the_acl_alone(fleet: Fleet) -> None:
    reference = fleet.trio.c
    page(fleet.varnish, reference)
    cached = page(fleet.varnish, reference)
    assert cache_of(cached) == "HIT"
    post_id = fleet.trio.c_id
    # From an address the shipped ACL leaves out (another of the loopback's): refused, nothing purged.
    assert purge(fleet.url, f"p{post_id}", source="127.0.0.2")[0] == 403
    assert object_of(page(fleet.varnish, reference)) == object_of(cached)
    # Without keys: refused.
    assert purge(fleet.url, None)[0] == 400
    # From this machine, with the post's key among others: the page is gone.
    status, body = purge(fleet.url, f"p999999 p{post_id}")
    assert status == 200
    assert body.startswith("purged ") and body.split()[1] != "0", body
    assert cache_of(page(fleet.varnish, reference)) == "MISS"


def test_with_no_instance_answering_varnish_answers_a_json_503(tmp_path: Path) -> None:
    if (reason := varnish_part.missing()) is not None:
        pytest.skip(reason)
    with (
        PrivateVarnish.create([("127.0.0.1", free_port())]) as varnish,
        httpx2.Client(base_url=varnish.url, timeout=10) as client,
    ):
        response = client.get("/graphql", params={"query": "{ __typename }"})
    assert response.status_code == 503
    assert response.headers["content-type"].startswith("application/json")
    assert response.headers["cache-control"] == "no-store"
    assert response.json()["errors"][0]["extensions"]["code"] == "SERVICE_UNAVAILABLE"


def test_the_shipped_vcl_compiles_with_the_shipped_fleet(tmp_path: Path) -> None:
    if (reason := varnish_part.missing()) is not None:
        pytest.skip(reason)
    # As the VCL's header says to start it on the repository's files.
    compiled = subprocess.run(
        [
            str(varnish_part.VARNISHD),
            "-C",
            "-n",
            str(tmp_path / "work"),
            "-p",
            f"vcl_path={VCL.parent}",
            "-f",
            str(VCL),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert compiled.returncode == 0, compiled.stderr[-3000:]
