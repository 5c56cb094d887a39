"""What the tests make again and again, in one place: corpora, imports, and statements on a store.

Each helper goes through the code under test's public entry points (the synthesizer, the
importer), never around them, and fails the test where what it made is not whole (a document
rejected, a source missing).
"""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy import Connection

import models
from documents.synth import write
from store.importer import import_sources
from store.sources import collect_sources, file_source
from tests.conftest import SEED_DOCUMENT


def small_corpus(folder: Path, count: int = 20, seed: int = 11) -> Path:
    """``count`` synthesized documents and the real seed document, in ``folder``."""
    write(folder, count, seed=seed)
    shutil.copy(SEED_DOCUMENT, folder / SEED_DOCUMENT.name)
    return folder


async def imported(url: str, *paths: Path) -> Any:
    """Import files or folders into the store at ``url`` as ``alphanode import`` does (author
    ``import``), in-process, making the store first if need be; the receipt. Nothing may be rejected."""
    engine = models.create_engine(url)
    try:
        await models.create_all(engine)
        sources, missing = collect_sources([str(p) for p in paths])
        assert missing == []
        receipt = await import_sources(engine, sources)
        assert receipt.rejected == [], receipt.rejected
        return receipt
    finally:
        await engine.dispose()


def import_paths(url: str, *paths: Path) -> Any:
    """``imported``, from synchronous code."""
    return asyncio.run(imported(url, *paths))


def import_files(url: str, *files: Path) -> Any:
    """Import these files into an existing store, each read as the importer reads a file; the receipt."""

    async def run() -> Any:
        engine = models.create_engine(url)
        try:
            receipt = await import_sources(engine, [file_source(f) for f in files])
            assert receipt.rejected == [], receipt.rejected
            return receipt
        finally:
            await engine.dispose()

    return asyncio.run(run())


def on_store(url: str, fn: Callable[[Connection], Any]) -> Any:
    """``fn(connection)`` on the store; what it writes is rolled back unless it commits."""

    async def run() -> Any:
        engine = models.create_engine(url)
        try:
            async with engine.connect() as conn:
                return await conn.run_sync(fn)
        finally:
            await engine.dispose()

    return asyncio.run(run())
