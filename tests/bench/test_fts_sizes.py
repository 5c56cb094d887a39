"""bench/fts_sizes.py on a small store: every way it times gives the shadow tables' numbers."""

from __future__ import annotations

import asyncio
from pathlib import Path

from bench.fts_sizes import public_ways, through_api
from documents.synth import write
from tests.graph.finding import import_folder


def test_every_way_is_timed_and_agrees(tmp_path: Path) -> None:
    path = tmp_path / "store.db"
    write(tmp_path / "documents", 12, seed=44)
    assert asyncio.run(import_folder(f"sqlite:///{path}", tmp_path / "documents")).created == 12
    timed = asyncio.run(through_api(str(path), 1, [12, 2], api_only=False))
    assert set(timed) == {
        "Text.load",
        "Text.delta (2 posts)",
        "shadow: rows and tokens, post_fts_data id 1",
        "shadow: sizes, post_fts_docsize",
    }
    found = public_ways(str(path), 1, [12, 2])  # asserts each way's values
    assert len(found) == 7 and all(ms >= 0 for ms in found.values())
