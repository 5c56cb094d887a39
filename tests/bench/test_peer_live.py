"""PostGraphile itself, on a small PostgreSQL store: it starts, answers the benchmark's queries
with this API's content, sends one statement per request, and stops by its process id.

Needs Node.js and ``bench/postgraphile/node_modules`` (``make test`` installs it with
``npm ci``, as ``make bench-peer-deps`` does); fails and says so without them.
"""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

import orjson
import psutil
import pytest

from bench import load, peer, peers
from tests.factories import import_paths


@pytest.fixture(scope="module")
def dialect(postgres_server: object) -> str:
    """PostGraphile serves PostgreSQL only: this module's stores are PostgreSQL's."""
    return "postgresql"


def test_postgraphile_answers_with_the_apis_content_in_one_statement(
    database_url: str, corpus: Path, tmp_path: Path
) -> None:
    if shutil.which("node") is None:
        pytest.fail("node is not installed: PostGraphile needs Node.js 18+ and npm (CI has them)")
    if peer.installed_version() != peer.locked_version():
        pytest.fail(f"PostGraphile {peer.locked_version()} is not installed in {peer.FOLDER}: run make bench-peer-deps")
    import_paths(database_url, corpus)
    config = peers.Config(
        count=0, seconds=1, warmup=0, connections=1, threads=1, rounds=1, post_pages=8, listing_pages=3, quick=True
    )
    api_bodies, _, comparisons = asyncio.run(peers._api_bodies(database_url, config))
    assert all(c.ok for c in comparisons.values()), comparisons
    assert [len(api_bodies[op]) for op in peers.OPERATIONS] == [8, 3, 3]

    # PostGraphile's own statement log: one statement per request, whatever it nests.
    log = tmp_path / "statements.log"
    with peer.serve(database_url, log, debug_sql=True) as server:
        pid = server.pid
        pg_bodies = peers._postgraphile_bodies(server, api_bodies)
        for operation, requests in pg_bodies.items():
            counts = peer.count_statements(server, log, [orjson.dumps(b) for b in requests])
            assert counts == [1] * len(api_bodies[operation]), operation
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE

    # The content check over HTTP passes on the real answers of the three servers.
    api = {op: [orjson.dumps(b) for b in bodies] for op, bodies in api_bodies.items()}
    theirs = {op: [orjson.dumps(b) for b in bodies] for op, bodies in pg_bodies.items()}
    result = peers.Result("now", "test", {}, {}, {})
    with (
        load.serve(
            load.GRAPHQL_APP, database_url, tmp_path / "api.log", env={"ALPHANODE_CACHE": "false"}
        ) as api_server,
        load.serve(load.HANDWRITTEN_APP, database_url, tmp_path / "hand.log") as hand_server,
        peer.serve(database_url, tmp_path / "pg.log") as pg_server,
    ):
        servers = {"graphql": api_server, "handwritten": hand_server, "postgraphile": pg_server}
        peers._content_check(servers, api, theirs, result)
        assert {op: result.checks[op]["compared"] for op in peers.OPERATIONS} == {
            "PostPage": 8,
            "Listing": 3,
            "ListingWithoutTotal": 3,
        }
        # And it stops when the content differs: another post's page in place of the first.
        swapped = {**theirs, "PostPage": theirs["PostPage"][1:] + theirs["PostPage"][:1]}
        with pytest.raises(SystemExit, match="content check failed"):
            peers._content_check(servers, api, swapped, result)
