"""A served SQLite store's write-ahead log stays bounded while readers never stop.

Under steady traffic some read transaction is always open, so SQLite never gets to start its
log over by itself and the log grows by every write (checkpoint starvation). The server's
``WalKeeper`` checkpoints and empties it once it passes ``ALPHANODE_WAL_MAX_BYTES``.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

import httpx2
import pytest

from server.app import create_app
from server.settings import Settings
from store.wal import WalKeeper
from tests.editing import create_token, headers_for, import_folder, small_corpus

LIMIT = 256 * 1024
READERS = 6
EDITS = 80
READ = "{ posts(first: 20) { totalCount edges { node { title meta { stack } } } } facets { topic { value } } }"
SET_STATUS = "mutation S($id: ID!, $status: String!) { setStatus(id: $id, status: $status) { __typename } }"


@pytest.fixture
def store(tmp_path: Path) -> tuple[str, Path, str]:
    path = tmp_path / "store.db"
    url = f"sqlite:///{path}"
    import_folder(url, small_corpus(tmp_path / "corpus", 30))
    return url, path, create_token(url, "keeper", "editor")


def test_the_log_is_checkpointed_and_emptied_while_readers_never_stop(store: tuple[str, Path, str]) -> None:
    url, path, token = store
    app = create_app(Settings(database_url=url, cache=False, wal_max_bytes=LIMIT))
    wal = Path(f"{path}-wal")
    sizes: list[int] = []

    async def run() -> WalKeeper:
        async with app.router.lifespan_context(app):
            keeper: WalKeeper = app.state.services.wal
            keeper.interval = 0.05
            transport = httpx2.ASGITransport(app=app)
            async with httpx2.AsyncClient(transport=transport, base_url="http://test") as http:
                listed = await http.post("/graphql", json={"query": "{ posts(first: 30) { edges { node { id } } } }"})
                ids = [e["node"]["id"] for e in listed.json()["data"]["posts"]["edges"]]
                writing = True

                async def reader() -> None:  # some read transaction is open at every moment
                    while writing:
                        response = await http.post("/graphql", json={"query": READ})
                        assert response.status_code == 200, response.text

                async def writer() -> None:
                    nonlocal writing
                    for n in range(EDITS):
                        variables = {"id": ids[n % len(ids)], "status": f"pass-{n}"}
                        response = await http.post(
                            "/graphql", json={"query": SET_STATUS, "variables": variables}, headers=headers_for(token)
                        )
                        body: dict[str, Any] = response.json()
                        assert body["data"]["setStatus"]["__typename"] == "PostSaved", body
                        sizes.append(os.path.getsize(wal))
                    writing = False

                await asyncio.gather(writer(), *(reader() for _ in range(READERS)))
                # The keeper's next look, once the last writes are in.
                await asyncio.sleep(0.3)
                await keeper.keep()
                sizes.append(os.path.getsize(wal))  # the log now, with the store still open
            return keeper

    keeper = asyncio.run(run())
    # The log passed the limit and was emptied, again and again, while the readers went on.
    assert keeper.checkpoints >= 2, (keeper.checkpoints, sizes)
    assert keeper.last is not None and keeper.last.done and keeper.last.bytes_after == 0
    # It never grew far past the limit: by one look's writes at most.
    assert max(sizes) < 8 * LIMIT, max(sizes)
    assert sizes[-1] <= LIMIT


def test_the_keeper_is_for_sqlite_stores_only() -> None:
    from models import create_engine

    engine = create_engine("postgresql://postgres@127.0.0.1/none")
    with pytest.raises(ValueError, match="only SQLite"):
        WalKeeper(engine, lambda: None)  # type: ignore[arg-type,return-value]
