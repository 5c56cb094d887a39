"""Import receipts are kept for editors: what each import created, updated and refused, and why."""

from __future__ import annotations

import asyncio
from pathlib import Path

from starlette.testclient import TestClient

import models
from server.app import create_app
from server.cli import main
from server.settings import Settings
from store.tokens import create_token
from tests.conftest import SEED_DOCUMENT

QUERY = "{ importReceipts(first: 5) { author created updated unchanged rejected rejections { document error } } }"


def _token(url: str) -> str:
    async def create() -> str:
        engine = models.create_engine(url)
        try:
            async with engine.begin() as conn:
                return await conn.run_sync(create_token, "receipts-editor", "editor")
        finally:
            await engine.dispose()

    return asyncio.run(create())


def test_editors_read_each_import_receipt_with_its_rejections_and_readers_may_not(
    database_url: str, tmp_path: Path
) -> None:
    # Given two imports from the command line, the second with a document refused at line 58.
    broken = tmp_path / "broken.txt"
    broken.write_text(SEED_DOCUMENT.read_text(encoding="utf-8").replace("quality: 96", "quality: 196"))
    assert main(["import", "--quiet", "--database", database_url, str(SEED_DOCUMENT)]) == 0
    assert main(["import", "--quiet", "--database", database_url, str(SEED_DOCUMENT), str(broken)]) == 1
    token = _token(database_url)
    with TestClient(create_app(Settings(database_url=database_url, cache=False))) as client:
        # When an editor asks, then a reader.
        as_editor = client.post("/graphql", json={"query": QUERY}, headers={"Authorization": f"Bearer {token}"})
        as_reader = client.post("/graphql", json={"query": QUERY})
    # Then the editor gets both receipts, newest first, and the reader an UNAUTHENTICATED error.
    latest, first = as_editor.json()["data"]["importReceipts"]
    assert (first["created"], first["updated"], first["unchanged"], first["rejected"]) == (1, 0, 0, 0)
    assert (latest["created"], latest["unchanged"], latest["rejected"]) == (0, 1, 1)
    assert latest["author"] == first["author"] == "import"
    (rejection,) = latest["rejections"]
    assert rejection["document"] == str(broken)
    assert rejection["error"].startswith(f"{broken}:58: score quality: a number from 0 to 100, not 196")
    body = as_reader.json()
    assert body["data"] is None
    assert body["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
