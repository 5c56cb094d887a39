"""An import killed half way and run again ends in the same state as one clean run."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

import models
from documents.synth import write
from tests.store.dump import logical_dump

DOCUMENTS = 3_000


def _import(url: str, corpus: Path) -> subprocess.Popen[bytes]:
    env = dict(os.environ, ALPHANODE_DATABASE_URL=url)
    return subprocess.Popen(
        [sys.executable, "-m", "server.cli", "import", "--batch-size", "100", "-q", str(corpus)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def _kill_after(url: str, process: subprocess.Popen[bytes], posts: int, timeout: float = 120) -> int:
    """Kill the import with SIGKILL once the store holds ``posts`` posts; how many it held then."""

    async def count(engine: AsyncEngine) -> int:
        try:
            async with engine.connect() as conn:
                return int((await conn.execute(text("SELECT count(*) FROM post"))).scalar_one())
        except DBAPIError:  # the table is not there yet
            return 0

    async def watch() -> int:
        engine = models.create_engine(url)
        try:
            deadline = asyncio.get_running_loop().time() + timeout
            while (
                await count(engine) < posts and asyncio.get_running_loop().time() < deadline and process.poll() is None
            ):
                await asyncio.sleep(0.02)
            process.send_signal(signal.SIGKILL)
            process.communicate(timeout=30)
            return await count(engine)
        finally:
            await engine.dispose()

    return asyncio.run(watch())


@pytest.mark.slow
def test_killed_import_run_again_matches_a_clean_run(tmp_path: Path, new_store_url: Callable[[str], str]) -> None:
    corpus = tmp_path / "corpus"
    write(corpus, DOCUMENTS, seed=23)

    clean = new_store_url("clean")
    first = _import(clean, corpus)
    first.communicate(timeout=300)
    assert first.returncode == 0

    # Given an import killed after some batches committed and before the end
    interrupted = new_store_url("interrupted")
    process = _import(interrupted, corpus)
    killed_at = _kill_after(interrupted, process, 500)
    assert 0 < killed_at < DOCUMENTS, "the import must be killed half way for this test to mean anything"

    # When it runs again
    rerun = _import(interrupted, corpus)
    out, err = rerun.communicate(timeout=300)
    assert rerun.returncode == 0, err.decode()
    assert f"{DOCUMENTS - killed_at} created" in out.decode()

    # Then the store is the same as after one clean run
    assert logical_dump(interrupted) == logical_dump(clean)
